//! Pricing a customer's products, free of HTTP: admission first, then one discount call per
//! product, and a price list that serves every product whatever became of its call.
//!
//! A product whose call fails in any way is served at its full price, without a discount;
//! [`DiscountStatus`] says how far discounts could be applied. A request that waited too
//! long for admission is not priced at all ([`Shed`]): the caller answers it 503.

use std::sync::Arc;
use std::time::Instant;

use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::data::{Customer, Product};
use crate::discounts::{
    CallError, CallResult, Discount, DiscountStatus, Discounts, MAX_CALLS_IN_FLIGHT,
};
use crate::metrics::Metrics;
use crate::overload::admission::{Admission, Shed};
use crate::trace;

/// What pricing needs: the discount service, admission control, and what to count.
#[derive(Debug, Clone, Copy)]
pub struct Pricer<'a> {
    /// The discount service.
    pub discounts: &'a Discounts,
    /// Who may call discount now, and who waits.
    pub admission: &'a Arc<Admission>,
    /// What is counted and measured.
    pub metrics: &'a Metrics,
}

/// The prices of a request's products.
#[derive(Debug)]
pub struct PriceList {
    /// One discount (or none) per product, in catalog order.
    pub discounts: Vec<Option<Discount>>,
    /// How far discounts could be applied.
    pub status: DiscountStatus,
    /// Whether the request went through admission (to time it as an admitted request).
    pub admitted: bool,
}

impl Pricer<'_> {
    /// The discounts of `products` for `customer` (none for an unknown or absent customer,
    /// without calling discount). A known customer's request waits for admission, and its
    /// calls run under a deadline that starts once it is admitted. `arrived` is when the
    /// request came, to time a shed one.
    pub async fn price(
        &self,
        customer: Option<&Customer>,
        products: &[Product],
        request_id: &str,
        arrived: Instant,
    ) -> Result<PriceList, Shed> {
        let span = trace::current();
        span.set_attribute("ecommerce.customer.known", customer.is_some());
        let Some(customer) = customer else {
            return Ok(PriceList {
                discounts: vec![None; products.len()],
                status: DiscountStatus::Skipped,
                admitted: false,
            });
        };
        span.set_attribute("ecommerce.customer.id", i64::from(customer.id));

        // Admission bounds discount calls. With no replica accepting calls there will be
        // none: every product falls back at once, and waiting for a turn would only make
        // the fallback slower.
        let ticket = if self.discounts.any_replica_accepting() {
            let weight = products.len().min(MAX_CALLS_IN_FLIGHT);
            match self.admission.admit(weight).await {
                Ok(ticket) => {
                    self.metrics.admission.admitted(ticket.waited);
                    span.set_attribute(
                        "ecommerce.admission.wait_ms",
                        ticket.waited.as_secs_f64() * 1000.0,
                    );
                    Some(ticket)
                }
                Err(reason) => {
                    self.metrics.admission.shed(reason, arrived.elapsed());
                    span.set_attribute("ecommerce.admission.shed", reason.reason());
                    return Err(reason);
                }
            }
        } else {
            None
        };
        let results = self
            .discounts
            .price_all(customer, products, request_id)
            .await;
        let admitted = ticket.is_some();
        if let Some(ticket) = ticket {
            ticket.finish();
        }
        for result in &results {
            self.metrics.discounts.discount_call(result);
        }
        let status = DiscountStatus::of(&results);
        log_failures(customer.id, &results);
        record_failures(&span, &results);
        Ok(PriceList {
            discounts: results.into_iter().map(Result::unwrap_or_default).collect(),
            status,
            admitted,
        })
    }
}

/// The failures of a request's discount calls, on its span: how many products fell back,
/// and why the first did (a call that never started, such as one refused by open
/// breakers, has no client span of its own to say it).
fn record_failures(span: &tracing::Span, results: &[CallResult]) {
    let mut failures = results.iter().filter_map(|r| r.as_ref().err());
    if let Some(first) = failures.next() {
        span.set_attribute("ecommerce.discount.fallbacks", 1 + failures.count() as i64);
        span.set_attribute("ecommerce.discount.first_error", first.outcome());
    }
}

/// One line per request with failures. Requests refused by an open circuit, and timeouts
/// the catalog's own overload caused, are logged at debug only: the breaker already logged
/// why it opened, admission control logs its shedding, and a line per request during an
/// outage or an overload would flood the logs (and add to the overload).
fn log_failures(customer_id: i32, results: &[CallResult]) {
    let failures = || results.iter().filter_map(|r| r.as_ref().err());
    let Some(first) = failures().find(|e| {
        !matches!(
            e,
            CallError::CircuitOpen | CallError::Timeout { local: true }
        )
    }) else {
        if let Some(first) = failures().next() {
            tracing::debug!(customer_id, error = %first, "serving full prices");
        }
        return;
    };
    tracing::warn!(
        customer_id,
        failed = failures().count(),
        of = results.len(),
        error = %first,
        "discount calls failed; serving those products at full price"
    );
}
