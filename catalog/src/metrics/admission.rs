//! Admission control's metrics: its limit and queue, how long priced requests waited, how
//! many were admitted or shed, and how long admitted ones took.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::overload::admission::{Admission, Shed};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The admission controller's gauges, set at scrape time.
#[derive(Debug, Clone, Default)]
struct AdmissionGauges {
    limit: Gauge,
    in_flight: Gauge,
    queued: Gauge,
}

/// `catalog_admission_*`, `catalog_requests_admitted_total`, `catalog_requests_shed_total`
/// and `catalog_admitted_request_duration_seconds`.
#[derive(Debug, Clone)]
pub struct AdmissionMetrics {
    gauges: AdmissionGauges,
    wait: Histogram,
    admitted: Counter,
    shed: Family<ReasonLabels, Counter>,
    admitted_duration: Histogram,
}

impl AdmissionMetrics {
    /// Registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let admission = AdmissionGauges::default();
        registry.register(
            "admission_limit",
            "The adaptive limit on discount calls of admitted requests",
            admission.limit.clone(),
        );
        registry.register(
            "admission_in_flight_calls",
            "Discount call permits held by admitted requests",
            admission.in_flight.clone(),
        );
        registry.register(
            "admission_queued",
            "Priced requests waiting for admission",
            admission.queued.clone(),
        );
        // 1 ms to about 1 s.
        let admission_wait = Histogram::new(exponential_buckets(0.001, 2.0, 11));
        registry.register(
            "admission_wait_seconds",
            "Time priced requests waited for admission, admitted or shed",
            admission_wait.clone(),
        );
        let admitted = Counter::default();
        registry.register(
            "requests_admitted",
            "Priced /products requests admitted",
            admitted.clone(),
        );
        let shed = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "requests_shed",
            "Priced /products requests answered 503 without being admitted, by reason",
            shed.clone(),
        );
        for reason in [Shed::QueueTimeout, Shed::QueueFull] {
            shed.get_or_create(&ReasonLabels {
                reason: reason.reason(),
            })
            .inc_by(0);
        }
        // 0.5 ms to about 3.6 s, in steps of a quarter: fine enough for percentiles.
        let admitted_duration = Histogram::new(exponential_buckets(0.000_5, 1.25, 40));
        registry.register(
            "admitted_request_duration_seconds",
            "Time to answer an admitted priced request, from its arrival (queue wait included)",
            admitted_duration.clone(),
        );
        Self {
            gauges: admission,
            wait: admission_wait,
            admitted,
            shed,
            admitted_duration,
        }
    }

    /// Records a priced request admitted after waiting `waited`.
    pub fn admitted(&self, waited: Duration) {
        self.admitted.inc();
        self.wait.observe(waited.as_secs_f64());
    }

    /// Records a priced request shed for `reason` after waiting `waited`.
    pub fn shed(&self, reason: Shed, waited: Duration) {
        self.shed
            .get_or_create(&ReasonLabels {
                reason: reason.reason(),
            })
            .inc();
        self.wait.observe(waited.as_secs_f64());
    }

    /// Records the time to answer an admitted priced request, from its arrival.
    pub fn admitted_request_done(&self, elapsed: Duration) {
        self.admitted_duration.observe(elapsed.as_secs_f64());
    }

    /// Brings the controller's gauges up to date (at scrape time).
    pub fn catch_up(&self, admission: &Admission) {
        self.gauges.limit.set(admission.limit() as i64);
        self.gauges.in_flight.set(admission.in_flight() as i64);
        self.gauges.queued.set(admission.queued() as i64);
    }
}
