//! Logs and traces, set up the same way by both binaries.
//!
//! - **Logs**: `tracing` to stderr, filtered by `RUST_LOG`, as text for people or as JSON
//!   lines for log collectors. Inside a request, every line carries the trace and span ids
//!   ([`log_ids`]).
//! - **Traces**: W3C Trace Context is always propagated ([`propagation`]). With an OTLP
//!   endpoint ([`export`]), spans are made by the tracing-opentelemetry layer and exported;
//!   without one, no span is made and the caller's context is passed through.
//!
//! The OpenTelemetry layer has a filter of its own, [`SPAN_FILTER`]: `RUST_LOG=debug` must
//! not export the internals of h2 and hyper, and the catalog's probes and scrapes
//! (`catalog::probe`) would be noise in a trace store.

mod error;
pub mod export;
pub mod log_ids;
mod mode;
pub mod propagation;

pub use self::error::TelemetryError;
pub use self::mode::spans_enabled;

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterExt as _, filter_fn};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use log_ids::WithTraceIds;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured at a terminal).
    #[default]
    Pretty,
    /// One JSON object per line, with the span fields (such as `request_id`) included.
    Json,
}

/// What is logged when `RUST_LOG` is not set: `info`, and discount's failed TLS handshakes,
/// logged at `debug` (a plaintext client on the TLS port, an untrusted client
/// certificate). They are worth seeing by default; `RUST_LOG` replaces all of this.
/// flagd's provider is quiet: discount's `faults` module says in one line, with the file's
/// path, what the provider's own lines say without it.
pub const DEFAULT_FILTER: &str = "info,discount::tls=debug,open_feature_flagd=off";

/// Which spans become OpenTelemetry spans, whatever `RUST_LOG` says: the services' own, at
/// `info`; not the libraries' internals, nor the catalog's probes and scrapes. Log lines at
/// `warn` and above within them become span events.
pub const SPAN_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,catalog::probe=off,open_feature_flagd=off";

/// How long flushing the last spans may take at shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// The tracing flags both services take.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TraceArgs {
    /// Export traces over OTLP/gRPC to this collector, as http://host:4317. Off when unset
    /// or empty. The other standard variables apply too: OTEL_SERVICE_NAME,
    /// OTEL_TRACES_SAMPLER(_ARG), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SDK_DISABLED,
    /// OTEL_BSP_*. Trace context is propagated either way.
    #[arg(
        long = "otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        value_name = "URL"
    )]
    pub otlp_endpoint: Option<String>,
}

/// The tracer provider (only with export), kept to flush the last spans at shutdown.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    endpoint: Option<String>,
}

impl Telemetry {
    /// Where spans are exported to, if they are.
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// Exports the spans queued so far, and waits for it (blocking: call it off the
    /// runtime's threads, as [`Self::shutdown`] does).
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "could not export the queued spans");
        }
    }

    /// Exports the spans still queued, within a bound. Call it from the runtime, at the
    /// end: the provider's shutdown blocks until the export thread is done, and that
    /// thread needs the runtime (tonic's channel) to send, so it must not block the
    /// runtime's own thread (on one CPU the runtime has only that one).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let flush =
            tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(FLUSH_TIMEOUT));
        match tokio::time::timeout(FLUSH_TIMEOUT + Duration::from_millis(500), flush).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(%error, "could not export the last spans"),
            Ok(Err(error)) => tracing::warn!(%error, "could not export the last spans"),
            Err(_) => tracing::warn!("the last spans were not exported in time"),
        }
    }
}

/// Installs the global `tracing` subscriber (logs to stderr, filtered by `RUST_LOG`,
/// default [`DEFAULT_FILTER`]; with export, spans to OpenTelemetry) and the W3C
/// propagators.
///
/// `service` is the default `service.name` (`OTEL_SERVICE_NAME` overrides it); `args` are
/// the tracing flags. Call once, from `main`, inside the tokio runtime (the gRPC
/// exporter's channel starts there). Tests leave it alone, so that their output stays
/// quiet.
pub fn init(
    log_format: LogFormat,
    service: &'static str,
    args: &TraceArgs,
) -> Result<Telemetry, TelemetryError> {
    let endpoint = export::endpoint(args.otlp_endpoint.as_deref())?;
    let telemetry = install(log_format, service, endpoint)?;
    match telemetry.endpoint() {
        Some(endpoint) => tracing::info!(endpoint, "exporting traces over OTLP/gRPC"),
        None => tracing::debug!("trace export off; trace context is still propagated"),
    }
    Ok(telemetry)
}

/// Logs only, for the subcommands (`healthcheck`, `gen-keys`): nothing to export.
pub fn init_logs(log_format: LogFormat, service: &'static str) {
    // Cannot fail without an endpoint.
    let _ = install(log_format, service, None);
}

fn install(
    log_format: LogFormat,
    service: &'static str,
    endpoint: Option<String>,
) -> Result<Telemetry, TelemetryError> {
    set_propagators();
    // Only with export: a span nobody receives would cost a third of the throughput.
    let provider = match &endpoint {
        Some(endpoint) => {
            let name = std::env::var("OTEL_SERVICE_NAME")
                .ok()
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| service.to_owned());
            Some(
                SdkTracerProvider::builder()
                    .with_resource(Resource::builder().with_service_name(name).build())
                    .with_span_processor(export::processor(endpoint)?)
                    .build(),
            )
        }
        None => None,
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_tracked_inactivity(false)
            .with_threads(false)
            // Not attached as OpenTelemetry's current context at every poll: nothing here
            // reads it but the log lines, which look the span up instead (log_ids).
            .with_context_activation(false)
            // Log lines become span events at warn and above only: an event on every span
            // (an info line per call) cost more than the span itself.
            .with_filter(EnvFilter::new(SPAN_FILTER).and(filter_fn(|metadata| {
                metadata.is_span() || *metadata.level() <= tracing::Level::WARN
            })))
    });
    mode::set_spans_enabled(spans.is_some());

    // Without export, the registry gets the log layer alone: an absent (`None`) layer
    // would declare an interest in every callsite, and every span that `RUST_LOG` hides
    // would still be made, entered and closed on each call for nobody (BENCHMARKS.md).
    match spans {
        Some(spans) => tracing_subscriber::registry()
            .with(spans)
            .with(logs(log_format))
            .init(),
        None => tracing_subscriber::registry().with(logs(log_format)).init(),
    }
    Ok(Telemetry { provider, endpoint })
}

/// The log lines' layer: to stderr, filtered by `RUST_LOG`, with trace ids (see the module
/// docs).
fn logs<S>(log_format: LogFormat) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match log_format {
        LogFormat::Pretty => {
            // Colour codes only help a person at a terminal; in files and pipes they are noise.
            let ansi = std::io::stderr().is_terminal();
            let logs = logs
                .with_ansi(ansi)
                .fmt_fields(TextFields)
                .event_format(WithTraceIds::new(
                    tracing_subscriber::fmt::format().with_ansi(ansi),
                    false,
                ));
            logs.with_filter(filter).boxed()
        }
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::format()
                .json()
                .with_current_span(true)
                .with_span_list(false);
            let logs = logs
                .fmt_fields(JsonFields::new())
                .event_format(WithTraceIds::new(json, true));
            logs.with_filter(filter).boxed()
        }
    }
}

/// W3C Trace Context and baggage, for [`propagation`].
fn set_propagators() {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry::propagation::TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]),
    );
}

/// Fields of text lines as `name=value`, the message bare, without the `otel.*` fields
/// that only name and shape the exported span.
struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for TextVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() || field.name().starts_with("otel.") {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if field.name() == "message" {
            write!(self.writer, "{separator}{value:?}")
        } else {
            write!(self.writer, "{separator}{}={value:?}", field.name())
        };
    }
}
