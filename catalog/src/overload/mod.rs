//! The catalog's defences against its own overload, and the signal that says it is
//! overloaded.
//!
//! - [`admission`]: priced requests wait for a turn under an adaptive limit, and are answered
//!   503 with `Retry-After` when they have waited too long.
//! - [`lag`]: how late the runtime is running.
//!
//! [`LocalLoad`] joins the two into the question the discount client asks when a call times
//! out: was the catalog itself too busy to hear the answer? If so, the timeout is the
//! catalog's fault and must not count against the replica (Envoy's outlier detection calls
//! this a "local origin" error; Finagle ignores its own timeouts the same way).

pub mod admission;
pub mod lag;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use self::lag::LagProbe;

/// Runtime lag from which the catalog counts as overloaded. Healthy, even at its peak rate,
/// the catalog's runtime runs a few milliseconds late at most (measured at 64 connections).
pub const OVERLOADED_LAG: Duration = Duration::from_millis(30);

/// Whether the catalog is overloaded now. Cheap to clone and to ask.
#[derive(Debug, Clone)]
pub struct LocalLoad {
    lag: LagProbe,
    /// Requests waiting for admission now (kept by [`admission::Admission`]).
    queued: Arc<AtomicUsize>,
}

impl LocalLoad {
    /// Starts measuring the runtime's lag (on the current runtime).
    pub fn start() -> Self {
        Self::with_probe(LagProbe::start())
    }

    /// A signal over `lag`, with nothing queued.
    pub fn with_probe(lag: LagProbe) -> Self {
        Self {
            lag,
            queued: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// True while requests wait for admission, or the runtime runs [`OVERLOADED_LAG`] late.
    pub fn is_overloaded(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > 0 || self.lag() >= OVERLOADED_LAG
    }

    /// The runtime's lag (see [`LagProbe::lag`]).
    pub fn lag(&self) -> Duration {
        self.lag.lag()
    }

    /// The counter of waiting requests that admission keeps.
    pub(crate) fn queued_counter(&self) -> Arc<AtomicUsize> {
        self.queued.clone()
    }
}
