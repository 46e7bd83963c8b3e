//! A circuit breaker for one discount replica.
//!
//! When a replica keeps failing, calling it only adds latency: each call waits for a refusal
//! or, worse, for the deadline. After [`BreakerSettings::failure_threshold`] failures in a
//! row the breaker **opens**: calls to that replica are refused at once, so products go to
//! another replica (or fall back) without waiting.
//!
//! **No customer call is a probe.** An open breaker waits at least
//! [`BreakerSettings::cool_down`], then closes on the first health check of the replica that
//! answers ([`super::health_check`], out of band). The usual breaker instead lets one customer call
//! through after the cool-down, and a replica that vanished without a reset makes that
//! customer wait the whole deadline and lose the discount, once per cool-down, for as long as
//! the replica is gone.
//!
//! What counts as a failure is decided by the caller ([`super::attempt`]): connection
//! failures, `UNAVAILABLE` and answers that cannot be believed do, and so does a timeout the
//! replica caused; a timeout caused by the catalog's own overload does not.
//!
//! No crate is used: the maintained ones are young and change fast, and this is about sixty
//! lines. The clock is tokio's, so tests can pause and advance time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls at least; after it, the next health check
    /// that answers closes it.
    pub cool_down: Duration,
}

impl Default for BreakerSettings {
    /// Five failures in a row; one second of cool-down, so a restarted discount service is
    /// used again within about a second.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            cool_down: Duration::from_secs(1),
        }
    }
}

/// A breaker's state as metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed = 0,
    /// Calls are refused; the cool-down is over and the next health check that answers
    /// closes it.
    HalfOpen = 1,
    /// Calls are refused, and the cool-down is not over.
    Open = 2,
}

impl BreakerState {
    /// `closed`, `half_open` or `open`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { consecutive_failures: u32 },
    Open { since: Instant },
}

/// The breaker of one replica. Cheap to consult on every call (one uncontended lock).
#[derive(Debug)]
pub struct CircuitBreaker {
    /// For the logs: which replica this breaker guards.
    name: String,
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker for the replica called `name` in logs.
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Self {
        Self {
            name: name.into(),
            settings,
            state: Mutex::new(State::Closed {
                consecutive_failures: 0,
            }),
        }
    }

    /// Whether a call may go to this replica now: only while the breaker is closed.
    pub fn allows_call(&self) -> bool {
        matches!(*self.lock(), State::Closed { .. })
    }

    /// Reports the outcome of a customer call that counts for this replica. Returns true if
    /// this failure opened the breaker.
    pub fn record(&self, success: bool) -> bool {
        let mut state = self.lock();
        let State::Closed {
            consecutive_failures,
        } = *state
        else {
            // Calls let through before the breaker opened, finishing late: the breaker has
            // already decided; they change nothing.
            return false;
        };
        if success {
            *state = State::Closed {
                consecutive_failures: 0,
            };
            return false;
        }
        let failures = consecutive_failures + 1;
        if failures < self.settings.failure_threshold {
            *state = State::Closed {
                consecutive_failures: failures,
            };
            return false;
        }
        tracing::warn!(
            replica = %self.name,
            failures,
            cool_down = ?self.settings.cool_down,
            "circuit opened: no calls to this replica until a health check answers"
        );
        *state = State::Open {
            since: Instant::now(),
        };
        true
    }

    /// Reports a health check of this replica that answered (the out-of-band probe). Closes
    /// an open breaker whose cool-down is over.
    pub fn health_check_answered(&self) {
        let mut state = self.lock();
        if let State::Open { since } = *state
            && since.elapsed() >= self.settings.cool_down
        {
            tracing::info!(replica = %self.name, "circuit closed: the health check answered");
            *state = State::Closed {
                consecutive_failures: 0,
            };
        }
    }

    /// The state now, for metrics.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { since } if since.elapsed() < self.settings.cool_down => {
                BreakerState::Open
            }
            State::Open { .. } => BreakerState::HalfOpen,
        }
    }

    /// Whether the breaker is refusing calls right now.
    pub fn is_open(&self) -> bool {
        !self.allows_call()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-written (every
        // write is one assignment), so a poisoned lock is still good to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerSettings {
                failure_threshold: 3,
                cool_down: Duration::from_secs(1),
            },
        )
    }

    fn fail(breaker: &CircuitBreaker, times: u32) {
        for _ in 0..times {
            assert!(breaker.allows_call());
            breaker.record(false);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_the_threshold_of_consecutive_failures_only() {
        let breaker = breaker();
        fail(&breaker, 2);
        assert!(breaker.allows_call());
        assert!(!breaker.record(true)); // a success resets the count
        fail(&breaker, 2);
        assert!(!breaker.is_open());
        assert!(breaker.record(false), "the third failure opens it");
        assert!(breaker.is_open());
        assert!(!breaker.allows_call());
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn no_customer_call_is_let_through_after_the_cool_down() {
        let breaker = breaker();
        fail(&breaker, 3);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!breaker.allows_call(), "customers are never the probe");
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
    }

    #[tokio::test(start_paused = true)]
    async fn a_health_check_closes_it_but_only_after_the_cool_down() {
        let breaker = breaker();
        fail(&breaker, 3);
        tokio::time::advance(Duration::from_millis(999)).await;
        breaker.health_check_answered();
        assert!(breaker.is_open(), "still cooling down");
        tokio::time::advance(Duration::from_millis(1)).await;
        breaker.health_check_answered();
        assert!(breaker.allows_call());
        assert_eq!(breaker.state(), BreakerState::Closed);
        // Closed afresh: three more failures to open it again.
        fail(&breaker, 2);
        assert!(breaker.allows_call());
    }

    #[tokio::test(start_paused = true)]
    async fn late_results_from_before_it_opened_change_nothing() {
        let breaker = breaker();
        fail(&breaker, 3);
        assert!(!breaker.record(true));
        assert!(
            !breaker.record(false),
            "an open breaker does not open again"
        );
        assert!(breaker.is_open());
    }
}
