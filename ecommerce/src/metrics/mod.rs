//! What both services' Prometheus metrics share: the exposition format the scraper asks
//! for ([`format`]), the TLS metrics ([`tls`]), and the small HTTP server that serves a
//! registry on a port of its own ([`server`]).

pub mod format;
pub mod server;
pub mod tls;

pub use self::format::encode;
pub use self::tls::{ExpiryGauges, ReloadCounters};
