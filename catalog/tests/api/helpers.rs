//! Starting real services for the tests: discount and catalog in-process, each on a port
//! the OS picks, TLS on, keys generated into a temporary directory.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use catalog::data::Catalog;
use catalog::discounts::{DiscountClient, DiscountSettings};
use ecommerce::keys::{self, KeyPaths};
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The exact customer-1 body of the contract.
pub const CUSTOMER_1_BODY: &str = r#"[{"id":1,"slug":"iphone-x","description":"64GB, black and iOS 12","price_in_cents":99999,"discount_value":{"pct":0.1,"value_in_cents":89999}},{"id":2,"slug":"notebook-avell-g1511","description":"Notebook Gamer Intel Core i7","price_in_cents":150000,"discount_value":{"pct":0.1,"value_in_cents":135000}},{"id":3,"slug":"playstation-4-slim","description":"1TB Console","price_in_cents":32999,"discount_value":{"pct":0.1,"value_in_cents":29699}}]"#;

/// The same products with no discounts.
pub const UNDISCOUNTED_BODY: &str = r#"[{"id":1,"slug":"iphone-x","description":"64GB, black and iOS 12","price_in_cents":99999},{"id":2,"slug":"notebook-avell-g1511","description":"Notebook Gamer Intel Core i7","price_in_cents":150000},{"id":3,"slug":"playstation-4-slim","description":"1TB Console","price_in_cents":32999}]"#;

/// A keys directory with a freshly generated CA and server certificate.
pub fn generated_keys() -> (TempDir, KeyPaths) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths = KeyPaths::new(dir.path().join("keys"));
    keys::ensure_keys(&paths, &[]).expect("keys generated");
    (dir, paths)
}

/// A server running in this test's runtime, stopped when dropped or by [`Self::stop`].
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Sends the shutdown signal and waits for the server to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn loopback_listener() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind port 0")
}

/// Starts the discount service with the server identity in `keys`.
pub async fn spawn_discount(keys: &KeyPaths) -> Running {
    serve_discount(keys, loopback_listener().await)
}

/// Starts the discount service on `addr`, which must be free.
pub async fn spawn_discount_on(keys: &KeyPaths, addr: SocketAddr) -> Running {
    serve_discount(
        keys,
        TcpListener::bind(addr).await.expect("the port is free"),
    )
}

fn serve_discount(keys: &KeyPaths, listener: TcpListener) -> Running {
    ecommerce::install_crypto_provider();
    let addr = listener.local_addr().unwrap();
    let identity = keys::read_server_identity(keys).expect("identity");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        discount::run(listener, discount::Config::new(identity), async {
            let _ = stopped.await;
        })
        .await
        .expect("discount runs");
    });
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Catalog settings for a test: the embedded data, trusting `trust`'s CA, discount at
/// `discount_address`.
pub fn catalog_config(
    trust: &KeyPaths,
    discount_address: String,
    timeout: Duration,
) -> catalog::Config {
    catalog_config_with(Catalog::embedded(), trust, discount_address, timeout)
}

/// Like [`catalog_config`] with other data.
pub fn catalog_config_with(
    data: Catalog,
    trust: &KeyPaths,
    discount_address: String,
    timeout: Duration,
) -> catalog::Config {
    let discounts = DiscountClient::new(&DiscountSettings {
        address: discount_address,
        trust_roots_pem: keys::read_trust_roots(trust).expect("trust roots"),
        call_timeout: timeout,
    })
    .expect("discount client");
    catalog::Config::new(data, discounts)
}

/// Starts the catalog with `config`.
pub async fn spawn_catalog(config: catalog::Config) -> Running {
    let listener = loopback_listener().await;
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        catalog::run(listener, config, async {
            let _ = stopped.await;
        })
        .await
        .expect("catalog runs");
    });
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

/// Discount and catalog together, the catalog trusting discount's CA.
pub struct Pair {
    pub discount: Running,
    pub catalog: Running,
    _keys: TempDir,
}

/// Starts both services, as `cargo run -p discount` and `cargo run -p catalog` would.
pub async fn spawn_pair() -> Pair {
    let (keys_dir, keys) = generated_keys();
    let discount = spawn_discount(&keys).await;
    let config = catalog_config(
        &keys,
        discount_address(discount.addr),
        Duration::from_secs(5),
    );
    let catalog = spawn_catalog(config).await;
    Pair {
        discount,
        catalog,
        _keys: keys_dir,
    }
}

/// `localhost:PORT`: the certificate's name, as `DISCOUNT_SERVICE_HOST` would give it.
pub fn discount_address(addr: SocketAddr) -> String {
    format!("localhost:{}", addr.port())
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// Sends one HTTP/1.1 request over a new connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &[u8])],
) -> TestResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = sender
        .send_request(builder.body(Empty::<Bytes>::new()).unwrap())
        .await
        .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    TestResponse {
        status,
        headers,
        body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
    }
}

/// `GET /products` with these headers.
pub async fn get_products(addr: SocketAddr, headers: &[(&str, &[u8])]) -> TestResponse {
    request(addr, "GET", "/products", headers).await
}
