//! The discount service in-process for the tests (testkit's, with keys of its own), and
//! calling it.

use ecommerce::keys::{self, KeyPaths};
use ecommerce::pb::discount_client::DiscountClient;
use ecommerce::pb::{Customer, DiscountRequest, Product};
use tempfile::TempDir;
use testkit::Running;
use tokio::net::TcpListener;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub use testkit::loopback;

/// A discount service running in this test's runtime, with keys in a temporary directory.
pub struct Server {
    pub addr: std::net::SocketAddr,
    pub keys: KeyPaths,
    running: Running,
    _dir: TempDir,
}

impl Server {
    /// Sends the shutdown signal, without waiting.
    pub fn begin_stop(&mut self) {
        self.running.begin_stop();
    }

    /// Waits (bounded) for `run` to return, and fails the test if it returned an error.
    pub async fn stopped(self) {
        self.running.stop().await;
    }
}

/// Starts discount on `listener`, with `configure` applied to the default config (it also
/// gets the paths of the server's keys).
pub async fn start_with(
    listener: TcpListener,
    configure: impl FnOnce(&mut discount::Config, &KeyPaths),
) -> Server {
    let (dir, keys) = testkit::generated_keys();
    let mut config = discount::Config::new(testkit::discount_tls(&keys, false));
    configure(&mut config, &keys);
    let running = testkit::start_discount_with(config, listener);
    Server {
        addr: running.addr,
        keys,
        running,
        _dir: dir,
    }
}

/// Starts discount on `listener` with the default config.
pub async fn start_on(listener: TcpListener) -> Server {
    start_with(listener, |_, _| {}).await
}

/// Starts discount on a loopback port the OS picks.
pub async fn start() -> Server {
    start_on(loopback().await).await
}

/// A TLS channel to `uri`, trusting `trust`'s CA, connected now.
pub async fn channel(uri: String, trust: &KeyPaths) -> Result<Channel, tonic::transport::Error> {
    channel_as(uri, trust, None).await
}

/// A TLS channel to `uri`, trusting `trust`'s CA and presenting `identity` (mutual TLS).
pub async fn channel_as(
    uri: String,
    trust: &KeyPaths,
    identity: Option<&keys::PemIdentity>,
) -> Result<Channel, tonic::transport::Error> {
    let ca = Certificate::from_pem(keys::read_trust_roots(trust).unwrap());
    let mut tls = ClientTlsConfig::new().ca_certificate(ca);
    if let Some(identity) = identity {
        tls = tls.identity(Identity::from_pem(
            &identity.cert_chain_pem,
            &identity.private_key_pem,
        ));
    }
    Endpoint::from_shared(uri)?.tls_config(tls)?.connect().await
}

/// A discount client for `uri`, trusting `trust`'s CA, connected now.
pub async fn client(
    uri: String,
    trust: &KeyPaths,
) -> Result<DiscountClient<Channel>, tonic::transport::Error> {
    Ok(DiscountClient::new(channel(uri, trust).await?))
}

/// A TLS channel to `server` by its name, `localhost`.
pub async fn channel_for(server: &Server) -> Channel {
    channel(
        format!("https://localhost:{}", server.addr.port()),
        &server.keys,
    )
    .await
    .expect("connects over TLS")
}

/// A discount client for `server`.
pub async fn client_for(server: &Server) -> DiscountClient<Channel> {
    DiscountClient::new(channel_for(server).await)
}

/// A product with every field set.
pub fn product(price_in_cents: i32) -> Product {
    Product {
        id: 42,
        slug: "a-slug".into(),
        description: "a description".into(),
        price_in_cents,
        discount_value: None,
    }
}

/// A customer with every field set.
pub fn customer(id: i32) -> Option<Customer> {
    Some(Customer {
        id,
        first_name: "First".into(),
        last_name: "Last".into(),
    })
}

/// One `ApplyDiscount` call; the product of the answer.
pub async fn apply(
    client: &mut DiscountClient<Channel>,
    customer: Option<Customer>,
    product: Option<Product>,
) -> Result<Product, tonic::Status> {
    let response = client
        .apply_discount(DiscountRequest { customer, product })
        .await?
        .into_inner();
    Ok(response.product.expect("the response has a product"))
}
