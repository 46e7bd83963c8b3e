//! The TLS metrics both services register: when each certificate expires, and what
//! became of each change of the TLS files.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `<prefix>_tls_certificate_expiry_timestamp_seconds{certificate}` in a service's
/// registry: when each of its certificates expires, for an alert before it does.
#[derive(Debug, Clone, Default)]
pub struct ExpiryGauges(Family<CertificateLabel, Gauge<f64, AtomicU64>>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabel {
    certificate: &'static str,
}

impl ExpiryGauges {
    /// Registers the gauge family (empty until [`Self::set`]).
    pub fn register(registry: &mut Registry) -> Self {
        let gauges = Self::default();
        registry.register(
            "tls_certificate_expiry_timestamp_seconds",
            "When each TLS certificate expires (Unix time): server, client, ca (the earliest of the trusted CAs)",
            gauges.0.clone(),
        );
        gauges
    }

    /// Records that `certificate` expires at `not_after`.
    pub fn set(&self, certificate: &'static str, not_after: SystemTime) {
        let seconds = not_after
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.0
            .get_or_create(&CertificateLabel { certificate })
            .set(seconds);
    }
}

/// `<prefix>_tls_reloads_total{outcome}` in a service's registry: changes of its TLS files
/// that were used (`ok`) or refused (`rejected`, the previous set kept).
#[derive(Debug, Clone, Default)]
pub struct ReloadCounters(Family<OutcomeLabel, Counter>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

impl ReloadCounters {
    /// Registers the counter, both outcomes at zero.
    pub fn register(registry: &mut Registry) -> Self {
        let counters = Self::default();
        registry.register(
            "tls_reloads",
            "Changes of the TLS files, by outcome: ok (in use for new connections), rejected (the previous set kept)",
            counters.0.clone(),
        );
        for outcome in ["ok", "rejected"] {
            counters
                .0
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(0);
        }
        counters
    }

    /// Counts a change: used (`ok`) or refused.
    pub fn record(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "rejected" };
        self.0.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
