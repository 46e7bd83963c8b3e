//! TLS on the gRPC port, terminated here with rustls rather than by tonic, so that the
//! certificate, its key and the client CA can change while the server runs.
//!
//! tonic's own TLS settings are fixed when the server starts. Here, each connection's
//! handshake uses the [`rustls::ServerConfig`] current at that moment ([`TlsState`]);
//! connections already open keep the one they started with. [`spawn_reload`] has
//! [`ecommerce::tls_reload`] watch the files and replace the configuration when they
//! change and the new set is good.
//!
//! One loader, [`TlsFiles::load`], judges a set at start-up and on every reload alike, so
//! that files a reload would refuse stop the start, before the port is bound, with the same
//! reason.
//!
//! What tonic did and this keeps: a bound on each handshake (a client that connects and
//! says nothing is dropped after [`crate::Config::tls_handshake_timeout`]), handshakes that
//! run beside one another (one slow client delays no one), ALPN `h2`, and a failed
//! handshake (plaintext on the TLS port, an untrusted client certificate) logged at debug
//! as "tls accept error", then closed.
//!
//! One module per concern, each using only those before it: `config` (a set as rustls
//! takes it, and why one is refused), `accept` (the handshakes), `files` (the loader and
//! the reload).

mod accept;
mod config;
mod files;

pub use self::accept::{TlsState, incoming};
pub use self::config::{ServerTls, TlsError};
pub use self::files::{LoadedTls, TlsFiles, spawn_reload};
