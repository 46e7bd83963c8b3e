//! The `GET /products` body, as bytes: each product's fixed fields serialised once, at
//! start, so that a request only writes its discounts.
//!
//! A product's id, slug, description and price never change while the catalog runs; only
//! `discount_value` depends on the request. Escaping and formatting those fields again for
//! every request was about 2% of the catalog's instructions per priced request
//! (BENCHMARKS.md, "Fewer instructions per request"). The bytes are exactly serde_json's
//! for the same list (a test holds them to it): the contract's field order, no spaces,
//! `discount_value` only when a discount applies, its `f32` printed by serde's typed path
//! (`0.1`, not `0.10000000149011612`).

use serde::Serialize;

use crate::data::Product;
use crate::discounts::Discount;

/// The fixed part of every product's JSON, in catalog order.
#[derive(Debug, Clone)]
pub struct Listing {
    /// Each product's object without its closing brace: `{"id":1,…,"price_in_cents":100`.
    openings: Vec<Vec<u8>>,
    /// The length of a body without discounts, to allocate once per request.
    plain_len: usize,
}

/// What a discount adds to its product's object.
const DISCOUNT_KEY: &[u8] = b",\"discount_value\":";

/// The most a discount's value adds: `{"pct":` an `f32`, `,"value_in_cents":` an `i32`, `}`.
const DISCOUNT_MAX_LEN: usize = DISCOUNT_KEY.len() + 8 + 16 + 19 + 11 + 1;

/// A product as the JSON contract shows it. Field order is the contract's.
#[derive(Serialize)]
struct ProductJson<'a> {
    id: i32,
    slug: &'a str,
    description: &'a str,
    price_in_cents: i32,
    /// Present only when a discount applies. Serialised from the `f32` through serde's
    /// typed path, which prints `0.1`; a `serde_json::Value` would widen it to
    /// `0.10000000149011612`.
    #[serde(skip_serializing_if = "Option::is_none")]
    discount_value: Option<Discount>,
}

impl<'a> ProductJson<'a> {
    fn new(product: &'a Product, discount_value: Option<Discount>) -> Self {
        Self {
            id: product.id,
            slug: &product.slug,
            description: &product.description,
            price_in_cents: product.price_in_cents,
            discount_value,
        }
    }
}

impl Listing {
    /// The fixed parts of `products`' JSON.
    pub fn new(products: &[Product]) -> Self {
        let openings: Vec<Vec<u8>> = products
            .iter()
            .map(|product| {
                let mut object = to_json(&ProductJson::new(product, None));
                // Reopened: a discount may follow.
                object.pop();
                object
            })
            .collect();
        let plain_len = 2 + openings
            .iter()
            .map(|opening| opening.len() + 2)
            .sum::<usize>();
        Self {
            openings,
            plain_len,
        }
    }

    /// The body for these discounts, one per product in catalog order (missing ones count
    /// as none).
    pub fn body(&self, discounts: &[Option<Discount>]) -> Vec<u8> {
        let with_discount = discounts.iter().flatten().count();
        let mut body = Vec::with_capacity(self.plain_len + with_discount * DISCOUNT_MAX_LEN);
        body.push(b'[');
        for (i, opening) in self.openings.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(opening);
            if let Some(Some(discount)) = discounts.get(i) {
                body.extend_from_slice(DISCOUNT_KEY);
                // Two numbers into a Vec: this cannot fail (a non-finite `f32` is `null`).
                let _ = serde_json::to_writer(&mut body, discount);
            }
            body.push(b'}');
        }
        body.push(b']');
        body
    }
}

/// serde_json's bytes for `value`: plain structs of numbers and strings, which always
/// serialise (an error would be a bug in serde_json, and is answered with `null`).
fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn product(id: i32, slug: String, description: String, price_in_cents: i32) -> Product {
        Product {
            id,
            slug,
            description,
            price_in_cents,
        }
    }

    proptest! {
        /// Any products (quotes, backslashes, control characters, any Unicode) and any
        /// discounts: the same bytes as serde_json for the whole list.
        #[test]
        fn the_body_is_serde_jsons_byte_for_byte(
            products in proptest::collection::vec(
                (any::<i32>(), any::<String>(), any::<String>(), any::<i32>()),
                0..6,
            ),
            discounts in proptest::collection::vec(
                proptest::option::of((any::<f32>(), any::<i32>())),
                0..6,
            ),
        ) {
            let products: Vec<Product> = products
                .into_iter()
                .map(|(id, slug, description, price)| product(id, slug, description, price))
                .collect();
            let discounts: Vec<Option<Discount>> = discounts
                .into_iter()
                .map(|d| d.map(|(pct, value_in_cents)| Discount { pct, value_in_cents }))
                .collect();
            let expected: Vec<ProductJson> = products
                .iter()
                .enumerate()
                .map(|(i, p)| ProductJson::new(p, discounts.get(i).copied().flatten()))
                .collect();
            let body = Listing::new(&products).body(&discounts);
            prop_assert_eq!(
                String::from_utf8(body).unwrap(),
                String::from_utf8(serde_json::to_vec(&expected).unwrap()).unwrap()
            );
        }
    }

    #[test]
    fn the_contracts_shape() {
        let products = [product(1, "a".into(), "say \"hi\"".into(), 100)];
        let listing = Listing::new(&products);
        assert_eq!(
            String::from_utf8(listing.body(&[None])).unwrap(),
            r#"[{"id":1,"slug":"a","description":"say \"hi\"","price_in_cents":100}]"#
        );
        let discount = Discount {
            pct: 0.1,
            value_in_cents: 90,
        };
        assert_eq!(
            String::from_utf8(listing.body(&[Some(discount)])).unwrap(),
            r#"[{"id":1,"slug":"a","description":"say \"hi\"","price_in_cents":100,"discount_value":{"pct":0.1,"value_in_cents":90}}]"#
        );
        assert_eq!(Listing::new(&[]).body(&[]), b"[]");
    }
}
