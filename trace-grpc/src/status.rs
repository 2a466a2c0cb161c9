//! gRPC status codes as the layers read them: from `grpc-status` in trailers (or in the headers
//! of a trailers-only response), from the HTTP status when a proxy answered instead of a gRPC
//! server, and which of them count as failures.

use http::{HeaderMap, HeaderName, StatusCode};

/// Looked up by these constants: a lookup by `&str` would parse and hash the name each time.
pub(crate) static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub(crate) static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub(crate) static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// A gRPC status code, `0..=16`. Codes outside that range are read as `UNKNOWN`, as the gRPC
/// specification asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(u8);

/// The canonical names, indexed by code.
const NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl Code {
    /// `OK`.
    pub const OK: Self = Self(0);
    /// `CANCELLED`: the caller went away.
    pub const CANCELLED: Self = Self(1);
    /// `UNKNOWN`.
    pub const UNKNOWN: Self = Self(2);
    /// `DEADLINE_EXCEEDED`.
    pub const DEADLINE_EXCEEDED: Self = Self(4);
    /// `UNIMPLEMENTED`: no such method.
    pub const UNIMPLEMENTED: Self = Self(12);
    /// `INTERNAL`.
    pub const INTERNAL: Self = Self(13);
    /// `UNAVAILABLE`.
    pub const UNAVAILABLE: Self = Self(14);
    /// `DATA_LOSS`.
    pub const DATA_LOSS: Self = Self(15);

    /// The code with this number; out-of-range numbers are `UNKNOWN`.
    pub const fn from_i32(code: i32) -> Self {
        if code >= 0 && code <= 16 {
            Self(code as u8)
        } else {
            Self::UNKNOWN
        }
    }

    /// The number.
    pub const fn as_i32(self) -> i32 {
        self.0 as i32
    }

    /// The canonical name (`OK`, `DEADLINE_EXCEEDED`, …): the `rpc.response.status_code` value.
    pub const fn name(self) -> &'static str {
        NAMES[self.0 as usize]
    }

    /// Whether a server's span counts this code as a failure: the codes the OpenTelemetry gRPC
    /// conventions name for servers (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
    /// `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`). The others are the caller's mistakes or normal
    /// outcomes, not the server's failures.
    pub const fn is_server_error(self) -> bool {
        matches!(self.0, 2 | 4 | 12 | 13 | 14 | 15)
    }

    /// Whether a client's span counts this code as a failure: every code but `OK`.
    pub const fn is_client_error(self) -> bool {
        self.0 != 0
    }

    /// The code a client infers from an HTTP status when the response carries no `grpc-status`
    /// (a proxy or load balancer answered), after gRPC's HTTP-to-gRPC status mapping.
    pub fn from_http(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::INTERNAL,
            401 => Self(16),
            403 => Self(7),
            404 => Self::UNIMPLEMENTED,
            429 | 502 | 503 | 504 => Self::UNAVAILABLE,
            _ => Self::UNKNOWN,
        }
    }

    /// The `grpc-status` in `headers`, if there is one (a malformed value reads as `UNKNOWN`).
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(&GRPC_STATUS)?;
        let code = std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|v| v.trim().parse::<i32>().ok())
            .map_or(Self::UNKNOWN, Self::from_i32);
        Some(code)
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Longest `grpc-message` recorded, in bytes of the decoded text.
const MAX_MESSAGE_LEN: usize = 1024;

/// The percent-decoded `grpc-message` in `headers`, cut to a sane length.
pub(crate) fn message(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(&GRPC_MESSAGE)?;
    let raw = value.as_bytes();
    let mut text: String = percent_encoding::percent_decode(raw)
        .decode_utf8_lossy()
        .into_owned();
    if text.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_named_and_bounded() {
        assert_eq!(Code::from_i32(4).name(), "DEADLINE_EXCEEDED");
        assert_eq!(Code::from_i32(16).name(), "UNAUTHENTICATED");
        assert_eq!(Code::from_i32(17), Code::UNKNOWN);
        assert_eq!(Code::from_i32(-1), Code::UNKNOWN);
    }

    #[test]
    fn server_errors_are_the_conventions_six() {
        let errors: Vec<&str> = (0..=16)
            .map(Code::from_i32)
            .filter(|c| c.is_server_error())
            .map(Code::name)
            .collect();
        assert_eq!(
            errors,
            [
                "UNKNOWN",
                "DEADLINE_EXCEEDED",
                "UNIMPLEMENTED",
                "INTERNAL",
                "UNAVAILABLE",
                "DATA_LOSS"
            ]
        );
    }

    #[test]
    fn headers_and_http_statuses_map() {
        let mut headers = HeaderMap::new();
        assert_eq!(Code::from_headers(&headers), None);
        headers.insert("grpc-status", "5".parse().expect("valid"));
        headers.insert(
            "grpc-message",
            "caf%C3%A9%20not%20found".parse().expect("valid"),
        );
        assert_eq!(Code::from_headers(&headers), Some(Code::from_i32(5)));
        assert_eq!(message(&headers).as_deref(), Some("café not found"));
        headers.insert("grpc-status", "banana".parse().expect("valid"));
        assert_eq!(Code::from_headers(&headers), Some(Code::UNKNOWN));
        assert_eq!(Code::from_http(StatusCode::NOT_FOUND), Code::UNIMPLEMENTED);
        assert_eq!(
            Code::from_http(StatusCode::SERVICE_UNAVAILABLE),
            Code::UNAVAILABLE
        );
        assert_eq!(Code::from_http(StatusCode::IM_A_TEAPOT), Code::UNKNOWN);
    }
}
