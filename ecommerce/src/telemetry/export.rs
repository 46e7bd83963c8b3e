//! OTLP trace export: when it is on, where spans go, and the queue in front of it.
//!
//! Export is **off** unless an endpoint is given: `--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` wins, as the
//! specification says). `OTEL_SDK_DISABLED=true` and `OTEL_TRACES_EXPORTER=none` turn it
//! off again; the SDK itself ignores both (opentelemetry-rust#1936), so they are read here.
//! With export off no span is made at all: the caller's trace context is passed through
//! to discount and into the logs instead ([`super::propagation`]).
//!
//! Only OTLP over gRPC is built in (tonic, already in the tree): `OTEL_EXPORTER_OTLP_PROTOCOL`
//! set to `http/protobuf` or `http/json` is a start-up error, not a silent switch. The
//! HTTP exporter would bring reqwest and about 30 crates, and its rustls feature brings
//! aws-lc-rs. An `https://` endpoint needs the collector's CA in
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (a PEM file): no public roots are compiled in.
//!
//! Spans leave through the SDK's batch processor, which exports from a thread of its own:
//! a request never waits for the collector. In front of it, a gate counts the spans that
//! are queued but not yet handed to the exporter and drops a span when the queue is full,
//! counting it ([`spans_dropped`]); the SDK only counts such drops internally.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::error::TelemetryError;

/// Spans dropped because the export queue was full, since start-up.
static SPANS_DROPPED: AtomicU64 = AtomicU64::new(0);
/// Spans handed to the exporter, since start-up.
static SPANS_EXPORTED: AtomicU64 = AtomicU64::new(0);
/// Spans whose export failed (the collector refused them or could not be reached).
static SPANS_FAILED: AtomicU64 = AtomicU64::new(0);

/// Spans dropped because the export queue was full, since start-up (for the metrics).
pub fn spans_dropped() -> u64 {
    SPANS_DROPPED.load(Ordering::Relaxed)
}

/// Spans exported, and spans whose export failed, since start-up (for the metrics).
pub fn spans_exported() -> (u64, u64) {
    (
        SPANS_EXPORTED.load(Ordering::Relaxed),
        SPANS_FAILED.load(Ordering::Relaxed),
    )
}

/// How long one export may take. The SDK's default is 30 s, longer than a shutdown may.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where to export, from the flag and the standard variables; `None`: export is off.
pub(super) fn endpoint(flag: Option<&str>) -> Result<Option<String>, TelemetryError> {
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    if var("OTEL_SDK_DISABLED").is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(TelemetryError::Unsupported(format!(
                "OTEL_TRACES_EXPORTER={other}: only otlp (or none) is built in"
            )));
        }
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = var(name)
            && protocol.trim() != "grpc"
        {
            return Err(TelemetryError::Unsupported(format!(
                "{name}={protocol}: this build exports OTLP over gRPC only (grpc)"
            )));
        }
    }
    Ok(var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
        flag.map(str::trim)
            .filter(|e| !e.is_empty())
            .map(String::from)
    }))
}

/// The batch processor, behind the counting gate, exporting to `endpoint` over gRPC.
/// Must run inside the tokio runtime: tonic's channel spawns its worker there.
pub(super) fn processor(endpoint: &str) -> Result<GatedProcessor, TelemetryError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT);
    if endpoint.starts_with("https://") {
        let Some(ca) = std::env::var_os("OTEL_EXPORTER_OTLP_CERTIFICATE") else {
            return Err(TelemetryError::Unsupported(format!(
                "{endpoint}: an https:// collector needs its CA in OTEL_EXPORTER_OTLP_CERTIFICATE (a PEM file)"
            )));
        };
        let pem = std::fs::read(&ca).map_err(|error| {
            TelemetryError::Unsupported(format!(
                "OTEL_EXPORTER_OTLP_CERTIFICATE={}: {error}",
                ca.to_string_lossy()
            ))
        })?;
        builder = builder.with_tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        );
    }
    let exporter = builder
        .build()
        .map_err(|error| TelemetryError::Exporter(error.to_string()))?;
    let capacity = std::env::var("OTEL_BSP_MAX_QUEUE_SIZE")
        .ok()
        .and_then(|size| size.trim().parse().ok())
        .filter(|size| *size > 0)
        .unwrap_or(2048);
    let queued = Arc::new(AtomicUsize::new(0));
    let exporter = CountingExporter {
        inner: exporter,
        queued: queued.clone(),
    };
    // The rest of the batch settings (delay, batch size) come from OTEL_BSP_*.
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(capacity)
        .build();
    Ok(GatedProcessor {
        inner: BatchSpanProcessor::new(exporter, config),
        queued,
        capacity,
    })
}

/// The batch processor behind a gate that drops, and counts, what would overflow its queue.
#[derive(Debug)]
pub(super) struct GatedProcessor {
    inner: BatchSpanProcessor,
    /// Spans given to `inner` and not yet handed to the exporter.
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

impl SpanProcessor for GatedProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            SPANS_DROPPED.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting what it is handed and what fails.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let count = batch.len();
        self.queued.fetch_sub(count, Ordering::AcqRel);
        let result = self.inner.export(batch).await;
        let counter = if result.is_ok() {
            &SPANS_EXPORTED
        } else {
            &SPANS_FAILED
        };
        counter.fetch_add(count as u64, Ordering::Relaxed);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// `<prefix>_trace_spans_total{outcome}` in a service's registry: spans `exported`, spans
/// whose export `failed`, and spans `dropped` because the export queue was full.
#[derive(Debug, Clone)]
pub struct SpanCounters {
    family: Family<OutcomeLabel, Counter>,
    /// Two scrapes at once must not both add the same difference.
    catching_up: Arc<std::sync::Mutex<()>>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

impl SpanCounters {
    /// Registers the counter (all zero while export is off).
    pub fn register(registry: &mut Registry) -> Self {
        let family = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "trace_spans",
            "Trace spans by what became of them: exported, failed (the collector refused them or was unreachable), dropped (the export queue was full)",
            family.clone(),
        );
        let counters = Self {
            family,
            catching_up: Arc::default(),
        };
        counters.catch_up();
        counters
    }

    /// Brings the counter up to the totals; call it before encoding the registry.
    pub fn catch_up(&self) {
        let _alone = self
            .catching_up
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (exported, failed) = spans_exported();
        for (outcome, total) in [
            ("exported", exported),
            ("failed", failed),
            ("dropped", spans_dropped()),
        ] {
            let counter = self.family.get_or_create(&OutcomeLabel { outcome });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}
