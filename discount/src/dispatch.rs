//! The discount calls' short way to their service, past tonic's router.
//!
//! tonic's router is an axum router: for each call it matches the path, stores URL
//! parameters nobody reads and boxes a future or two before the service sees the call:
//! about 6% of the instructions discount spends on a call (BENCHMARKS.md, "Fewer
//! instructions per request"). The port serves one busy method; the others (health,
//! reflection) are probes and tools. So [`DirectLayer`], the innermost layer, hands every
//! call under `/ecommerce.Discount/` to the discount service itself, as the router would
//! (an unknown method of it is `UNIMPLEMENTED` from the service, as before), and everything
//! else on to the router. The layers outside it (observing, the size limit's status) see
//! both alike.
//!
//! Health checks pass the fault flags here ([`crate::faults`]): a replica told to hang
//! does not answer them either, as a replica that stopped would not.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use ecommerce::pb::discount_server::{DiscountServer, SERVICE_NAME};
use futures_util::future::Either;
use tonic::body::Body;
use tower::{Layer, Service};

use crate::faults::{Call, Faults};
use crate::service::DiscountService;

/// The health service's paths start with this.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// Sends the discount service's calls to it directly, the rest to the router it wraps.
#[derive(Debug, Clone)]
pub struct DirectLayer {
    discount: DiscountServer<DiscountService>,
    faults: Faults,
}

impl DirectLayer {
    /// A layer that answers the discount service's calls with `discount`, and holds
    /// health checks when `faults` say so.
    pub fn new(discount: DiscountServer<DiscountService>, faults: Faults) -> Self {
        Self { discount, faults }
    }
}

impl<S> Layer<S> for DirectLayer {
    type Service = Direct<S>;

    fn layer(&self, router: S) -> Self::Service {
        Direct {
            discount: self.discount.clone(),
            faults: self.faults.clone(),
            router,
        }
    }
}

/// The service [`DirectLayer`] makes.
#[derive(Debug, Clone)]
pub struct Direct<S> {
    discount: DiscountServer<DiscountService>,
    faults: Faults,
    router: S,
}

/// Whether `path` names a method of the discount service: `/ecommerce.Discount/…`.
fn is_discount_call(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|path| path.strip_prefix(SERVICE_NAME))
        .is_some_and(|rest| rest.starts_with('/'))
}

impl<S> Service<http::Request<Body>> for Direct<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    /// The router's future boxed: it is large, and it would make every discount call's
    /// future as large (moved by value through the layers outside). Boxed behind `dyn`
    /// to hold a health check that a fault flag hangs.
    type Future = Either<
        <DiscountServer<DiscountService> as Service<http::Request<Body>>>::Future,
        Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>,
    >;

    /// Ready when the router is: the discount service always is.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.router.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if is_discount_call(request.uri().path()) {
            Either::Left(self.discount.call(request))
        } else {
            let held = self.faults.armed() && request.uri().path().starts_with(HEALTH_PREFIX);
            let answer = self.router.call(request);
            if !held {
                return Either::Right(Box::pin(answer));
            }
            let faults = self.faults.clone();
            Either::Right(Box::pin(async move {
                // Only the hang is evaluated for health checks (see `crate::faults`): it
                // never returns, and nothing else can.
                let _ = faults.apply(Call::Health).await;
                answer.await
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_discount_call;

    #[test]
    fn only_the_discount_services_paths_go_the_short_way() {
        assert!(is_discount_call("/ecommerce.Discount/ApplyDiscount"));
        assert!(is_discount_call("/ecommerce.Discount/NoSuchMethod"));
        for other in [
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/ecommerce.DiscountX/ApplyDiscount",
            "/ecommerce.Discount",
            "ecommerce.Discount/ApplyDiscount",
            "/",
        ] {
            assert!(!is_discount_call(other), "{other}");
        }
    }
}
