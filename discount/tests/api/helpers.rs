//! Starting the discount service in-process for the tests, and calling it.

use std::net::{Ipv4Addr, SocketAddr};

use ecommerce::keys::{self, KeyPaths};
use ecommerce::pb::discount_client::DiscountClient;
use ecommerce::pb::{Customer, DiscountRequest, Product};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A discount service running in this test's runtime, with keys in a temporary directory.
pub struct Server {
    pub addr: SocketAddr,
    pub keys: KeyPaths,
    _dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), discount::ServeError>>,
}

impl Server {
    /// Sends the shutdown signal, without waiting.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Waits (at most 30 s) for `run` to return, and returns its result.
    pub async fn stopped(self) -> Result<(), discount::ServeError> {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.task)
            .await
            .expect("run returns")
            .expect("server task")
    }
}

/// Starts discount on `listener`, with `configure` applied to the default config (it also
/// gets the paths of the server's keys).
pub async fn start_with(
    listener: TcpListener,
    configure: impl FnOnce(&mut discount::Config, &KeyPaths),
) -> Server {
    ecommerce::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let keys = KeyPaths::new(dir.path());
    keys::ensure_keys(&keys, &[]).unwrap();
    let mut config = discount::Config::new(keys::read_server_identity(&keys).unwrap());
    configure(&mut config, &keys);
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(discount::run(listener, config, async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        keys,
        _dir: dir,
        stop: Some(stop),
        task,
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

/// A listener on a loopback port the OS picks.
pub async fn loopback() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap()
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
