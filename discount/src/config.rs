//! The command line, with environment fallbacks.

use clap::{Args, Parser, Subcommand};
use ecommerce::cli::CommonArgs;
use ecommerce::keys::LifetimeArgs;
use ecommerce::shutdown::DelayArgs;
use std::net::{IpAddr, SocketAddr};

/// The discount gRPC service: gives customer 1 ten percent off, over TLS only.
///
/// TLS keys are read from the keys directory; if it has no `cert.pem`, a local CA and a
/// server certificate are generated there first (private keys mode 0600).
#[derive(Debug, Parser)]
#[command(name = "discount", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Without a subcommand: run the service.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// How to run the service.
    #[command(flatten)]
    pub serve: ServeArgs,

    /// The keys directory and the log format.
    #[command(flatten)]
    pub common: CommonArgs,

    /// Extra host names or IP addresses for the server certificate, besides localhost,
    /// 127.0.0.1 and ::1 (for instance a container's or a Kubernetes Service's name). A
    /// certificate that lacks one is reissued (at start, or by gen-keys --renew) when the
    /// directory holds the CA's key.
    #[arg(
        long = "tls-name",
        global = true,
        env = "TLS_EXTRA_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub tls_names: Vec<String>,

    /// Certificate lifetimes and renewal.
    #[command(flatten)]
    pub lifetime: LifetimeArgs,
}

/// The options of the service itself.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TCP port to listen on.
    #[arg(env = "DISCOUNT_PORT", default_value_t = 11443)]
    pub port: u16,

    /// Listen on this address only. By default the service listens on all interfaces,
    /// IPv4 and IPv6.
    #[arg(long, env = "DISCOUNT_BIND", value_name = "IP")]
    pub bind: Option<IpAddr>,

    /// Mutual TLS: require every client to present a certificate issued by the keys
    /// directory's CA (the catalog's is `client.pem`). Off by default.
    #[arg(long, env = "DISCOUNT_REQUIRE_CLIENT_CERT")]
    pub require_client_cert: bool,

    /// Also serve the gRPC health service alone, without TLS, at this address (for
    /// Kubernetes' gRPC probes, which speak plaintext only). Off by default.
    #[arg(long, env = "DISCOUNT_HEALTH_LISTEN", value_name = "IP:PORT")]
    pub health_listen: Option<SocketAddr>,

    /// Serve Prometheus metrics at http://IP:PORT/metrics. Off by default.
    #[arg(long, env = "DISCOUNT_METRICS_LISTEN", value_name = "IP:PORT")]
    pub metrics_listen: Option<SocketAddr>,

    /// The largest request message accepted, in bytes; larger ones are refused with
    /// RESOURCE_EXHAUSTED. The default is gRPC's standard 4 MiB.
    #[arg(
        long = "max-message-bytes",
        env = "DISCOUNT_MAX_MESSAGE_BYTES",
        value_name = "BYTES",
        default_value_t = crate::limits::DEFAULT_MAX_REQUEST_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1024 * 1024 * 1024)
    )]
    pub max_message_bytes: usize,

    /// How long to keep serving, not ready, after SIGTERM.
    #[command(flatten)]
    pub shutdown: DelayArgs,

    /// Trace export.
    #[command(flatten)]
    pub tracing: ecommerce::telemetry::TraceArgs,

    /// How often to check the certificate, key and client CA files for changes, in
    /// seconds: a good new set is used for new connections without a restart (0: never).
    #[arg(
        long = "tls-reload-interval-secs",
        env = "DISCOUNT_TLS_RELOAD_INTERVAL_SECS",
        default_value_t = 5,
        value_parser = ecommerce::cli::reload_interval_secs()
    )]
    pub tls_reload_interval_secs: u64,
}

/// What else the binary can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Asks a running discount service for its health, over TLS, trusting the keys
    /// directory's CA; exits 0 when it is SERVING (for container health checks).
    Healthcheck {
        /// The service's port on this host.
        #[arg(env = "DISCOUNT_PORT", default_value_t = 11443)]
        port: u16,
        /// The host to check; it must be a name in the service's certificate.
        #[arg(long, default_value = "localhost")]
        host: String,
    },
    /// Generates the keys directory's CA and server certificate, if missing, and exits
    /// (for a container volume or a Kubernetes Secret).
    GenKeys {
        /// Also reissue, from the kept ca.key, the server and client certificates that
        /// expire within --renew-before-days or lack a --tls-name (their keys are kept).
        #[arg(long)]
        renew: bool,
    },
}
