//! The discount replicas the catalog balances over.
//!
//! `DISCOUNT_SERVICE_HOST` is a comma-separated list of `host:port`. Every address a host
//! name resolves to is a replica; an IP address is one replica. Kubernetes presents the
//! replicas of a headless Service as one name that resolves to several addresses, which come
//! and go: names are resolved again every `resolve_interval`. A name that fails to resolve
//! keeps the replicas it had, since a DNS hiccup is no reason to stop calling healthy
//! servers.
//!
//! Each replica has its own lazily connected TLS channel, verified against the **name** from
//! the list (not the resolved IP), its own [`CircuitBreaker`], and its own health checks
//! ([`super::health_check`]). Calls go round-robin to the replicas whose breaker is closed and
//! whose health checks do not say otherwise. A dead replica's breaker opens after a few
//! failures, or its health check finds it first, and from then on its share of calls goes to
//! the others. tonic's own balancer (`Channel::balance_list`) is not used: it cannot tell a
//! dead replica from a live one until each call fails.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use http::Uri;

use super::breaker::BreakerSettings;
use super::connection::{Connector, ConnectorError, TlsMaterial, TlsMaterialError};
use super::health::HealthSettings;
use super::health_check;
use super::replica::{Replica, ReplicaTally};
use crate::overload::LocalLoad;

/// One entry of the address list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as written, without IPv6 brackets: what the certificate must name.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Target {
    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// Why the discount client's settings were refused at start-up.
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
    /// The trusted CAs and client certificate cannot make a TLS client.
    #[error("the gRPC client refused the TLS files")]
    Tls(#[source] TlsMaterialError),
}

/// Parses the comma-separated `host:port` list (`https://host:port` entries too).
pub fn parse_targets(list: &str) -> Result<Vec<Target>, SettingsError> {
    let refuse = |reason: String| SettingsError::Address {
        address: list.to_owned(),
        reason,
    };
    let mut targets = Vec::new();
    for entry in list.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(refuse("it has an empty entry".into()));
        }
        let uri = match entry.split_once("://") {
            Some(("https", _)) => entry.to_owned(),
            Some(_) => {
                return Err(refuse(
                    "the discount service speaks TLS only: use https:// or host:port".into(),
                ));
            }
            None => format!("https://{entry}"),
        };
        let uri: Uri = uri.parse().map_err(|e| refuse(format!("{entry:?}: {e}")))?;
        let host = uri
            .host()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .filter(|host| !host.is_empty())
            .ok_or_else(|| refuse(format!("{entry:?} has no host name")))?;
        // Required, not defaulted to 443: the discount service's port is 11443, and a
        // missing port is more likely a mistake than a wish for 443.
        let port = uri
            .port_u16()
            .ok_or_else(|| refuse(format!("{entry:?} needs a valid port, as in host:port")))?;
        if uri.path() != "/" {
            return Err(refuse(format!("{entry:?} has a path; give only host:port")));
        }
        targets.push(Target {
            host: host.to_owned(),
            port,
        });
    }
    Ok(targets)
}

/// What every replica's channel is made with.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// The CA certificates that discount servers must chain to, and the client
    /// certificate to present (mutual TLS), if any.
    pub tls: TlsMaterial,
    /// The longest wait for a TCP connection and TLS handshake.
    pub connect_timeout: Duration,
    /// Settings of each replica's breaker.
    pub breaker: BreakerSettings,
    /// How each replica's health is checked.
    pub health: HealthSettings,
    /// Whether the catalog itself is overloaded (a health check that timed out then is
    /// ignored).
    pub load: LocalLoad,
}

/// How a host name becomes addresses: the system resolver, or a fake in tests.
type Lookup = dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>
    + Send
    + Sync;

fn system_lookup(
    host: String,
    port: u16,
) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>> {
    Box::pin(async move {
        Ok(tokio::net::lookup_host((host.as_str(), port))
            .await?
            .collect())
    })
}

/// The current replicas, and how to find them again.
pub struct ReplicaSet {
    targets: Vec<Target>,
    channel: ChannelSettings,
    /// The TLS files new channels use; replaced by [`Self::replace_tls`].
    tls: RwLock<TlsMaterial>,
    lookup: Box<Lookup>,
    /// Swapped whole on each resolution; calls take a cheap snapshot.
    current: RwLock<Arc<[Arc<Replica>]>>,
    /// Round-robin position.
    next: AtomicUsize,
    /// Every address's call counts, since start-up.
    tallies: Mutex<BTreeMap<SocketAddr, Arc<ReplicaTally>>>,
}

impl ReplicaSet {
    /// Resolves `targets` once and returns the set. A target that does not resolve yet is
    /// logged and tried again by [`spawn_refresh`]: the catalog starts anyway.
    pub async fn resolve(targets: Vec<Target>, channel: ChannelSettings) -> Arc<Self> {
        Self::resolve_with(targets, channel, Box::new(system_lookup)).await
    }

    async fn resolve_with(
        targets: Vec<Target>,
        channel: ChannelSettings,
        lookup: Box<Lookup>,
    ) -> Arc<Self> {
        let set = Arc::new(Self {
            targets,
            tls: RwLock::new(channel.tls.clone()),
            channel,
            lookup,
            current: RwLock::new(Arc::from(Vec::new())),
            next: AtomicUsize::new(0),
            tallies: Mutex::default(),
        });
        set.refresh().await;
        set
    }

    /// A snapshot of the replicas.
    pub fn replicas(&self) -> Arc<[Arc<Replica>]> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The next replica, round-robin, that accepts calls ([`Replica::accepts_calls`]),
    /// skipping `avoid`. `None` when no replica accepts calls (breakers open, health checks
    /// failing, or no replica resolved).
    pub fn pick(&self, avoid: Option<SocketAddr>) -> Option<Arc<Replica>> {
        let replicas = self.replicas();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..replicas.len())
            .map(|i| &replicas[(start + i) % replicas.len()])
            .filter(|replica| Some(replica.addr) != avoid)
            .find(|replica| replica.accepts_calls())
            .cloned()
    }

    /// How many replicas accept calls now.
    pub fn accepting(&self) -> usize {
        self.replicas()
            .iter()
            .filter(|replica| replica.accepts_calls())
            .count()
    }

    /// Resolves every target again and swaps in the new set, keeping the channel and
    /// breaker of every replica that is still there.
    async fn refresh(&self) {
        let old = self.replicas();
        let mut wanted: Vec<(&Target, SocketAddr)> = Vec::new();
        let mut seen = HashSet::new();
        for target in &self.targets {
            let addrs: Vec<SocketAddr> = match target.ip() {
                Some(ip) => vec![SocketAddr::new(ip, target.port)],
                None => match (self.lookup)(target.host.clone(), target.port).await {
                    Ok(addrs) => addrs,
                    Err(error) => {
                        tracing::warn!(host = %target.host, %error, "cannot resolve the discount service; keeping its previous addresses");
                        old.iter()
                            .filter(|replica| replica.host() == target.host)
                            .map(|replica| replica.addr)
                            .collect()
                    }
                },
            };
            wanted.extend(
                addrs
                    .into_iter()
                    .filter(|addr| seen.insert(*addr))
                    .map(|addr| (target, addr)),
            );
        }
        // New replicas are made and the set published under the TLS files' read lock: a
        // change of files ([`Self::replace_tls`]) waits, then reaches every replica. Made
        // before the lookups ended, a new replica could miss a change that happened
        // meanwhile and keep the old files.
        let tls = self
            .tls
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut fresh: Vec<Arc<Replica>> = Vec::new();
        for (target, addr) in wanted {
            let existing = old
                .iter()
                .find(|replica| replica.addr == addr && replica.host() == target.host);
            match existing {
                Some(replica) => fresh.push(replica.clone()),
                None => match self.replica(&tls, target, addr) {
                    Ok(replica) => {
                        tracing::info!(%addr, host = %target.host, "discount replica added");
                        let replica = Arc::new(replica);
                        health_check::spawn(
                            Arc::downgrade(&replica),
                            self.channel.health,
                            self.channel.load.clone(),
                        );
                        fresh.push(replica);
                    }
                    Err(error) => {
                        tracing::error!(%addr, host = %target.host, error = %ecommerce::report::Chain(&error), "cannot set up a channel to this discount replica");
                    }
                },
            }
        }
        for gone in old.iter().filter(|replica| !seen.contains(&replica.addr)) {
            tracing::info!(addr = %gone.addr, host = %gone.host(), "discount replica removed");
        }
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::from(fresh);
    }

    fn replica(
        &self,
        tls: &TlsMaterial,
        target: &Target,
        addr: SocketAddr,
    ) -> Result<Replica, ConnectorError> {
        let connector = Connector::new(tls, &target.host, addr, self.channel.connect_timeout)?;
        Ok(Replica::new(
            &target.host,
            addr,
            connector,
            self.channel.breaker,
            self.tally(addr),
        ))
    }

    /// Uses `tls` for every new connection: each replica gets a new channel, and calls in
    /// flight finish on the old one, which closes after them.
    pub fn replace_tls(&self, tls: TlsMaterial) {
        // Held throughout: a replica added meanwhile waits for the new material.
        let mut current = self
            .tls
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for replica in self.replicas().iter() {
            replica.use_tls(&tls);
        }
        *current = tls;
    }

    fn tally(&self, addr: SocketAddr) -> Arc<ReplicaTally> {
        self.tallies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(addr)
            .or_default()
            .clone()
    }

    /// Calls by address, since start-up: `(address, ok, failed)`, in address order.
    pub fn tallies(&self) -> Vec<(SocketAddr, u64, u64)> {
        self.tallies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(addr, tally)| {
                let ok = tally.ok.load(Ordering::Relaxed);
                (*addr, ok, tally.failed.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// Whether any target is a name (and so worth resolving again).
    fn has_names(&self) -> bool {
        self.targets.iter().any(|target| target.ip().is_none())
    }
}

impl std::fmt::Debug for ReplicaSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaSet")
            .field("targets", &self.targets)
            .field("replicas", &self.replicas())
            .finish_non_exhaustive()
    }
}

/// Resolves the names of `set` again every `every`, until the set is dropped.
pub fn spawn_refresh(set: &Arc<ReplicaSet>, every: Duration) {
    if !set.has_names() {
        return;
    }
    let set: Weak<ReplicaSet> = Arc::downgrade(set);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; the set was just resolved
        loop {
            ticks.tick().await;
            let Some(set) = set.upgrade() else { break };
            set.refresh().await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::breaker::BreakerSettings;
    use super::super::health::HealthSettings;
    use super::*;

    #[test]
    fn the_list_takes_host_port_and_https_entries() {
        let targets =
            parse_targets("localhost:11443, https://discount:1 ,[::1]:7,10.0.0.1:8").unwrap();
        let pairs: Vec<_> = targets.iter().map(|t| (t.host.as_str(), t.port)).collect();
        assert_eq!(
            pairs,
            [
                ("localhost", 11443),
                ("discount", 1),
                ("::1", 7),
                ("10.0.0.1", 8)
            ]
        );
    }

    /// A resolver whose answer the test sets: addresses, or an error.
    #[derive(Clone, Default)]
    struct FakeDns(Arc<Mutex<Option<Vec<SocketAddr>>>>);

    impl FakeDns {
        fn answer(&self, addrs: Option<&[&str]>) {
            *self.0.lock().unwrap() = addrs.map(|a| a.iter().map(|x| x.parse().unwrap()).collect());
        }

        fn lookup(&self) -> Box<Lookup> {
            let dns = self.clone();
            Box::new(move |_host, _port| {
                let answer = dns.0.lock().unwrap().clone();
                Box::pin(async move { answer.ok_or_else(|| io::Error::other("no such host")) })
            })
        }
    }

    fn addrs(set: &ReplicaSet) -> Vec<String> {
        set.replicas().iter().map(|r| r.addr.to_string()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn names_are_resolved_again_and_replicas_come_and_go_keeping_their_state() {
        ecommerce::install_crypto_provider();
        let dns = FakeDns::default();
        // Loopback addresses where nothing listens: the replicas' health checks really
        // connect, and must never leave this machine.
        dns.answer(Some(&["127.0.0.11:1", "127.0.0.12:1"]));
        let channel = ChannelSettings {
            tls: TlsMaterial::new(b"", None).expect("rustls takes an empty CA list"),
            connect_timeout: Duration::from_millis(100),
            breaker: BreakerSettings {
                failure_threshold: 1,
                cool_down: Duration::from_secs(60),
            },
            health: HealthSettings::default(),
            load: LocalLoad::with_probe(crate::overload::lag::LagProbe::idle()),
        };
        let targets = parse_targets("discount.example:11443").unwrap();
        let set = ReplicaSet::resolve_with(targets, channel, dns.lookup()).await;
        assert_eq!(addrs(&set), ["127.0.0.11:1", "127.0.0.12:1"]);
        // The first replica fails: its breaker opens.
        let first = set.replicas()[0].clone();
        assert!(first.breaker.allows_call());
        assert!(first.breaker.record(false));
        assert!(first.breaker.is_open());

        spawn_refresh(&set, Duration::from_secs(5));
        // A pod goes, another comes; the one that stays keeps its breaker (still open).
        dns.answer(Some(&["127.0.0.11:1", "127.0.0.13:1"]));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(addrs(&set), ["127.0.0.11:1", "127.0.0.13:1"]);
        assert!(
            set.replicas()[0].breaker.is_open(),
            "a replica that stays keeps its state"
        );

        // DNS fails: the replicas stay as they were.
        dns.answer(None);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(addrs(&set), ["127.0.0.11:1", "127.0.0.13:1"]);
    }

    /// A change of TLS files while a re-resolution is under way: the replica that
    /// resolution adds must use the new files, though it was found (its first name
    /// resolved) before the change.
    #[tokio::test]
    async fn a_replica_found_while_the_tls_files_change_gets_the_new_ones() {
        ecommerce::install_crypto_provider();
        let (gate, gated) = tokio::sync::watch::channel(true);
        let lookup: Box<Lookup> = Box::new(move |host, _port| {
            let mut gated = gated.clone();
            Box::pin(async move {
                if host == "slow.example" {
                    let _ = gated.wait_for(|open| *open).await;
                    return Ok(vec![]);
                }
                Ok(vec!["127.0.0.21:1".parse().unwrap()])
            })
        });
        let old = TlsMaterial::new(b"", None).unwrap();
        let channel = ChannelSettings {
            tls: old.clone(),
            connect_timeout: Duration::from_millis(100),
            breaker: BreakerSettings::default(),
            health: HealthSettings::default(),
            load: LocalLoad::with_probe(crate::overload::lag::LagProbe::idle()),
        };
        // Nothing resolves at first: "fast.example" is added below.
        let targets = parse_targets("slow.example:1").unwrap();
        let set = ReplicaSet::resolve_with(targets, channel, lookup).await;
        assert!(set.replicas().is_empty());
        let set = Arc::new(ReplicaSet {
            targets: parse_targets("fast.example:1,slow.example:1").unwrap(),
            ..Arc::into_inner(set).unwrap()
        });

        gate.send_replace(false);
        let refresh = tokio::spawn({
            let set = set.clone();
            async move { set.refresh().await }
        });
        // fast.example has resolved; slow.example's lookup waits. The files change now.
        while gate.receiver_count() < 2 {
            tokio::task::yield_now().await;
        }
        let new = TlsMaterial::new(b"", None).unwrap();
        set.replace_tls(new.clone());
        gate.send_replace(true);
        refresh.await.unwrap();

        let replicas = set.replicas();
        assert_eq!(replicas.len(), 1);
        assert!(
            replicas[0].uses_tls(&new),
            "the replica kept the old TLS files"
        );
        assert!(!replicas[0].uses_tls(&old));
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        for (bad, why) in [
            ("", "empty entry"),
            ("a:1,,b:2", "empty entry"),
            ("http://localhost:11443", "TLS only"),
            ("localhost", "valid port"),
            ("https://localhost", "valid port"),
            ("localhost:notaport", "not usable"),
            ("localhost:1/path", "path"),
        ] {
            let err = parse_targets(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
