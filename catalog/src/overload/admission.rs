//! Admission control for priced `/products` requests: an adaptive limit on the discount calls
//! in flight, a bounded queue in front of it, and shedding by time spent in that queue.
//!
//! A priced request takes `min(products, MAX_CALLS_IN_FLIGHT)` permits (its fan-out) before
//! its first discount call, and gives them back when it has answered. When none are free it
//! waits, FIFO, in a queue that costs no CPU (a parked future), for at most
//! [`AdmissionSettings::wait`]. A request that waited that long is answered `503` with
//! `Retry-After` by the caller, cheaply. The deadline of a request's discount calls starts
//! only once it is admitted, so time in the queue is never taken out of them.
//!
//! Why wait at all, rather than refuse at once? Closed-loop clients (wrk, a retrying proxy,
//! impatient users) ask again the instant they are refused, and each refusal costs CPU:
//! refusing at once serves far fewer answers than holding a request a while before
//! refusing it (BENCHMARKS.md, "Overload: what was measured and chosen"). Facebook's queue
//! timeouts, Netflix's `LifoBlockingLimiter` and congestion-limiter's `RejectionDelay` do
//! the same.
//!
//! **The limit adapts**, additive-increase, multiplicative-decrease. Every [`WINDOW`]: if
//! admitted fan-outs took longer on average than the target (a third of the discount
//! deadline: "well inside" it) **and** the catalog's own runtime is running late
//! ([`super::OVERLOADED_LAG`]), the limit shrinks by a tenth; if requests had to queue
//! otherwise, it grows by a twentieth; it stays between
//! [`AdmissionSettings::max_inflight_calls`] and a floor of four requests' fan-outs. Both
//! conditions, on purpose: slow fan-outs with a punctual runtime mean discount is slow, and
//! fewer calls at once would only serve fewer customers; a late runtime with fast fan-outs
//! means the lateness comes from outside the limit (parsing and refusing thousands of
//! requests), and shrinking it would only cost goodput. (Gradient2 and Vegas, from Netflix's
//! concurrency-limits, compare latency with a no-load baseline; on this two-process, one-core
//! set-up the no-load latency says little about throughput, and the deadline, known in
//! advance, is the better yardstick.)
//!
//! **The defaults were measured** (BENCHMARKS.md, "Overload: what was measured and
//! chosen"): 96 calls (32 requests of three products) is near the throughput peak of a
//! 2-core machine; and a 750 ms wait keeps refusals rare enough that at 10,000 connections
//! refusing them does not eat the CPU that priced requests need.
//!
//! No crate is used: the maintained ones either only wait and never shed (`tower`'s
//! `ConcurrencyLimit`, `tower-acc`), target tower 0.4, or are one-release 0.x crates; hyper
//! 1's `service_fn` has no `poll_ready` for tower's layers anyway. This is a tokio
//! [`Semaphore`] with a timeout, and the AIMD rule above. The clock is tokio's, so tests
//! pause and advance it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::LocalLoad;

/// How often the limit is reconsidered.
pub const WINDOW: Duration = Duration::from_millis(100);

/// The bounds of admission, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionSettings {
    /// The most discount calls that admitted requests may have in flight together: the
    /// ceiling of the adaptive limit.
    pub max_inflight_calls: usize,
    /// How long a request may wait for admission before it is answered 503.
    pub wait: Duration,
    /// The most requests waiting at once; past it, a request is answered 503 at once.
    pub max_queue: usize,
    /// The mean fan-out latency above which the limit shrinks.
    pub target_latency: Duration,
}

impl Default for AdmissionSettings {
    /// 96 calls (32 requests of 3 products), 750 ms of waiting, 10,000 waiting requests
    /// (the default connection limit), and a 100 ms latency target (a third of the default
    /// 300 ms deadline). See the module docs for how the first two were measured.
    fn default() -> Self {
        Self {
            max_inflight_calls: 96,
            wait: Duration::from_millis(750),
            max_queue: 10_000,
            target_latency: Duration::from_millis(100),
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shed {
    /// It waited [`AdmissionSettings::wait`] without a turn.
    QueueTimeout,
    /// The queue already held [`AdmissionSettings::max_queue`] requests.
    QueueFull,
}

impl Shed {
    /// The metrics label: `queue_timeout` or `queue_full`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::QueueTimeout => "queue_timeout",
            Self::QueueFull => "queue_full",
        }
    }
}

/// An admitted request's permits; they go back when it is dropped.
#[derive(Debug)]
pub struct Ticket {
    _permit: OwnedSemaphorePermit,
    admission: Arc<Admission>,
    admitted_at: Instant,
    /// How long the request waited in the queue.
    pub waited: Duration,
}

impl Ticket {
    /// Reports that the request's fan-out is over, for the adaptive limit.
    pub fn finish(self) {
        let latency = self.admitted_at.elapsed();
        let mut limit = self.admission.lock();
        limit.latency_sum += latency;
        limit.samples += 1;
    }
}

/// The admission controller of one catalog. Share it in an [`Arc`].
#[derive(Debug)]
pub struct Admission {
    semaphore: Arc<Semaphore>,
    settings: AdmissionSettings,
    /// Requests waiting now (shared with [`LocalLoad`], which reports it as overload).
    waiting: Arc<AtomicUsize>,
    limit: Mutex<Limit>,
    /// Shedding is logged at most once a second: when and how many since.
    shed_log: Mutex<(Instant, u64)>,
    /// Whether the runtime is running late.
    load: LocalLoad,
}

/// The least time between two log lines about shedding.
const SHED_LOG_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Limit {
    /// The limit now.
    current: usize,
    /// Permits the semaphore holds in all (free or taken). It follows `current` lazily: only
    /// free permits can be taken out of it.
    capacity: usize,
    /// The floor of the limit.
    floor: usize,
    window_start: Instant,
    /// Fan-outs finished in this window, and their total latency.
    latency_sum: Duration,
    samples: u32,
    /// Whether any request had to wait in this window.
    queued: bool,
}

impl Admission {
    /// A controller for requests of `weight` permits each (`min(products, calls per
    /// request)`), starting at the ceiling, that reports its queue through `load`.
    pub fn new(settings: AdmissionSettings, weight: usize, load: &LocalLoad) -> Arc<Self> {
        let ceiling = settings.max_inflight_calls.max(weight.max(1));
        let floor = (weight.max(1) * 4).min(ceiling);
        Arc::new(Self {
            semaphore: Arc::new(Semaphore::new(ceiling)),
            settings: AdmissionSettings {
                max_inflight_calls: ceiling,
                ..settings
            },
            waiting: load.queued_counter(),
            limit: Mutex::new(Limit {
                current: ceiling,
                capacity: ceiling,
                floor,
                window_start: Instant::now(),
                latency_sum: Duration::ZERO,
                samples: 0,
                queued: false,
            }),
            shed_log: Mutex::new((
                Instant::now()
                    .checked_sub(SHED_LOG_EVERY)
                    .unwrap_or_else(Instant::now),
                0,
            )),
            load: load.clone(),
        })
    }

    /// Waits for `weight` permits, at most [`AdmissionSettings::wait`].
    pub async fn admit(self: &Arc<Self>, weight: usize) -> Result<Ticket, Shed> {
        let weight =
            u32::try_from(weight.clamp(1, self.settings.max_inflight_calls)).unwrap_or(u32::MAX);
        self.adapt();
        let arrived = Instant::now();
        let permit = match self.semaphore.clone().try_acquire_many_owned(weight) {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::Relaxed) >= self.settings.max_queue {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(self.shed(Shed::QueueFull));
                }
                let _waiting = Waiting(&self.waiting);
                self.lock().queued = true;
                let acquire = self.semaphore.clone().acquire_many_owned(weight);
                match tokio::time::timeout(self.settings.wait, acquire).await {
                    Ok(Ok(permit)) => permit,
                    // Timed out (the semaphore is never closed).
                    Err(_) | Ok(Err(_)) => return Err(self.shed(Shed::QueueTimeout)),
                }
            }
        };
        let admitted_at = Instant::now();
        Ok(Ticket {
            _permit: permit,
            admission: self.clone(),
            admitted_at,
            waited: admitted_at - arrived,
        })
    }

    /// Logs shedding, at most once per [`SHED_LOG_EVERY`], with the count since the last
    /// line, and returns `reason`.
    fn shed(&self, reason: Shed) -> Shed {
        let mut log = self
            .shed_log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        log.1 += 1;
        if log.0.elapsed() >= SHED_LOG_EVERY {
            tracing::warn!(
                shed = log.1,
                over = ?log.0.elapsed(),
                reason = reason.reason(),
                limit = self.limit(),
                queued = self.queued(),
                "overloaded: answering 503 with Retry-After to requests that could not be admitted"
            );
            *log = (Instant::now(), 0);
        }
        reason
    }

    /// Requests waiting for admission now.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// The limit now, in discount calls.
    pub fn limit(&self) -> usize {
        self.lock().current
    }

    /// Permits taken by admitted requests now.
    pub fn in_flight(&self) -> usize {
        let capacity = self.lock().capacity;
        capacity.saturating_sub(self.semaphore.available_permits())
    }

    /// Once per [`WINDOW`]: the AIMD rule of the module docs.
    fn adapt(&self) {
        let mut limit = self.lock();
        let now = Instant::now();
        if now.saturating_duration_since(limit.window_start) < WINDOW {
            return;
        }
        let mean = (limit.samples > 0).then(|| limit.latency_sum / limit.samples);
        let next = match mean {
            Some(mean)
                if mean > self.settings.target_latency
                    && self.load.lag() >= super::OVERLOADED_LAG =>
            {
                (limit.current * 9 / 10).max(limit.floor)
            }
            _ if limit.queued => {
                (limit.current + (limit.current / 20).max(1)).min(self.settings.max_inflight_calls)
            }
            _ => limit.current,
        };
        if next != limit.current {
            tracing::debug!(from = limit.current, to = next, ?mean, "admission limit");
        }
        limit.current = next;
        limit.window_start = now;
        limit.latency_sum = Duration::ZERO;
        limit.samples = 0;
        limit.queued = false;
        if next > limit.capacity {
            self.semaphore.add_permits(next - limit.capacity);
            limit.capacity = next;
        } else if next < limit.capacity {
            // Taken permits cannot be withdrawn: what is not free now is taken out in a later
            // window.
            limit.capacity -= self.semaphore.forget_permits(limit.capacity - next);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Limit> {
        // Every write is a few plain assignments: a poisoned lock is still consistent.
        self.limit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counts a request as waiting until dropped (also when its future is abandoned).
struct Waiting<'a>(&'a Arc<AtomicUsize>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overload::lag::LagProbe;

    fn new(settings: AdmissionSettings, weight: usize) -> Arc<Admission> {
        Admission::new(settings, weight, &LocalLoad::with_probe(LagProbe::idle()))
    }

    /// With a real lag probe: on paused time, `advance` is a runtime that ran late.
    fn new_with_lag_probe(settings: AdmissionSettings, weight: usize) -> Arc<Admission> {
        Admission::new(settings, weight, &LocalLoad::with_probe(LagProbe::start()))
    }

    fn settings(max: usize) -> AdmissionSettings {
        AdmissionSettings {
            max_inflight_calls: max,
            wait: Duration::from_millis(250),
            max_queue: 2,
            target_latency: Duration::from_millis(100),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_within_the_limit_are_admitted_at_once() {
        let admission = new(settings(6), 3);
        let a = admission.admit(3).await.unwrap();
        let b = admission.admit(3).await.unwrap();
        assert_eq!(a.waited, Duration::ZERO);
        assert_eq!(b.waited, Duration::ZERO);
        assert_eq!(admission.in_flight(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_waits_for_permits_and_the_wait_is_measured() {
        let admission = new(settings(3), 3);
        let first = admission.admit(3).await.unwrap();
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(3).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(admission.queued(), 1);
        drop(first);
        let second = waiting.await.unwrap().unwrap();
        assert_eq!(second.waited, Duration::from_millis(100));
        assert_eq!(admission.queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waits_past_the_bound_is_shed() {
        let admission = new(settings(3), 3);
        let _held = admission.admit(3).await.unwrap();
        let started = Instant::now();
        assert_eq!(admission.admit(3).await.unwrap_err(), Shed::QueueTimeout);
        assert_eq!(started.elapsed(), Duration::from_millis(250));
        assert_eq!(admission.queued(), 0, "a shed request leaves the queue");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_sheds_at_once() {
        let admission = new(settings(3), 3);
        let _held = admission.admit(3).await.unwrap();
        let queued: Vec<_> = (0..2)
            .map(|_| {
                let admission = admission.clone();
                tokio::spawn(async move { admission.admit(3).await.map(|_| ()) })
            })
            .collect();
        tokio::task::yield_now().await;
        assert_eq!(admission.queued(), 2);
        let started = Instant::now();
        assert_eq!(admission.admit(3).await.unwrap_err(), Shed::QueueFull);
        assert_eq!(started.elapsed(), Duration::ZERO);
        for request in queued {
            assert_eq!(request.await.unwrap(), Err(Shed::QueueTimeout));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fan_outs_with_a_punctual_runtime_leave_the_limit_alone() {
        // discount is slow; the catalog is not busy: fewer calls would not help anyone.
        let admission = new(settings(60), 3);
        for _ in 0..30 {
            let ticket = admission.admit(3).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            ticket.finish();
        }
        assert_eq!(admission.limit(), 60);
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fan_outs_on_a_late_runtime_shrink_the_limit_to_its_floor_and_queueing_grows_it_back()
     {
        let admission = new_with_lag_probe(settings(60), 3);
        // Every fan-out takes 150 ms, over the 100 ms target, and the runtime stalls for as
        // long (paused time jumps): a tenth less per window.
        for _ in 0..30 {
            let ticket = admission.admit(3).await.unwrap();
            tokio::time::advance(Duration::from_millis(150)).await;
            ticket.finish();
        }
        assert_eq!(admission.limit(), 12, "the floor: four requests of 3 calls");
        // Free permits are withdrawn: only 12 calls' worth can be admitted now.
        let held: Vec<_> = (0..4).map(|_| admission.admit(3)).collect();
        let mut tickets = Vec::new();
        for ticket in held {
            tickets.push(ticket.await.unwrap());
        }
        assert!(admission.semaphore.try_acquire_many(3).is_err());

        // Fast fan-outs while others queue: the limit grows back, to the ceiling at most.
        let queued = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(3).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tickets.pop().unwrap().finish();
        queued.await.unwrap().unwrap();
        for _ in 0..200 {
            tokio::time::advance(WINDOW).await;
            admission.lock().queued = true;
            admission.admit(3).await.unwrap().finish();
        }
        assert_eq!(admission.limit(), 60);
    }
}
