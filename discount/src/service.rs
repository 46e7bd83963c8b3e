//! The `ecommerce.Discount` gRPC service: request checks around [`crate::pricing`].

use ecommerce::pb::discount_server::Discount;
use ecommerce::pb::{DiscountRequest, DiscountResponse};
use tonic::{Request, Response, Status};

use crate::pricing;

/// Implements `ecommerce.Discount`. It holds no state: every answer follows from the request.
#[derive(Debug, Default, Clone)]
pub struct DiscountService;

#[tonic::async_trait]
impl Discount for DiscountService {
    /// Applies the discount rule to the request's product.
    ///
    /// A request without a product cannot be answered and is `INVALID_ARGUMENT`. A request
    /// without a customer is well-formed: nobody to discount, so no discount.
    #[tracing::instrument(name = "apply_discount", skip_all, fields(customer_id, product_id))]
    async fn apply_discount(
        &self,
        request: Request<DiscountRequest>,
    ) -> Result<Response<DiscountResponse>, Status> {
        let DiscountRequest { customer, product } = request.into_inner();
        let customer_id = customer.map(|customer| customer.id);
        let span = tracing::Span::current();
        if let Some(id) = customer_id {
            span.record("customer_id", id);
        }
        let Some(product) = product else {
            tracing::debug!("rejected: no product");
            return Err(Status::invalid_argument(
                "DiscountRequest.product is required: there is nothing to discount",
            ));
        };
        span.record("product_id", product.id);

        let product = pricing::apply(customer_id, product);
        tracing::debug!(discount = ?product.discount_value, "answered");
        Ok(Response::new(DiscountResponse {
            product: Some(product),
        }))
    }
}
