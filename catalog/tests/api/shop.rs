//! The storefront's files as an HTTP client sees them: the policy they are served with,
//! revalidation by `ETag`, and no reference to another origin. What the page does is tested
//! in a real browser by `scripts/browser`.

use crate::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn the_storefront_files_are_served_under_a_strict_policy_and_revalidated_by_etag() {
    let pair = spawn_pair().await;
    let addr = pair.catalog.addr;
    let files = [
        ("/shop", "text/html; charset=utf-8"),
        ("/shop/shop.css", "text/css; charset=utf-8"),
        ("/shop/shop.js", "text/javascript; charset=utf-8"),
        ("/shop/icon.svg", "image/svg+xml"),
    ];
    let mut etags = Vec::new();
    for (path, content_type) in files {
        let fresh = request(addr, "GET", path, &[]).await;
        assert_eq!(fresh.status, 200, "{path}");
        assert_eq!(fresh.headers["content-type"], content_type, "{path}");
        assert_eq!(fresh.headers["content-security-policy"], CSP, "{path}");
        assert_eq!(fresh.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(fresh.headers["cache-control"], "no-cache", "{path}");
        assert!(fresh.headers.contains_key("x-request-id"), "{path}");
        assert!(!fresh.body.is_empty(), "{path}");
        let etag = fresh.headers["etag"].to_str().unwrap().to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"'),
            "{path}: {etag}"
        );

        // Revalidation: the same tag (strong, weak, or in a list) is 304 without a body.
        for if_none_match in [etag.clone(), format!("W/{etag}"), format!("\"x\", {etag}")] {
            let cached = request(
                addr,
                "GET",
                path,
                &[("If-None-Match", if_none_match.as_bytes())],
            )
            .await;
            assert_eq!(cached.status, 304, "{path} {if_none_match}");
            assert_eq!(cached.headers["etag"], etag.as_str(), "{path}");
            assert_eq!(cached.body, "", "{path}");
        }
        let stale = request(addr, "GET", path, &[("If-None-Match", b"\"an-older-one\"")]).await;
        assert_eq!((stale.status, &stale.body), (200, &fresh.body), "{path}");

        let head = request(addr, "HEAD", path, &[]).await;
        assert_eq!((head.status, head.body.as_str()), (200, ""), "{path}");
        let post = request(addr, "POST", path, &[]).await;
        assert_eq!(post.status, 405, "{path}");
        assert_eq!(post.headers["allow"], "GET, HEAD", "{path}");

        // Nothing from another origin: no absolute URL (the SVG's namespace is a name, not
        // a request); the page's own references are paths.
        let body = fresh
            .body
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("url("),
            "{path} names another origin"
        );
        etags.push(etag);
    }
    etags.sort();
    etags.dedup();
    assert_eq!(etags.len(), files.len(), "one tag per file");

    let page = request(addr, "GET", "/shop", &[]).await.body;
    // No inline script or style, which the policy would block anyway.
    assert!(!page.contains(" style="), "an inline style");
    assert!(!page.contains("<style"), "a style element");
    assert_eq!(
        page.matches("<script").count(),
        page.matches("<script type=\"module\" src=\"/shop/").count(),
        "an inline script"
    );
    for path in ["/shop/", "/shop/index.html", "/shop/../Cargo.toml"] {
        assert_eq!(request(addr, "GET", path, &[]).await.status, 404, "{path}");
    }
    // The API is as it was.
    assert_eq!(get_products(addr, &[]).await.body, UNDISCOUNTED_BODY);
    pair.catalog.stop().await;
    pair.discount.stop().await;
}
