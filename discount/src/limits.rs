//! The request size limit, and the status code it is reported with.
//!
//! The server refuses request messages over a limit before decoding them. The default,
//! [`DEFAULT_MAX_REQUEST_BYTES`], is 4 MiB: what every standard gRPC implementation
//! (grpc-go, grpcio, grpc-java, tonic) accepts by default, and what the Python service this
//! one replaces accepted, so a product with a long description is discounted here as it was
//! there. `discount --max-message-bytes` changes it. tonic reports such a message as
//! `OUT_OF_RANGE`, but the gRPC specification, and the Go and Java implementations, use
//! `RESOURCE_EXHAUSTED` for a message larger than the receiver allows.
//! [`OversizeStatusLayer`] rewrites exactly that case, recognised by tonic's message, so
//! clients in any language see the code they expect.

use std::task::{Context, Poll};

use futures_util::FutureExt;
use http::HeaderValue;
use tonic::{Code, Status};

/// The largest request message discount decodes unless told otherwise: gRPC's standard 4 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// `OUT_OF_RANGE` as `grpc-status` writes it (not formatted anew for every call).
const OUT_OF_RANGE: &str = "11";

/// The start of tonic's message for a message over the decoding limit.
const TONIC_TOO_LARGE: &str = "Error, decoded message length too large";

/// Rewrites tonic's `OUT_OF_RANGE` for an oversized message to `RESOURCE_EXHAUSTED`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OversizeStatusLayer;

impl<S> tower::Layer<S> for OversizeStatusLayer {
    type Service = OversizeStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OversizeStatus { inner }
    }
}

/// The service [`OversizeStatusLayer`] makes.
#[derive(Debug, Clone)]
pub struct OversizeStatus<S> {
    inner: S,
}

/// A call's answer, with [`rewrite`] applied: a named type rather than a boxed future, so
/// that the layers outside keep the call in one allocation.
type Rewritten<F, R> = futures_util::future::Map<F, fn(R) -> R>;

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for OversizeStatus<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Rewritten<S::Future, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        self.inner.call(request).map(rewrite)
    }
}

/// Rewrites an answer's `OUT_OF_RANGE` to `RESOURCE_EXHAUSTED` if tonic's message says the
/// request was too large.
fn rewrite<B, E>(answer: Result<http::Response<B>, E>) -> Result<http::Response<B>, E> {
    let mut response = answer?;
    // The decode error comes before the handler runs: a trailers-only response, with the
    // status in its headers.
    let headers = response.headers_mut();
    let out_of_range =
        headers.get(&Status::GRPC_STATUS).map(|v| v.as_bytes()) == Some(OUT_OF_RANGE.as_bytes());
    let too_large = || {
        headers
            .get(&Status::GRPC_MESSAGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| percent_decoded_starts_with(m, TONIC_TOO_LARGE))
    };
    if out_of_range && too_large() {
        headers.insert(
            Status::GRPC_STATUS,
            HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    Ok(response)
}

/// `grpc-message` is percent-encoded: spaces and commas arrive as `%20` and `%2C`.
fn percent_decoded_starts_with(message: &str, prefix: &str) -> bool {
    let decoded = message.replace("%20", " ").replace("%2C", ",");
    decoded.starts_with(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_is_written_as_grpc_status_writes_it() {
        let status = Status::out_of_range("too large").into_http::<()>();
        assert_eq!(status.headers()[Status::GRPC_STATUS], OUT_OF_RANGE);
        assert_eq!((Code::OutOfRange as i32).to_string(), OUT_OF_RANGE);
    }
}
