//! The HTTP metrics: requests answered by route and status, how long they took, and how
//! many are in flight.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The bounds of `catalog_http_request_duration_seconds`, in seconds.
const DURATION_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3,
    0.5, 1.0, 2.5,
];

/// The route nearly every request is for.
const PRODUCTS: &str = "/products";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

/// `catalog_http_*`.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    /// The series of a `/products` request answered 200, nearly every request's: looked
    /// up in the families once, at the first such answer, not at every request (two
    /// hashes of the labels and two locks).
    products_ok: Arc<OnceLock<(Counter, Histogram)>>,
    in_flight: Gauge,
}

impl HttpMetrics {
    /// Registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        // 50 µs to 2.5 s, with bounds at the latency objective (50 ms) and at the default
        // discount deadline (300 ms): the alert rules count the requests under them.
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS.iter().copied())
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered now",
            in_flight.clone(),
        );
        Self {
            requests,
            duration,
            products_ok: Arc::default(),
            in_flight,
        }
    }

    /// Counts one request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Records an answered request.
    pub fn request_done(&self, route: &'static str, status: u16, elapsed: Duration) {
        let series = || {
            (
                self.requests
                    .get_or_create(&RequestLabels { route, status })
                    .clone(),
                self.duration.get_or_create(&RouteLabels { route }).clone(),
            )
        };
        let looked_up;
        let (requests, duration) = if route == PRODUCTS && status == 200 {
            self.products_ok.get_or_init(series)
        } else {
            looked_up = series();
            &looked_up
        };
        requests.inc();
        duration.observe(elapsed.as_secs_f64());
    }
}

/// Decrements the in-flight gauge when dropped (also when a request is abandoned).
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
