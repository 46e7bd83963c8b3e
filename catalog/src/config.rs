//! The command line, with environment fallbacks.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ecommerce::keys::default_keys_dir;

/// The catalog HTTP service: `GET /products`, priced by the discount gRPC service.
///
/// With `X-USER-ID: <customer id>` each product is priced by the discount service over TLS;
/// any product whose call fails is served at its full price. The keys directory's CA is
/// what the catalog trusts for the discount server.
#[derive(Debug, Parser)]
#[command(name = "catalog", version)]
pub struct Cli {
    /// The TCP port to listen on.
    #[arg(env = "CATALOG_PORT", default_value_t = 11080)]
    pub port: u16,

    /// Listen on this address only. By default the service listens on all interfaces,
    /// IPv4 and IPv6.
    #[arg(long, env = "CATALOG_BIND", value_name = "IP")]
    pub bind: Option<IpAddr>,

    /// The discount service, as host:port (or https://host:port).
    #[arg(
        long = "discount-host",
        env = "DISCOUNT_SERVICE_HOST",
        value_name = "HOST:PORT",
        default_value = "localhost:11443"
    )]
    pub discount_host: String,

    /// The time a request's discount calls may take together, in milliseconds. Products
    /// not priced by then are served at full price.
    #[arg(
        long = "discount-timeout-ms",
        env = "DISCOUNT_TIMEOUT_MS",
        value_name = "MS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub discount_timeout_ms: u64,

    /// The keys directory, shared with discount [default: the repository's keys/]. Its
    /// `ca.pem` (or, lacking one, `cert.pem`) is trusted; if it has neither, a new set of
    /// keys is generated there.
    #[arg(long, env = "KEYS_DIR", value_name = "DIR", default_value_os_t = default_keys_dir(), hide_default_value = true)]
    pub keys_dir: PathBuf,

    /// A JSON file of products and customers to serve instead of the built-in demo data.
    #[arg(long, env = "CATALOG_DATA", value_name = "FILE")]
    pub data: Option<PathBuf>,
}

impl Cli {
    /// `--discount-timeout-ms` as a duration.
    pub fn discount_timeout(&self) -> Duration {
        Duration::from_millis(self.discount_timeout_ms)
    }
}
