//! A circuit breaker for one discount replica.
//!
//! When a replica keeps failing, calling it only adds latency: each call waits for a refusal
//! or, worse, for the deadline. After [`BreakerSettings::failure_threshold`] failures in a
//! row the breaker **opens**: calls to that replica are refused at once, so products fall
//! back (or go to another replica) without waiting. After
//! [`BreakerSettings::cool_down`] the breaker lets **one probe** through (half-open). If
//! the probe succeeds, the breaker **closes** and traffic resumes. If it fails, the breaker
//! opens for another cool-down. Every change of state is logged.
//!
//! No crate is used: the maintained ones are young and change fast, and this is about
//! sixty lines. The clock is tokio's, so tests can pause and advance time.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failed calls that open the breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before it lets a probe through.
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
    /// One probe is in flight, or allowed.
    HalfOpen = 1,
    /// Calls are refused until the cool-down ends.
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
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is in flight since `since`. If its result never comes back (its request
    /// was abandoned), another probe is allowed after a cool-down, so the breaker cannot
    /// stay stuck half-open.
    HalfOpen {
        since: Instant,
    },
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

    /// Whether a call may go to this replica now. When this returns true the caller must
    /// report the outcome with [`Self::record`].
    pub fn allows_call(&self) -> bool {
        let mut state = self.lock();
        let now = Instant::now();
        match *state {
            State::Closed { .. } => true,
            State::Open { until } if now < until => false,
            State::HalfOpen { since } if now < since + self.settings.cool_down => false,
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                tracing::info!(replica = %self.name, "circuit half-open: sending a probe");
                true
            }
        }
    }

    /// Reports the outcome of a call that [`Self::allows_call`] let through.
    pub fn record(&self, success: bool) {
        let mut state = self.lock();
        let next = match (*state, success) {
            (State::Closed { .. }, true) => State::Closed {
                consecutive_failures: 0,
            },
            (
                State::Closed {
                    consecutive_failures,
                },
                false,
            ) => {
                let failures = consecutive_failures + 1;
                if failures >= self.settings.failure_threshold {
                    tracing::warn!(
                        replica = %self.name,
                        failures,
                        cool_down = ?self.settings.cool_down,
                        "circuit opened: not calling this replica for a while"
                    );
                    self.open()
                } else {
                    State::Closed {
                        consecutive_failures: failures,
                    }
                }
            }
            (State::HalfOpen { .. }, true) => {
                tracing::info!(replica = %self.name, "circuit closed: the probe succeeded");
                State::Closed {
                    consecutive_failures: 0,
                }
            }
            (State::HalfOpen { .. }, false) => {
                tracing::warn!(replica = %self.name, "circuit opened again: the probe failed");
                self.open()
            }
            // Calls let through before the breaker opened, finishing late: the breaker has
            // already decided; they change nothing.
            (open @ State::Open { .. }, _) => open,
        };
        *state = next;
    }

    /// The state now, for metrics.
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
            State::Open { .. } => BreakerState::Open,
        }
    }

    /// Whether the breaker is refusing calls right now (open and cooling down).
    pub fn is_open(&self) -> bool {
        matches!(*self.lock(), State::Open { until } if Instant::now() < until)
    }

    fn open(&self) -> State {
        State::Open {
            until: Instant::now() + self.settings.cool_down,
        }
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
        breaker.record(true); // a success resets the count
        fail(&breaker, 2);
        assert!(!breaker.is_open());
        fail(&breaker, 1);
        assert!(breaker.is_open());
        assert!(!breaker.allows_call());
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_down_one_probe_goes_through_and_success_closes_it() {
        let breaker = breaker();
        fail(&breaker, 3);
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!breaker.allows_call());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.allows_call(), "the probe");
        assert!(!breaker.allows_call(), "only one probe at a time");
        breaker.record(true);
        assert!(breaker.allows_call());
        assert!(breaker.allows_call());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_for_another_cool_down() {
        let breaker = breaker();
        fail(&breaker, 3);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allows_call());
        breaker.record(false);
        assert!(breaker.is_open());
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!breaker.allows_call());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.allows_call());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_result_never_comes_does_not_leave_it_stuck() {
        let breaker = breaker();
        fail(&breaker, 3);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allows_call()); // a probe that is never recorded
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(!breaker.allows_call());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(breaker.allows_call(), "a new probe after a cool-down");
    }

    #[tokio::test(start_paused = true)]
    async fn late_results_from_before_it_opened_change_nothing() {
        let breaker = breaker();
        fail(&breaker, 3);
        breaker.record(true);
        assert!(breaker.is_open());
    }
}
