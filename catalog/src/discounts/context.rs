//! What every discount call of the catalog shares: whether the catalog itself is
//! overloaded, the budget of extra calls, and the counts the metrics report.

use std::sync::atomic::AtomicU64;

use super::budget::RetryBudget;
use crate::overload::LocalLoad;

/// What the client's calls share, behind one `Arc`.
#[derive(Debug)]
pub(crate) struct CallContext {
    /// Whether the catalog is overloaded (a timeout then is not the replica's fault).
    pub load: LocalLoad,
    /// What the calls counted.
    pub counters: Counters,
    /// Retries and hedges left to spend.
    pub budget: RetryBudget,
}

impl CallContext {
    /// A context for calls under `load`, with nothing counted and a full budget.
    pub fn new(load: LocalLoad) -> Self {
        Self {
            load,
            counters: Counters::default(),
            budget: RetryBudget::default(),
        }
    }
}

/// What the client has counted, for metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub retries: AtomicU64,
    pub hedges: AtomicU64,
    pub hedges_won: AtomicU64,
    pub budget_exhausted: AtomicU64,
    pub breaker_openings: AtomicU64,
}
