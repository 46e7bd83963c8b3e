//! One call to one replica: the request, its deadline, and what its outcome says.
//!
//! An [`Attempt`] owns all it needs, so that a call a hedge has overtaken can run on by
//! itself to its deadline ([`super::hedging`]'s `race`) and still tell its replica's
//! breaker how it ended. What counts against the replica is [`CallError::blames_replica`]'s
//! rule; a timeout is the catalog's own fault when [`LocalLoad`] says it was overloaded.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ecommerce::pb;
use ecommerce::telemetry::propagation;
use ecommerce::{GRPC_TIMEOUT, REQUEST_ID};
use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;
use tonic::Code;
use tracing::Instrument;

use super::context::CallContext;
use super::outcome::{CallError, CallResult, Discount, error_chain};
use super::replica::Replica;
use crate::overload::LocalLoad;
use crate::trace;

/// The product a call asks about: what its answer must be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AskedProduct {
    /// Its id: the answer must be about it.
    pub id: i32,
    /// Its full price: a discounted price must not be above it.
    pub price_in_cents: i32,
}

/// Why an attempt is made: the first of a product's calls, or an extra one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptKind {
    First,
    /// After the hedge delay, beside a slow first attempt.
    Hedge,
    /// After the first attempt was refused.
    Retry,
}

impl AttemptKind {
    fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Hedge => "hedge",
            Self::Retry => "retry",
        }
    }
}

/// One call to one replica, owning all it needs (so that a hedged-around call can finish
/// on its own). Its outcome goes to the replica's breaker, if the replica is to blame.
pub(crate) struct Attempt {
    pub replica: Arc<Replica>,
    pub kind: AttemptKind,
    pub message: pb::DiscountRequest,
    /// Sent as `x-request-id`, marked sensitive: see [`grpc_timeout`].
    pub request_id: Option<HeaderValue>,
    pub asked: AskedProduct,
    pub deadline: Instant,
    pub context: Arc<CallContext>,
}

impl Attempt {
    /// Makes the call, and reports its outcome to the replica's breaker if it is to blame.
    ///
    /// Its OpenTelemetry client span starts now, as a child of the caller's span (the
    /// request's), so that an attempt a hedge leaves running on its own stays in the trace;
    /// the span's context goes to discount in the call's metadata (`traceparent`).
    pub fn start(self) -> impl Future<Output = CallResult> + Send {
        let span = trace::attempt_span(self.replica.addr, self.kind.name(), self.asked.id);
        self.send(span.clone()).instrument(span)
    }

    async fn send(self, span: tracing::Span) -> CallResult {
        let time_left = self.deadline.saturating_duration_since(Instant::now());
        let mut request = tonic::Request::new(self.message);
        propagation::inject(&span, request.metadata_mut());
        // Straight into the header map, under names made at compile time: tonic's
        // metadata API parses a name given as text on every insert.
        let headers: &mut HeaderMap = request.metadata_mut().as_mut();
        // Sent as `grpc-timeout`, so the server can give up when we have.
        headers.insert(GRPC_TIMEOUT, grpc_timeout(time_left));
        if let Some(id) = self.request_id {
            headers.insert(REQUEST_ID, id);
        }
        // Our own timer as well: it also covers connecting and waiting for a stream.
        let mut grpc = self.replica.grpc();
        let load = &self.context.load;
        // Boxed: tonic's call is a large future, and the attempt's own would be as large,
        // moved (copied) each time a hedge or a `price_all` slot takes it in.
        let call = Box::pin(grpc.apply_discount(request));
        let (result, code) = match tokio::time::timeout_at(self.deadline, call).await {
            Err(_elapsed) => (
                Err(CallError::Timeout {
                    local: load.is_overloaded(),
                }),
                Code::DeadlineExceeded,
            ),
            Ok(Err(status)) => (Err(classify(&status, load)), status.code()),
            Ok(Ok(response)) => (interpret(self.asked, response.into_inner()), Code::Ok),
        };
        trace::attempt_ended(&span, code, result.as_ref().err().map(CallError::outcome));
        self.replica.tally.record(result.is_ok());
        let opened = match &result {
            Ok(_) => self.replica.breaker.record(true),
            Err(error) if error.blames_replica() => self.replica.breaker.record(false),
            Err(_) => false,
        };
        if opened {
            self.context
                .counters
                .breaker_openings
                .fetch_add(1, Ordering::Relaxed);
            self.replica.breaker_opened();
        }
        result
    }
}

/// `time_left` as `grpc-timeout` says it, in whole milliseconds, rounded down: the server
/// gives up at most a millisecond before the catalog does.
///
/// Not in microseconds, as tonic's `Request::set_timeout` writes it, for HPACK's sake. h2
/// adds every header value it has not sent yet to the connection's header table, and at
/// each header looks through the values already there under the same name. A value new
/// on every call (the time left to the microsecond, the request id) filled the table with
/// values never sent again, pushing out the headers that repeat, and made that look-through
/// some sixty comparisons per call: about 4% of the catalog's instructions (BENCHMARKS.md).
/// In milliseconds, the few values a deadline takes repeat, and are sent as an index into
/// the table; the request id, new on every request, is sent "never indexed" (sensitive),
/// outside the table. The server reads the same deadline, and every HTTP/2 implementation
/// takes both forms.
///
/// Written digit by digit: `format!` cost as much again as the rest of the header.
fn grpc_timeout(time_left: Duration) -> HeaderValue {
    // The gRPC specification allows at most eight digits.
    let mut millis =
        u32::try_from(time_left.as_millis()).map_or(99_999_999, |ms| ms.min(99_999_999));
    let mut text = [b'm'; 9];
    let mut start = text.len() - 1;
    loop {
        start -= 1;
        // A digit: `millis % 10` is below 10.
        text[start] = b'0' + (millis % 10) as u8;
        millis /= 10;
        if millis == 0 {
            break;
        }
    }
    HeaderValue::from_bytes(&text[start..]).unwrap_or(HeaderValue::from_static("0m"))
}

fn classify(status: &tonic::Status, load: &LocalLoad) -> CallError {
    match status.code() {
        Code::Cancelled | Code::DeadlineExceeded => CallError::Timeout {
            local: load.is_overloaded(),
        },
        Code::ResourceExhausted => CallError::Overloaded(status.message().to_owned()),
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

/// Checks an OK answer before believing it: it must be about the product we asked for
/// (`asked`), and a discount must be a fraction in (0, 1] with a price between 0 and the
/// full price.
fn interpret(asked: AskedProduct, response: pb::DiscountResponse) -> CallResult {
    let (asked_id, full_price) = (asked.id, asked.price_in_cents);
    let product = response
        .product
        .ok_or(CallError::BadAnswer("the answer has no product"))?;
    if product.id != asked_id {
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
    if !(0..=full_price).contains(&value.value_in_cents) {
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

    fn asked() -> AskedProduct {
        AskedProduct {
            id: 1,
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
    fn the_deadline_is_sent_in_whole_milliseconds_within_the_specifications_eight_digits() {
        assert_eq!(grpc_timeout(Duration::from_micros(299_999)), "299m");
        assert_eq!(grpc_timeout(Duration::from_millis(300)), "300m");
        assert_eq!(grpc_timeout(Duration::from_millis(10)), "10m");
        assert_eq!(grpc_timeout(Duration::from_millis(7)), "7m");
        assert_eq!(grpc_timeout(Duration::ZERO), "0m");
        assert_eq!(grpc_timeout(Duration::from_millis(12_345_678)), "12345678m");
        assert_eq!(grpc_timeout(Duration::from_secs(1_000_000)), "99999999m");
        assert_eq!(grpc_timeout(Duration::MAX), "99999999m");
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
            interpret(asked(), answer(1, value(0.1, 900))).unwrap(),
            Some(Discount {
                pct: 0.1,
                value_in_cents: 900
            })
        );
        assert_eq!(interpret(asked(), answer(1, None)).unwrap(), None);
        assert_eq!(interpret(asked(), answer(1, value(0.0, 0))).unwrap(), None);
        for bad in [
            answer(2, value(0.1, 900)),
            answer(1, value(-0.1, 900)),
            answer(1, value(f32::NAN, 900)),
            answer(1, value(0.1, 1001)),
            answer(1, value(0.1, -1)),
            pb::DiscountResponse { product: None },
        ] {
            assert!(matches!(
                interpret(asked(), bad),
                Err(CallError::BadAnswer(_))
            ));
        }
    }

    #[test]
    fn tonic_timeouts_are_timeouts_and_blame_the_replica_only_without_local_overload() {
        let quiet = LocalLoad::with_probe(crate::overload::lag::LagProbe::idle());
        for code in [Code::Cancelled, Code::DeadlineExceeded] {
            let status = tonic::Status::new(code, "Timeout expired");
            let error = classify(&status, &quiet);
            assert!(matches!(error, CallError::Timeout { local: false }));
            assert!(error.blames_replica());
            assert_eq!(error.outcome(), "timeout_remote");
        }
        let local = CallError::Timeout { local: true };
        assert!(!local.blames_replica());
        assert_eq!(local.outcome(), "timeout_local");

        let status = tonic::Status::invalid_argument("no product");
        assert!(matches!(
            classify(&status, &quiet),
            CallError::Status {
                code: Code::InvalidArgument,
                ..
            }
        ));
        let shedding = classify(&tonic::Status::resource_exhausted("busy"), &quiet);
        assert_eq!(shedding.outcome(), "overloaded");
        assert!(!shedding.blames_replica(), "shedding load is not a fault");
    }
}
