//! The `ecommerce.Discount` gRPC service: request checks around [`crate::pricing`].

use ecommerce::pb::discount_server::Discount;
use std::future::Future;
use std::pin::Pin;

use ecommerce::pb::{DiscountRequest, DiscountResponse, Product};
use tonic::{Request, Response, Status};

use crate::faults::{Call, Faults};
use crate::{pricing, trace};

/// Implements `ecommerce.Discount`. Every answer follows from the request, unless a fault
/// flag ([`crate::faults`]) fails, delays or holds it (off by default).
#[derive(Debug, Default, Clone)]
pub struct DiscountService {
    faults: Faults,
}

impl DiscountService {
    /// The service, with the faults its flags call for.
    pub fn new(faults: Faults) -> Self {
        Self { faults }
    }
}

#[tonic::async_trait]
impl Discount for DiscountService {
    /// Applies the discount rule to the request's product.
    ///
    /// A request without a product cannot be answered and is `INVALID_ARGUMENT`. A request
    /// without a customer is well-formed: nobody to discount, so no discount.
    ///
    /// It runs in the call's server span ([`crate::trace::server_span`]), and records the
    /// request's fields and the rule's outcome on it.
    async fn apply_discount(
        &self,
        request: Request<DiscountRequest>,
    ) -> Result<Response<DiscountResponse>, Status> {
        let span = tracing::Span::current();
        // Set by the catalog from its client's X-Request-ID, to follow a request across
        // both services' logs. `to_str` only accepts visible ASCII.
        if let Some(id) = request
            .metadata()
            .as_ref()
            .get(ecommerce::REQUEST_ID)
            .and_then(|value| value.to_str().ok())
            .filter(|id| id.len() <= ecommerce::MAX_REQUEST_ID_LEN)
        {
            span.record("request_id", id);
        }
        let DiscountRequest { customer, product } = request.into_inner();
        let customer_id = customer.map(|customer| customer.id);
        if let Some(id) = customer_id {
            span.record("customer_id", id);
        }
        let Some(product) = product else {
            tracing::info!("rejected: the request has no product");
            return Err(Status::invalid_argument(
                "DiscountRequest.product is required: there is nothing to discount",
            ));
        };
        span.record("product_id", product.id);
        if self.faults.armed() {
            // Nothing of this call lives across the wait but the boxed future: with every
            // flag off, the call's own future is as it was without faults (BENCHMARKS.md,
            // "Fault flags").
            return self.faulted(customer_id, product).await;
        }
        Ok(answer(customer_id, product))
    }
}

impl DiscountService {
    /// The faults the flags ask for, then the answer (if they let one through).
    fn faulted(
        &self,
        customer_id: Option<i32>,
        product: Product,
    ) -> Pin<Box<dyn Future<Output = Result<Response<DiscountResponse>, Status>> + Send + '_>> {
        Box::pin(async move {
            self.faults
                .apply(Call::Discount {
                    customer: customer_id,
                    product: product.id,
                })
                .await?;
            Ok(answer(customer_id, product))
        })
    }
}

/// The rule applied to `product`, recorded on the call's span and logged.
fn answer(customer_id: Option<i32>, product: Product) -> Response<DiscountResponse> {
    let product = pricing::apply(customer_id, product);
    let applied = product
        .discount_value
        .as_ref()
        .filter(|value| value.pct > 0.0);
    trace::discount_applied(applied.is_some());
    match applied {
        Some(value) => {
            tracing::info!(value_in_cents = value.value_in_cents, "discount applied");
        }
        None => tracing::info!("no discount"),
    }
    Response::new(DiscountResponse {
        product: Some(product),
    })
}

#[cfg(test)]
mod tests {
    use ecommerce::pb::DiscountRequest;
    use proptest::prelude::*;
    use prost::Message;

    use crate::pricing;

    proptest! {
        /// Whatever arrives on the wire: decoding either fails cleanly (tonic then answers
        /// with an error status) or gives a request the rule answers without panicking.
        #[test]
        fn random_bytes_never_panic_the_decoder_or_the_rule(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            if let Ok(request) = DiscountRequest::decode(&bytes[..])
                && let Some(product) = request.product
            {
                let price = product.price_in_cents;
                let priced = pricing::apply(request.customer.map(|c| c.id), product);
                prop_assert_eq!(priced.price_in_cents, price);
            }
        }
    }
}
