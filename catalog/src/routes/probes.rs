//! The routes for machines rather than customers: readiness and Prometheus metrics
//! (liveness and `/` are one line each, in the route table).

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::response::{Body, text};
use crate::app::App;

/// `GET /readyz`: 200 while the catalog should receive traffic, 503 once shutdown has
/// started (so a load balancer stops sending requests before connections close).
///
/// Readiness does **not** depend on discount. The catalog serves every product at full price
/// when discount is down; marking it unready then would take the whole catalog out of
/// service because of a dependency it is built to survive, turning a degraded service into
/// an outage. The body says how discount is doing, for people; `X-Discount-Status` on
/// `/products` and the metrics say it for machines.
pub(super) fn readyz(app: &App) -> Response<Body> {
    if app.draining.load(Ordering::Relaxed) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    let stats = app.discounts.stats();
    let body = format!(
        "ready\ndiscount replicas: {} resolved, {} accepting calls\n",
        stats.breakers.len(),
        stats.accepting
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `GET /metrics`: the metrics in the format the scraper asks for (`Accept`), with the
/// discount client's and admission's state brought up to date first.
pub(super) fn metrics(app: &App, headers: &HeaderMap) -> Response<Body> {
    let accept = headers.get(ACCEPT).and_then(|v| v.to_str().ok());
    let stats = app.discounts.stats();
    let (content_type, body) = app.metrics.encode(&stats, &app.admission, accept);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
