//! W3C Trace Context (`traceparent`, `tracestate`) and baggage, read from HTTP headers and
//! written into gRPC metadata.
//!
//! The propagators are set once, in [`super::init`]: without them OpenTelemetry's global
//! propagator is a no-op, and every service silently starts traces of its own. Baggage is
//! passed on as it came; nothing here reads it.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::{Context, global};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context that `headers` carry (an empty context if none, or an invalid one).
pub fn extract(headers: &http::HeaderMap) -> Context {
    global::get_text_map_propagator(|propagator| propagator.extract(&HeaderExtractor(headers)))
}

/// Makes `span` continue the trace that `headers` carry, if they carry one. Call it before
/// the span is first entered: a span's parent cannot change once it has started.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = extract(headers);
    if opentelemetry::trace::TraceContextExt::span(&parent)
        .span_context()
        .is_valid()
    {
        // Fails only when the span has started already, or is disabled (tracing off).
        let _ = span.set_parent(parent);
    }
}

/// Writes `span`'s trace context (and the baggage it carries) into `metadata`, for the
/// server to continue.
pub fn inject(span: &tracing::Span, metadata: &mut MetadataMap) {
    let context = span.context();
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
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
        let span = opentelemetry::trace::TraceContextExt::span(&context);
        assert_eq!(
            span.span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        headers.insert("traceparent", "00-zz-00f067aa0ba902b7-01".parse().unwrap());
        let context = extract(&headers);
        assert!(
            !opentelemetry::trace::TraceContextExt::span(&context)
                .span_context()
                .is_valid()
        );
    }
}
