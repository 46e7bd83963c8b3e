//! The discount rule, kept apart from gRPC so it can be tested on its own.
//!
//! Customer 1 gets 10% off any product with a positive price. The discounted price is
//! computed exactly in decimal and truncated toward zero, as the old Python service did with
//! `int(Decimal(price) * ...)`: 99999 → 89999 (89999.1), 1 → 0 (0.9), 9 → 8 (8.1).
//! Everyone else, and any price of zero or below, gets the product back with an empty
//! `discount_value`, which is what the old service sent.

use ecommerce::pb::{DiscountValue, Product};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// The one customer the demo discounts.
pub const DISCOUNTED_CUSTOMER_ID: i32 = 1;

/// The discount as sent on the wire: the proto's `pct` is a 32-bit float.
pub const DISCOUNT_PCT: f32 = 0.1;

/// The same discount as an exact decimal (0.10), for the arithmetic.
const DISCOUNT_FRACTION: Decimal = Decimal::from_parts(10, 0, 0, false, 2);

/// `price_in_cents` less 10%, exact, truncated toward zero.
///
/// For any `i32` the result lies between 0 and the price, so it always fits in an `i32`.
pub fn discounted_price(price_in_cents: i32) -> i32 {
    let price = Decimal::from(price_in_cents);
    let discounted = (price - price * DISCOUNT_FRACTION).trunc();
    // Cannot fail (see above); keeping the full price is the harmless answer if it ever did.
    discounted.to_i32().unwrap_or(price_in_cents)
}

/// Applies the rule to `product` for the customer `customer_id` (`None`: no customer given).
///
/// Fields other than `discount_value` come back as they were sent. A `discount_value` the
/// client sent is replaced: the rule alone decides it.
pub fn apply(customer_id: Option<i32>, mut product: Product) -> Product {
    let eligible = customer_id == Some(DISCOUNTED_CUSTOMER_ID) && product.price_in_cents > 0;
    product.discount_value = Some(if eligible {
        DiscountValue {
            pct: DISCOUNT_PCT,
            value_in_cents: discounted_price(product.price_in_cents),
        }
    } else {
        DiscountValue::default()
    });
    product
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_prices() {
        for (price, expected) in [
            (99999, 89999),
            (150000, 135000),
            (32999, 29699),
            (1, 0),
            (9, 8),
            (10, 9),
            (2147483647, 1932735282),
        ] {
            assert_eq!(discounted_price(price), expected, "price {price}");
        }
    }

    fn product(price_in_cents: i32) -> Product {
        Product {
            id: 7,
            slug: "slug".into(),
            description: "description".into(),
            price_in_cents,
            discount_value: None,
        }
    }

    #[test]
    fn customer_one_gets_ten_percent_and_the_rest_is_echoed() {
        let priced = apply(Some(1), product(99999));
        let expected = Product {
            discount_value: Some(DiscountValue {
                pct: 0.1,
                value_in_cents: 89999,
            }),
            ..product(99999)
        };
        assert_eq!(priced, expected);
    }

    #[test]
    fn no_discount_is_an_empty_discount_value() {
        for (customer, price) in [(Some(2), 99999), (None, 99999), (Some(1), 0), (Some(1), -5)] {
            let priced = apply(customer, product(price));
            assert_eq!(
                priced.discount_value,
                Some(DiscountValue::default()),
                "customer {customer:?}, price {price}"
            );
            assert_eq!(priced.price_in_cents, price);
        }
    }

    #[test]
    fn a_discount_value_sent_by_the_client_is_overwritten() {
        let mut sent = product(1000);
        sent.discount_value = Some(DiscountValue {
            pct: 0.9,
            value_in_cents: 1,
        });
        assert_eq!(
            apply(Some(2), sent.clone()).discount_value,
            Some(DiscountValue::default())
        );
        assert_eq!(
            apply(Some(1), sent).discount_value.unwrap().value_in_cents,
            900
        );
    }

    proptest! {
        /// Integer arithmetic is the oracle: 90% of the price, and `/` on i64 truncates
        /// toward zero, as the decimal path must.
        #[test]
        fn matches_integer_arithmetic_over_all_of_i32(price in any::<i32>()) {
            prop_assert_eq!(i64::from(discounted_price(price)), i64::from(price) * 9 / 10);
        }

        #[test]
        fn only_customer_one_with_a_positive_price_is_discounted(
            customer in proptest::option::of(any::<i32>()),
            price in any::<i32>(),
        ) {
            let priced = apply(customer, product(price));
            let discount = priced.discount_value.unwrap();
            if customer == Some(1) && price > 0 {
                prop_assert_eq!(discount.pct, 0.1f32);
                prop_assert!(discount.value_in_cents >= 0 && discount.value_in_cents < price);
            } else {
                prop_assert_eq!(discount, DiscountValue::default());
            }
        }
    }
}
