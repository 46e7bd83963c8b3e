//! The command line, with environment fallbacks.

use clap::{Args, Parser, Subcommand, ValueEnum};
use ecommerce::cli::CommonArgs;
use ecommerce::keys::LifetimeArgs;
use ecommerce::shutdown::DelayArgs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::faults::{FaultFlags, FlagSource, ServerMode};

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

    /// Fault flags, for demonstrations: a flag file in flagd's JSON format, followed as it
    /// changes (docs/failure-scenarios.md). Off by default: no faults, nothing evaluated.
    #[arg(
        long = "fault-flags",
        env = "FLAGD_OFFLINE_FLAG_SOURCE_PATH",
        value_name = "FILE"
    )]
    pub fault_flags: Option<PathBuf>,

    /// Where flagd's provider gets the fault flags: `file` (the default with --fault-flags),
    /// or a flagd server, `rpc` or `in-process`, configured by flagd's own FLAGD_HOST,
    /// FLAGD_PORT, FLAGD_TLS… variables.
    #[arg(
        long = "fault-flags-resolver",
        env = "FLAGD_RESOLVER",
        value_name = "RESOLVER",
        ignore_case = true
    )]
    pub fault_flags_resolver: Option<Resolver>,

    /// This replica's name, for the fault flags' targeting (`replica`). By default the
    /// host name (a container's or a pod's).
    #[arg(
        long = "replica-name",
        env = "DISCOUNT_REPLICA_NAME",
        value_name = "NAME"
    )]
    pub replica_name: Option<String>,
}

/// flagd's resolvers that discount has (its provider also has `rest`, not built in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Resolver {
    /// A flagd JSON file, read in process.
    File,
    /// Each flag evaluated by a flagd server.
    Rpc,
    /// Flag definitions streamed from a flagd server, evaluated in process.
    InProcess,
}

impl ServeArgs {
    /// The fault flags asked for, if any; an error when a file resolver has no file.
    pub fn fault_flags(&self) -> Result<Option<FaultFlags>, String> {
        let source = match (self.fault_flags_resolver, &self.fault_flags) {
            (Some(Resolver::Rpc), _) => FlagSource::Server(ServerMode::Rpc),
            (Some(Resolver::InProcess), _) => FlagSource::Server(ServerMode::InProcess),
            (_, Some(path)) => FlagSource::File(path.clone()),
            (Some(Resolver::File), None) => {
                return Err("the file resolver needs a flag file: --fault-flags FILE".into());
            }
            (None, None) => return Ok(None),
        };
        let replica = self.replica_name.clone().unwrap_or_else(host_name);
        Ok(Some(FaultFlags { source, replica }))
    }
}

/// The host's name (a container's or a pod's), or `discount` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "discount".to_owned())
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
