//! One product's discount, from the replica picked to the answer kept: a first attempt, a
//! hedge on a second replica if the first is slow, a retry on a second one if the first
//! refused the call, all within the request's deadline and the budget of extra calls.
//!
//! Hedging is "The Tail at Scale"'s (and gRPC's hedging policy): a call not answered after
//! the hedge delay is also sent to another replica, and the first good answer wins. A call
//! refused by one replica (`UNAVAILABLE`: nothing was processed) is tried once more on
//! another. Both come out of one budget ([`super::budget`]), and no hedge is sent while the
//! catalog is overloaded.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ecommerce::pb;
use http::HeaderValue;
use tokio::time::Instant;

use super::attempt::{AskedProduct, Attempt, AttemptKind};
use super::context::CallContext;
use super::outcome::{CallError, CallResult};
use super::replica::Replica;
use super::replica_set::ReplicaSet;
use crate::data::{Customer, Product};

/// No call is started, and no retry or hedge sent, with less time than this left before
/// the deadline: it could not be answered in time, and would only add load.
pub const MIN_CALL_BUDGET: Duration = Duration::from_millis(10);

/// Makes each product's calls over the replica set.
#[derive(Debug)]
pub(crate) struct HedgedCaller {
    pub replicas: Arc<ReplicaSet>,
    /// After how long without an answer a call is also sent to another replica (none:
    /// never).
    pub hedge_delay: Option<Duration>,
    pub context: Arc<CallContext>,
}

impl HedgedCaller {
    /// One product's discount: too late to start, no replica accepting calls, or the calls
    /// of [`Self::hedged_call`].
    #[tracing::instrument(
        name = "discount_call",
        level = "debug",
        skip_all,
        fields(customer_id = customer.id, product_id = product.id)
    )]
    pub async fn price_one(
        &self,
        customer: &Customer,
        product: &Product,
        request_id: Option<&HeaderValue>,
        deadline: Instant,
    ) -> CallResult {
        if deadline.saturating_duration_since(Instant::now()) < MIN_CALL_BUDGET {
            return Err(CallError::NoBudget);
        }
        let first = self.replicas.pick(None).ok_or(CallError::CircuitOpen)?;
        self.context.budget.earn();
        // Boxed: the hedging and retrying below make a large future, and `price_all` keeps
        // one of these per product in flight; a call that fails at once (no replica) should
        // not pay for moving it.
        Box::pin(self.hedged_call(first, customer, product, request_id, deadline)).await
    }

    /// The calls of one product, from the first attempt on `first`: a hedge on a second
    /// replica if the first is slow, a retry on a second one if the first refused the call.
    async fn hedged_call(
        &self,
        first: Arc<Replica>,
        customer: &Customer,
        product: &Product,
        request_id: Option<&HeaderValue>,
        deadline: Instant,
    ) -> CallResult {
        let attempt = |replica: Arc<Replica>, kind: AttemptKind| {
            Attempt {
                replica,
                kind,
                message: message(customer, product),
                request_id: request_id.cloned(),
                asked: AskedProduct {
                    id: product.id,
                    price_in_cents: product.price_in_cents,
                },
                deadline,
                context: self.context.clone(),
            }
            .start()
        };
        let first_addr = first.addr;
        let result = match self.hedge_time(deadline) {
            None => attempt(first, AttemptKind::First).await,
            // Boxed, so that `race` can leave it running on its own.
            Some(hedge_at) => {
                let mut primary = Box::pin(attempt(first, AttemptKind::First));
                tokio::select! {
                    result = &mut primary => result,
                    () = tokio::time::sleep_until(hedge_at) => {
                        match self.extra_replica(first_addr, deadline, Extra::Hedge) {
                            Some(second) => {
                                tracing::debug!(slow = %first_addr, hedge_on = %second.addr, "hedging");
                                return self.race(primary, attempt(second, AttemptKind::Hedge)).await;
                            }
                            None => primary.await,
                        }
                    }
                }
            }
        };
        if !matches!(result, Err(CallError::Unavailable(_))) {
            return result;
        }
        // Refused before anything was processed: one more try, on another replica if one
        // accepts calls, within the same deadline.
        match self.extra_replica(first_addr, deadline, Extra::Retry) {
            Some(second) => {
                tracing::debug!(refused_by = %first_addr, retry_on = %second.addr, "retrying");
                attempt(second, AttemptKind::Retry).await
            }
            None => result,
        }
    }

    /// When to hedge a call started now, if hedging is on, there is another replica, and
    /// a hedge would still have time to answer.
    fn hedge_time(&self, deadline: Instant) -> Option<Instant> {
        let at = Instant::now() + self.hedge_delay?;
        (at + MIN_CALL_BUDGET < deadline && self.replicas.accepting() > 1).then_some(at)
    }

    /// A replica other than `avoid` for an extra call, if there is one, there is time, the
    /// catalog is not overloaded (for a hedge), and the budget allows.
    fn extra_replica(
        &self,
        avoid: SocketAddr,
        deadline: Instant,
        extra: Extra,
    ) -> Option<Arc<Replica>> {
        if deadline.saturating_duration_since(Instant::now()) < MIN_CALL_BUDGET
            || (extra == Extra::Hedge && self.context.load.is_overloaded())
        {
            return None;
        }
        let replica = self.replicas.pick(Some(avoid))?;
        let counters = &self.context.counters;
        if !self.context.budget.try_spend() {
            counters.budget_exhausted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let counter = match extra {
            Extra::Hedge => &counters.hedges,
            Extra::Retry => &counters.retries,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(replica)
    }

    /// The first good answer of a call and its hedge. The loser, if the hedge wins, keeps
    /// running on its own until its deadline, so that its replica's breaker learns how it
    /// ended (a replica that vanished would otherwise be hedged around forever).
    async fn race(
        &self,
        mut primary: Pin<Box<impl Future<Output = CallResult> + Send + 'static>>,
        hedge: impl Future<Output = CallResult>,
    ) -> CallResult {
        tokio::pin!(hedge);
        tokio::select! {
            result = &mut primary => match result {
                Ok(_) => result,
                Err(_) => hedge.await.or(result),
            },
            result = &mut hedge => match result {
                Ok(_) => {
                    self.context.counters.hedges_won.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(primary);
                    result
                }
                Err(_) => primary.await,
            },
        }
    }
}

/// What an extra call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    Hedge,
    Retry,
}

fn message(customer: &Customer, product: &Product) -> pb::DiscountRequest {
    pb::DiscountRequest {
        customer: Some(pb::Customer {
            id: customer.id,
            first_name: customer.first_name.clone(),
            last_name: customer.last_name.clone(),
        }),
        product: Some(pb::Product {
            id: product.id,
            slug: product.slug.clone(),
            description: product.description.clone(),
            price_in_cents: product.price_in_cents,
            discount_value: None,
        }),
    }
}
