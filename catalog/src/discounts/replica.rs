//! One discount replica: its address, its lazily connected TLS channel (verified against
//! the **name** from the address list, not the resolved IP), its circuit breaker, what its
//! health checks found, and its call counts.
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
use std::time::Duration;

use ecommerce::keys::PemIdentity;
use ecommerce::pb::discount_client::DiscountClient;
use tokio::sync::Notify;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::breaker::{BreakerSettings, CircuitBreaker};
use super::health::HealthCell;

/// A discount server at one address.
#[derive(Debug)]
pub struct Replica {
    /// Where it is.
    pub addr: SocketAddr,
    /// The name its certificate is checked against.
    host: String,
    /// How to connect to it, kept to start afresh; replaced when the TLS files change.
    endpoint: RwLock<Endpoint>,
    /// Its channel; clones share the connection. Replaced when the connection is presumed
    /// dead ([`Self::reconnect`]).
    channel: RwLock<Channel>,
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
    /// A replica at `addr`, named `host`, connecting with `endpoint` (lazily), counting its
    /// calls in `tally`.
    pub(crate) fn new(
        host: &str,
        addr: SocketAddr,
        endpoint: Endpoint,
        breaker: BreakerSettings,
        tally: Arc<ReplicaTally>,
    ) -> Self {
        Self {
            addr,
            host: host.to_owned(),
            channel: RwLock::new(endpoint.connect_lazy()),
            endpoint: RwLock::new(endpoint),
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
    pub fn grpc(&self) -> DiscountClient<Channel> {
        DiscountClient::new(self.channel())
    }

    /// Its current channel.
    pub fn channel(&self) -> Channel {
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
        let channel = self
            .endpoint
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .connect_lazy();
        *self
            .channel
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = channel;
    }

    /// Connects with `endpoint` from now on. Calls in flight finish on the channel they
    /// hold, which closes once the last of them is done: nothing fails for the change.
    pub(crate) fn use_endpoint(&self, endpoint: Endpoint) {
        *self
            .endpoint
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = endpoint;
        self.reconnect();
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

/// The TLS files a channel is made with, as tonic takes them; checked when made, so that
/// every channel made with them can be.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The CA certificates that discount servers must chain to.
    trust_roots: Certificate,
    /// The client certificate to present (mutual TLS), if any.
    client_identity: Option<Identity>,
}

impl TlsMaterial {
    /// The material for `trust_roots_pem`, presenting `client_identity` if given, once
    /// tonic has made a channel's TLS with it (it reads the certificates and checks the
    /// key then: the same check every replica's channel will meet).
    pub fn new(
        trust_roots_pem: &[u8],
        client_identity: Option<&PemIdentity>,
    ) -> Result<Self, tonic::transport::Error> {
        let material = Self {
            trust_roots: Certificate::from_pem(trust_roots_pem),
            client_identity: client_identity
                .map(|id| Identity::from_pem(&id.cert_chain_pem, &id.private_key_pem)),
        };
        let anywhere = SocketAddr::from(([127, 0, 0, 1], 443));
        endpoint(
            material.clone(),
            "localhost",
            anywhere,
            Duration::from_secs(1),
        )?;
        Ok(material)
    }
}

/// How to connect to the replica at `addr`, whose certificate must name `host`.
pub(crate) fn endpoint(
    tls: TlsMaterial,
    host: &str,
    addr: SocketAddr,
    connect_timeout: Duration,
) -> Result<Endpoint, tonic::transport::Error> {
    let mut config = ClientTlsConfig::new()
        .ca_certificate(tls.trust_roots)
        .domain_name(host.to_owned());
    if let Some(identity) = tls.client_identity {
        config = config.identity(identity);
    }
    let endpoint = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(config)?
        .connect_timeout(connect_timeout)
        // Calls are a few small frames: waiting to fill a packet only adds latency.
        .tcp_nodelay(true)
        // Keepalive that standard servers accept: see the module docs.
        .http2_keep_alive_interval(Duration::from_secs(300))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(false)
        .tcp_keepalive(Some(Duration::from_secs(30)))
        .tcp_keepalive_interval(Some(Duration::from_secs(5)))
        .tcp_keepalive_retries(Some(3));
    Ok(endpoint)
}
