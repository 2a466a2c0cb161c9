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

/// tonic's descriptions of the codes (`Code::description`), indexed by code: from tonic 0.13 on,
/// a `tonic::Status` displays as `code: '{description}'` and then its message and source.
const TONIC_DESCRIPTIONS: [&str; 17] = [
    "The operation completed successfully",
    "The operation was cancelled",
    "Unknown error",
    "Client specified an invalid argument",
    "Deadline expired before operation could complete",
    "Some requested entity was not found",
    "Some entity that we attempted to create already exists",
    "The caller does not have permission to execute the specified operation",
    "Some resource has been exhausted",
    "The system is not in a state required for the operation's execution",
    "The operation was aborted",
    "Operation was attempted past the valid range",
    "Operation is not implemented or not supported",
    "Internal error",
    "The service is currently unavailable",
    "Unrecoverable data loss or corruption",
    "The request does not have valid authentication credentials",
];

/// tonic's names of the codes (the variants of its `Code`), indexed by code: before 0.13, a
/// `tonic::Status` displayed as `status: {variant}, message: …`.
const TONIC_VARIANTS: [&str; 17] = [
    "Ok",
    "Cancelled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The code of the `tonic::Status` that `error` is, read from its text; `None` when the text is
/// not a status's.
///
/// A tonic client's response body fails with a `Status` — for a stream the server reset, the
/// code tonic maps the HTTP/2 reason to, under the features tonic was built with — and tonic
/// reports that same status to the caller. A body's error reaches the layers only as something
/// to display, and trace-grpc does not depend on tonic (so that it works with any version of
/// it), so the code is read from the text's head, in the forms tonic's versions display.
/// Formats no more of the text than the longest head: no allocation, however long the message.
pub(crate) fn of_tonic_status(error: &dyn std::fmt::Display) -> Option<Code> {
    let mut head = Head {
        bytes: [0; HEAD_LEN],
        len: 0,
    };
    let _ = std::fmt::write(&mut head, format_args!("{error}"));
    let text = &head.bytes[..head.len];
    if let Some(rest) = text.strip_prefix(b"code: '") {
        named(rest, &TONIC_DESCRIPTIONS, b'\'')
    } else if let Some(rest) = text.strip_prefix(b"status: ") {
        named(rest, &TONIC_VARIANTS, b',')
    } else {
        None
    }
}

/// Enough for `code: '` and the longest description with its closing quote.
const HEAD_LEN: usize = 96;

/// The first [`HEAD_LEN`] bytes of a text; refuses the rest, so that formatting stops there.
struct Head {
    bytes: [u8; HEAD_LEN],
    len: usize,
}

impl std::fmt::Write for Head {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let room = HEAD_LEN - self.len;
        let n = text.len().min(room);
        self.bytes[self.len..self.len + n].copy_from_slice(&text.as_bytes()[..n]);
        self.len += n;
        if self.len == HEAD_LEN {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The code whose name in `names` starts `text` and is followed by `end` (a description may
/// hold the closing quote itself, as `operation's` does, and a name may begin another, as
/// `Unknown` and `Unavailable` do not but could).
fn named(text: &[u8], names: &[&str; 17], end: u8) -> Option<Code> {
    names
        .iter()
        .position(|name| {
            text.strip_prefix(name.as_bytes())
                .is_some_and(|rest| rest.first() == Some(&end))
        })
        .and_then(|code| u8::try_from(code).ok())
        .map(Code)
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
    fn tonic_statuses_are_read_from_their_text() {
        for code in 0..=16 {
            for message in [
                "",
                "it's \"quoted\", with a ', and long ".repeat(20).as_str(),
            ] {
                let status = tonic::Status::new(tonic::Code::from_i32(code), message);
                assert_eq!(
                    of_tonic_status(&status),
                    Some(Code::from_i32(code)),
                    "{status}"
                );
            }
        }
        // As tonic before 0.13 displayed a status.
        let old = "status: FailedPrecondition, message: \"no\", details: [], metadata: {}";
        assert_eq!(of_tonic_status(&old), Some(Code::from_i32(9)));
        assert_eq!(
            of_tonic_status(&"status: Unknown, message: \"\""),
            Some(Code::UNKNOWN)
        );
        // Not a status: other errors, and look-alikes.
        for text in [
            "error reading a body from connection",
            "code: 'Internal error",
            "code: 'Internal errors'",
            "status: Cancelledd, message: \"\"",
            "status: Cancelled",
            "",
        ] {
            assert_eq!(of_tonic_status(&text), None, "{text:?}");
        }
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
