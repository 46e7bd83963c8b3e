//! Trace and span ids on every log line written inside a traced span, so that a log line
//! leads to its trace: `"trace_id"` and `"span_id"` as the first keys of a JSON line,
//! `trace_id=… span_id=…` at the end of a text line.
//!
//! With spans (export on), the ids are those of the innermost span around the line that
//! the OpenTelemetry layer knows. Without (pass-through), they are the caller's: its trace, and its span, the
//! nearest one there is. The line is
//! formatted into a buffer first and the ids added around it; a text line with ids is
//! therefore written without colours (tracing-subscriber cannot pass its colour setting to
//! a buffer). Lines outside any request have no ids.

use std::cell::RefCell;
use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps an event formatter to add the current trace and span ids.
#[derive(Debug)]
pub struct WithTraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> WithTraceIds<F> {
    /// `inner` writes JSON objects (`json`) or text lines.
    pub fn new(inner: F, json: bool) -> Self {
        Self { inner, json }
    }
}

thread_local! {
    /// A reused buffer: one allocation per thread, not per line.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if super::mode::spans_enabled()
            && let Some((trace_id, span_id)) = span_ids(ctx)
        {
            return self.with_ids(ctx, writer, event, &trace_id, &span_id);
        }
        // Pass-through mode: the caller's ids, if the request came with them.
        super::propagation::with_incoming_ids(|trace_id, span_id| {
            self.with_ids(ctx, writer.by_ref(), event, trace_id, span_id)
        })
        .unwrap_or_else(|| self.inner.format_event(ctx, writer, event))
    }
}

/// The ids of the innermost span around the event that OpenTelemetry knows (spans the
/// OpenTelemetry layer filters out, such as debug ones, have none).
fn span_ids<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    // The global dispatcher: `init` installs it, and there is no scoped one.
    tracing::dispatcher::get_default(|dispatch| {
        ctx.lookup_current()?.scope().find_map(|span| {
            let context = tracing_opentelemetry::get_otel_context(&span.id(), dispatch)?;
            let span = context.span();
            let ids = span.span_context();
            ids.is_valid()
                .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
        })
    })
}

impl<F> WithTraceIds<F> {
    fn with_ids<S, N>(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
        trace_id: &str,
        span_id: &str,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
        F: FormatEvent<S, N>,
    {
        LINE.with(|line| {
            // A log line written while formatting one (a Debug impl that logs) finds the
            // buffer taken: it is written as it is.
            let Ok(mut line) = line.try_borrow_mut() else {
                return self.inner.format_event(ctx, writer.by_ref(), event);
            };
            line.clear();
            self.inner
                .format_event(ctx, Writer::new(&mut *line), event)?;
            if self.json {
                match line.strip_prefix('{') {
                    Some(rest) => write!(
                        writer,
                        r#"{{"trace_id":"{trace_id}","span_id":"{span_id}",{rest}"#
                    ),
                    None => writer.write_str(&line),
                }
            } else {
                let text = line.strip_suffix('\n').unwrap_or(&line);
                writeln!(writer, "{text} trace_id={trace_id} span_id={span_id}")
            }
        })
    }
}
