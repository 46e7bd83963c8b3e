//! One discount replica: its address, its lazily connected TLS channel
//! ([`super::connection`], verified against the **name** from the address list, not the
//! resolved IP), its circuit breaker, what its health checks found, and its call counts.
//!
//! **Keepalive that standard servers accept.** grpc-go and grpcio servers accept an HTTP/2
//! ping without data at most every 5 minutes, and none on a connection without calls; more
//! and they answer `GOAWAY ENHANCE_YOUR_CALM "too_many_pings"` (grpc.io's keepalive guide).
//! So the catalog's HTTP/2 keepalive interval is those 5 minutes, never while idle
//! (`keep_alive_while_idle(false)`): hyper pings when a connection has been silent that long,
//! which calls and health checks every second or 30 s never let happen. Idle connections are
//! watched by the kernel's TCP keepalive instead, which no gRPC server polices, and dead
//! connections under traffic are found within a second or so by the deadlines of calls and
//! health checks. (With a 20 s interval, hyper also pinged at the start of each 30 s poll
//! of a server without the health service: accepted by grpcio, but pings all the same.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ecommerce::pb::discount_client::DiscountClient;
use http::Uri;
use tokio::sync::Notify;
use tonic_health::pb::health_client::HealthClient;

use super::breaker::{BreakerSettings, CircuitBreaker};
use super::connection::{Connector, ReplicaChannel, TlsMaterial};
use super::health::HealthCell;

/// A discount server at one address.
#[derive(Debug)]
pub struct Replica {
    /// Where it is.
    pub addr: SocketAddr,
    /// The name its certificate is checked against.
    host: String,
    /// Where its calls go (`https://ADDR`).
    origin: Uri,
    /// How to connect to it, kept to start afresh; replaced when the TLS files change.
    connector: RwLock<Connector>,
    /// Its channel; clones share the connection. Replaced when the connection is presumed
    /// dead ([`Self::reconnect`]).
    channel: RwLock<ReplicaChannel>,
    /// Whether its recent calls failed.
    pub breaker: CircuitBreaker,
    /// What its health checks found.
    pub health: HealthCell,
    /// Wakes its health checks early (when its breaker opens).
    health_wake: Arc<Notify>,
    /// Its calls' outcomes, kept by address across re-resolutions (for the metrics).
    pub tally: Arc<ReplicaTally>,
}

/// Calls made to one address, by outcome. Kept by the [`ReplicaSet`] per address, so that
/// a replica that leaves and comes back continues its counts (counters never go down).
#[derive(Debug, Default)]
pub struct ReplicaTally {
    /// Calls it answered with a discount or none.
    pub ok: AtomicU64,
    /// Calls that failed: errors, timeouts, bad answers.
    pub failed: AtomicU64,
}

impl ReplicaTally {
    /// Counts one call's outcome.
    pub fn record(&self, ok: bool) {
        let counter = if ok { &self.ok } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl Replica {
    /// A replica at `addr`, named `host`, connecting with `connector` (lazily), counting its
    /// calls in `tally`.
    pub(crate) fn new(
        host: &str,
        addr: SocketAddr,
        connector: Connector,
        breaker: BreakerSettings,
        tally: Arc<ReplicaTally>,
    ) -> Self {
        Self {
            addr,
            host: host.to_owned(),
            origin: connector.origin().clone(),
            channel: RwLock::new(ReplicaChannel::lazy(connector.clone())),
            connector: RwLock::new(connector),
            breaker: CircuitBreaker::new(format!("{host} ({addr})"), breaker),
            health: HealthCell::default(),
            health_wake: Arc::new(Notify::new()),
            tally,
        }
    }

    /// The name its certificate is checked against.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A client on its current channel.
    pub(crate) fn grpc(&self) -> DiscountClient<ReplicaChannel> {
        DiscountClient::with_origin(self.channel(), self.origin.clone())
    }

    /// A health client on its current channel.
    pub(crate) fn health_client(&self) -> HealthClient<ReplicaChannel> {
        HealthClient::with_origin(self.channel(), self.origin.clone())
    }

    /// Its current channel.
    fn channel(&self) -> ReplicaChannel {
        self.channel
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether a customer call may go to it now: breaker closed, and health not known bad.
    pub fn accepts_calls(&self) -> bool {
        self.health.get().admits_calls() && self.breaker.allows_call()
    }

    /// Replaces the channel with a new, lazily connected one. A host that vanished without a
    /// reset leaves a connection that looks alive and never answers; calls already on it end
    /// at their deadline, later ones connect afresh.
    pub fn reconnect(&self) {
        let connector = self
            .connector
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let channel = ReplicaChannel::lazy(connector);
        *self
            .channel
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = channel;
    }

    /// Connects with `tls` from now on. Calls in flight finish on the channel they hold,
    /// which closes once the last of them is done: nothing fails for the change.
    pub(crate) fn use_tls(&self, tls: &TlsMaterial) {
        {
            let mut connector = self
                .connector
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *connector = connector.with_tls(tls);
        }
        self.reconnect();
    }

    /// Whether its new connections use `tls`.
    #[cfg(test)]
    pub(crate) fn uses_tls(&self, tls: &TlsMaterial) -> bool {
        self.connector
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .uses(tls)
    }

    /// Reports that its breaker just opened: a fresh connection for the health checks, and
    /// one now rather than at the next interval.
    pub fn breaker_opened(&self) {
        self.reconnect();
        self.health_wake.notify_one();
    }

    /// `host (addr)`, for logs.
    pub fn name(&self) -> String {
        format!("{} ({})", self.host, self.addr)
    }

    pub(crate) fn health_wake(&self) -> Arc<Notify> {
        self.health_wake.clone()
    }
}
