//! What the `catalog` and `discount` services must agree on, kept in one place.
//!
//! # Layout
//! - [`pb`]: the Rust types and the tonic client and server generated from `ecommerce.proto`,
//!   the wire contract shared with the Go and Python services this project replaces.
//! - [`codec`]: the protobuf codec of that generated code (prost, with small buffers).
//! - [`keys`]: the demo's TLS files in the keys directory, generated with rcgen when missing,
//!   with names compatible with the old services (`cert.pem`, `private.key`); their
//!   validity, renewal and expiry ([`keys::lifetime`]).
//! - [`listener`]: binding a TCP port on all interfaces, IPv4 and IPv6, as both services do,
//!   and accepting connections on it.
//! - [`metrics`]: Prometheus metrics in the format the scraper asks for, the TLS metrics,
//!   and a small `/metrics` server.
//! - [`report`]: errors on one line, with their causes, for logs and a failed start.
//! - [`runtime`]: the tokio runtime, sized to the CPUs the process may use.
//! - [`shutdown`]: the Ctrl-C / SIGTERM signal both services stop on.
//! - [`tls_reload`]: new TLS files without a restart, whatever each service does with them.
//! - [`cli`]: the flags both services take, declared once.
//! - [`telemetry`]: logs and traces: the `tracing` subscriber both binaries install, W3C
//!   trace context propagation, OTLP export, trace ids in log lines.

pub mod cli;
pub mod codec;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod report;
pub mod runtime;
pub mod shutdown;
pub mod telemetry;
pub mod tls_reload;

/// Code generated from `ecommerce.proto` at build time (see `build.rs`).
pub mod pb {
    #![allow(clippy::all, missing_docs, unused_qualifications)]
    tonic::include_proto!("ecommerce");

    /// The encoded `FileDescriptorSet` of `ecommerce.proto`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("ecommerce_descriptor");
}

/// The HTTP header, and gRPC metadata key, that carries a request's id from a client
/// through the catalog to discount, so that one request can be followed in both logs.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// [`REQUEST_ID_HEADER`] as a header name, made at compile time: a name given as text is
/// parsed again at every lookup and insert, and both services use this one on every call.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static(REQUEST_ID_HEADER);

/// The gRPC header a call's deadline travels in: the catalog writes the time it has left,
/// discount gives up when it passes.
pub const GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// The ALPN protocol id of HTTP/2, the only one either side of the gRPC port offers.
pub const ALPN_H2: &[u8] = b"h2";

/// The longest request id either service accepts from a client (longer ones are replaced).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Installs rustls' ring crypto provider as the process default.
///
/// tonic's server-side TLS asks rustls for the process-wide provider, which panics when it
/// cannot pick one (for instance when some crate in the tree also enables aws-lc-rs). Calling
/// this first makes the choice explicit. It is harmless to call more than once.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
