//! Each call to the gRPC server, observed once: a tower layer around the whole server
//! ([`ObserveLayer`]) reads the call's status code, once, and reports it to the metrics
//! ([`crate::metrics`]) and to the call's span ([`crate::trace`]). Around the whole server,
//! so that a request that never reaches the handler also counts, under the code tonic
//! gave it (an undecodable message, an unknown method).
//!
//! The code is read from the response's trailers, or from its headers for a
//! "trailers-only" error. A call whose client went away before the status was sent counts
//! as `CANCELLED`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use ecommerce::telemetry::propagation;
use hyper::body::{Body, Frame, SizeHint};
use tonic::Code;
use tracing::Instrument;

use crate::metrics::{self, Metrics};
use crate::trace;

/// Observes every call through the server it wraps (see the module docs).
#[derive(Debug, Clone)]
pub struct ObserveLayer {
    metrics: Metrics,
}

impl ObserveLayer {
    /// A layer reporting to `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for ObserveLayer {
    type Service = ObservedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ObservedService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Debug, Clone)]
pub struct ObservedService<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for ObservedService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin,
{
    type Response = http::Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        let method = metrics::method_label(path);
        let span = trace::server_span(path, request.headers());
        // Without spans, the caller's context is kept for the call's log lines.
        let incoming = propagation::incoming(request.headers());
        let mut pending = Some(PendingCall {
            metrics: self.metrics.clone(),
            method,
            started: Instant::now(),
            span: span.clone(),
        });
        let response = match &span {
            Some(span) => span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        let answered = async move {
            let response = response.await?;
            // A trailers-only response carries its status in the headers.
            if let Some(code) = grpc_status(response.headers())
                && let Some(call) = pending.take()
            {
                call.finish(code);
            }
            Ok(response.map(|inner| ObservedBody { inner, pending }))
        };
        let answered = propagation::scope(incoming, answered);
        match span {
            Some(span) => Box::pin(answered.instrument(span)),
            None => Box::pin(answered),
        }
    }
}

fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get(&tonic::Status::GRPC_STATUS)
        .map(|value| Code::from_bytes(value.as_bytes()))
}

/// A call whose status has not been seen yet.
struct PendingCall {
    metrics: Metrics,
    method: &'static str,
    started: Instant,
    span: Option<tracing::Span>,
}

impl PendingCall {
    fn finish(self, code: Code) {
        self.metrics.record(self.method, code, self.started);
        trace::call_ended(self.span.as_ref(), code);
    }
}

/// A response body that records its call when the status goes by (or when it is dropped
/// first: the client went away).
pub struct ObservedBody<B> {
    inner: B,
    pending: Option<PendingCall>,
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(grpc_status)
                    && let Some(call) = self.pending.take()
                {
                    call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.pending.take() {
                    call.finish(Code::Internal);
                }
            }
            Poll::Ready(None) => {
                // The body ended without a status: not a valid gRPC response.
                if let Some(call) = self.pending.take() {
                    call.finish(Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(call) = self.pending.take() {
            call.finish(Code::Cancelled);
        }
    }
}
