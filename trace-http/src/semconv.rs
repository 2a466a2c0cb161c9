//! OpenTelemetry semantic-convention names used by the layers, and the method normalisation the
//! conventions ask for. Keys are `&'static str`, so recording one costs no allocation.

use http::Method;

/// `http.request.method`: the method, or `_OTHER` for one the conventions do not know.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.request.method_original`: the method as sent, when it was reported as `_OTHER`.
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
/// `http.response.status_code`.
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `http.route`: the matched route template, such as `/users/{id}`.
pub const HTTP_ROUTE: &str = "http.route";
/// `http.request.body.size`: from `Content-Length`, when the request declares one.
pub const HTTP_REQUEST_BODY_SIZE: &str = "http.request.body.size";
/// `http.response.body.size`: bytes of response body data actually sent.
pub const HTTP_RESPONSE_BODY_SIZE: &str = "http.response.body.size";
/// `url.path`.
pub const URL_PATH: &str = "url.path";
/// `url.scheme`.
pub const URL_SCHEME: &str = "url.scheme";
/// `url.full`: the whole URL of an outgoing request (credentials and, by default, query removed).
pub const URL_FULL: &str = "url.full";
/// `server.address`: the host the request was sent to.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port`.
pub const SERVER_PORT: &str = "server.port";
/// `client.address`: the peer's address, when the server knows it.
pub const CLIENT_ADDRESS: &str = "client.address";
/// `client.port`.
pub const CLIENT_PORT: &str = "client.port";
/// `network.protocol.version`: `1.0`, `1.1`, `2` or `3`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// `user_agent.original`.
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// `error.type`: the status code for an HTTP error status, or the kind of failure.
pub const ERROR_TYPE: &str = "error.type";
/// `jaeger-debug-id`: the tag Jaeger uses for the correlation id of a forced debug trace.
pub const JAEGER_DEBUG_ID: &str = "jaeger-debug-id";
/// Set (to `true`) when the response body was dropped before its end: the client went away.
pub const RESPONSE_ABORTED: &str = "tracewire.response.aborted";
/// Event recorded when the first byte of the response body is sent.
pub const EVENT_FIRST_BYTE: &str = "first byte sent";

/// Every value [`method_name`] returns, in order: one copy of each, so that a name is found
/// again by its address (see [`method_index`]).
pub(crate) static METHOD_NAMES: [&str; 10] = [
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE", "_OTHER",
];

/// The position in [`METHOD_NAMES`] of a name [`method_name`] returned.
pub(crate) fn method_index(name: &str) -> Option<usize> {
    METHOD_NAMES
        .iter()
        .position(|known| std::ptr::eq(*known, name))
        .or_else(|| METHOD_NAMES.iter().position(|known| *known == name))
}

/// The method as the conventions name it: one of the nine standard methods, else `_OTHER`; and
/// whether it is a standard one. The name is an entry of [`METHOD_NAMES`], so that a metric
/// label can hold it as one thin reference (its address identifies it).
pub(crate) fn method_name(method: &Method) -> (&'static &'static str, bool) {
    let index = match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::HEAD => 4,
        Method::OPTIONS => 5,
        Method::PATCH => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => return (&METHOD_NAMES[9], false),
    };
    (&METHOD_NAMES[index], true)
}

/// Records `http.request.method`, and `http.request.method_original` for an unknown method.
pub(crate) fn record_method(span: &mut trace_core::SpanRecorder, method: &Method) {
    let (name, known) = method_name(method);
    span.set_attribute(HTTP_REQUEST_METHOD, *name);
    if !known {
        span.set_attribute(HTTP_REQUEST_METHOD_ORIGINAL, method.as_str().to_owned());
    }
}

/// A request header's value as attribute text: UTF-8 as the peer sent it (a user agent may go
/// beyond ASCII), any byte that is not UTF-8 replaced with U+FFFD, so a value is never dropped
/// for its bytes.
#[inline]
pub(crate) fn header_text(value: &http::HeaderValue) -> trace_core::StringValue {
    match header_str(value) {
        std::borrow::Cow::Borrowed(text) => trace_core::StringValue::copied(text),
        std::borrow::Cow::Owned(text) => trace_core::StringValue::from(text),
    }
}

/// [`header_text`] as a `str`. Visible ASCII, the usual value, is recognised by `to_str`'s
/// inlined check; only a value beyond it goes through UTF-8 decoding.
#[inline]
pub(crate) fn header_str(value: &http::HeaderValue) -> std::borrow::Cow<'_, str> {
    match value.to_str() {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value.as_bytes()),
    }
}

/// The `network.protocol.version` value of an HTTP version.
pub(crate) fn protocol_version(version: http::Version) -> Option<&'static str> {
    Some(match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_11 => "1.1",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_other() {
        assert_eq!(method_name(&Method::GET), (&"GET", true));
        let custom = Method::from_bytes(b"PURGE").expect("valid token");
        assert_eq!(method_name(&custom), (&"_OTHER", false));
        assert_eq!(protocol_version(http::Version::HTTP_2), Some("2"));
    }
}
