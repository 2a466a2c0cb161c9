//! Inputs shared by the integration tests and the benchmarks (included with `#[path]` there).

use http::{HeaderMap, HeaderName, HeaderValue};

/// A browser-like request: twenty headers, none of them about tracing.
pub(crate) fn realistic_headers() -> HeaderMap {
    let pairs = [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ),
        ("accept", "application/json, text/plain, */*"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("cache-control", "no-cache"),
        ("pragma", "no-cache"),
        ("origin", "https://www.example.com"),
        ("referer", "https://www.example.com/dashboard"),
        ("sec-fetch-dest", "empty"),
        ("sec-fetch-mode", "cors"),
        ("sec-fetch-site", "same-site"),
        ("content-type", "application/json"),
        ("content-length", "42"),
        ("x-request-id", "5f1c2b7e-8a9d-4c3e-b2a1-0f9e8d7c6b5a"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        (
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
        ),
        ("cookie", "session=abc123; theme=dark"),
    ];
    pairs
        .into_iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            )
        })
        .collect()
}
