//! Replica health checks, out of band: no customer call is ever the probe.
//!
//! Each replica has a task that asks it `grpc.health.v1.Health/Check` for
//! `ecommerce.Discount` every [`HealthSettings::interval`], on the replica's own channel,
//! with a deadline. A replica that answers NOT_SERVING (discount says so from its shutdown
//! signal on), or cannot be reached, or does not answer in time, gets no customer calls until
//! a check finds it SERVING again; and a check that answers closes an open circuit breaker
//! once its cool-down is over ([`super::breaker`]).
//!
//! This is the standard gRPC client-side health checking (gRPC proposal A17), with unary
//! `Check` polls instead of a `Watch` stream, for two reasons found here:
//! - a `Watch` stream is always open, so HTTP/2 keepalive pings go out on a connection that
//!   carries no data, which is exactly what grpcio and grpc-go servers punish with
//!   `GOAWAY ENHANCE_YOUR_CALM "too_many_pings"`; a poll is data, and between polls the
//!   connection is idle and sends no pings at all;
//! - a replica whose host vanished (no reset, no FIN) never ends a `Watch` stream: only a
//!   deadline finds it, and a timed-out check also replaces the channel, so that the next
//!   attempt connects afresh instead of waiting on a dead socket.
//!
//! As A17 says, a server without the health service (`UNIMPLEMENTED`, such as the Python
//! discount of the interop tests) is taken as healthy; it is then asked only every
//! [`NO_HEALTH_SERVICE_INTERVAL`], or at once when its breaker opens. A check that timed out
//! while the catalog itself was overloaded says nothing about the replica and is ignored.

use std::sync::Weak;
use std::time::Duration;

use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use super::health::{Health, HealthSettings};
use super::outcome::error_chain;
use super::replica::Replica;
use crate::overload::LocalLoad;

/// The service name discount reports health for.
pub const SERVICE: &str = "ecommerce.Discount";

/// How often a server without the health service is asked again, while its breaker is closed.
pub const NO_HEALTH_SERVICE_INTERVAL: Duration = Duration::from_secs(30);

/// What one check found.
#[derive(Debug)]
enum Finding {
    Serving,
    NoHealthService,
    NotServing(ServingStatus),
    Unreachable(String),
    TimedOut,
}

/// Checks `replica` until it is dropped (removed from the set).
pub(crate) fn spawn(replica: Weak<Replica>, settings: HealthSettings, load: LocalLoad) {
    tokio::spawn(async move {
        loop {
            let Some(strong) = replica.upgrade() else {
                break;
            };
            let finding = check(&strong, settings.timeout).await;
            let next = apply(&strong, finding, &load, settings.interval);
            let wake = strong.health_wake();
            drop(strong);
            tokio::select! {
                () = tokio::time::sleep(next) => {}
                () = wake.notified() => {}
            }
        }
    });
}

async fn check(replica: &Replica, timeout: Duration) -> Finding {
    let mut client = replica.health_client();
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: SERVICE.to_owned(),
    });
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.check(request)).await {
        Err(_elapsed) => Finding::TimedOut,
        Ok(Ok(response)) => match response.into_inner().status() {
            ServingStatus::Serving => Finding::Serving,
            other => Finding::NotServing(other),
        },
        Ok(Err(status)) => match status.code() {
            Code::Unimplemented | Code::NotFound => Finding::NoHealthService,
            Code::Cancelled | Code::DeadlineExceeded => Finding::TimedOut,
            _ => Finding::Unreachable(error_chain(&status)),
        },
    }
}

/// Records `finding` for `replica`, and returns how long to wait before the next check.
fn apply(replica: &Replica, finding: Finding, load: &LocalLoad, interval: Duration) -> Duration {
    let (health, next) = match finding {
        Finding::Serving => (Health::Serving, interval),
        Finding::NoHealthService => {
            let next = if replica.breaker.is_open() {
                interval
            } else {
                NO_HEALTH_SERVICE_INTERVAL
            };
            (Health::Serving, next)
        }
        Finding::NotServing(status) => {
            log_change(replica, Health::NotServing, &format!("{status:?}"));
            (Health::NotServing, interval)
        }
        Finding::Unreachable(error) => {
            log_change(replica, Health::Unreachable, &error);
            (Health::Unreachable, interval)
        }
        Finding::TimedOut if load.is_overloaded() => {
            // The catalog was too busy to hear the answer: nothing learned.
            return interval;
        }
        Finding::TimedOut => {
            log_change(replica, Health::Unreachable, "no answer in time");
            // The connection may be dead without knowing it (a host that vanished): the
            // next check connects afresh.
            replica.reconnect();
            (Health::Unreachable, interval)
        }
    };
    if health == Health::Serving {
        replica.breaker.health_check_answered();
    }
    let before = replica.health.replace(health);
    if health == Health::Serving && before != Health::Serving && before != Health::Unknown {
        tracing::info!(replica = %replica.name(), "discount replica healthy again");
    }
    next
}

fn log_change(replica: &Replica, health: Health, reason: &str) {
    if replica.health.get() != health {
        tracing::warn!(
            replica = %replica.name(),
            health = health.name(),
            reason,
            "discount replica unhealthy: no calls to it until a health check finds it serving"
        );
    }
}
