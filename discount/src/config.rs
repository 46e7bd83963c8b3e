//! The command line, with environment fallbacks, and its translation to a [`crate::Config`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use ecommerce::keys::default_keys_dir;

/// The discount gRPC service: gives customer 1 ten percent off, over TLS only.
///
/// TLS keys are read from the keys directory; if it has no `cert.pem`, a local CA and a
/// server certificate are generated there first (private keys mode 0600).
#[derive(Debug, Parser)]
#[command(name = "discount", version)]
pub struct Cli {
    /// The TCP port to listen on.
    #[arg(env = "DISCOUNT_PORT", default_value_t = 11443)]
    pub port: u16,

    /// Listen on this address only. By default the service listens on all interfaces,
    /// IPv4 and IPv6.
    #[arg(long, env = "DISCOUNT_BIND", value_name = "IP")]
    pub bind: Option<IpAddr>,

    /// The keys directory, shared with the catalog [default: the repository's keys/].
    #[arg(long, env = "KEYS_DIR", value_name = "DIR", default_value_os_t = default_keys_dir(), hide_default_value = true)]
    pub keys_dir: PathBuf,

    /// Extra host names or IP addresses for the server certificate, besides localhost,
    /// 127.0.0.1 and ::1 (for instance a container's host name). Used only when the keys are
    /// generated; delete the keys to regenerate them with new names.
    #[arg(
        long = "tls-name",
        env = "TLS_EXTRA_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub tls_names: Vec<String>,
}
