//! The discount gRPC service.
//!
//! # Layout
//! - [`pricing`]: the rule itself (10% off for customer 1), exact decimal arithmetic.
//! - [`service`]: the `ecommerce.Discount` gRPC service around the rule.
//! - [`server`]: [`run`], which serves it with TLS on a given listener until shutdown, with
//!   gRPC health checking and reflection.
//! - [`tls`]: TLS on the gRPC port with rustls, and new certificates without a restart.
//! - [`http2`]: the TLS port's connections, served by hyper's HTTP/2 server.
//! - [`deadline`]: each call's `grpc-timeout`, enforced (DEADLINE_EXCEEDED).
//! - [`dispatch`]: the discount calls' short way to their service, past tonic's router.
//! - [`limits`]: the request size limit, reported as RESOURCE_EXHAUSTED.
//! - [`observe`]: each call seen once, its status code reported to the metrics and its span.
//! - [`metrics`]: Prometheus metrics of every call.
//! - [`faults`]: failures a presenter switches on with OpenFeature flags (flagd's format).
//! - [`trace`]: discount's OpenTelemetry spans, made in one place.
//! - [`config`]: the command line of the `discount` binary.
//! - [`healthcheck`]: `discount healthcheck`, a gRPC health check over TLS.
//!
//! `main.rs` only parses the command line, makes sure the keys exist, binds and calls
//! [`run`]; the tests call the same [`run`] on a port the OS picks.

pub mod config;
pub mod deadline;
pub mod dispatch;
pub mod faults;
pub mod healthcheck;
pub mod http2;
pub mod limits;
pub mod metrics;
pub mod observe;
pub mod pricing;
pub mod server;
pub mod service;
pub mod tls;
pub mod trace;

pub use server::{Config, ServeError, run};
