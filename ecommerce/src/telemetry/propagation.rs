//! W3C Trace Context (`traceparent`, `tracestate`) and baggage, read from HTTP headers or
//! gRPC metadata and written into gRPC metadata, in two modes.
//!
//! - **Spans** (export on): the OpenTelemetry layer makes a span per request and per call;
//!   [`continue_trace`] makes a span the child of the caller's, and [`inject`] sends each
//!   call's own span as the parent. The propagators are set in [`super::init`]: without
//!   them OpenTelemetry's global propagator is a no-op, and every service silently starts
//!   traces of its own.
//! - **Pass-through** (export off): no span is made, so there is no span of ours to name.
//!   The caller's context is passed on as it came, as the W3C recommendation asks of a
//!   participant that does not record: [`scope`] keeps the request's headers for its task,
//!   [`inject`] copies them into each call, and the log lines of the request carry the
//!   caller's ids. This costs a few header copies per request; the span machinery cost a
//!   third of the throughput (BENCHMARKS.md).
//!
//! Baggage is passed on as it came in both modes; nothing here reads it.

use std::future::Future;

use futures_util::future::Either;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::{Context, global};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use super::mode::spans_enabled;

/// The W3C headers, lowercase, as HTTP/2 and gRPC metadata carry them.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const BAGGAGE: &str = "baggage";
/// `traceparent` as a header name, made once (looked up on every request and call).
const TRACEPARENT_NAME: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
/// The most of `tracestate` or `baggage` passed on: the W3C limits are 512 bytes for
/// `tracestate` and 8192 for `baggage`; anything longer is dropped, not truncated.
const MAX_PASSED: usize = 8192;

/// A request's trace context, as received, for pass-through mode.
#[derive(Debug, Clone)]
pub struct Incoming {
    traceparent: http::HeaderValue,
    tracestate: Option<http::HeaderValue>,
    baggage: Option<http::HeaderValue>,
}

impl Incoming {
    /// The context `headers` carry, if their `traceparent` is valid.
    pub fn from_headers(headers: &http::HeaderMap) -> Option<Self> {
        let traceparent = headers.get(&TRACEPARENT_NAME)?;
        parse_traceparent(traceparent.to_str().ok()?)?;
        let bounded = |name| {
            headers
                .get(name)
                .filter(|value: &&http::HeaderValue| value.len() <= MAX_PASSED)
                .cloned()
        };
        Some(Self {
            traceparent: traceparent.clone(),
            tracestate: bounded(TRACESTATE),
            baggage: bounded(BAGGAGE),
        })
    }

    /// The trace id and the caller's span id, in lowercase hex.
    pub fn ids(&self) -> Option<(&str, &str)> {
        parse_traceparent(self.traceparent.to_str().ok()?)
    }
}

/// `traceparent` = version "-" trace-id "-" parent-id "-" flags, checked as W3C says: two
/// hex digits of version (not ff), 32 of trace id and 16 of parent id, neither all zero.
fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && !zero(trace_id)
        && hex(parent_id, 16)
        && !zero(parent_id)
        && hex(flags, 2)
        // Version 00 has exactly four parts; later versions may add more.
        && (version != "00" || parts.next().is_none());
    valid.then_some((trace_id, parent_id))
}

tokio::task_local! {
    static INCOMING: Option<Incoming>;
}

/// The context `headers` carry, for [`scope`], in pass-through mode (`None` with spans:
/// they carry it).
pub fn incoming(headers: &http::HeaderMap) -> Option<Incoming> {
    if spans_enabled() {
        None
    } else {
        Incoming::from_headers(headers)
    }
}

/// Runs `future` (a request's handling) with `incoming` at hand for [`inject`] and the
/// request's log lines. Without a context, `future` runs as it is: outside a scope,
/// [`inject`] and the log lines find none either, and the task-local's poll and moves are
/// saved on every request (scopes are not nested: each is a request's or a call's, at the
/// top of its task).
pub fn scope<F: Future>(incoming: Option<Incoming>, future: F) -> impl Future<Output = F::Output> {
    match incoming {
        Some(incoming) => Either::Left(INCOMING.scope(Some(incoming), future)),
        None => Either::Right(future),
    }
}

/// The trace and span ids of the request being handled, in pass-through mode (for the logs).
pub(super) fn with_incoming_ids<R>(f: impl FnOnce(&str, &str) -> R) -> Option<R> {
    INCOMING
        .try_with(|incoming| {
            incoming
                .as_ref()
                .and_then(Incoming::ids)
                .map(|(t, s)| f(t, s))
        })
        .ok()
        .flatten()
}

/// The trace context that `headers` carry (an empty context if none, or an invalid one).
pub fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Makes `span` continue the trace that `headers` carry, if they carry one (spans mode; a
/// no-op otherwise). Call it before the span is first entered: a span's parent cannot
/// change once it has started.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !spans_enabled() {
        return;
    }
    let parent = extract(headers);
    if parent.span().span_context().is_valid() {
        // Fails only when the span has started already, or is disabled.
        let _ = span.set_parent(parent);
    }
}

/// Writes the trace context for a call into its `metadata`: `span`'s own (spans mode), or
/// the request's as it came (pass-through mode).
pub fn inject(span: &tracing::Span, metadata: &mut MetadataMap) {
    if spans_enabled() {
        let context = span.context();
        global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut MetadataInjector(metadata));
        });
        return;
    }
    let _ = INCOMING.try_with(|incoming| {
        let Some(incoming) = incoming else { return };
        let mut put = |name: &'static str, value: &http::HeaderValue| {
            if let Ok(value) = MetadataValue::try_from(value.as_bytes()) {
                metadata.insert(name, value);
            }
        };
        put(TRACEPARENT, &incoming.traceparent);
        if let Some(tracestate) = &incoming.tracestate {
            put(TRACESTATE, tracestate);
        }
        if let Some(baggage) = &incoming.baggage {
            put(BAGGAGE, baggage);
        }
    });
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The propagators write lowercase ASCII names and visible-ASCII values; anything
        // else cannot be metadata and is left out rather than failing the call.
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_is_read_and_a_bad_one_is_ignored() {
        super::super::set_propagators();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        let context = extract(&headers);
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let incoming = Incoming::from_headers(&headers).expect("valid");
        assert_eq!(
            incoming.ids(),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        for bad in [
            "00-zz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            headers.insert("traceparent", bad.parse().unwrap());
            assert!(!extract(&headers).span().span_context().is_valid(), "{bad}");
            assert!(Incoming::from_headers(&headers).is_none(), "{bad}");
        }
    }
}
