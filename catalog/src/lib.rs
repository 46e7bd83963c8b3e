//! The catalog HTTP service.
//!
//! # Layout
//! - [`data`]: the products and customers (embedded demo data, or `--data FILE`).
//! - [`discounts`]: the client of the discount gRPC service: a TLS channel per replica,
//!   health checks, breakers, hedging, concurrent calls under one deadline, a result per
//!   product.
//! - [`overload`]: admission control (an adaptive limit, a bounded queue, 503 when the wait
//!   is too long) and the runtime-lag probe that tells the catalog's overload from
//!   discount's faults.
//! - [`pricing`]: a customer's prices, free of HTTP: admission, one discount call per
//!   product, and the rule that every product is always served.
//! - [`listing`]: the `/products` body, its fixed parts serialised once.
//! - [`routes`]: the HTTP API, one module per kind of route; [`app`], what they share.
//! - [`trace`]: the catalog's OpenTelemetry spans, made in one place.
//! - [`shop`]: the storefront, a page for people at `/shop`, embedded in the binary.
//! - [`metrics`]: the Prometheus metrics served at `/metrics`.
//! - [`request_id`]: the id that follows a request through both services' logs.
//! - [`tls`]: the TLS files, checked by one loader at start-up and on every reload (a new
//!   CA to trust, or client certificate, without a restart).
//! - [`server`]: [`run`], the hyper accept loop with timeouts and graceful shutdown.
//! - [`config`]: the command line of the `catalog` binary.
//! - [`healthcheck`]: `catalog healthcheck`, a readiness check for containers.
//!
//! `main.rs` only parses the command line, loads the data and trust roots, binds and calls
//! [`run`]; the tests call the same [`run`] on a port the OS picks.

pub mod app;
pub mod config;
pub mod data;
pub mod discounts;
pub mod healthcheck;
pub mod listing;
pub mod metrics;
pub mod overload;
pub mod pricing;
pub mod request_id;
pub mod routes;
pub mod server;
pub mod shop;
pub mod tls;
pub mod trace;

pub use server::{Config, ServeError, run};
