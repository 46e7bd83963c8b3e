//! The command line, with environment fallbacks.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ecommerce::cli::CommonArgs;
use ecommerce::keys::PemIdentity;
use ecommerce::shutdown::DelayArgs;

use crate::discounts::{BreakerSettings, DiscountSettings};
use crate::overload::admission::AdmissionSettings;

/// The catalog HTTP service: `GET /products`, priced by the discount gRPC service.
///
/// With `X-USER-ID: <customer id>` each product is priced by the discount service over TLS;
/// any product whose call fails is served at its full price. The keys directory's CA is
/// what the catalog trusts for the discount server.
#[derive(Debug, Parser)]
#[command(name = "catalog", version, args_conflicts_with_subcommands = true)]
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
}

/// What else the binary can do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Asks a running catalog on this host whether it is ready (GET /readyz); exits 0 when
    /// it answers 200 (for container health checks).
    Healthcheck {
        /// The catalog's port.
        #[arg(env = "CATALOG_PORT", default_value_t = 11080)]
        port: u16,
    },
}

/// The options of the service itself.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TCP port to listen on.
    #[arg(env = "CATALOG_PORT", default_value_t = 11080)]
    pub port: u16,

    /// Listen on this address only. By default the service listens on all interfaces,
    /// IPv4 and IPv6.
    #[arg(long, env = "CATALOG_BIND", value_name = "IP")]
    pub bind: Option<IpAddr>,

    /// The discount service, as host:port (or https://host:port). Several replicas: a
    /// comma-separated list, or a name that resolves to several addresses (resolved again
    /// every --resolve-interval-secs).
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

    /// Consecutive failed calls after which a discount replica is not called for a while
    /// (its circuit breaker opens).
    #[arg(
        long = "breaker-failures",
        env = "DISCOUNT_BREAKER_FAILURES",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub breaker_failures: u32,

    /// How long an open circuit breaker refuses calls at least, in milliseconds; after it,
    /// the next health check that answers closes it (no customer call is used as a probe).
    #[arg(
        long = "breaker-cooldown-ms",
        env = "DISCOUNT_BREAKER_COOLDOWN_MS",
        value_name = "MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    pub breaker_cooldown_ms: u64,

    /// How often the discount host names are resolved again, in seconds.
    #[arg(
        long = "resolve-interval-secs",
        env = "DISCOUNT_RESOLVE_INTERVAL_SECS",
        value_name = "SECS",
        default_value_t = 5,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub resolve_interval_secs: u64,

    /// How often each discount replica's health is checked (grpc.health.v1 Check), in
    /// milliseconds. A replica that is unreachable or not serving gets no calls until a
    /// check finds it serving.
    #[arg(
        long = "health-check-interval-ms",
        env = "DISCOUNT_HEALTH_CHECK_INTERVAL_MS",
        value_name = "MS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(10..=600_000)
    )]
    pub health_check_interval_ms: u64,

    /// With several discount replicas: after this long without an answer, a call is also
    /// sent to another replica and the first answer wins, in milliseconds (0: never). Hedges
    /// and retries together are held to about 10% extra calls.
    #[arg(
        long = "hedge-delay-ms",
        env = "DISCOUNT_HEDGE_DELAY_MS",
        value_name = "MS",
        default_value_t = 50,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub hedge_delay_ms: u64,

    /// The most discount calls that priced requests may have in flight together: the
    /// ceiling of the adaptive admission limit. A request takes one per product (at most 64).
    /// The default, 32 requests of three products, was measured near the throughput peak of
    /// a 2-core machine (BENCHMARKS.md); raise it with the CPUs.
    #[arg(
        long = "max-inflight-calls",
        env = "CATALOG_MAX_INFLIGHT_CALLS",
        value_name = "N",
        default_value_t = 96,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    pub max_inflight_calls: u32,

    /// How long a priced request may wait for admission before it is answered 503 with
    /// Retry-After, in milliseconds.
    #[arg(
        long = "admission-wait-ms",
        env = "CATALOG_ADMISSION_WAIT_MS",
        value_name = "MS",
        default_value_t = 750,
        value_parser = clap::value_parser!(u64).range(0..=60_000)
    )]
    pub admission_wait_ms: u64,

    /// The most priced requests waiting for admission at once; past it, 503 at once.
    #[arg(
        long = "admission-queue",
        env = "CATALOG_ADMISSION_QUEUE",
        value_name = "N",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(0..)
    )]
    pub admission_queue: u32,

    /// Present the keys directory's client certificate (`client.pem`, `client.key`) to
    /// discount, for a discount that requires mutual TLS. If they are missing they are
    /// issued with the directory's CA key. Off by default.
    #[arg(long = "client-cert", env = "DISCOUNT_CLIENT_CERT")]
    pub client_cert: bool,

    /// A JSON file of products and customers to serve instead of the built-in demo data.
    #[arg(long, env = "CATALOG_DATA", value_name = "FILE")]
    pub data: Option<PathBuf>,

    /// The most HTTP connections served at once; past it, new connections wait in the
    /// kernel's queue until one closes.
    #[arg(
        long = "max-connections",
        env = "CATALOG_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_connections: u32,

    /// How long to keep serving, not ready, after SIGTERM.
    #[command(flatten)]
    pub shutdown: DelayArgs,

    /// Trace export.
    #[command(flatten)]
    pub tracing: ecommerce::telemetry::TraceArgs,

    /// How often the CA file and (with --client-cert) the client certificate are checked
    /// for a new set, used for new connections without a restart, in seconds (0: never).
    #[arg(
        long = "tls-reload-interval-secs",
        env = "CATALOG_TLS_RELOAD_INTERVAL_SECS",
        default_value_t = 5,
        value_parser = ecommerce::cli::reload_interval_secs()
    )]
    pub tls_reload_interval_secs: u64,
}

impl ServeArgs {
    /// The discount client's settings, trusting `trust_roots_pem` and presenting
    /// `client_identity`.
    pub fn discount_settings(
        &self,
        trust_roots_pem: Vec<u8>,
        client_identity: Option<PemIdentity>,
    ) -> DiscountSettings {
        DiscountSettings {
            client_identity,
            address: self.discount_host.clone(),
            trust_roots_pem,
            call_timeout: Duration::from_millis(self.discount_timeout_ms),
            breaker: BreakerSettings {
                failure_threshold: self.breaker_failures,
                cool_down: Duration::from_millis(self.breaker_cooldown_ms),
            },
            resolve_interval: Duration::from_secs(self.resolve_interval_secs),
            health_interval: Duration::from_millis(self.health_check_interval_ms),
            hedge_delay: Some(Duration::from_millis(self.hedge_delay_ms)),
        }
    }

    /// Admission control's settings. Admitted requests should finish well inside the
    /// discount deadline: the adaptive limit aims at a third of it.
    pub fn admission(&self) -> AdmissionSettings {
        AdmissionSettings {
            max_inflight_calls: self.max_inflight_calls as usize,
            wait: Duration::from_millis(self.admission_wait_ms),
            max_queue: self.admission_queue as usize,
            target_latency: Duration::from_millis(self.discount_timeout_ms) / 3,
        }
    }
}
