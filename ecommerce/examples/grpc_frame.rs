//! The gRPC frames `scripts/bench` sends to discount with h2load, and the check of its
//! answer, made from the project's own generated types rather than protobuf by hand.
//!
//! ```sh
//! cargo run -q -p ecommerce --example grpc_frame -- request >request.bin
//! cargo run -q -p ecommerce --example grpc_frame -- check response.bin 89999
//! ```
//!
//! `request` writes a length-prefixed, uncompressed `ApplyDiscount` request for customer 1
//! and the first demo product. `check` reads a response frame and exits non-zero unless
//! its discount is 10% (`0.1` as an `f32`) with the given `value_in_cents`.

use std::io::Write;
use std::process::ExitCode;

use ecommerce::pb;
use prost::Message;

fn request() -> pb::DiscountRequest {
    pb::DiscountRequest {
        customer: Some(pb::Customer {
            id: 1,
            first_name: "John".into(),
            last_name: "Snow".into(),
        }),
        product: Some(pb::Product {
            id: 1,
            slug: "iphone-x".into(),
            description: "64GB, black and iOS 12".into(),
            price_in_cents: 99999,
            discount_value: None,
        }),
    }
}

/// One gRPC message frame: no compression, a 4-byte big-endian length, the message.
fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(0);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The discount in a response frame, checked.
fn check(frame: &[u8], expected_value: i32) -> Result<(), String> {
    let (&[compressed, a, b, c, d], rest) = frame
        .split_first_chunk::<5>()
        .ok_or("shorter than a gRPC frame header")?;
    if compressed != 0 {
        return Err("a compressed frame".into());
    }
    let length = u32::from_be_bytes([a, b, c, d]) as usize;
    let body = rest.get(..length).ok_or("a truncated frame")?;
    let response = pb::DiscountResponse::decode(body).map_err(|e| e.to_string())?;
    let value = response
        .product
        .and_then(|product| product.discount_value)
        .ok_or("no discount in the answer")?;
    if value.pct != 0.1 || value.value_in_cents != expected_value {
        return Err(format!(
            "unexpected discount: pct {} value_in_cents {}",
            value.pct, value.value_in_cents
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["request"] => std::io::stdout()
            .write_all(&frame(&request()))
            .map_err(|e| e.to_string()),
        ["check", path, value] => value
            .parse()
            .map_err(|e| format!("{value:?}: {e}"))
            .and_then(|value| {
                let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
                check(&bytes, value)
            }),
        _ => Err("usage: grpc_frame request | grpc_frame check FILE VALUE_IN_CENTS".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "grpc_frame: {error}");
            ExitCode::FAILURE
        }
    }
}
