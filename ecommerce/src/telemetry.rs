//! Logging set-up shared by both binaries: `tracing` to stderr, filtered by `RUST_LOG`, as
//! text for people or as JSON lines for log collectors (containers).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured at a terminal).
    #[default]
    Pretty,
    /// One JSON object per line, with the span fields (such as `request_id`) included.
    Json,
}

/// What is logged when `RUST_LOG` is not set: `info`, and tonic's failed TLS handshakes,
/// which tonic logs at `debug` (a plaintext client on the TLS port, an untrusted client
/// certificate). They are worth seeing by default; `RUST_LOG` replaces all of this.
pub const DEFAULT_FILTER: &str = "info,tonic::transport::server::io_stream=debug";

/// Installs the global `tracing` subscriber, writing to stderr. `RUST_LOG` filters
/// (default [`DEFAULT_FILTER`]).
///
/// Call once, from `main`. Tests leave it alone so that their output stays quiet.
pub fn init_tracing(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder
            // Colour codes only help a person at a terminal; in files and pipes they are noise.
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
