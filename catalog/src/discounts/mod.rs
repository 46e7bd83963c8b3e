//! The catalog's side of the discount service.
//!
//! The old Go catalog opened a new TLS connection per request, had no deadline (it hung as
//! long as discount did) and dropped products whose call failed. Here:
//!
//! - the replicas of discount ([`replica_set`]) each get one TLS channel ([`replica`],
//!   [`connection`]), made at start-up and shared by every request. Channels connect
//!   lazily, so the catalog starts and serves while discount is still down, and reconnect
//!   on demand when discount comes back;
//! - a request's calls (one per product) run concurrently, at most
//!   [`MAX_CALLS_IN_FLIGHT`] at a time, all under **one** deadline taken when the request
//!   is admitted ([`crate::overload::admission`]). A `/products` request therefore never
//!   waits much longer than the call timeout once admitted, whatever the number of
//!   products. The server sees the time left as `grpc-timeout` (whole milliseconds);
//! - each replica has a circuit breaker ([`breaker`]) and out-of-band health checks
//!   ([`health_check`]). A call that finds no replica accepting calls fails at once, instead of
//!   waiting on a service known to be down, and no customer call is ever used as a probe;
//! - **failures are attributed to whoever caused them** ([`CallError::blames_replica`]):
//!   connection failures, error statuses, implausible answers and timeouts the replica
//!   caused count against its breaker; a timeout while the catalog itself is overloaded
//!   ([`crate::overload::LocalLoad`]) and `RESOURCE_EXHAUSTED` (the replica shedding load,
//!   as it should) do not;
//! - with several replicas, a call not answered after the hedge delay is also sent to
//!   another replica, and the first answer wins; a call refused by one replica is tried
//!   once more on another ([`hedging`]). Both come out of one budget of about 10% extra
//!   calls ([`budget`]);
//! - every call's result is kept apart: a failed call costs its product its discount, and
//!   nothing else. The caller decides what to serve ([`crate::pricing`] serves the full
//!   price).
//!
//! The modules form one chain, each using only those before it: [`outcome`] (what a call
//! comes to), [`breaker`], [`health`] and [`budget`] (state), [`connection`], [`replica`],
//! [`health_check`],
//! [`replica_set`], [`context`] (what calls share), [`attempt`] (one call to one replica),
//! [`hedging`] (one product's calls), and this module's [`Discounts`] (a request's calls).

mod attempt;
mod breaker;
mod budget;
mod connection;
mod context;
mod health;
mod health_check;
mod hedging;
mod outcome;
mod replica;
mod replica_set;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ecommerce::keys::PemIdentity;
use futures_util::{StreamExt, stream};
use http::HeaderValue;
use tokio::time::Instant;

pub use self::breaker::{BreakerSettings, BreakerState};
pub use self::connection::{TlsMaterial, TlsMaterialError};
pub use self::health::{Health, HealthSettings};
pub use self::hedging::MIN_CALL_BUDGET;
pub use self::outcome::{CallError, CallResult, Discount, DiscountStatus};
pub use self::replica_set::SettingsError;

use self::context::CallContext;
use self::hedging::HedgedCaller;
use self::replica_set::{ChannelSettings, ReplicaSet};
use crate::data::{Customer, Product};
use crate::overload::LocalLoad;

/// How many discount calls one `/products` request may have in flight at once. It keeps a
/// request for a large catalog from taking every HTTP/2 stream of the shared connections.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

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
    pub replica_calls: Vec<(SocketAddr, u64, u64)>,
}

/// A cheap-to-clone handle on the discount service, shared by all requests.
#[derive(Debug, Clone)]
pub struct Discounts {
    caller: Arc<HedgedCaller>,
    call_timeout: Duration,
}

impl Discounts {
    /// Checks the settings, starts measuring the catalog's own load, resolves the replicas
    /// once (a name that does not resolve yet is logged and tried again later), starts their
    /// health checks and re-resolving in the background. No customer call has been made;
    /// the first call or health check to each replica connects.
    pub async fn start(settings: &DiscountSettings) -> Result<Self, SettingsError> {
        let targets = replica_set::parse_targets(&settings.address)?;
        let load = LocalLoad::start();
        // A down or unreachable replica must cost at most one call timeout.
        let patience = settings.call_timeout.max(Duration::from_millis(100));
        let tls = TlsMaterial::new(&settings.trust_roots_pem, settings.client_identity.as_ref())
            .map_err(SettingsError::Tls)?;
        let channel = ChannelSettings {
            tls,
            connect_timeout: patience,
            breaker: settings.breaker,
            health: HealthSettings {
                interval: settings.health_interval,
                timeout: patience,
            },
            load: load.clone(),
        };
        let replicas = ReplicaSet::resolve(targets, channel).await;
        replica_set::spawn_refresh(&replicas, settings.resolve_interval);
        Ok(Self {
            caller: Arc::new(HedgedCaller {
                replicas,
                hedge_delay: settings.hedge_delay.filter(|delay| !delay.is_zero()),
                context: Arc::new(CallContext::new(load)),
            }),
            call_timeout: settings.call_timeout,
        })
    }

    /// Uses `tls` (the CAs to trust, the client certificate to present) for every new
    /// connection from now on: each replica gets a new channel; calls in flight finish on
    /// the old one.
    pub fn replace_tls(&self, tls: TlsMaterial) {
        self.caller.replicas.replace_tls(tls);
    }

    /// Whether the catalog is overloaded (shared with admission control).
    pub fn local_load(&self) -> &LocalLoad {
        &self.caller.context.load
    }

    /// The state and counts now, for metrics and readiness.
    pub fn stats(&self) -> ClientStats {
        let replicas = self.caller.replicas.replicas();
        let counters = &self.caller.context.counters;
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
            lag: self.caller.context.load.lag(),
            replica_calls: self.caller.replicas.tallies(),
        }
    }

    /// Whether any replica accepts calls now.
    pub fn any_replica_accepting(&self) -> bool {
        self.caller.replicas.accepting() > 0
    }

    /// The replicas as now resolved, for logs and tests.
    pub fn replica_addresses(&self) -> Vec<SocketAddr> {
        self.caller
            .replicas
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
    pub async fn price_all(
        &self,
        customer: &Customer,
        products: &[Product],
        request_id: &str,
    ) -> Vec<CallResult> {
        let deadline = Instant::now() + self.call_timeout;
        // Parsed once; clones share the bytes. Ids are checked ASCII, so this always parses.
        // A new value on every request: sent "never indexed" (see `attempt::grpc_timeout`).
        let request_id = HeaderValue::from_str(request_id).ok().map(|mut id| {
            id.set_sensitive(true);
            id
        });
        let request_id = request_id.as_ref();
        // Indices rather than `&Product` items: a closure taking a reference makes the
        // future lose `Send` (rust-lang/rust#64552), and hyper needs it `Send`.
        stream::iter(0..products.len())
            .map(|i| {
                self.caller
                    .price_one(customer, &products[i], request_id, deadline)
            })
            .buffered(MAX_CALLS_IN_FLIGHT)
            .collect()
            .await
    }
}
