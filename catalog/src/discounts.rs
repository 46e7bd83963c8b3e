//! The catalog's side of the discount service.
//!
//! The old Go catalog opened a new TLS connection per request, had no deadline (it hung as
//! long as discount did) and dropped products whose call failed. Here:
//!
//! - one [`tonic::transport::Channel`] is made at start-up and shared by every request. It
//!   connects lazily, so the catalog starts and serves while discount is still down, and it
//!   reconnects on demand when discount comes back;
//! - a request's calls (one per product) run concurrently, at most
//!   [`MAX_CALLS_IN_FLIGHT`] at a time, all under **one** deadline taken when the request
//!   starts, so a `/products` request never waits much longer than the call timeout
//!   whatever the number of products. The server sees the time left as `grpc-timeout`;
//! - every call's result is kept apart: a failed call costs its product its discount, and
//!   nothing else. The caller decides what to serve ([`crate::routes`] serves the full price).

use std::time::Duration;

use ecommerce::pb;
use ecommerce::pb::discount_client::DiscountClient as GrpcClient;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::data::{Customer, Product};

/// How many discount calls one `/products` request may have in flight at once. It keeps a
/// request for a large catalog from taking every HTTP/2 stream of the shared connection.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

/// Where the discount service is and how to trust it.
#[derive(Debug, Clone)]
pub struct DiscountSettings {
    /// `host:port` as in `DISCOUNT_SERVICE_HOST` (`https://host:port` is accepted too).
    pub address: String,
    /// PEM certificates to trust for the discount server (the keys directory's CA).
    pub trust_roots_pem: Vec<u8>,
    /// The time all of one request's discount calls share.
    pub call_timeout: Duration,
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
    /// The address is empty, not a URI, or not `https`.
    #[error("the discount service address {address:?} is not usable: {reason}")]
    Address {
        /// As given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// tonic refused the TLS settings.
    #[error("the TLS settings for the discount service are not usable")]
    Tls(#[source] tonic::transport::Error),
}

/// Why one discount call gave no usable answer. Every variant means "serve the full price".
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer before the request's deadline (ours, or tonic's `Cancelled` /
    /// `DeadlineExceeded`, which is how tonic reports an expired `grpc-timeout`).
    #[error("no answer in time")]
    Timeout,
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
    grpc: GrpcClient<Channel>,
    call_timeout: Duration,
}

impl DiscountClient {
    /// Checks the settings and prepares the channel. Nothing is connected yet: the first
    /// call connects. Must be called inside a tokio runtime.
    pub fn new(settings: &DiscountSettings) -> Result<Self, SettingsError> {
        let endpoint = endpoint(&settings.address)?
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&settings.trust_roots_pem)),
            )
            .map_err(SettingsError::Tls)?
            // A down or unreachable discount must cost at most one call timeout; a
            // connection attempt that takes longer is abandoned.
            .connect_timeout(settings.call_timeout.max(Duration::from_millis(100)))
            .tcp_nodelay(true)
            // Notices a discount host that vanished without closing the connection, so
            // the next call reconnects instead of waiting on a dead socket.
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_timeout(Duration::from_secs(10))
            .keep_alive_while_idle(true);
        Ok(Self {
            grpc: GrpcClient::new(endpoint.connect_lazy()),
            call_timeout: settings.call_timeout,
        })
    }

    /// Asks for the discount on each of `products` for `customer`, concurrently, and returns
    /// one result per product, in the same order. Returns within about the call timeout.
    pub async fn discounts(
        &self,
        customer: &Customer,
        products: &[Product],
    ) -> Vec<Result<Option<Discount>, CallError>> {
        let deadline = Instant::now() + self.call_timeout;
        let customer = pb::Customer {
            id: customer.id,
            first_name: customer.first_name.clone(),
            last_name: customer.last_name.clone(),
        };
        // Indices rather than `&Product` items: a closure taking a reference makes the
        // future lose `Send` (rust-lang/rust#64552), and hyper needs it `Send`.
        stream::iter(0..products.len())
            .map(|i| self.discount(customer.clone(), &products[i], deadline))
            .buffered(MAX_CALLS_IN_FLIGHT)
            .collect()
            .await
    }

    #[tracing::instrument(
        name = "discount_call",
        level = "debug",
        skip_all,
        fields(customer_id = customer.id, product_id = product.id)
    )]
    async fn discount(
        &self,
        customer: pb::Customer,
        product: &Product,
        deadline: Instant,
    ) -> Result<Option<Discount>, CallError> {
        let time_left = deadline.saturating_duration_since(Instant::now());
        if time_left.is_zero() {
            return Err(CallError::Timeout);
        }
        let mut request = tonic::Request::new(pb::DiscountRequest {
            customer: Some(customer),
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
        // Our own timer as well: it also covers connecting and waiting for a stream.
        let mut grpc = self.grpc.clone();
        match tokio::time::timeout_at(deadline, grpc.apply_discount(request)).await {
            Err(_elapsed) => Err(CallError::Timeout),
            Ok(Err(status)) => Err(classify(&status)),
            Ok(Ok(response)) => interpret(product, response.into_inner()),
        }
    }
}

/// Turns `DISCOUNT_SERVICE_HOST` into an endpoint: `host:port`, or a full `https://` URI.
fn endpoint(address: &str) -> Result<Endpoint, SettingsError> {
    let refuse = |reason: &str| SettingsError::Address {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let address_trimmed = address.trim();
    if address_trimmed.is_empty() {
        return Err(refuse("it is empty"));
    }
    let uri = match address_trimmed.split_once("://") {
        Some(("https", _)) => address_trimmed.to_owned(),
        Some(_) => return Err(refuse("the discount service speaks TLS only: use https://")),
        None => format!("https://{address_trimmed}"),
    };
    let endpoint = Endpoint::from_shared(uri).map_err(|e| refuse(&e.to_string()))?;
    if endpoint.uri().host().is_none_or(str::is_empty) {
        return Err(refuse("it has no host name"));
    }
    // Required, not defaulted to 443: the discount service's port is 11443, and a missing
    // port is more likely a mistake than a wish for 443.
    if endpoint.uri().port_u16().is_none() {
        return Err(refuse("it needs a valid port, as in host:port"));
    }
    Ok(endpoint)
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
fn error_chain(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
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

    #[tokio::test]
    async fn addresses_are_host_port_or_https_uris() {
        for good in [
            "localhost:11443",
            "https://localhost:11443",
            "[::1]:11443",
            " discount:1 ",
        ] {
            assert!(endpoint(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("http://localhost:11443", "TLS only"),
            ("localhost:notaport", "not usable"),
            ("localhost", "valid port"),
            ("https://localhost", "valid port"),
        ] {
            let err = endpoint(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

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
