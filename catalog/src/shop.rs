//! The storefront: a page for people at `/shop`, showing what `/products` answers.
//!
//! The page is plain HTML, CSS and one JavaScript module, embedded in the binary at build
//! time (`catalog/shop/`): no framework, no build step, nothing fetched from another origin.
//! It is a client of the public API like any other: it calls `GET /products` with the
//! customer the visitor picks, and shows what the answer and its headers say (a discount, a
//! fallback to full price, a 503 with `Retry-After`, a 400's message).
//!
//! The files are answered from memory, before and apart from admission control: they never
//! wait for a turn, so the page still loads while priced requests are being shed. Each
//! carries a strong `ETag` (a hash of its bytes, computed at compile time) with
//! `Cache-Control: no-cache`: browsers keep a copy and revalidate it, so a new binary's page
//! is used at once, and an unchanged one costs a `304` without a body. Every file is served
//! with a `Content-Security-Policy` that allows only this origin's script, style, image and
//! `fetch` (no inline script or style, no framing) and `X-Content-Type-Options: nosniff`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{
    CACHE_CONTROL, CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue, IF_NONE_MATCH,
};
use hyper::{Response, StatusCode};

/// The policy for every file of the page: this origin only, nothing inline, no frames, no
/// forms posted anywhere, no `<base>` that could redirect relative URLs.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file of the page.
#[derive(Debug)]
pub struct Asset {
    /// Where it is served.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes, as built into the binary.
    pub body: &'static [u8],
    /// A hash of `body`, the `ETag`'s value.
    pub hash: u64,
}

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:literal) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../shop/", $file)),
            hash: fnv1a(include_bytes!(concat!("../shop/", $file))),
        }
    };
}

/// The page and what it loads.
pub static ASSETS: [Asset; 4] = [
    asset!("/shop", "index.html", "text/html; charset=utf-8"),
    asset!("/shop/shop.css", "shop.css", "text/css; charset=utf-8"),
    asset!("/shop/shop.js", "shop.js", "text/javascript; charset=utf-8"),
    asset!("/shop/icon.svg", "icon.svg", "image/svg+xml"),
];

/// The embedded file served at `path`, if any.
pub fn asset(path: &str) -> Option<&'static Asset> {
    // Every request is asked this first: one prefix test for the API's paths.
    if !path.starts_with("/shop") {
        return None;
    }
    ASSETS.iter().find(|asset| asset.path == path)
}

/// The answer to `GET` (or `HEAD`) of `asset`: `304 Not Modified` when the request's
/// `If-None-Match` names its current `ETag`, the file otherwise.
pub fn serve(asset: &Asset, request_headers: &HeaderMap) -> Response<Full<Bytes>> {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| matches_etag(value, &etag));
    let mut response = if fresh {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        let mut response = Response::new(Full::new(Bytes::from_static(asset.body)));
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        response
    };
    let headers = response.headers_mut();
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Whether an `If-None-Match` value (`*`, or a list of entity tags, weak or strong) names
/// `etag`. RFC 9110 §13.1.2 compares weakly here: `W/"x"` matches `"x"`.
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .map(|tag| tag.trim())
            .any(|tag| tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// 64-bit FNV-1a: small enough to run at compile time, and good enough to tell two
/// versions of a file apart (it is not a defence against anyone).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_names_the_tag_in_any_of_its_forms() {
        let etag = "\"00000000000000ab\"";
        assert!(matches_etag(etag, etag));
        assert!(matches_etag("*", etag));
        assert!(matches_etag("W/\"00000000000000ab\"", etag));
        assert!(matches_etag("\"other\", \"00000000000000ab\"", etag));
        assert!(!matches_etag("\"other\"", etag));
        assert!(!matches_etag("", etag));
        assert!(!matches_etag("00000000000000ab", etag));
    }

    #[test]
    fn every_asset_has_its_own_tag_and_a_type() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert_eq!(asset(a.path).map(|found| found.path), Some(a.path));
            for b in &ASSETS[i + 1..] {
                assert_ne!(a.hash, b.hash, "{} and {}", a.path, b.path);
            }
        }
        assert!(asset("/shop/").is_none());
        assert!(asset("/shop/../Cargo.toml").is_none());
    }
}
