//! What the catalog sells and to whom: its products and customers.
//!
//! The demo's three products and two customers are embedded (`data/default.json`), so the
//! service runs with no files. `--data FILE` replaces them with a file of the same shape:
//!
//! ```json
//! { "products":  [ { "id": 1, "slug": "iphone-x", "description": "…", "price_in_cents": 99999 } ],
//!   "customers": [ { "id": 1, "first_name": "John", "last_name": "Snow" } ] }
//! ```
//!
//! The file is checked at start-up, so that a mistake stops the service with a message
//! instead of surfacing in some later response: unknown fields (a typo), duplicate ids, and
//! negative prices are errors. Products are served in the file's order.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A product as the catalog knows it, before any discount.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Unique within the catalog.
    pub id: i32,
    /// URL-friendly name.
    pub slug: String,
    /// Free text.
    pub description: String,
    /// The undiscounted price, never negative.
    pub price_in_cents: i32,
}

/// A customer's id, as clients send it in `X-USER-ID`: any 32-bit integer, known to the
/// catalog or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerId(pub i32);

/// A customer the discount service may know.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// What clients send in `X-USER-ID`.
    pub id: i32,
    /// Sent along to the discount service.
    pub first_name: String,
    /// Sent along to the discount service.
    pub last_name: String,
}

/// The catalog's content: products in the order they are listed, and the known customers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    products: Vec<Product>,
    customers: Vec<Customer>,
}

/// Why a data file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read the catalog data file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON of the expected shape (serde says where).
    #[error("the catalog data file {path} is not valid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line, column and what was expected.
        source: serde_json::Error,
    },
    /// The JSON parsed but breaks a rule of the catalog.
    #[error("the catalog data file {path} is not valid: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which rule, and which entry.
        problem: String,
    },
}

impl Catalog {
    /// The demo's built-in products and customers.
    pub fn embedded() -> Self {
        const DEFAULT: &str = include_str!("../data/default.json");
        // The embedded file is checked by a unit test, so this cannot fail in a build that
        // passed its tests; still, a broken build should not panic at the user: fall back to
        // an empty catalog and say so loudly.
        Self::parse(DEFAULT, Path::new("(embedded default)")).unwrap_or_else(|error| {
            tracing::error!(%error, "the embedded catalog is invalid; serving an empty one");
            Catalog {
                products: Vec::new(),
                customers: Vec::new(),
            }
        })
    }

    /// Reads and checks a data file (see the module docs for its shape).
    pub fn from_file(path: &Path) -> Result<Self, DataError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self, DataError> {
        let catalog: Catalog = serde_json::from_str(text).map_err(|source| DataError::Parse {
            path: path.to_owned(),
            source,
        })?;
        catalog.check().map_err(|problem| DataError::Invalid {
            path: path.to_owned(),
            problem,
        })?;
        Ok(catalog)
    }

    fn check(&self) -> Result<(), String> {
        let mut product_ids = HashSet::new();
        for product in &self.products {
            if !product_ids.insert(product.id) {
                return Err(format!("product id {} appears twice", product.id));
            }
            if product.price_in_cents < 0 {
                return Err(format!("product {} has a negative price", product.id));
            }
        }
        let mut customer_ids = HashSet::new();
        for customer in &self.customers {
            if !customer_ids.insert(customer.id) {
                return Err(format!("customer id {} appears twice", customer.id));
            }
        }
        Ok(())
    }

    /// The products, in catalog order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The customer with this id, if the catalog knows one.
    pub fn customer(&self, id: CustomerId) -> Option<&Customer> {
        // Linear: the demo has two customers. A real catalog would ask a customer service.
        self.customers.iter().find(|customer| customer.id == id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_is_the_demo_data() {
        let catalog = Catalog::parse(include_str!("../data/default.json"), Path::new("x"))
            .expect("the embedded data is valid");
        assert_eq!(catalog, Catalog::embedded());
        let slugs: Vec<_> = catalog.products().iter().map(|p| p.slug.as_str()).collect();
        assert_eq!(
            slugs,
            ["iphone-x", "notebook-avell-g1511", "playstation-4-slim"]
        );
        assert_eq!(catalog.customer(CustomerId(1)).unwrap().first_name, "John");
        assert_eq!(
            catalog.customer(CustomerId(2)).unwrap().last_name,
            "Targaryen"
        );
        assert!(catalog.customer(CustomerId(3)).is_none());
    }

    fn problem(json: &str) -> String {
        Catalog::parse(json, Path::new("data.json"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn broken_files_are_refused_with_the_reason() {
        let product = r#"{"id":1,"slug":"a","description":"b","price_in_cents":5}"#;
        assert!(problem("{").contains("data.json is not valid"));
        assert!(
            problem(&format!(
                r#"{{"products":[{product},{product}],"customers":[]}}"#
            ))
            .contains("product id 1 appears twice")
        );
        assert!(problem(r#"{"products":[{"id":1,"slug":"a","description":"b","price_in_cents":-5}],"customers":[]}"#)
            .contains("negative price"));
        assert!(
            problem(r#"{"products":[],"customers":[],"extra":1}"#)
                .contains("data.json is not valid")
        );
        assert!(problem(r#"{"products":[{"id":1,"slug":"a","description":"b","price_in_cents":3000000000}],"customers":[]}"#)
            .contains("data.json is not valid"));
    }

    #[test]
    fn a_missing_file_names_the_file() {
        let err = Catalog::from_file(Path::new("/nonexistent/catalog.json")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/catalog.json"),
            "{err}"
        );
    }
}
