//! The discount client's metrics: calls by outcome and by replica, `/products` answers by
//! discount status, fallbacks, and the client's own state and counts, which are brought up
//! to date at scrape time from its [`ClientStats`].

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::discounts::{BreakerState, CallError, ClientStats, DiscountStatus, Health};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    health: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiscountStatusLabels {
    discount_status: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
    result: &'static str,
}

/// See [`DiscountMetrics`]'s `hot`.
#[derive(Debug, Default)]
struct HotSeries {
    applied: OnceLock<Counter>,
    no_discount: OnceLock<Counter>,
    complete: OnceLock<Counter>,
}

/// Counters whose totals the discount client keeps; they are brought up to date at scrape
/// time.
#[derive(Debug, Clone, Default)]
struct ClientCounters {
    retries: Counter,
    hedges: Counter,
    hedges_won: Counter,
    budget_exhausted: Counter,
    breaker_openings: Counter,
}

impl ClientCounters {
    fn catch_up(&self, stats: &ClientStats) {
        for (counter, total) in [
            (&self.retries, stats.retries),
            (&self.hedges, stats.hedges),
            (&self.hedges_won, stats.hedges_won),
            (&self.budget_exhausted, stats.budget_exhausted),
            (&self.breaker_openings, stats.breaker_openings),
        ] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

/// `catalog_discount_*` and `catalog_products_responses_total`.
#[derive(Debug, Clone)]
pub struct DiscountMetrics {
    calls: Family<OutcomeLabels, Counter>,
    /// The series of the outcomes of nearly every call, `applied` and `no_discount`, and of
    /// nearly every answer, `complete`: looked up in their families once, at first use,
    /// not at every call (a hash of the labels and a lock, three times per request).
    hot: Arc<HotSeries>,
    replica_calls: Family<ReplicaLabels, Counter>,
    products_responses: Family<DiscountStatusLabels, Counter>,
    fallbacks: Counter,
    breakers: Family<StateLabels, Gauge>,
    replicas: Family<HealthLabels, Gauge>,
    client: ClientCounters,
}

impl DiscountMetrics {
    /// Registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let calls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "discount_calls",
            "Discount calls, by outcome",
            calls.clone(),
        );
        let replica_calls = Family::<ReplicaLabels, Counter>::default();
        registry.register(
            "discount_replica_calls",
            "Discount calls (hedges and retries included) by replica address and result",
            replica_calls.clone(),
        );
        let products_responses = Family::<DiscountStatusLabels, Counter>::default();
        registry.register(
            "products_responses",
            "/products answers, by X-Discount-Status",
            products_responses.clone(),
        );
        // Every value from the start, at zero: an alert's rate() needs the series to exist
        // before its first increment.
        for status in DiscountStatus::ALL {
            products_responses
                .get_or_create(&DiscountStatusLabels {
                    discount_status: status.name(),
                })
                .inc_by(0);
        }
        let fallbacks = Counter::default();
        registry.register(
            "discount_fallbacks",
            "Products served at full price because their discount call failed",
            fallbacks.clone(),
        );
        let breakers = Family::<StateLabels, Gauge>::default();
        registry.register(
            "discount_breakers",
            "Discount replicas, by circuit breaker state",
            breakers.clone(),
        );
        let client = ClientCounters::default();
        registry.register(
            "discount_breaker_openings",
            "Times a discount replica's circuit breaker opened",
            client.breaker_openings.clone(),
        );
        let replicas = Family::<HealthLabels, Gauge>::default();
        registry.register(
            "discount_replicas",
            "Discount replicas, by what their health checks found",
            replicas.clone(),
        );
        registry.register(
            "discount_retries",
            "Discount calls tried again on another replica after UNAVAILABLE",
            client.retries.clone(),
        );
        registry.register(
            "discount_hedges",
            "Discount calls also sent to a second replica after the hedge delay",
            client.hedges.clone(),
        );
        registry.register(
            "discount_hedges_won",
            "Hedged discount calls whose second answer came first",
            client.hedges_won.clone(),
        );
        registry.register(
            "discount_budget_exhausted",
            "Retries and hedges not sent because their budget was spent",
            client.budget_exhausted.clone(),
        );
        Self {
            calls,
            hot: Arc::default(),
            replica_calls,
            products_responses,
            fallbacks,
            breakers,
            replicas,
            client,
        }
    }

    /// Records one discount call's outcome, and a fallback if it failed.
    pub fn discount_call<T>(&self, result: &Result<Option<T>, CallError>) {
        let outcome = match result {
            Ok(Some(_)) => "applied",
            Ok(None) => "no_discount",
            Err(error) => error.outcome(),
        };
        let series = |outcome| self.calls.get_or_create(&OutcomeLabels { outcome }).clone();
        match result {
            Ok(Some(_)) => self.hot.applied.get_or_init(|| series(outcome)).inc(),
            Ok(None) => self.hot.no_discount.get_or_init(|| series(outcome)).inc(),
            Err(_) => series(outcome).inc(),
        };
        if result.is_err() {
            self.fallbacks.inc();
        }
    }

    /// Records a `/products` answer with its `X-Discount-Status`.
    pub fn products_answered(&self, status: DiscountStatus) {
        let series = || {
            self.products_responses
                .get_or_create(&DiscountStatusLabels {
                    discount_status: status.name(),
                })
                .clone()
        };
        match status {
            DiscountStatus::Complete => self.hot.complete.get_or_init(series).inc(),
            _ => series().inc(),
        };
    }

    /// Brings the client's state and counts up to date (at scrape time).
    pub fn catch_up(&self, stats: &ClientStats) {
        set_counts(
            &self.breakers,
            &[
                BreakerState::Closed,
                BreakerState::HalfOpen,
                BreakerState::Open,
            ],
            &stats.breakers,
            |state| StateLabels {
                state: state.name(),
            },
        );
        set_counts(
            &self.replicas,
            &[
                Health::Unknown,
                Health::Serving,
                Health::NotServing,
                Health::Unreachable,
            ],
            &stats.health,
            |health| HealthLabels {
                health: health.name(),
            },
        );
        self.client.catch_up(stats);
        for &(addr, ok, failed) in &stats.replica_calls {
            for (result, total) in [("ok", ok), ("failed", failed)] {
                let counter = self.replica_calls.get_or_create(&ReplicaLabels {
                    replica: addr.to_string(),
                    result,
                });
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
    }
}

/// Sets the gauge of each value of `all` in `family` to how many of `seen` have it.
fn set_counts<T: Copy + PartialEq, L: EncodeLabelSet + Clone + Eq + std::hash::Hash>(
    family: &Family<L, Gauge>,
    all: &[T],
    seen: &[T],
    label: impl Fn(T) -> L,
) {
    for &value in all {
        let count = seen.iter().filter(|s| **s == value).count();
        family.get_or_create(&label(value)).set(count as i64);
    }
}
