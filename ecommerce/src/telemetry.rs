//! Logging set-up shared by both binaries: `tracing` to stderr, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global `tracing` subscriber, writing to stderr. `RUST_LOG` filters
/// (default `info`).
///
/// Call once, from `main`. Tests leave it alone so that their output stays quiet.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in files and pipes they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
