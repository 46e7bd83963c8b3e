//! The signal that stops a service: Ctrl-C (SIGINT) or SIGTERM, which is how container
//! runtimes and Kubernetes ask a process to stop.

use std::future::Future;

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
