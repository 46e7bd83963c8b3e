//! Request ids: one per HTTP request, taken from the client's `X-Request-ID` or made here,
//! returned in the response, sent to discount as gRPC metadata, and logged by both services.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use ecommerce::{MAX_REQUEST_ID_LEN, REQUEST_ID};
use hyper::header::HeaderMap;

/// The client's id, if it sent a usable one: 1 to [`MAX_REQUEST_ID_LEN`] characters of
/// `A-Z a-z 0-9 - _ . :`. Anything else is replaced by a new id rather than copied into
/// logs and headers.
pub fn from_client(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(REQUEST_ID)?.to_str().ok()?;
    let usable = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    usable.then(|| value.to_owned())
}

/// A new id: 32 hex digits, unique within this process and very unlikely to repeat across
/// processes (a per-process random key hashed with a counter). Not a secret.
pub fn generate() -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(RandomState::new);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut high = key.build_hasher();
    high.write_u64(n);
    let mut low = key.build_hasher();
    low.write_u64(!n);
    hex(high.finish(), low.finish())
}

/// What `format!("{high:016x}{low:016x}")` writes, at a third of its cost.
fn hex(high: u64, low: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for word in [high, low] {
        for shift in (0..16).rev() {
            text.push(char::from(DIGITS[(word >> (shift * 4)) as usize & 0xf]));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn id(value: &[u8]) -> Option<String> {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_bytes(value).unwrap());
        from_client(&headers)
    }

    #[test]
    fn usable_client_ids_are_kept_and_others_replaced() {
        assert_eq!(id(b"abc-123_x.y:z").as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(id(b""), None);
        assert_eq!(id(b"has space"), None);
        assert_eq!(id(b"new\xc3\xa9"), None);
        assert_eq!(id("a".repeat(129).as_bytes()), None);
        assert!(id("a".repeat(128).as_bytes()).is_some());
    }

    #[test]
    fn ids_are_written_as_format_writes_them() {
        for (high, low) in [
            (0, 0),
            (u64::MAX, 1),
            (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
        ] {
            assert_eq!(hex(high, low), format!("{high:016x}{low:016x}"));
        }
    }

    #[test]
    fn generated_ids_are_32_hex_digits_and_differ() {
        let (a, b) = (generate(), generate());
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(id(a.as_bytes()).is_some(), "our own ids pass our own check");
    }
}
