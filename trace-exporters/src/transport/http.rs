//! One HTTP client for every exporter that POSTs batches: Jaeger collector, OTLP/HTTP, Zipkin.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::tls::{TlsConfig, TlsError};
use crate::export::ExportError;

/// The most of a response body an exporter reads (OTLP partial-success messages, error text);
/// a longer body is read this far and the rest left unread.
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The statuses worth retrying for Jaeger's and Zipkin's collectors (and the default): those
/// that say "later" (408 too: the server gave up waiting for the request).
pub(crate) const RETRYABLE_STATUSES: &[u16] = &[408, 429, 502, 503, 504];

/// The statuses OTLP/HTTP retries: exactly those its specification lists; every other 4xx and
/// 5xx must not be retried.
#[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
pub(crate) const OTLP_RETRYABLE_STATUSES: &[u16] = &[429, 502, 503, 504];

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

/// The `User-Agent` every exporter sends.
pub(crate) const USER_AGENT_VALUE: &str = concat!("tracewire/", env!("CARGO_PKG_VERSION"));

/// A response whose status was a success.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    /// The status, a 2xx.
    #[allow(dead_code)]
    pub(crate) status: StatusCode,
    /// The body, or its first [`MAX_RESPONSE_BODY`] bytes.
    #[allow(dead_code)]
    pub(crate) body: Bytes,
}

/// POSTs encoded batches to one URL.
#[derive(Debug, Clone)]
pub(crate) struct HttpTransport {
    client: Client<Connector, Full<Bytes>>,
    uri: Uri,
    headers: HeaderMap,
    /// The error statuses worth retrying.
    retryable: &'static [u16],
}

/// Why an HTTP transport could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpTransportError {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("`{0}` is not an absolute http:// or https:// URL")]
    BadUrl(String),
    /// An `https` URL without TLS support compiled in.
    #[cfg_attr(feature = "tls", allow(dead_code))]
    #[error("`{0}` needs TLS, but trace-exporters was built without its `tls` feature")]
    #[cfg_attr(feature = "tls", allow(dead_code))]
    NoTls(String),
    /// The TLS settings could not be applied.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl HttpTransport {
    /// A transport for `url`, sending `headers` (auth, custom) with every request. `https` URLs
    /// are verified against the web PKI roots.
    #[allow(dead_code)] // the Jaeger collector and Zipkin exporters' constructor
    pub(crate) fn new(url: &str, headers: HeaderMap) -> Result<Self, HttpTransportError> {
        Self::build(url, headers, None, RETRYABLE_STATUSES)
    }

    /// A transport for `url` whose `https` connections follow `tls` (custom CA, or no
    /// verification at all). Without the `tls` feature this fails for every `tls` other than the
    /// default, so that a setting asked for is never silently ignored.
    #[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
    pub(crate) fn with_tls(
        url: &str,
        headers: HeaderMap,
        tls: &TlsConfig,
        retryable: &'static [u16],
    ) -> Result<Self, HttpTransportError> {
        Self::build(url, headers, Some(tls), retryable)
    }

    fn build(
        url: &str,
        headers: HeaderMap,
        tls: Option<&TlsConfig>,
        retryable: &'static [u16],
    ) -> Result<Self, HttpTransportError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| HttpTransportError::BadUrl(url.to_owned()))?;
        let scheme = uri.scheme_str();
        if uri.host().is_none() || !matches!(scheme, Some("http" | "https")) {
            return Err(HttpTransportError::BadUrl(url.to_owned()));
        }
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        #[cfg(feature = "tls")]
        let connector = {
            http.enforce_http(false);
            let builder = hyper_rustls::HttpsConnectorBuilder::new();
            let builder = match tls {
                Some(tls) => builder.with_tls_config(super::tls::client_config(tls)?),
                None => builder.with_webpki_roots(),
            };
            builder.https_or_http().enable_http1().wrap_connector(http)
        };
        #[cfg(not(feature = "tls"))]
        let connector = {
            if scheme == Some("https") {
                return Err(HttpTransportError::NoTls(url.to_owned()));
            }
            if tls.is_some_and(|tls| *tls != TlsConfig::default()) {
                return Err(HttpTransportError::Tls(super::tls::TlsError::NotCompiled));
            }
            http
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            uri,
            headers,
            retryable,
        })
    }

    /// The URL batches go to.
    #[allow(dead_code)]
    pub(crate) fn uri(&self) -> &Uri {
        &self.uri
    }

    /// POSTs `body`. A 2xx is `Ok`; anything else is classified by [`classify_status`].
    #[allow(dead_code)] // the Jaeger collector and Zipkin exporters' way to send
    pub(crate) async fn post(
        &self,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
        body: Bytes,
    ) -> Result<HttpResponse, ExportError> {
        self.post_with_headers(content_type, content_encoding, body, None)
            .await
    }

    /// [`post`](Self::post) with `extra` headers for this request only (a bearer token that
    /// changes), sent after, and so replacing, the transport's own headers of the same name.
    pub(crate) async fn post_with_headers(
        &self,
        content_type: &'static str,
        content_encoding: Option<&'static str>,
        body: Bytes,
        extra: Option<&HeaderMap>,
    ) -> Result<HttpResponse, ExportError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.uri.clone();
        let headers = request.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(encoding) = content_encoding {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        for (name, value) in self.headers.iter().chain(extra.into_iter().flatten()) {
            headers.insert(name.clone(), value.clone());
        }
        let response = self
            .client
            .request(request)
            .await
            .map_err(|error| ExportError::retryable(format!("POST {}: {error}", self.uri)))?;
        let (parts, mut body) = response.into_parts();
        // The first bytes of a long body rather than none: an OTLP partial success puts its
        // count of rejected spans ahead of a message that may be long.
        let mut prefix = Vec::new();
        while prefix.len() < MAX_RESPONSE_BODY {
            let Some(Ok(frame)) = body.frame().await else {
                break;
            };
            if let Ok(data) = frame.into_data() {
                let room = MAX_RESPONSE_BODY - prefix.len();
                prefix.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        let body = Bytes::from(prefix);
        if parts.status.is_success() {
            return Ok(HttpResponse {
                status: parts.status,
                body,
            });
        }
        Err(classify_status(
            &self.uri,
            parts.status,
            &parts.headers,
            &body,
            self.retryable,
        ))
    }
}

/// The error for a non-2xx response: those in `retryable` are worth retrying (after the
/// `Retry-After` the server gave, if any); every other status is permanent.
pub(crate) fn classify_status(
    uri: &Uri,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    retryable: &[u16],
) -> ExportError {
    let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
    let message = format!("POST {uri}: {status} {}", text.trim());
    match status.as_u16() {
        code if retryable.contains(&code) => ExportError::Retryable {
            message,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now())),
        },
        _ => ExportError::Permanent { message },
    }
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); a date in the past is no
/// wait at all.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_worth_retrying() {
        let uri = Uri::from_static("http://127.0.0.1:1/v1/traces");
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        let error = classify_status(
            &uri,
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            b"busy",
            RETRYABLE_STATUSES,
        );
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        let error = classify_status(
            &uri,
            StatusCode::BAD_REQUEST,
            &headers,
            b"bad",
            RETRYABLE_STATUSES,
        );
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("400"));
        let timeout = StatusCode::REQUEST_TIMEOUT;
        assert!(classify_status(&uri, timeout, &headers, b"", RETRYABLE_STATUSES).is_retryable());
        assert!(
            !classify_status(&uri, timeout, &headers, b"", OTLP_RETRYABLE_STATUSES).is_retryable(),
            "OTLP/HTTP retries only 429, 502, 503 and 504"
        );
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(HttpTransport::new("ftp://host/x", HeaderMap::new()).is_err());
        assert!(HttpTransport::new("/v1/traces", HeaderMap::new()).is_err());
    }
}
