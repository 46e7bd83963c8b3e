//! `GET /products`: every product, in catalog order, always, priced for the customer that
//! `X-USER-ID` names ([`crate::pricing`]).

use std::num::IntErrorKind;
use std::time::Instant;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::response::{Body, json_bytes, overloaded, text};
use crate::app::App;
use crate::data::CustomerId;
use crate::pricing::Pricer;
use crate::trace;

/// The header that names the customer, as with the old Go catalog.
pub const USER_ID_HEADER: &str = "x-user-id";

/// The response header that tells how far discounts could be applied (the body is the
/// same contract either way): a [`crate::discounts::DiscountStatus`] name.
pub const DISCOUNT_STATUS_HEADER: &str = "x-discount-status";

/// The same, as a header name made at compile time (not parsed on every answer).
const DISCOUNT_STATUS: HeaderName = HeaderName::from_static(DISCOUNT_STATUS_HEADER);

/// `GET /products`: every product, in catalog order, always.
///
/// Without `X-USER-ID` (or with an empty one), and for ids the catalog does not know, the
/// products come without discounts and discount is not called. For a known customer each
/// product is priced by the discount service; a product whose call fails in any way is
/// served at its full price, without `discount_value`, and the response is still 200.
/// [`DISCOUNT_STATUS_HEADER`] says which of these happened.
///
/// A priced request first waits for admission; one that waited too long is answered
/// [`overloaded`], 503, without any discount call. Once admitted, its discounts are
/// asked for under a deadline that starts then.
pub(super) async fn products(
    app: &App,
    headers: &HeaderMap,
    request_id: &str,
    arrived: Instant,
) -> Response<Body> {
    let customer_id = match customer_id(headers) {
        Ok(id) => id,
        Err(error) => return text(StatusCode::BAD_REQUEST, error.message()),
    };
    let products = app.catalog.products();
    let customer = customer_id.and_then(|id| app.catalog.customer(id));
    let pricer = Pricer {
        discounts: &app.discounts,
        admission: &app.admission,
        metrics: &app.metrics,
    };
    let Ok(prices) = pricer.price(customer, products, request_id, arrived).await else {
        return overloaded();
    };
    let mut response = json_bytes(app.listing.body(&prices.discounts));
    response.headers_mut().insert(
        DISCOUNT_STATUS,
        HeaderValue::from_static(prices.status.name()),
    );
    app.metrics.discounts.products_answered(prices.status);
    trace::current().set_attribute("ecommerce.discount.status", prices.status.name());
    if prices.admitted {
        app.metrics
            .admission
            .admitted_request_done(arrived.elapsed());
    }
    response
}

/// Why `X-USER-ID` was refused: each is a 400 with its [`Self::message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum BadCustomerId {
    /// Not a decimal integer (or not visible ASCII).
    NotANumber,
    /// An integer outside the 32-bit range.
    OutOfRange,
    /// The header came more than once.
    Repeated,
}

impl BadCustomerId {
    /// The body of the 400.
    pub fn message(self) -> &'static str {
        match self {
            Self::NotANumber => "Customer ID is not a number.",
            Self::OutOfRange => "Customer ID is out of range (it must fit in 32 bits).",
            Self::Repeated => "X-USER-ID must be given once.",
        }
    }
}

/// Reads `X-USER-ID`: `Ok(None)` when it is absent or blank, a [`BadCustomerId`] (a 400)
/// when it is not one customer id. The rules, all deterministic:
///
/// - surrounding spaces and tabs are ignored;
/// - the rest must be a decimal integer in the `i32` range, as Rust's `i32::from_str` reads
///   it: an optional sign, then digits (`+1`, `01` and `-5` are numbers; `1.0`, `0x1`,
///   `1e3` and `１` are not);
/// - a header given more than once is refused rather than one copy chosen silently;
/// - bytes that are not visible ASCII cannot be a number and are refused.
pub fn customer_id(headers: &HeaderMap) -> Result<Option<CustomerId>, BadCustomerId> {
    let mut values = headers.get_all(USER_ID_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BadCustomerId::Repeated);
    }
    let value = value
        .to_str()
        .map_err(|_| BadCustomerId::NotANumber)?
        .trim_matches([' ', '\t']);
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<i32>() {
        Ok(id) => Ok(Some(CustomerId(id))),
        Err(e) => Err(match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => BadCustomerId::OutOfRange,
            _ => BadCustomerId::NotANumber,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id_of(values: &[&[u8]]) -> Result<Option<i32>, &'static str> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(USER_ID_HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        customer_id(&headers)
            .map(|id| id.map(|CustomerId(id)| id))
            .map_err(BadCustomerId::message)
    }

    #[test]
    fn user_id_forms_have_fixed_answers() {
        assert_eq!(id_of(&[]), Ok(None));
        assert_eq!(id_of(&[b""]), Ok(None));
        assert_eq!(id_of(&[b"   "]), Ok(None));
        assert_eq!(id_of(&[b"1"]), Ok(Some(1)));
        assert_eq!(id_of(&[b" 1\t"]), Ok(Some(1)));
        assert_eq!(id_of(&[b"+1"]), Ok(Some(1)));
        assert_eq!(id_of(&[b"01"]), Ok(Some(1)));
        assert_eq!(id_of(&[b"-7"]), Ok(Some(-7)));
        assert_eq!(id_of(&[b"2147483647"]), Ok(Some(i32::MAX)));
        assert_eq!(id_of(&[b"-2147483648"]), Ok(Some(i32::MIN)));
        for not_a_number in [&b"1.0"[..], b"0x1", b"1e3", b"abc", b"1 2", b"\xef\xbc\x91"] {
            assert_eq!(id_of(&[not_a_number]), Err("Customer ID is not a number."));
        }
        assert!(
            id_of(&[b"2147483648"])
                .unwrap_err()
                .contains("out of range")
        );
        assert!(
            id_of(&[b"-99999999999999999999"])
                .unwrap_err()
                .contains("out of range")
        );
        assert!(id_of(&[b"1", b"1"]).unwrap_err().contains("once"));
    }

    proptest! {
        /// Any header-legal bytes: never a panic, and a customer id exactly when the trimmed
        /// text is an `i32` as Rust reads it.
        #[test]
        fn any_user_id_bytes_get_a_fixed_answer(value in proptest::collection::vec(
            any::<u8>().prop_filter("header-legal", |b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f)),
            0..32,
        )) {
            let answer = id_of(&[value.as_slice()]);
            let text = std::str::from_utf8(&value).ok().map(|t| t.trim_matches([' ', '\t']));
            match (text, answer) {
                (Some(""), Ok(None)) => {}
                (Some(t), Ok(Some(id))) => prop_assert_eq!(t.parse::<i32>(), Ok(id)),
                (_, Err(_)) => prop_assert!(text.is_none_or(|t| t.parse::<i32>().is_err())),
                (text, answer) => prop_assert!(false, "{text:?} gave {answer:?}"),
            }
        }
    }
}
