//! Each call's deadline, as its client sent it in `grpc-timeout`: a call still running when
//! it passes is answered `DEADLINE_EXCEEDED` (the gRPC specification's code; tonic's own
//! layer, which this replaces with the rest of tonic's `Server` on the TLS port, answered
//! `CANCELLED` "Timeout expired"), and its handler is dropped, so that no work goes on for a
//! client that has given up.
//!
//! A malformed `grpc-timeout` is refused with `INTERNAL` "malformed grpc-timeout", as
//! grpc-go refuses it: a deadline that cannot be read is not silently dropped.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};
use std::time::Duration;

use ecommerce::GRPC_TIMEOUT;
use futures_util::FutureExt;
use futures_util::future::{Either, Map};
use tokio::time::Timeout;
use tokio::time::error::Elapsed;
use tonic::body::Body;
use tower::{Layer, Service};

/// Enforces each call's `grpc-timeout` on the service it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
}

/// A call's answer.
type Answer = Result<http::Response<Body>, Infallible>;

/// A call with a deadline: its answer, or `DEADLINE_EXCEEDED` ([`or_deadline_exceeded`]).
/// Named types rather than a boxed future, so that the layers outside keep the call in one
/// allocation.
type Timed<F> = Map<Timeout<F>, fn(Result<Answer, Elapsed>) -> Answer>;

impl<S> Service<http::Request<Body>> for Deadline<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Either<Timed<S::Future>, Ready<Answer>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let timeout = match request.headers().get(GRPC_TIMEOUT) {
            None => return Either::Left(self.inner.call(request)),
            Some(value) => match parse_timeout(value.as_bytes()) {
                Some(timeout) => timeout,
                None => {
                    let status = tonic::Status::internal(format!(
                        "malformed grpc-timeout: {:?} (1 to 8 digits and a unit: H, M, S, m, u or n)",
                        String::from_utf8_lossy(value.as_bytes())
                    ));
                    return Either::Right(Either::Right(ready(Ok(status.into_http()))));
                }
            },
        };
        let call = tokio::time::timeout(timeout, self.inner.call(request));
        Either::Right(Either::Left(call.map(or_deadline_exceeded)))
    }
}

/// The answer, or `DEADLINE_EXCEEDED` if the deadline came first.
fn or_deadline_exceeded(timed: Result<Answer, Elapsed>) -> Answer {
    timed.unwrap_or_else(|_elapsed| {
        Ok(tonic::Status::deadline_exceeded(
            "the call's deadline (grpc-timeout) passed before it was answered",
        )
        .into_http())
    })
}

/// A `grpc-timeout` value: 1 to 8 ASCII digits and a unit (`H`ours, `M`inutes, `S`econds,
/// `m`illiseconds, `u`: microseconds, `n`anoseconds), as the gRPC specification writes it.
fn parse_timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |amount, digit| amount * 10 + u64::from(digit - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{Deadline, parse_timeout};
    use std::convert::Infallible;
    use std::time::Duration;
    use tonic::body::Body;
    use tower::{Service, ServiceExt};

    #[tokio::test]
    async fn a_call_still_running_at_its_deadline_is_deadline_exceeded() {
        let never = tower::service_fn(|_request: http::Request<Body>| {
            std::future::pending::<Result<http::Response<Body>, Infallible>>()
        });
        let mut deadline = Deadline { inner: never };
        let request = http::Request::builder()
            .header("grpc-timeout", "20m")
            .body(Body::empty())
            .unwrap();
        let answer = deadline.ready().await.unwrap().call(request).await.unwrap();
        let status = tonic::Status::from_header_map(answer.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    }

    #[test]
    fn every_unit_of_the_specification_is_read() {
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_timeout(b"3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_timeout(b"4S"), Some(Duration::from_secs(4)));
        assert_eq!(parse_timeout(b"299m"), Some(Duration::from_millis(299)));
        assert_eq!(parse_timeout(b"300000u"), Some(Duration::from_millis(300)));
        assert_eq!(parse_timeout(b"5n"), Some(Duration::from_nanos(5)));
        assert_eq!(parse_timeout(b"0m"), Some(Duration::ZERO));
        assert_eq!(
            parse_timeout(b"99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
    }

    #[test]
    fn anything_else_is_malformed() {
        for bad in [
            &b""[..],
            b"m",
            b"10",
            b"10s",
            b"10x",
            b"-1m",
            b"1.5S",
            b" 1m",
            b"123456789m",
            b"\xffm",
        ] {
            assert_eq!(
                parse_timeout(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
