//! How late the catalog's own runtime is running: the one signal that tells "the catalog is
//! overloaded" apart from "discount is slow".
//!
//! A task asks to wake every [`TICK`] and notes how much later than asked it actually ran.
//! When the runtime has more ready work than it can get through (thousands of connections
//! being parsed and answered), every task waits its turn, this one included, and the lateness
//! grows. A discount call that timed out while the runtime was this late may simply never
//! have been polled in time: that is the catalog's fault, not the replica's.
//!
//! [`LagProbe::lag`] is the largest lateness seen over the last half to whole second, or how
//! overdue the ticker is right now if that is more (a runtime stuck for a long time has no
//! finished tick to show it). A decaying average was tried in a prototype and was stale at
//! the wrong moments: a plain maximum over two half-second windows is what worked.
//!
//! The clock is tokio's, so tests can pause and advance time.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// How often the probe asks to wake.
pub const TICK: Duration = Duration::from_millis(5);

/// Each window over which the largest lateness is kept; [`LagProbe::lag`] covers the current
/// window and the one before it.
const WINDOW: Duration = Duration::from_millis(500);

/// The runtime's lateness, measured by a background ticker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LagProbe {
    /// None for a probe without a ticker ([`LagProbe::idle`]).
    state: Option<Arc<Mutex<State>>>,
}

#[derive(Debug)]
struct State {
    /// When the ticker last ran.
    last_tick: Instant,
    /// When the current window started.
    window_start: Instant,
    /// The largest lateness in the current window.
    current_max: Duration,
    /// The largest lateness in the previous window.
    previous_max: Duration,
}

impl LagProbe {
    /// Starts the ticker on the current runtime. It stops when the last clone is dropped.
    pub fn start() -> Self {
        let now = Instant::now();
        let state = Arc::new(Mutex::new(State {
            last_tick: now,
            window_start: now,
            current_max: Duration::ZERO,
            previous_max: Duration::ZERO,
        }));
        let weak: Weak<Mutex<State>> = Arc::downgrade(&state);
        tokio::spawn(async move {
            loop {
                let asked = Instant::now() + TICK;
                tokio::time::sleep_until(asked).await;
                let Some(state) = weak.upgrade() else { break };
                let now = Instant::now();
                record(&state, now, now.saturating_duration_since(asked));
            }
        });
        Self { state: Some(state) }
    }

    /// A probe with no ticker, that always reports no lag (for tests of other parts).
    pub fn idle() -> Self {
        Self { state: None }
    }

    /// The largest lateness over the last half second to second, or how overdue the ticker is
    /// now, whichever is more.
    pub fn lag(&self) -> Duration {
        let Some(state) = &self.state else {
            return Duration::ZERO;
        };
        let state = lock(state);
        let now = Instant::now();
        let overdue = now
            .saturating_duration_since(state.last_tick)
            .saturating_sub(TICK);
        let recent = if now.saturating_duration_since(state.window_start) < 2 * WINDOW {
            state.current_max.max(state.previous_max)
        } else {
            Duration::ZERO // no tick for two windows: only `overdue` says anything
        };
        recent.max(overdue)
    }
}

fn record(state: &Mutex<State>, now: Instant, late: Duration) {
    let mut state = lock(state);
    state.last_tick = now;
    if now.saturating_duration_since(state.window_start) >= WINDOW {
        state.previous_max = state.current_max;
        state.current_max = Duration::ZERO;
        state.window_start = now;
    }
    state.current_max = state.current_max.max(late);
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every write is a few plain assignments: a poisoned lock is still consistent.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_runtime_that_keeps_up_shows_no_lag() {
        let probe = LagProbe::start();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(probe.lag(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_shows_at_once_and_is_remembered_for_up_to_a_second() {
        let probe = LagProbe::start();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The runtime is blocked for 80 ms: the clock jumps, and every timer due in between
        // fires late, the ticker's included.
        tokio::time::advance(Duration::from_millis(80)).await;
        assert!(
            probe.lag() >= Duration::from_millis(70),
            "overdue now: {:?}",
            probe.lag()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            probe.lag() >= Duration::from_millis(70),
            "remembered: {:?}",
            probe.lag()
        );
        // Two windows later it has been forgotten.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(probe.lag(), Duration::ZERO);
    }
}
