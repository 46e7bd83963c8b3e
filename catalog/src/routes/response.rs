//! The answers routes share: plain text, JSON, 405, and the 503 of an overloaded catalog.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

/// The response body type of every route.
pub type Body = Full<Bytes>;

/// The answer to a priced request that was not admitted: `503 Service Unavailable` (a
/// temporary overload, RFC 9110; proxies such as Envoy retry it, and `429` would blame the
/// client's rate instead), `Retry-After: 1`, never cached. Built from static parts: under
/// overload, refusing must cost as little as possible.
pub(super) fn overloaded() -> Response<Body> {
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

/// `405 Method Not Allowed`, with the methods every route takes.
pub(super) fn method_not_allowed() -> Response<Body> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// A plain-text answer: `message` and a newline.
pub(super) fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON answer of `bytes`, JSON already.
pub(super) fn json_bytes(bytes: Vec<u8>) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
