//! The signal that stops a service: Ctrl-C (SIGINT) or SIGTERM, which is how container
//! runtimes and Kubernetes ask a process to stop.

use std::future::Future;
use std::time::Duration;

use tokio::signal::unix::{self, Signal, SignalKind};

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that completes on the
/// first of them.
///
/// The handlers are installed by this call, not when the future is first polled: a signal
/// that arrives between start-up and the server's first poll must still mean "stop
/// cleanly", not the default "die at once". Call it before binding. Must run inside a tokio
/// runtime. If a handler cannot be installed (practically never), the failure is logged and
/// the other signal still works.
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    let interrupt = install(SignalKind::interrupt(), "SIGINT");
    let terminate = install(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = received(interrupt) => tracing::info!("SIGINT (Ctrl-C) received, shutting down"),
            () = received(terminate) => tracing::info!("SIGTERM received, shutting down"),
        }
    }
}

fn install(kind: SignalKind, name: &'static str) -> Option<Signal> {
    unix::signal(kind)
        .inspect_err(|error| tracing::error!(%error, "cannot handle {name}"))
        .ok()
}

async fn received(signal: Option<Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// The `--shutdown-delay-ms` option of both services.
#[derive(Debug, Clone, clap::Args)]
pub struct DelayArgs {
    /// On SIGTERM, report not ready (discount: health NOT_SERVING; catalog: /readyz 503)
    /// and keep serving this long before closing the listener, so that load balancers stop
    /// sending requests first (Kubernetes: a few seconds).
    #[arg(
        long = "shutdown-delay-ms",
        env = "SHUTDOWN_DELAY_MS",
        value_name = "MS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=300_000)
    )]
    pub shutdown_delay_ms: u64,
}

impl DelayArgs {
    /// The delay as a duration.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_delay_ms)
    }
}
