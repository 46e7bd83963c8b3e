//! What every request handler shares: the data, the discount service, the metrics,
//! admission control, and whether the catalog is shutting down.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::data::Catalog;
use crate::discounts::Discounts;
use crate::listing::Listing;
use crate::metrics::Metrics;
use crate::overload::admission::Admission;

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    /// The products and customers.
    pub catalog: Catalog,
    /// The fixed part of the products' JSON, made from `catalog` at start.
    pub listing: Listing,
    /// The shared connections to the discount service.
    pub discounts: Discounts,
    /// What is counted and measured.
    pub metrics: Metrics,
    /// Who may call discount now, and who waits.
    pub admission: Arc<Admission>,
    /// Set when shutdown starts: `/readyz` turns 503.
    pub draining: AtomicBool,
}
