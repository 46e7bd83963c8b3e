//! The catalog's HTTP API, routed by hand (hyper, no framework).
//!
//! | request            | answer |
//! |--------------------|--------|
//! | `GET /`            | 200 `It is working.` |
//! | `GET /products`    | 200, the products as JSON; 503 with `Retry-After` when overloaded; see [`products`] |
//! | `GET /healthz`     | 200 while the process serves requests (liveness) |
//! | `GET /readyz`      | 200 when it should get traffic, 503 while it shuts down; see [`probes::readyz`] |
//! | `GET /metrics`     | Prometheus metrics; see [`crate::metrics`] |
//! | `GET /shop`        | the storefront, a page for people, and its files under `/shop/`; see [`crate::shop`] |
//! | other methods      | 405 with `Allow: GET, HEAD` |
//! | other paths        | 404 |
//!
//! `HEAD` is answered like `GET`, without the body (hyper drops it). Every response carries
//! `X-Request-ID` (the client's, or a new one), and every request is logged once, at `info`,
//! with that id. Only priced `/products` requests go through admission control
//! ([`crate::overload::admission`]): `/healthz`, `/readyz`, `/metrics`, `/` and unpriced
//! `/products` are never queued or shed, and neither is the storefront's page.

//!
//! One module per kind of route: [`products`] (the API proper), [`probes`] (`/`, health,
//! readiness, metrics), and [`response`] (the plain answers they share). The storefront's
//! files are [`crate::shop`]'s; the request's span is [`crate::trace`]'s.

mod probes;
pub mod products;
mod response;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

use ecommerce::telemetry::propagation;

use crate::app::App;
use crate::{request_id, shop, trace};

pub use self::products::{DISCOUNT_STATUS_HEADER, USER_ID_HEADER};
pub use self::response::Body;

/// The paths of the catalog's API; the storefront's are [`shop::ASSETS`]. Any other is 404.
pub const PATHS: [&str; 5] = ["/", "/products", "/healthz", "/readyz", "/metrics"];

/// The `route` label of `path` in metrics and spans: one of [`PATHS`], a storefront file,
/// or `other`, so that arbitrary paths cannot create new time series.
pub fn route_label(path: &str) -> &'static str {
    PATHS
        .iter()
        .find(|route| **route == path)
        .copied()
        .or_else(|| shop::asset(path).map(|asset| asset.path))
        .unwrap_or("other")
}

/// Answers one request: routes it, then adds `X-Request-ID`, records metrics and logs it.
/// Never fails: every problem is an HTTP status.
pub async fn handle(
    app: Arc<App>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    // Without spans, the caller's trace context is kept at hand for the discount calls and
    // the log lines (see ecommerce::telemetry::propagation).
    let incoming = propagation::incoming(request.headers());
    Ok(propagation::scope(incoming, answer(&app, &request)).await)
}

async fn answer(app: &App, request: &Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let _in_flight = app.metrics.http.in_flight();
    let id = request_id::from_client(request.headers()).unwrap_or_else(request_id::generate);
    let route = route_label(request.uri().path());
    let span = trace::request_span(request, &id, route);

    let mut response = route_request(app, request, &id, started)
        .instrument(span.clone())
        .await;

    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(ecommerce::REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics.http.request_done(route, status, elapsed);
    trace::request_answered(&span, status);
    span.in_scope(|| {
        tracing::info!(
            path = request.uri().path(),
            status,
            elapsed_us = elapsed.as_micros() as u64,
            "answered"
        );
    });
    response
}

async fn route_request(
    app: &App,
    request: &Request<Incoming>,
    request_id: &str,
    arrived: Instant,
) -> Response<Body> {
    let path = request.uri().path();
    if let (&Method::GET | &Method::HEAD, Some(asset)) = (request.method(), shop::asset(path)) {
        return shop::serve(asset, request.headers());
    }
    match (request.method(), path) {
        (&Method::GET | &Method::HEAD, "/") => response::text(StatusCode::OK, "It is working."),
        (&Method::GET | &Method::HEAD, "/products") => {
            products::products(app, request.headers(), request_id, arrived).await
        }
        (&Method::GET | &Method::HEAD, "/healthz") => response::text(StatusCode::OK, "ok"),
        (&Method::GET | &Method::HEAD, "/readyz") => probes::readyz(app),
        (&Method::GET | &Method::HEAD, "/metrics") => probes::metrics(app, request.headers()),
        (_, path) if PATHS.contains(&path) || shop::asset(path).is_some() => {
            response::method_not_allowed()
        }
        _ => response::text(StatusCode::NOT_FOUND, "Not found."),
    }
}
