//! Why telemetry could not start.

/// What can stop tracing from starting.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A standard variable asks for something this build does not do.
    #[error("tracing: {0}")]
    Unsupported(String),
    /// The OTLP exporter could not be built.
    #[error("tracing: cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}
