//! What a server's calls and the task that follows its flags share: the armed flags, the
//! OpenFeature client, and each call's evaluation context.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use open_feature::{Client, EvaluationContext};

use super::flags::{self, Armed};
use crate::metrics::Metrics;

/// A call, as the flags' targeting sees it.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    /// `ecommerce.Discount/ApplyDiscount`.
    Discount {
        /// The customer's id, when the request names one.
        customer: Option<i32>,
        /// The product's id.
        product: i32,
    },
    /// A health check on the TLS port.
    Health,
}

/// What the server's calls and the task that follows the flags share.
pub(super) struct Shared {
    /// The provider's name in OpenFeature's registry: one per server.
    pub(super) name: String,
    /// This replica's name, for the targeting.
    pub(super) replica: String,
    /// The flags a call must evaluate ([`Armed`]'s byte).
    pub(super) armed: AtomicU8,
    /// Set once the provider has started.
    pub(super) client: OnceLock<Client>,
    /// Calls evaluated so far: the targeting key's count.
    pub(super) calls: AtomicU64,
    /// Where injected faults are counted.
    pub(super) metrics: Metrics,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.name)
            .field("replica", &self.replica)
            .field("armed", &self.armed)
            .field("started", &self.client.get().is_some())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Arms `armed`, and says so when that changed.
    pub(super) fn set_armed(&self, armed: Armed) {
        let before = Armed(self.armed.swap(armed.0, Ordering::Relaxed));
        if before != armed {
            let on: Vec<&str> = flags::ALL
                .iter()
                .filter(|flag| armed.has(**flag))
                .map(|flag| flag.key)
                .collect();
            tracing::info!(armed = ?on, "fault flags: flags that may be on for some calls");
        }
    }

    /// The evaluation context of `call` (see the parent module's docs).
    pub(super) fn context(&self, call: Call) -> EvaluationContext {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let context = EvaluationContext::default()
            .with_targeting_key(format!("{}/{n}", self.replica))
            .with_custom_field("replica", self.replica.as_str());
        match call {
            Call::Discount { customer, product } => {
                let context = context
                    .with_custom_field("call", "ApplyDiscount")
                    .with_custom_field("product", product);
                match customer {
                    Some(customer) => context.with_custom_field("customer", customer),
                    None => context,
                }
            }
            Call::Health => context.with_custom_field("call", "Check"),
        }
    }
}
