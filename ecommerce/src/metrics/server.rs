//! `GET /metrics` over plain HTTP/1.1: the answer both services give, and a small server
//! for a port of its own (discount's `--metrics-listen`; the catalog answers on its API port).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

/// How a service writes its metrics: in the format that `Accept` (if any) prefers, with
/// the content type ([`super::encode`]).
pub trait Exposition: Clone + Send + Sync + 'static {
    /// The metrics now, and their content type.
    fn encode(&self, accept: Option<&str>) -> (&'static str, String);
}

impl<F> Exposition for F
where
    F: Fn(Option<&str>) -> (&'static str, String) + Clone + Send + Sync + 'static,
{
    fn encode(&self, accept: Option<&str>) -> (&'static str, String) {
        self(accept)
    }
}

/// The answer to `GET /metrics` with `headers`: 200 and the metrics, in the format the
/// scraper asks for.
pub fn response(headers: &HeaderMap, metrics: &impl Exposition) -> Response<Full<Bytes>> {
    let accept = headers.get(ACCEPT).and_then(|value| value.to_str().ok());
    let (content_type, body) = metrics.encode(accept);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Serves `GET /metrics` in plaintext HTTP/1.1 on `listener` until `shutdown` completes.
///
/// Anything else is 404. Connections are not drained on shutdown: a scrape is cheap to
/// repeat.
pub async fn serve(
    listener: TcpListener,
    metrics: impl Exposition,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // Without a timer hyper silently ignores the header timeout (a slowloris guard).
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(5));
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = crate::listener::accept(&listener) => accepted,
            () = &mut shutdown => return,
        };
        let metrics = metrics.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let metrics = metrics.clone();
            async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
}

fn answer(request: &Request<Incoming>, metrics: &impl Exposition) -> Response<Full<Bytes>> {
    if request.uri().path() == "/metrics" {
        return response(request.headers(), metrics);
    }
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"Not found: metrics are at /metrics.\n",
    )));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
