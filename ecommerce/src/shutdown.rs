//! The signal that stops a service: Ctrl-C (SIGINT) or SIGTERM, which is how container
//! runtimes and Kubernetes ask a process to stop.

use tokio::signal::unix::{self, SignalKind};

/// Completes on the first SIGINT or SIGTERM.
///
/// If the SIGTERM handler cannot be installed (it practically never fails), Ctrl-C alone
/// still stops the service, and the failure is logged.
pub async fn signal() {
    let terminate = async {
        match unix::signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only Ctrl-C will stop");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
