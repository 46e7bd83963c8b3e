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
//!   starts. A `/products` request therefore never waits much longer than the call timeout,
//!   whatever the number of products. The server sees the time left as `grpc-timeout`;
//! - each replica has a circuit breaker ([`breaker`]). A call that finds no replica
//!   accepting calls fails at once, instead of waiting on a service known to be down;
//! - a call refused by one replica (`UNAVAILABLE`: nothing was processed) is tried once
//!   more on another replica, within the same deadline;
//! - every call's result is kept apart: a failed call costs its product its discount, and
//!   nothing else. The caller decides what to serve ([`crate::routes`] serves the full price).

pub mod breaker;
pub mod replicas;

use std::sync::Arc;
use std::time::Duration;

use ecommerce::keys::PemIdentity;
use ecommerce::pb;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use tokio::time::Instant;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Identity};

use self::breaker::BreakerSettings;
use self::replicas::{ChannelSettings, Replica, ReplicaSet};
use crate::data::{Customer, Product};

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
    /// When a replica's breaker opens, and for how long.
    pub breaker: BreakerSettings,
    /// How often host names in `address` are resolved again.
    pub resolve_interval: Duration,
    /// The client certificate and key to present, for discount servers that require
    /// mutual TLS (none: present nothing).
    pub client_identity: Option<PemIdentity>,
}

impl DiscountSettings {
    /// Settings with the default breaker and a 5 s resolve interval.
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
    /// `DeadlineExceeded`, which is how tonic reports an expired `grpc-timeout`).
    #[error("no answer in time")]
    Timeout,
    /// No replica is accepting calls: every breaker is open, or no address resolved.
    #[error("no discount replica is accepting calls (circuit open)")]
    CircuitOpen,
    /// No connection: refused, reset, TLS handshake or certificate failure.
    #[error("discount service unavailable: {0}")]
    Unavailable(String),
    /// The service answered with an error status.
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
}

/// A cheap-to-clone handle on the discount service, shared by all requests.
#[derive(Debug, Clone)]
pub struct DiscountClient {
    replicas: Arc<ReplicaSet>,
    call_timeout: Duration,
}

impl DiscountClient {
    /// Checks the settings, resolves the replicas once (a name that does not resolve yet is
    /// logged and tried again later) and starts re-resolving in the background. Nothing is
    /// connected yet: the first call to each replica connects.
    pub async fn start(settings: &DiscountSettings) -> Result<Self, SettingsError> {
        let targets = replicas::parse_targets(&settings.address)?;
        let channel = ChannelSettings {
            trust_roots: Certificate::from_pem(&settings.trust_roots_pem),
            client_identity: settings
                .client_identity
                .as_ref()
                .map(|id| Identity::from_pem(&id.cert_chain_pem, &id.private_key_pem)),
            // A down or unreachable replica must cost at most one call timeout.
            connect_timeout: settings.call_timeout.max(Duration::from_millis(100)),
            breaker: settings.breaker,
        };
        let replicas = ReplicaSet::resolve(targets, channel).await;
        replicas::spawn_refresh(&replicas, settings.resolve_interval);
        Ok(Self {
            replicas,
            call_timeout: settings.call_timeout,
        })
    }

    /// The circuit breaker state of each replica now, for metrics and readiness.
    pub fn breaker_states(&self) -> Vec<breaker::BreakerState> {
        self.replicas
            .replicas()
            .iter()
            .map(|replica| replica.breaker.state())
            .collect()
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
    /// one result per product, in the same order. Returns within about the call timeout.
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

    /// One product's discount: a replica the breakers admit, and a second one if the
    /// first refused the call.
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
        let call_on = |replica| call(replica, customer, product, request_id, deadline);
        let first = self.replicas.pick(None).ok_or(CallError::CircuitOpen)?;
        let result = call_on(&first).await;
        if !matches!(result, Err(CallError::Unavailable(_))) {
            return result;
        }
        // Refused before anything was processed: one more try, on another replica if one
        // admits a call, within the same deadline.
        match self.replicas.pick(Some(first.addr)) {
            Some(second) => {
                tracing::debug!(refused_by = %first.addr, retry_on = %second.addr, "retrying");
                call_on(&second).await
            }
            None => result,
        }
    }
}

/// One call to one replica, bounded by `deadline`; its outcome goes to the replica's
/// breaker.
async fn call(
    replica: &Replica,
    customer: &Customer,
    product: &Product,
    request_id: Option<&MetadataValue<Ascii>>,
    deadline: Instant,
) -> Result<Option<Discount>, CallError> {
    let time_left = deadline.saturating_duration_since(Instant::now());
    if time_left.is_zero() {
        return Err(CallError::Timeout);
    }
    let mut request = tonic::Request::new(pb::DiscountRequest {
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
    });
    // Sent as `grpc-timeout`, so the server can give up when we have.
    request.set_timeout(time_left);
    if let Some(id) = request_id {
        request
            .metadata_mut()
            .insert(ecommerce::REQUEST_ID_HEADER, id.clone());
    }
    // Our own timer as well: it also covers connecting and waiting for a stream.
    let mut grpc = replica.grpc.clone();
    let result = match tokio::time::timeout_at(deadline, grpc.apply_discount(request)).await {
        Err(_elapsed) => Err(CallError::Timeout),
        Ok(Err(status)) => Err(classify(&status)),
        Ok(Ok(response)) => interpret(product, response.into_inner()),
    };
    replica.breaker.record(result.is_ok());
    result
}

fn classify(status: &tonic::Status) -> CallError {
    match status.code() {
        Code::Cancelled | Code::DeadlineExceeded => CallError::Timeout,
        Code::Unavailable | Code::Unknown if std::error::Error::source(status).is_some() => {
            CallError::Unavailable(error_chain(status))
        }
        Code::Unavailable => CallError::Unavailable(status.message().to_owned()),
        code => CallError::Status {
            code,
            message: status.message().to_owned(),
        },
    }
}

/// "message: cause: cause", the way transport failures (TLS, refused) are explained.
/// tonic and hyper often repeat a cause's text in its wrapper's; each text appears once.
fn error_chain(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Checks an OK answer before believing it: it must be about the product we asked for, and
/// a discount must be a fraction in (0, 1] with a price between 0 and the full price.
fn interpret(
    asked: &Product,
    response: pb::DiscountResponse,
) -> Result<Option<Discount>, CallError> {
    let product = response
        .product
        .ok_or(CallError::BadAnswer("the answer has no product"))?;
    if product.id != asked.id {
        return Err(CallError::BadAnswer("the answer is about another product"));
    }
    let Some(value) = product.discount_value else {
        return Ok(None);
    };
    // An empty `discount_value` (pct 0) is how the service says "no discount".
    if value.pct == 0.0 {
        return Ok(None);
    }
    if !(value.pct > 0.0 && value.pct <= 1.0) {
        return Err(CallError::BadAnswer(
            "the discount is not a fraction in (0, 1]",
        ));
    }
    if !(0..=asked.price_in_cents).contains(&value.value_in_cents) {
        return Err(CallError::BadAnswer(
            "the discounted price is not between 0 and the full price",
        ));
    }
    Ok(Some(Discount {
        pct: value.pct,
        value_in_cents: value.value_in_cents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Product {
        Product {
            id: 1,
            slug: "s".into(),
            description: "d".into(),
            price_in_cents: 1000,
        }
    }

    fn answer(id: i32, value: Option<pb::DiscountValue>) -> pb::DiscountResponse {
        pb::DiscountResponse {
            product: Some(pb::Product {
                id,
                discount_value: value,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn answers_are_checked_before_they_are_believed() {
        let value = |pct, value_in_cents| {
            Some(pb::DiscountValue {
                pct,
                value_in_cents,
            })
        };
        assert_eq!(
            interpret(&asked(), answer(1, value(0.1, 900))).unwrap(),
            Some(Discount {
                pct: 0.1,
                value_in_cents: 900
            })
        );
        assert_eq!(interpret(&asked(), answer(1, None)).unwrap(), None);
        assert_eq!(interpret(&asked(), answer(1, value(0.0, 0))).unwrap(), None);
        for bad in [
            answer(2, value(0.1, 900)),
            answer(1, value(-0.1, 900)),
            answer(1, value(f32::NAN, 900)),
            answer(1, value(0.1, 1001)),
            answer(1, value(0.1, -1)),
            pb::DiscountResponse { product: None },
        ] {
            assert!(matches!(
                interpret(&asked(), bad),
                Err(CallError::BadAnswer(_))
            ));
        }
    }

    #[test]
    fn tonic_timeouts_are_timeouts() {
        for code in [Code::Cancelled, Code::DeadlineExceeded] {
            let status = tonic::Status::new(code, "Timeout expired");
            assert!(matches!(classify(&status), CallError::Timeout));
        }
        let status = tonic::Status::invalid_argument("no product");
        assert!(matches!(
            classify(&status),
            CallError::Status {
                code: Code::InvalidArgument,
                ..
            }
        ));
    }
}
