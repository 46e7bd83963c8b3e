//! The catalog's HTTP API, routed by hand (hyper, no framework).
//!
//! | request            | answer |
//! |--------------------|--------|
//! | `GET /`            | 200 `It is working.` |
//! | `GET /products`    | 200, the products as JSON; 503 with `Retry-After` when overloaded; see [`products`] |
//! | `GET /healthz`     | 200 while the process serves requests (liveness) |
//! | `GET /readyz`      | 200 when it should get traffic, 503 while it shuts down; see [`readyz`] |
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

use std::convert::Infallible;
use std::num::IntErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER,
};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use ecommerce::telemetry::propagation;

use crate::data::{Catalog, Product};
use crate::discounts::{CallError, Discount, DiscountClient, MAX_CALLS_IN_FLIGHT};
use crate::metrics::Metrics;
use crate::overload::admission::Admission;
use crate::request_id;
use crate::shop;

/// The header that names the customer, as with the old Go catalog.
pub const USER_ID_HEADER: &str = "x-user-id";

/// The paths of the catalog's API; the storefront's are [`shop::ASSETS`]. Any other is 404.
pub const PATHS: [&str; 5] = ["/", "/products", "/healthz", "/readyz", "/metrics"];

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    /// The products and customers.
    pub catalog: Catalog,
    /// The shared connections to the discount service.
    pub discounts: DiscountClient,
    /// What is counted and measured.
    pub metrics: Metrics,
    /// Who may call discount now, and who waits.
    pub admission: Arc<Admission>,
    /// Set when shutdown starts: `/readyz` turns 503.
    pub draining: AtomicBool,
}

/// The response body type of every route.
pub type Body = Full<Bytes>;

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
    let _in_flight = app.metrics.in_flight();
    let id = request_id::from_client(request.headers()).unwrap_or_else(request_id::generate);
    let route = Metrics::route(request.uri().path());
    let span = request_span(request, &id, route);

    let mut response = route_request(app, request, &id, started)
        .instrument(span.clone())
        .await;

    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(ecommerce::REQUEST_ID_HEADER, value);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics.request_done(route, status, elapsed);
    if propagation::spans_enabled() {
        span.set_attribute("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
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

/// The span of one request: its log lines' context, and its OpenTelemetry server span,
/// continuing the caller's trace (W3C `traceparent`). Probes and scrapes get a span of
/// their own target, `catalog::probe`, which logs like any other but is not exported.
fn request_span(request: &Request<Incoming>, id: &str, route: &'static str) -> tracing::Span {
    let method = request.method();
    if matches!(route, "/healthz" | "/readyz" | "/metrics") {
        return tracing::info_span!(target: "catalog::probe", "request", request_id = %id, %method, route);
    }
    if !propagation::spans_enabled() {
        return tracing::info_span!("request", request_id = %id, %method, route);
    }
    // Semantic conventions: a method the catalog does not know is `_OTHER`, and a path it
    // does not serve has no route; neither may create new span names.
    let method_name: &'static str = match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        %method,
        route,
        otel.name = %if route == "other" {
            method_name.to_owned()
        } else {
            format!("{method_name} {route}")
        },
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
    );
    propagation::continue_trace(&span, request.headers());
    span.set_attribute("http.request.method", method_name);
    if route != "other" {
        span.set_attribute("http.route", route);
    }
    let path = request.uri().path();
    // The path is the client's: bounded, so a long one cannot bloat the span.
    let path = path.get(..path.len().min(256)).unwrap_or("");
    span.set_attribute("url.path", path.to_owned());
    span.set_attribute("url.scheme", "http");
    span.set_attribute(
        "network.protocol.version",
        match request.version() {
            hyper::Version::HTTP_2 => "2",
            hyper::Version::HTTP_10 => "1.0",
            _ => "1.1",
        },
    );
    span
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
        (&Method::GET | &Method::HEAD, "/") => text(StatusCode::OK, "It is working."),
        (&Method::GET | &Method::HEAD, "/products") => {
            products(app, request.headers(), request_id, arrived).await
        }
        (&Method::GET | &Method::HEAD, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET | &Method::HEAD, "/readyz") => readyz(app),
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let accept = request.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let stats = app.discounts.stats();
            let (content_type, body) = app.metrics.encode(&stats, &app.admission, accept);
            let mut response = Response::new(Full::new(Bytes::from(body)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
        (_, path) if PATHS.contains(&path) || shop::asset(path).is_some() => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => text(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// `GET /readyz`: 200 while the catalog should receive traffic, 503 once shutdown has
/// started (so a load balancer stops sending requests before connections close).
///
/// Readiness does **not** depend on discount. The catalog serves every product at full price
/// when discount is down; marking it unready then would take the whole catalog out of
/// service because of a dependency it is built to survive, turning a degraded service into
/// an outage. The body says how discount is doing, for people; `X-Discount-Status` on
/// `/products` and the metrics say it for machines.
pub fn readyz(app: &App) -> Response<Body> {
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

/// `GET /products`: every product, in catalog order, always.
///
/// Without `X-USER-ID` (or with an empty one), and for ids the catalog does not know, the
/// products come without discounts and discount is not called. For a known customer each
/// product is priced by the discount service; a product whose call fails in any way is
/// served at its full price, without `discount_value`, and the response is still 200.
/// [`DISCOUNT_STATUS_HEADER`] says which of these happened.
///
/// A priced request first waits for admission; one that waited too long is answered
/// [`overloaded`], 503, without any discount call. Once admitted, its discounts are
/// asked for under a deadline that starts then.
pub async fn products(
    app: &App,
    headers: &HeaderMap,
    request_id: &str,
    arrived: Instant,
) -> Response<Body> {
    let customer_id = match customer_id(headers) {
        Ok(id) => id,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let products = app.catalog.products();
    let customer = customer_id.and_then(|id| app.catalog.customer(id));
    // The request's OpenTelemetry span; without export, none: its attributes would cost
    // a dispatch each on every request for nobody.
    let span = if propagation::spans_enabled() {
        tracing::Span::current()
    } else {
        tracing::Span::none()
    };
    span.set_attribute("ecommerce.customer.known", customer.is_some());
    if let Some(customer) = customer {
        span.set_attribute("ecommerce.customer.id", i64::from(customer.id));
    }

    let mut admitted = false;
    let (discounts, status): (Vec<Option<Discount>>, DiscountStatus) = match customer {
        None => (vec![None; products.len()], DiscountStatus::Skipped),
        Some(customer) => {
            // Admission bounds discount calls. With no replica accepting calls there will be
            // none: every product falls back at once, and waiting for a turn would only
            // make the fallback slower.
            let ticket = if app.discounts.any_replica_accepting() {
                let weight = products.len().min(MAX_CALLS_IN_FLIGHT);
                match app.admission.admit(weight).await {
                    Ok(ticket) => {
                        app.metrics.admitted(ticket.waited);
                        span.set_attribute(
                            "ecommerce.admission.wait_ms",
                            ticket.waited.as_secs_f64() * 1000.0,
                        );
                        Some(ticket)
                    }
                    Err(reason) => {
                        app.metrics.shed(reason, arrived.elapsed());
                        span.set_attribute("ecommerce.admission.shed", reason.reason());
                        return overloaded();
                    }
                }
            } else {
                None
            };
            let results = app
                .discounts
                .discounts(customer, products, request_id)
                .await;
            if let Some(ticket) = ticket {
                admitted = true;
                ticket.finish();
            }
            for result in &results {
                app.metrics.discount_call(result);
            }
            let status = DiscountStatus::of(&results);
            log_failures(customer.id, &results);
            record_failures(&span, &results);
            let discounts = results.into_iter().map(Result::unwrap_or_default).collect();
            (discounts, status)
        }
    };

    let body: Vec<ProductJson> = products
        .iter()
        .zip(discounts)
        .map(|(product, discount_value)| ProductJson::new(product, discount_value))
        .collect();
    let mut response = json(&body);
    response
        .headers_mut()
        .insert(DISCOUNT_STATUS_HEADER, status.header_value());
    app.metrics.products_answered(status);
    span.set_attribute("ecommerce.discount.status", status.name());
    if admitted {
        app.metrics.admitted_request_done(arrived.elapsed());
    }
    response
}

/// The answer to a priced request that was not admitted: `503 Service Unavailable` (a
/// temporary overload, RFC 9110; proxies such as Envoy retry it, and `429` would blame the
/// client's rate instead), `Retry-After: 1`, never cached. Built from static parts: under
/// overload, refusing must cost as little as possible.
pub fn overloaded() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"The catalog is overloaded; retry shortly.\n",
    )));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The response header that tells how far discounts could be applied (the body is the
/// same contract either way).
pub const DISCOUNT_STATUS_HEADER: &str = "x-discount-status";

/// The value of [`DISCOUNT_STATUS_HEADER`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountStatus {
    /// `skipped`: no customer, or one the catalog does not know; discount was not asked.
    Skipped,
    /// `complete`: every product was priced by discount (which may have given no discount).
    Complete,
    /// `partial`: some products are at full price because their call failed.
    Partial,
    /// `unavailable`: every call failed; all products are at full price.
    Unavailable,
}

impl DiscountStatus {
    fn of<T, E>(results: &[Result<T, E>]) -> Self {
        let failed = results.iter().filter(|r| r.is_err()).count();
        match failed {
            0 => Self::Complete,
            n if n == results.len() => Self::Unavailable,
            _ => Self::Partial,
        }
    }

    /// Its name, as in the header and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Skipped => "skipped",
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Unavailable => "unavailable",
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.name())
    }
}

/// The failures of a request's discount calls, on its span: how many products fell back,
/// and why the first did (a call that never started, such as one refused by open
/// breakers, has no client span of its own to say it).
fn record_failures(span: &tracing::Span, results: &[Result<Option<Discount>, CallError>]) {
    let mut failures = results.iter().filter_map(|r| r.as_ref().err());
    if let Some(first) = failures.next() {
        span.set_attribute("ecommerce.discount.fallbacks", 1 + failures.count() as i64);
        span.set_attribute("ecommerce.discount.first_error", first.outcome());
    }
}

/// One line per request with failures. Requests refused by an open circuit, and timeouts
/// the catalog's own overload caused, are logged at debug only: the breaker already logged
/// why it opened, admission control logs its shedding, and a line per request during an
/// outage or an overload would flood the logs (and add to the overload).
fn log_failures(customer_id: i32, results: &[Result<Option<Discount>, CallError>]) {
    let failures = || results.iter().filter_map(|r| r.as_ref().err());
    let Some(first) = failures().find(|e| {
        !matches!(
            e,
            CallError::CircuitOpen | CallError::Timeout { local: true }
        )
    }) else {
        if let Some(first) = failures().next() {
            tracing::debug!(customer_id, error = %first, "serving full prices");
        }
        return;
    };
    tracing::warn!(
        customer_id,
        failed = failures().count(),
        of = results.len(),
        error = %first,
        "discount calls failed; serving those products at full price"
    );
}

/// A product as the JSON contract shows it. Field order is the contract's.
#[derive(Serialize)]
struct ProductJson<'a> {
    id: i32,
    slug: &'a str,
    description: &'a str,
    price_in_cents: i32,
    /// Present only when a discount applies. Serialised from the `f32` through serde's
    /// typed path, which prints `0.1`; a `serde_json::Value` would widen it to
    /// `0.10000000149011612`.
    #[serde(skip_serializing_if = "Option::is_none")]
    discount_value: Option<Discount>,
}

impl<'a> ProductJson<'a> {
    fn new(product: &'a Product, discount_value: Option<Discount>) -> Self {
        Self {
            id: product.id,
            slug: &product.slug,
            description: &product.description,
            price_in_cents: product.price_in_cents,
            discount_value,
        }
    }
}

/// Reads `X-USER-ID`: `Ok(None)` when it is absent or blank, `Err` with the message for a
/// 400 otherwise. The rules, all deterministic:
///
/// - surrounding spaces and tabs are ignored;
/// - the rest must be a decimal integer in the `i32` range, as Rust's `i32::from_str` reads
///   it: an optional sign, then digits (`+1`, `01` and `-5` are numbers; `1.0`, `0x1`,
///   `1e3` and `１` are not);
/// - a header given more than once is refused rather than one copy chosen silently;
/// - bytes that are not visible ASCII cannot be a number and are refused.
pub fn customer_id(headers: &HeaderMap) -> Result<Option<i32>, &'static str> {
    let mut values = headers.get_all(USER_ID_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("X-USER-ID must be given once.");
    }
    let value = value
        .to_str()
        .map_err(|_| "Customer ID is not a number.")?
        .trim_matches([' ', '\t']);
    if value.is_empty() {
        return Ok(None);
    }
    value.parse::<i32>().map(Some).map_err(|e| match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
            "Customer ID is out of range (it must fit in 32 bits)."
        }
        _ => "Customer ID is not a number.",
    })
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(body: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(Full::new(Bytes::from(bytes)));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        // Plain structs of strings and numbers always serialise; this is the honest
        // answer if that ever stops being true.
        Err(error) => {
            tracing::error!(%error, "cannot encode the response");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Cannot encode the response.",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id_of(values: &[&[u8]]) -> Result<Option<i32>, &'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(USER_ID_HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        customer_id(&headers)
    }

    #[test]
    fn user_id_forms_have_fixed_answers() {
        assert_eq!(id_of(&[]), Ok(None));
        assert_eq!(id_of(&[b""]), Ok(None));
        assert_eq!(id_of(&[b"   "]), Ok(None));
        assert_eq!(id_of(&[b"1"]), Ok(Some(1)));
        assert_eq!(id_of(&[b" 1\t"]), Ok(Some(1)));
        assert_eq!(id_of(&[b"+1"]), Ok(Some(1)));
        assert_eq!(id_of(&[b"01"]), Ok(Some(1)));
        assert_eq!(id_of(&[b"-7"]), Ok(Some(-7)));
        assert_eq!(id_of(&[b"2147483647"]), Ok(Some(i32::MAX)));
        assert_eq!(id_of(&[b"-2147483648"]), Ok(Some(i32::MIN)));
        for not_a_number in [&b"1.0"[..], b"0x1", b"1e3", b"abc", b"1 2", b"\xef\xbc\x91"] {
            assert_eq!(id_of(&[not_a_number]), Err("Customer ID is not a number."));
        }
        assert!(
            id_of(&[b"2147483648"])
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            id_of(&[b"-99999999999999999999"])
                .unwrap_err()
                .contains("out of range")
        );
        assert!(id_of(&[b"1", b"1"]).unwrap_err().contains("once"));
    }

    proptest! {
        /// Any header-legal bytes: never a panic, and a customer id exactly when the trimmed
        /// text is an `i32` as Rust reads it.
        #[test]
        fn any_user_id_bytes_get_a_fixed_answer(value in proptest::collection::vec(
            any::<u8>().prop_filter("header-legal", |b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)),
            0..32,
        )) {
            let answer = id_of(&[value.as_slice()]);
            let text = std::str::from_utf8(&value).ok().map(|t| t.trim_matches([' ', '\t']));
            match (text, answer) {
                (Some(""), Ok(None)) => {}
                (Some(t), Ok(Some(id))) => prop_assert_eq!(t.parse::<i32>(), Ok(id)),
                (_, Err(_)) => prop_assert!(text.is_none_or(|t| t.parse::<i32>().is_err())),
                (text, answer) => prop_assert!(false, "{text:?} gave {answer:?}"),
            }
        }
    }
}
