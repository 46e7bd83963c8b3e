//! The catalog's side of the discount service.
//!
//! The old Go catalog opened a new TLS connection per request, had no deadline (it hung as
//! long as discount did) and dropped products whose call failed. Here:
//!
//! - the replicas of discount ([`replicas`]) each get one TLS channel, made at start-up and
//!   shared by every request. Channels connect lazily, so the catalog starts and serves
//!   while discount is still down, and reconnect on demand when discount comes back;
//! - a request's calls (one per product) run concurrently, at most
//!   [`MAX_CALLS_IN_FLIGHT`] at a time, all under **one** deadline taken when the request
//!   is admitted ([`crate::overload::admission`]). A `/products` request therefore never
//!   waits much longer than the call timeout once admitted, whatever the number of
//!   products. The server sees the time left as `grpc-timeout`;
//! - each replica has a circuit breaker ([`breaker`]) and out-of-band health checks
//!   ([`health`]). A call that finds no replica accepting calls fails at once, instead of
//!   waiting on a service known to be down, and no customer call is ever used as a probe;
//! - **failures are attributed to whoever caused them** ([`CallError::blames_replica`]):
//!   connection failures, error statuses, implausible answers and timeouts the replica
//!   caused count against its breaker; a timeout while the catalog itself is overloaded
//!   ([`crate::overload::LocalLoad`]) and `RESOURCE_EXHAUSTED` (the replica shedding load,
//!   as it should) do not;
//! - with several replicas, a call not answered after the hedge delay is also sent to
//!   another replica, and the first answer wins ("The Tail at Scale"; gRPC's hedging
//!   policy). A call refused by one replica (`UNAVAILABLE`: nothing was processed) is tried
//!   once more on another. Both come out of one budget of about 10% extra calls
//!   ([`budget`]), and no hedge is sent while the catalog is overloaded;
//! - every call's result is kept apart: a failed call costs its product its discount, and
//!   nothing else. The caller decides what to serve ([`crate::routes`] serves the full price).

mod attempt;
pub mod breaker;
pub mod budget;
pub mod health;
pub mod replicas;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ecommerce::keys::PemIdentity;
use ecommerce::pb;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use tokio::time::Instant;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Identity};

use self::attempt::{Attempt, AttemptKind, CallResult};
use self::breaker::{BreakerSettings, BreakerState};
use self::budget::RetryBudget;
use self::health::{Health, HealthSettings};
use self::replicas::{ChannelSettings, Replica, ReplicaSet, TlsMaterial};
use crate::data::{Customer, Product};
use crate::overload::LocalLoad;

/// How many discount calls one `/products` request may have in flight at once. It keeps a
/// request for a large catalog from taking every HTTP/2 stream of the shared connections.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

/// No call is started, and no retry or hedge sent, with less time than this left before
/// the deadline: it could not be answered in time, and would only add load.
pub const MIN_CALL_BUDGET: Duration = Duration::from_millis(10);

/// Where the discount service is, how to trust it, and how patient to be.
#[derive(Debug, Clone)]
pub struct DiscountSettings {
    /// `host:port[,host:port…]` as in `DISCOUNT_SERVICE_HOST` (`https://host:port` entries
    /// are accepted too).
    pub address: String,
    /// PEM certificates to trust for the discount servers (the keys directory's CA).
    pub trust_roots_pem: Vec<u8>,
    /// The time all of one request's discount calls share.
    pub call_timeout: Duration,
    /// When a replica's breaker opens, and for how long at least.
    pub breaker: BreakerSettings,
    /// How often host names in `address` are resolved again.
    pub resolve_interval: Duration,
    /// How often each replica's health is checked.
    pub health_interval: Duration,
    /// After how long without an answer a call is also sent to another replica (none:
    /// never). Only with several replicas.
    pub hedge_delay: Option<Duration>,
    /// The client certificate and key to present, for discount servers that require
    /// mutual TLS (none: present nothing).
    pub client_identity: Option<PemIdentity>,
}

impl DiscountSettings {
    /// Settings with the default breaker, a 5 s resolve interval, health checks every
    /// second, and hedging after 50 ms.
    pub fn new(
        address: impl Into<String>,
        trust_roots_pem: Vec<u8>,
        call_timeout: Duration,
    ) -> Self {
        Self {
            address: address.into(),
            trust_roots_pem,
            call_timeout,
            breaker: BreakerSettings::default(),
            resolve_interval: Duration::from_secs(5),
            health_interval: Duration::from_secs(1),
            hedge_delay: Some(Duration::from_millis(50)),
            client_identity: None,
        }
    }
}

/// A discount as the catalog serves it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Discount {
    /// The fraction taken off, as the discount service sent it (0.1 for 10%).
    pub pct: f32,
    /// The discounted price.
    pub value_in_cents: i32,
}

/// Why the discount service's address or TLS settings were refused at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// An entry is empty, not `host:port`, or not `https`.
    #[error("the discount service address {address:?} is not usable: {reason}")]
    Address {
        /// As given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why one discount call gave no usable answer. Every variant means "serve the full price".
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer before the request's deadline (ours, or tonic's `Cancelled` /
    /// `DeadlineExceeded`, which is how tonic reports an expired `grpc-timeout`). `local`:
    /// the catalog itself was overloaded at the time, so the replica is not to blame.
    #[error("no answer in time{}", if *.local { " (the catalog was overloaded)" } else { "" })]
    Timeout {
        /// Whether the catalog was overloaded when the deadline passed.
        local: bool,
    },
    /// No replica is accepting calls: every breaker is open, every health check failing,
    /// or no address resolved.
    #[error("no discount replica is accepting calls (circuit open or unhealthy)")]
    CircuitOpen,
    /// No connection: refused, reset, TLS handshake or certificate failure.
    #[error("discount service unavailable: {0}")]
    Unavailable(String),
    /// The service said it is overloaded (`RESOURCE_EXHAUSTED`).
    #[error("discount service overloaded: {0}")]
    Overloaded(String),
    /// The service answered with another error status.
    #[error("discount service answered {code:?}: {message}")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// The service answered OK with something we cannot believe.
    #[error("implausible answer from the discount service: {0}")]
    BadAnswer(&'static str),
    /// Too little of the deadline was left to start the call.
    #[error("too little time left to call")]
    NoBudget,
}

impl CallError {
    /// The `outcome` label of `catalog_discount_calls_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Timeout { local: true } => "timeout_local",
            Self::Timeout { local: false } => "timeout_remote",
            Self::CircuitOpen => "breaker_open",
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded(_) => "overloaded",
            Self::Status { .. } | Self::BadAnswer(_) => "error",
            Self::NoBudget => "no_budget",
        }
    }

    /// Whether this failure counts against the replica's breaker. The replica is to blame
    /// for what happened on its side of the wire; not for a timeout the catalog's own
    /// overload caused, nor for shedding load when overloaded (which is what it should do).
    pub fn blames_replica(&self) -> bool {
        match self {
            Self::Timeout { local } => !local,
            Self::Unavailable(_) | Self::Status { .. } | Self::BadAnswer(_) => true,
            Self::Overloaded(_) | Self::CircuitOpen | Self::NoBudget => false,
        }
    }
}

/// What the client has counted, for metrics.
#[derive(Debug, Default)]
struct Counters {
    retries: AtomicU64,
    hedges: AtomicU64,
    hedges_won: AtomicU64,
    budget_exhausted: AtomicU64,
    breaker_openings: AtomicU64,
}

/// A snapshot of the client's state and counts, for metrics and readiness.
#[derive(Debug, Clone, Default)]
pub struct ClientStats {
    /// Each replica's breaker state.
    pub breakers: Vec<BreakerState>,
    /// Each replica's health.
    pub health: Vec<Health>,
    /// Replicas accepting calls now.
    pub accepting: usize,
    /// Calls tried again on another replica after `UNAVAILABLE`.
    pub retries: u64,
    /// Calls also sent to a second replica after the hedge delay.
    pub hedges: u64,
    /// Hedges whose answer came first.
    pub hedges_won: u64,
    /// Retries and hedges not sent because the budget was spent.
    pub budget_exhausted: u64,
    /// Times a breaker opened.
    pub breaker_openings: u64,
    /// The catalog runtime's lag.
    pub lag: Duration,
    /// Calls by replica address since start-up: `(address, ok, failed)`.
    pub replica_calls: Vec<(std::net::SocketAddr, u64, u64)>,
}

fn tls_material(trust_roots_pem: &[u8], client_identity: Option<&PemIdentity>) -> TlsMaterial {
    TlsMaterial {
        trust_roots: Certificate::from_pem(trust_roots_pem),
        client_identity: client_identity
            .map(|id| Identity::from_pem(&id.cert_chain_pem, &id.private_key_pem)),
    }
}

/// What the client's calls share, behind one `Arc`.
#[derive(Debug)]
pub(crate) struct Shared {
    load: LocalLoad,
    counters: Counters,
    budget: RetryBudget,
}

/// A cheap-to-clone handle on the discount service, shared by all requests.
#[derive(Debug, Clone)]
pub struct DiscountClient {
    replicas: Arc<ReplicaSet>,
    call_timeout: Duration,
    hedge_delay: Option<Duration>,
    shared: Arc<Shared>,
}

impl DiscountClient {
    /// Checks the settings, starts measuring the catalog's own load, resolves the replicas
    /// once (a name that does not resolve yet is logged and tried again later), starts their
    /// health checks and re-resolving in the background. No customer call has been made;
    /// the first call or health check to each replica connects.
    pub async fn start(settings: &DiscountSettings) -> Result<Self, SettingsError> {
        let targets = replicas::parse_targets(&settings.address)?;
        let load = LocalLoad::start();
        // A down or unreachable replica must cost at most one call timeout.
        let patience = settings.call_timeout.max(Duration::from_millis(100));
        let channel = ChannelSettings {
            tls: tls_material(&settings.trust_roots_pem, settings.client_identity.as_ref()),
            connect_timeout: patience,
            breaker: settings.breaker,
            health: HealthSettings {
                interval: settings.health_interval,
                timeout: patience,
            },
            load: load.clone(),
        };
        let replicas = ReplicaSet::resolve(targets, channel).await;
        replicas::spawn_refresh(&replicas, settings.resolve_interval);
        Ok(Self {
            replicas,
            call_timeout: settings.call_timeout,
            hedge_delay: settings.hedge_delay.filter(|delay| !delay.is_zero()),
            shared: Arc::new(Shared {
                load,
                counters: Counters::default(),
                budget: RetryBudget::default(),
            }),
        })
    }

    /// Trusts `trust_roots_pem` and presents `client_identity` on every new connection
    /// from now on: each replica gets a new channel; calls in flight finish on the old one.
    pub fn replace_tls(
        &self,
        trust_roots_pem: &[u8],
        client_identity: Option<&PemIdentity>,
    ) -> Result<(), tonic::transport::Error> {
        self.replicas
            .replace_tls(tls_material(trust_roots_pem, client_identity))
    }

    /// Whether the catalog is overloaded (shared with admission control).
    pub fn local_load(&self) -> &LocalLoad {
        &self.shared.load
    }

    /// The state and counts now, for metrics and readiness.
    pub fn stats(&self) -> ClientStats {
        let replicas = self.replicas.replicas();
        let counters = &self.shared.counters;
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientStats {
            breakers: replicas.iter().map(|r| r.breaker.state()).collect(),
            health: replicas.iter().map(|r| r.health.get()).collect(),
            accepting: replicas.iter().filter(|r| r.accepts_calls()).count(),
            retries: count(&counters.retries),
            hedges: count(&counters.hedges),
            hedges_won: count(&counters.hedges_won),
            budget_exhausted: count(&counters.budget_exhausted),
            breaker_openings: count(&counters.breaker_openings),
            lag: self.shared.load.lag(),
            replica_calls: self.replicas.tallies(),
        }
    }

    /// Whether any replica accepts calls now.
    pub fn any_replica_accepting(&self) -> bool {
        self.replicas.accepting() > 0
    }

    /// The replicas as now resolved, for logs and tests.
    pub fn replica_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.replicas
            .replicas()
            .iter()
            .map(|replica| replica.addr)
            .collect()
    }

    /// Asks for the discount on each of `products` for `customer`, concurrently, and returns
    /// one result per product, in the same order. Returns within about the call timeout,
    /// which starts now: call this once the request has been admitted.
    ///
    /// `request_id` goes to discount as `x-request-id` metadata, for its logs.
    pub async fn discounts(
        &self,
        customer: &Customer,
        products: &[Product],
        request_id: &str,
    ) -> Vec<Result<Option<Discount>, CallError>> {
        let deadline = Instant::now() + self.call_timeout;
        // Parsed once; clones share the bytes. Ids are checked ASCII, so this always parses.
        let request_id = MetadataValue::try_from(request_id).ok();
        let request_id = request_id.as_ref();
        // Indices rather than `&Product` items: a closure taking a reference makes the
        // future lose `Send` (rust-lang/rust#64552), and hyper needs it `Send`.
        stream::iter(0..products.len())
            .map(|i| self.discount(customer, &products[i], request_id, deadline))
            .buffered(MAX_CALLS_IN_FLIGHT)
            .collect()
            .await
    }

    /// One product's discount: too late to start, no replica accepting calls, or the calls
    /// of [`Self::call`].
    #[tracing::instrument(
        name = "discount_call",
        level = "debug",
        skip_all,
        fields(customer_id = customer.id, product_id = product.id)
    )]
    async fn discount(
        &self,
        customer: &Customer,
        product: &Product,
        request_id: Option<&MetadataValue<Ascii>>,
        deadline: Instant,
    ) -> Result<Option<Discount>, CallError> {
        if deadline.saturating_duration_since(Instant::now()) < MIN_CALL_BUDGET {
            return Err(CallError::NoBudget);
        }
        let first = self.replicas.pick(None).ok_or(CallError::CircuitOpen)?;
        self.shared.budget.earn();
        // Boxed: the hedging and retrying below make a large future, and `discounts` keeps
        // one of these per product in flight; a call that fails at once (no replica) should
        // not pay for moving it.
        Box::pin(self.call(first, customer, product, request_id, deadline)).await
    }

    /// The calls of one product, from the first attempt on `first`: a hedge on a second
    /// replica if the first is slow, a retry on a second one if the first refused the call.
    async fn call(
        &self,
        first: Arc<Replica>,
        customer: &Customer,
        product: &Product,
        request_id: Option<&MetadataValue<Ascii>>,
        deadline: Instant,
    ) -> CallResult {
        let attempt = |replica: Arc<Replica>, kind: AttemptKind| {
            Attempt {
                replica,
                kind,
                message: message(customer, product),
                request_id: request_id.cloned(),
                asked: (product.id, product.price_in_cents),
                deadline,
                shared: self.shared.clone(),
            }
            .run()
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
        avoid: std::net::SocketAddr,
        deadline: Instant,
        extra: Extra,
    ) -> Option<Arc<Replica>> {
        if deadline.saturating_duration_since(Instant::now()) < MIN_CALL_BUDGET
            || (extra == Extra::Hedge && self.shared.load.is_overloaded())
        {
            return None;
        }
        let replica = self.replicas.pick(Some(avoid))?;
        let counters = &self.shared.counters;
        if !self.shared.budget.try_spend() {
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
        mut primary: std::pin::Pin<Box<impl Future<Output = CallResult> + Send + 'static>>,
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
                    self.shared.counters.hedges_won.fetch_add(1, Ordering::Relaxed);
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
