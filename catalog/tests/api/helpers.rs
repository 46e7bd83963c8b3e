//! Starting real services for the tests: discount and catalog in-process, each on a port
//! the OS picks, TLS on, keys generated into a temporary directory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use catalog::data::Catalog;
use catalog::discounts::{DiscountSettings, Discounts};
use ecommerce::keys::{self, KeyPaths};
use ecommerce::pb::discount_server::{Discount, DiscountServer};
use ecommerce::pb::{DiscountRequest, DiscountResponse};
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

/// The exact customer-1 body of the contract.
pub const CUSTOMER_1_BODY: &str = r#"[{"id":1,"slug":"iphone-x","description":"64GB, black and iOS 12","price_in_cents":99999,"discount_value":{"pct":0.1,"value_in_cents":89999}},{"id":2,"slug":"notebook-avell-g1511","description":"Notebook Gamer Intel Core i7","price_in_cents":150000,"discount_value":{"pct":0.1,"value_in_cents":135000}},{"id":3,"slug":"playstation-4-slim","description":"1TB Console","price_in_cents":32999,"discount_value":{"pct":0.1,"value_in_cents":29699}}]"#;

/// The same products with no discounts.
pub const UNDISCOUNTED_BODY: &str = r#"[{"id":1,"slug":"iphone-x","description":"64GB, black and iOS 12","price_in_cents":99999},{"id":2,"slug":"notebook-avell-g1511","description":"Notebook Gamer Intel Core i7","price_in_cents":150000},{"id":3,"slug":"playstation-4-slim","description":"1TB Console","price_in_cents":32999}]"#;

pub use testkit::{Running, assert_samples, generated_keys, loopback as loopback_listener, sample};

/// Starts the discount service with the server identity in `keys`.
pub async fn spawn_discount(keys: &KeyPaths) -> Running {
    testkit::start_discount(keys).await
}

/// Starts the discount service on `addr`, which must be free.
pub async fn spawn_discount_on(keys: &KeyPaths, addr: SocketAddr) -> Running {
    testkit::start_discount_with(
        discount::Config::new(testkit::discount_tls(keys, false)),
        TcpListener::bind(addr).await.expect("the port is free"),
    )
}

/// Starts discount requiring client certificates from `keys`' CA (mutual TLS).
pub async fn spawn_discount_requiring_client_certs(keys: &KeyPaths) -> Running {
    let config = discount::Config::new(testkit::discount_tls(keys, true));
    testkit::start_discount_with(config, loopback_listener().await)
}

/// Starts discount with `config` on a port the OS picks.
pub async fn spawn_discount_with(config: discount::Config) -> Running {
    testkit::start_discount_with(config, loopback_listener().await)
}

/// Discount client settings for a test: trusting `trust`'s CA, discount at
/// `discount_address`, default breaker.
pub fn settings(trust: &KeyPaths, discount_address: String, timeout: Duration) -> DiscountSettings {
    DiscountSettings::new(
        discount_address,
        keys::read_trust_roots(trust).expect("trust roots"),
        timeout,
    )
}

/// Catalog settings for a test: the embedded data, trusting `trust`'s CA, discount at
/// `discount_address`.
pub async fn catalog_config(
    trust: &KeyPaths,
    discount_address: String,
    timeout: Duration,
) -> catalog::Config {
    config_with(
        Catalog::embedded(),
        settings(trust, discount_address, timeout),
    )
    .await
}

/// Starts the catalog with the embedded data, trusting `trust`'s CA, calling discount at
/// `discount` by the certificate's name: the set-up most tests share.
pub async fn spawn_catalog_for(
    trust: &KeyPaths,
    discount: SocketAddr,
    timeout: Duration,
) -> Running {
    spawn_catalog(catalog_config(trust, discount_address(discount), timeout).await).await
}

/// The catalog config for `data` and discount `settings`.
pub async fn config_with(data: Catalog, settings: DiscountSettings) -> catalog::Config {
    let discounts = Discounts::start(&settings).await.expect("discount client");
    catalog::Config::new(data, discounts)
}

/// Starts the catalog with `config`.
pub async fn spawn_catalog(config: catalog::Config) -> Running {
    let listener = loopback_listener().await;
    let addr = listener.local_addr().unwrap();
    Running::spawn(addr, |shutdown| async move {
        catalog::run(listener, config, shutdown)
            .await
            .expect("catalog runs");
    })
}

/// A discount service on a runtime of its own, so that [`Self::kill`] can stop it the way
/// a crash does: every task and connection gone at once, nothing drained.
pub struct KillableDiscount {
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl KillableDiscount {
    /// Starts discount on `addr` (port 0 for any) with the identity in `keys`.
    pub fn start(keys: &KeyPaths, addr: SocketAddr) -> Self {
        ecommerce::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // Bound with std: `block_on` is not allowed inside the test's own runtime.
        let listener = std::net::TcpListener::bind(addr).expect("the port is free");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let tls = testkit::discount_tls(keys, false);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("tokio listener");
            let config = discount::Config::new(tls);
            discount::run(listener, config, std::future::pending()).await
        });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    /// Drops every task and socket of this discount at once.
    pub fn kill(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for KillableDiscount {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a [`spawn_faulty_discount`] server misbehaves.
#[derive(Clone)]
pub enum Fault {
    /// Answers correctly, after this long.
    Delay(Duration),
    /// Answers every call with this status code.
    Status(tonic::Code),
    /// Answers correctly once the gate opens; counts arrivals so a test knows calls are in
    /// flight.
    Gate(Arc<Gate>),
}

/// Holds calls until opened; see [`Fault::Gate`].
#[derive(Default)]
pub struct Gate {
    arrived: AtomicUsize,
    arrival: Notify,
    open: tokio::sync::watch::Sender<bool>,
}

impl Gate {
    /// Waits until at least `calls` calls have arrived (bounded, so a bug fails the test).
    pub async fn wait_for_calls(&self, calls: usize) {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let notified = self.arrival.notified();
                if self.arrived.load(Ordering::SeqCst) >= calls {
                    return;
                }
                notified.await;
            }
        })
        .await
        .expect("the calls arrived");
    }

    /// Lets every held and future call through.
    pub fn open(&self) {
        self.open.send_replace(true);
    }

    async fn pass(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        self.arrival.notify_waiters();
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

struct FaultyDiscount {
    fault: Fault,
    /// The `x-request-id` of every call, in arrival order.
    request_ids: Arc<std::sync::Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl Discount for FaultyDiscount {
    async fn apply_discount(
        &self,
        request: tonic::Request<DiscountRequest>,
    ) -> Result<tonic::Response<DiscountResponse>, tonic::Status> {
        if let Some(id) = request.metadata().get(ecommerce::REQUEST_ID_HEADER) {
            let id = id.to_str().unwrap_or("(not ASCII)").to_owned();
            self.request_ids.lock().unwrap().push(id);
        }
        match &self.fault {
            Fault::Delay(delay) => tokio::time::sleep(*delay).await,
            Fault::Status(code) => return Err(tonic::Status::new(*code, "injected fault")),
            Fault::Gate(gate) => gate.pass().await,
        }
        let DiscountRequest { customer, product } = request.into_inner();
        let product = product.map(|p| discount::pricing::apply(customer.map(|c| c.id), p));
        Ok(tonic::Response::new(DiscountResponse { product }))
    }
}

/// A discount server with the real TLS identity in `keys` that misbehaves as `fault` says.
pub async fn spawn_faulty_discount(keys: &KeyPaths, fault: Fault) -> Running {
    spawn_recording_discount(keys, fault).await.0
}

/// Like [`spawn_faulty_discount`], also returning the `x-request-id` of every call.
pub async fn spawn_recording_discount(
    keys: &KeyPaths,
    fault: Fault,
) -> (Running, Arc<std::sync::Mutex<Vec<String>>>) {
    let request_ids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = FaultyDiscount {
        fault,
        request_ids: request_ids.clone(),
    };
    ecommerce::install_crypto_provider();
    let listener = loopback_listener().await;
    let addr = listener.local_addr().unwrap();
    let identity = keys::read_server_identity(keys).expect("identity");
    let tls = ServerTlsConfig::new().identity(Identity::from_pem(
        identity.cert_chain_pem,
        identity.private_key_pem,
    ));
    let running = Running::spawn(addr, |shutdown| async move {
        Server::builder()
            .tls_config(tls)
            .expect("tls")
            .add_service(DiscountServer::new(service))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
            .await
            .expect("faulty discount runs");
    });
    (running, request_ids)
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
    let catalog = spawn_catalog_for(&keys, discount.addr, Duration::from_secs(5)).await;
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

/// The value of `X-Discount-Status`.
pub fn discount_status(response: &TestResponse) -> &str {
    response.headers["x-discount-status"]
        .to_str()
        .expect("ASCII header")
}

/// `GET /products` with these headers.
pub async fn get_products(addr: SocketAddr, headers: &[(&str, &[u8])]) -> TestResponse {
    request(addr, "GET", "/products", headers).await
}

/// One request of a [`Load`]: when it started, how long it took, what came back.
#[derive(Debug)]
pub struct Sample {
    pub started: std::time::Instant,
    pub latency: Duration,
    pub response: TestResponse,
}

/// Requests for customer 1 sent in loops by a few workers until [`Load::finish`].
pub struct Load {
    samples: Arc<std::sync::Mutex<Vec<Sample>>>,
    progress: Arc<Notify>,
    stop: tokio::sync::watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` loops of `GET /products` with `X-USER-ID: 1` against `addr`.
    pub fn start(addr: SocketAddr, workers: usize) -> Self {
        let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
        let progress = Arc::new(Notify::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = (0..workers)
            .map(|_| {
                let (samples, progress, stopped) =
                    (samples.clone(), progress.clone(), stopped.clone());
                tokio::spawn(async move {
                    while !*stopped.borrow() {
                        let started = std::time::Instant::now();
                        let response = get_products(addr, &[("X-USER-ID", b"1")]).await;
                        let latency = started.elapsed();
                        samples.lock().unwrap().push(Sample {
                            started,
                            latency,
                            response,
                        });
                        progress.notify_waiters();
                    }
                })
            })
            .collect();
        Self {
            samples,
            progress,
            stop,
            workers,
        }
    }

    /// Waits (at most 30 s) until `done` holds for the samples so far.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[Sample]) -> bool) {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let notified = self.progress.notified();
                if done(&self.samples.lock().unwrap()) {
                    return;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
    }

    /// How many requests have been answered so far.
    pub fn answered(&self) -> usize {
        self.samples.lock().unwrap().len()
    }

    /// Stops the workers and returns every sample, in the order they finished.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.send_replace(true);
        for worker in self.workers {
            worker.await.expect("load worker");
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// How many samples so far carried `X-Discount-Status: status`.
pub fn count_status(samples: &[Sample], status: &str) -> usize {
    samples
        .iter()
        .filter(|sample| discount_status(&sample.response) == status)
        .count()
}

/// Asserts the rule that never bends: 200, every product, in catalog order, each either at
/// its full price or with its exact discount.
pub fn assert_whole_catalog(response: &TestResponse) {
    assert_eq!(response.status, 200, "{response:?}");
    let products: Vec<serde_json::Value> =
        serde_json::from_str(&response.body).expect("a JSON array");
    let expected: Vec<serde_json::Value> = serde_json::from_str(CUSTOMER_1_BODY).unwrap();
    assert_eq!(products.len(), expected.len(), "{}", response.body);
    for (got, want) in products.iter().zip(&expected) {
        for field in ["id", "slug", "description", "price_in_cents"] {
            assert_eq!(got[field], want[field], "{}", response.body);
        }
        if let Some(discount) = got.get("discount_value") {
            assert_eq!(discount, &want["discount_value"], "{}", response.body);
        }
    }
}

/// The catalog's metrics now, as text.
pub async fn scrape(addr: SocketAddr) -> String {
    let response = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    response.body
}
