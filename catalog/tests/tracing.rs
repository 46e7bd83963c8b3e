//! Distributed tracing, end to end, against a real OTLP/gRPC receiver: the collector's own
//! service definitions (opentelemetry-proto), served by tonic in this process.
//!
//! The catalog is the real binary, exporting as a user would turn it on
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`). discount runs in this process (`discount::run`), with
//! this process's telemetry set up by the same `ecommerce::telemetry::init` that discount's
//! `main` calls, exporting to the same receiver as service `discount`. The receiver, and
//! that telemetry, live on a runtime of their own for the whole test binary; each test
//! starts its own trace, with a `traceparent` of its own, and looks only at that trace.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ecommerce::keys::KeyPaths;
use ecommerce::telemetry::{self, LogFormat, Telemetry, TraceArgs};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use testkit::{PATIENCE, Running, ServiceProcess, generated_keys, http_get, http_request, sample};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// Span kinds and status codes as OTLP numbers them.
const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

/// One received span, flattened for assertions.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    trace_state: String,
    name: String,
    kind: i32,
    status: i32,
    attributes: HashMap<String, String>,
    events: Vec<String>,
    start_ns: u64,
    end_ns: u64,
}

impl ReceivedSpan {
    fn attr(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{key} missing from {self:#?}"))
    }
}

/// What the receiver has been sent, and a way to wait for more.
#[derive(Debug, Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    arrived: Condvar,
}

#[derive(Debug, Clone)]
struct Receiver(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut received = Vec::new();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.unwrap_or_default();
            let service = attributes(&resource.attributes)
                .remove("service.name")
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    received.push(ReceivedSpan {
                        service: service.clone(),
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                        trace_state: span.trace_state,
                        name: span.name,
                        kind: span.kind,
                        status: span.status.map(|s| s.code).unwrap_or_default(),
                        attributes: attributes(&span.attributes),
                        events: span.events.into_iter().map(|e| e.name).collect(),
                        start_ns: span.start_time_unix_nano,
                        end_ns: span.end_time_unix_nano,
                    });
                }
            }
        }
        self.0.spans.lock().unwrap().extend(received);
        self.0.arrived.notify_all();
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(
    list: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    list.iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

/// The receiver and this process's telemetry (as discount's), for the whole test binary.
struct Harness {
    receiver: SocketAddr,
    received: Arc<Received>,
    telemetry: Telemetry,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let (ready, started) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
                let receiver = listener.local_addr().unwrap();
                let received = Arc::new(Received::default());
                tokio::spawn(
                    tonic::transport::Server::builder()
                        .add_service(TraceServiceServer::new(Receiver(received.clone())))
                        .serve_with_incoming(TcpListenerStream::new(listener)),
                );
                // As discount's main does, inside the runtime.
                let telemetry = telemetry::init(
                    LogFormat::Pretty,
                    "discount",
                    &TraceArgs {
                        otlp_endpoint: Some(format!("http://{receiver}")),
                    },
                )
                .expect("telemetry starts");
                ready
                    .send(Harness {
                        receiver,
                        received,
                        telemetry,
                    })
                    .ok();
                std::future::pending::<()>().await;
            });
        });
        started.recv().expect("the harness starts")
    })
}

impl Harness {
    /// Exports discount's queued spans now.
    async fn flush_discount(&self) {
        let telemetry: &'static Telemetry = &harness().telemetry;
        tokio::task::spawn_blocking(move || telemetry.force_flush())
            .await
            .unwrap();
    }

    /// Waits until the spans of `trace_id` satisfy `done`, and returns them.
    fn wait_for(
        &self,
        trace_id: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + PATIENCE;
        let mut spans = self.received.spans.lock().unwrap();
        loop {
            let ours: Vec<ReceivedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .cloned()
                .collect();
            if done(&ours) {
                return ours;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "trace {trace_id} incomplete: {ours:#?}");
            spans = self.received.arrived.wait_timeout(spans, left).unwrap().0;
        }
    }
}

/// discount, in this process (its spans go out through the harness's telemetry).
async fn start_discount(keys: &KeyPaths) -> Running {
    harness();
    testkit::start_discount(keys).await
}

/// The catalog binary, in text log format, pointed at `discount`, with `env` added.
fn catalog(
    keys: &KeyPaths,
    discount: SocketAddr,
    args: &[&str],
    env: &[(&str, String)],
) -> ServiceProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_catalog"));
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
        .args(["0", "--bind", "127.0.0.1", "--keys-dir"])
        .arg(keys.dir())
        .args(args)
        .env("DISCOUNT_SERVICE_HOST", discount.to_string())
        .env("LOG_FORMAT", "pretty")
        .env("RUST_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    let mut process = ServiceProcess::spawn(command);
    process.wait_for_line("catalog HTTP server listening");
    process
}

fn catalog_addr(process: &ServiceProcess) -> SocketAddr {
    let line = process
        .log
        .iter()
        .find(|line| line.contains("catalog HTTP server listening"))
        .unwrap();
    line.split_whitespace()
        .find_map(|word| word.strip_prefix("address="))
        .unwrap()
        .parse()
        .unwrap()
}

/// The catalog's environment for exporting to the harness's receiver.
fn exporting_to_the_receiver() -> [(&'static str, String); 1] {
    [(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://{}", harness().receiver),
    )]
}

/// A new W3C trace id, unique to the test and the run.
fn new_trace_id(test: u8) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{:030x}{test:02x}", nanos & ((1 << 120) - 1))
}

/// The caller's span, which the catalog's server span must continue.
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// `GET /products` as customer 1 with a `traceparent`; returns the status line, the
/// `X-Discount-Status` value and the body.
async fn get_products(addr: SocketAddr, trace_id: &str) -> (String, String, String) {
    let response = http_request(
        addr,
        &format!(
            "GET /products HTTP/1.1\r\nHost: x\r\nX-USER-ID: 1\r\n\
             traceparent: 00-{trace_id}-{CALLER_SPAN}-01\r\ntracestate: congo=t61rcWkgMzE\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    let discount_status = head
        .lines()
        .find_map(|line| line.strip_prefix("x-discount-status: "))
        .unwrap_or_default()
        .to_owned();
    (status, discount_status, body.to_owned())
}

/// Waits (bounded) until the catalog's health checks have found its one discount replica
/// serving. Until then a check may still be on its way, and find discount stopping.
async fn wait_until_checked_serving(addr: SocketAddr) {
    testkit::poll::until("a health check to find discount serving", || async move {
        let metrics = http_get(addr, "/metrics", &[]).await;
        let serving = r#"catalog_discount_replicas{health="serving"} 1"#;
        if metrics.lines().any(|line| line == serving) {
            Ok(())
        } else {
            Err(metrics)
        }
    })
    .await;
}

const DISCOUNTED: [&str; 3] = [
    r#""discount_value":{"pct":0.1,"value_in_cents":89999}"#,
    r#""discount_value":{"pct":0.1,"value_in_cents":135000}"#,
    r#""discount_value":{"pct":0.1,"value_in_cents":29699}"#,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_across_both_services() {
    let (_dir, keys) = generated_keys();
    let discount = start_discount(&keys).await;
    let exporter = exporting_to_the_receiver();
    let mut catalog = catalog(
        &keys,
        discount.addr,
        &["--discount-timeout-ms", "2000"],
        &exporter,
    );
    let trace_id = new_trace_id(1);

    let (status, discount_status, body) = get_products(catalog_addr(&catalog), &trace_id).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(discount_status, "complete");
    for value in DISCOUNTED {
        assert!(body.contains(value), "{value} not in {body}");
    }
    // SIGTERM flushes the catalog's spans: the default batch delay (5 s) has not passed.
    assert!(catalog.terminate().success());
    harness().flush_discount().await;
    let spans = harness().wait_for(&trace_id, |spans| spans.len() >= 7);
    assert_eq!(spans.len(), 7, "{spans:#?}");

    // The catalog's server span continues the caller's trace, with its tracestate.
    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.service == "catalog" && s.kind == SERVER)
        .collect();
    assert_eq!(server.len(), 1, "{spans:#?}");
    let server = server[0];
    assert_eq!(server.name, "GET /products");
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(server.trace_state, "congo=t61rcWkgMzE");
    assert_eq!(server.attr("http.request.method"), "GET");
    assert_eq!(server.attr("http.route"), "/products");
    assert_eq!(server.attr("http.response.status_code"), "200");
    assert_eq!(server.attr("ecommerce.customer.known"), "true");
    assert_eq!(server.attr("ecommerce.discount.status"), "complete");
    assert_ne!(server.status, STATUS_ERROR);
    // Its log line leads to it.
    let answered = catalog
        .log
        .iter()
        .find(|line| line.contains("answered") && line.contains("/products"))
        .expect("an access log line");
    assert!(
        answered.contains(&format!("trace_id={trace_id} span_id={}", server.span_id)),
        "{answered}"
    );

    // One client span per product, each the parent of one discount server span.
    let clients: Vec<_> = spans.iter().filter(|s| s.kind == CLIENT).collect();
    assert_eq!(clients.len(), 3, "{spans:#?}");
    let mut products = Vec::new();
    for client in clients {
        assert_eq!(client.service, "catalog");
        assert_eq!(client.parent_span_id, server.span_id);
        assert_eq!(client.name, "ecommerce.Discount/ApplyDiscount");
        assert_eq!(client.attr("rpc.system"), "grpc");
        assert_eq!(client.attr("rpc.service"), "ecommerce.Discount");
        assert_eq!(client.attr("rpc.method"), "ApplyDiscount");
        assert_eq!(client.attr("rpc.grpc.status_code"), "0");
        assert_eq!(client.attr("server.address"), "127.0.0.1");
        assert_eq!(client.attr("server.port"), discount.addr.port().to_string());
        assert_eq!(client.attr("ecommerce.attempt"), "first");
        products.push(client.attr("ecommerce.product.id").to_owned());
        let children: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == client.span_id)
            .collect();
        assert_eq!(children.len(), 1, "{spans:#?}");
        let handled = children[0];
        assert_eq!(handled.service, "discount");
        assert_eq!(handled.kind, SERVER);
        assert_eq!(handled.name, "ecommerce.Discount/ApplyDiscount");
        assert_eq!(handled.trace_state, "congo=t61rcWkgMzE");
        assert_eq!(handled.attr("rpc.system"), "grpc");
        assert_eq!(handled.attr("rpc.grpc.status_code"), "0");
        assert_eq!(handled.attr("ecommerce.discount.applied"), "true");
        // Info log lines are not span events (warnings are): they would cost more than
        // the span.
        assert!(handled.events.is_empty(), "{handled:#?}");
    }
    products.sort();
    assert_eq!(products, ["1", "2", "3"]);
    discount.stop().await;

    // TRACE_PICTURE=docs/trace.svg draws this trace, for the README.
    if let Some(path) = std::env::var_os("TRACE_PICTURE") {
        std::fs::write(path, waterfall(&spans)).unwrap();
    }
}

/// The trace as a waterfall (SVG): one bar per span, under its parent, on a common time
/// axis, coloured by service.
fn waterfall(spans: &[ReceivedSpan]) -> String {
    fn order<'a>(
        spans: &'a [ReceivedSpan],
        parent: &str,
        depth: usize,
        out: &mut Vec<(usize, &'a ReceivedSpan)>,
    ) {
        let mut children: Vec<_> = spans
            .iter()
            .filter(|s| s.parent_span_id == parent)
            .collect();
        children.sort_by_key(|s| {
            (
                s.attributes.get("ecommerce.product.id").cloned(),
                s.start_ns,
            )
        });
        for child in children {
            out.push((depth, child));
            order(spans, &child.span_id, depth + 1, out);
        }
    }
    let mut rows = Vec::new();
    order(spans, CALLER_SPAN, 0, &mut rows);
    let start = spans.iter().map(|s| s.start_ns).min().unwrap_or_default();
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or_default();
    let total = (end - start).max(1) as f64;
    let (label_width, bar_width, row) = (520.0, 400.0, 26.0);
    let height = 40.0 + row * rows.len() as f64 + 20.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"monospace\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"20\" font-weight=\"bold\">One GET /products for customer 1: {} spans, {:.2} ms (catalog blue, discount orange)</text>\n",
        label_width + bar_width + 90.0,
        rows.len(),
        total / 1e6
    );
    for (i, (depth, span)) in rows.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let x = label_width + bar_width * (span.start_ns - start) as f64 / total;
        let w = (bar_width * (span.end_ns - span.start_ns) as f64 / total).max(1.0);
        let colour = if span.service == "catalog" {
            "#4c78a8"
        } else {
            "#f58518"
        };
        let kind = if span.kind == SERVER {
            "server"
        } else {
            "client"
        };
        let product = span
            .attributes
            .get("ecommerce.product.id")
            .map(|id| format!(" (product {id})"))
            .unwrap_or_default();
        svg.push_str(&format!(
            "<text x=\"{}\" y=\"{}\">{} {} {kind}{product}</text>\n\
             <rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"16\" fill=\"{colour}\"/>\n\
             <text x=\"{:.1}\" y=\"{}\">{:.2} ms</text>\n",
            10.0 + 16.0 * *depth as f64,
            y + 13.0,
            span.name,
            span.service,
            y + 1.0,
            x + w + 4.0,
            y + 13.0,
            (span.end_ns - span.start_ns) as f64 / 1e6
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_discount_down_the_client_spans_carry_the_error_and_the_body_is_whole() {
    let (_dir, keys) = generated_keys();
    let discount = start_discount(&keys).await;
    let exporter = exporting_to_the_receiver();
    // Health checks rarely, so that the calls, not a check, find discount gone; and a
    // generous deadline, so that they find it refusing (UNAVAILABLE), not a busy machine
    // too slow for 300 ms (their deadline expired: CANCELLED, seen under stress-ng).
    let mut catalog = catalog(
        &keys,
        discount.addr,
        &[
            "--health-check-interval-ms",
            "600000",
            "--discount-timeout-ms",
            "5000",
        ],
        &exporter,
    );
    let addr = catalog_addr(&catalog);
    let (_, warm, _) = get_products(addr, &new_trace_id(2)).await;
    assert_eq!(warm, "complete");
    // The first check runs at start; one still on its way could find discount stopping,
    // and then no call would be made at all.
    wait_until_checked_serving(addr).await;
    discount.stop().await;

    let trace_id = new_trace_id(3);
    let (status, discount_status, body) = get_products(addr, &trace_id).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(discount_status, "unavailable");
    for slug in ["iphone-x", "notebook-avell-g1511", "playstation-4-slim"] {
        assert!(body.contains(slug), "{slug} not in {body}");
    }
    assert!(!body.contains("discount_value"), "{body}");
    assert!(catalog.terminate().success());
    let spans = harness().wait_for(&trace_id, |spans| spans.len() >= 4);
    let server = spans
        .iter()
        .find(|s| s.kind == SERVER)
        .expect("server span");
    assert_eq!(server.attr("ecommerce.discount.status"), "unavailable");
    assert_eq!(server.attr("ecommerce.discount.fallbacks"), "3");
    let clients: Vec<_> = spans.iter().filter(|s| s.kind == CLIENT).collect();
    assert_eq!(clients.len(), 3, "{spans:#?}");
    for client in clients {
        assert_eq!(client.status, STATUS_ERROR, "{client:#?}");
        assert_eq!(client.attr("rpc.grpc.status_code"), "14");
        assert_eq!(client.attr("error.type"), "unavailable");
        assert_eq!(client.parent_span_id, server.span_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_export_off_the_trace_still_reaches_discount_and_the_logs() {
    let (_dir, keys) = generated_keys();
    let discount = start_discount(&keys).await;
    let mut catalog = catalog(
        &keys,
        discount.addr,
        &["--discount-timeout-ms", "2000"],
        &[],
    );
    let trace_id = new_trace_id(4);
    let (_, discount_status, _) = get_products(catalog_addr(&catalog), &trace_id).await;
    assert_eq!(discount_status, "complete");
    assert!(catalog.terminate().success());

    // The catalog's request log line carries the caller's trace id.
    let answered = catalog
        .log
        .iter()
        .find(|line| line.contains("answered") && line.contains("/products"))
        .expect("an access log line");
    assert!(
        answered.contains(&format!("trace_id={trace_id}")),
        "{answered}"
    );
    // The catalog, recording nothing, passes the caller's context on as it came:
    // discount's spans continue the caller's span, with its tracestate.
    harness().flush_discount().await;
    let spans = harness().wait_for(&trace_id, |spans| spans.len() >= 3);
    assert_eq!(spans.len(), 3, "{spans:#?}");
    for span in &spans {
        assert_eq!(span.service, "discount");
        assert_eq!(span.parent_span_id, CALLER_SPAN);
        assert_eq!(span.trace_state, "congo=t61rcWkgMzE");
    }
    discount.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_missing_collector_does_not_touch_requests() {
    let (_dir, keys) = generated_keys();
    let discount = start_discount(&keys).await;
    // A collector that accepts connections and never answers, and one that is not there.
    let stalled = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let missing = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let missing_addr = missing.local_addr().unwrap();
    drop(missing);
    for collector in [stalled.local_addr().unwrap(), missing_addr] {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}")),
            // A tiny queue, exported often: it fills at once.
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8".to_owned()),
            ("OTEL_BSP_SCHEDULE_DELAY", "10".to_owned()),
        ];
        // A generous deadline: a slow debug build on a busy machine must not turn into a
        // fallback here; an export that blocked a request would take its own 2 s timeout.
        let mut catalog = catalog(
            &keys,
            discount.addr,
            &["--discount-timeout-ms", "2000"],
            &env,
        );
        let addr = catalog_addr(&catalog);
        for n in 0..20 {
            let started = Instant::now();
            let (status, discount_status, body) = get_products(addr, &new_trace_id(10 + n)).await;
            assert_eq!(status, "HTTP/1.1 200 OK");
            assert_eq!(discount_status, "complete");
            assert!(body.contains(DISCOUNTED[0]), "{body}");
            // Well inside the exporter's 2 s timeout: export never waits in a request.
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
        }
        let metrics = http_get(addr, "/metrics", &[("Accept", "text/plain")]).await;
        let lost = sample(&metrics, r#"catalog_trace_spans_total{outcome="dropped"}"#)
            + sample(&metrics, r#"catalog_trace_spans_total{outcome="failed"}"#);
        assert!(
            lost > 0.0,
            "no span counted as lost with the collector at {collector}:\n{metrics}"
        );
        assert_eq!(
            sample(&metrics, r#"catalog_trace_spans_total{outcome="exported"}"#),
            0.0
        );
        // Shutdown stays bounded: the last flush gives up after its timeout.
        let stopping = Instant::now();
        assert!(catalog.terminate().success());
        assert!(
            stopping.elapsed() < Duration::from_secs(10),
            "{:?}",
            stopping.elapsed()
        );
    }
    drop(stalled);
    discount.stop().await;
}
