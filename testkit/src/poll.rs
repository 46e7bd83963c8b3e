//! Waiting, bounded, for a condition that nothing announces: a counter that reaches a
//! value, a certificate presented by new handshakes, a readiness answer that changes.
//! Readiness of a service is never polled for: tests wait for the line that announces it.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// How often [`until`] and [`within`] check.
pub const EVERY: Duration = Duration::from_millis(20);

/// Checks `check` every [`EVERY`] until it returns `Ok`, and returns that value; after
/// [`PATIENCE`] without it, panics with `what` and the last `Err` (what was seen instead).
pub async fn until<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    within(PATIENCE, what, check).await
}

/// [`until`], with a bound of `limit` that is part of what the test asserts ("discounts are
/// back within 3 s").
pub async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("not within {limit:?}: {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(EVERY).await,
        }
    }
}
