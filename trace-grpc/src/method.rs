//! RPC names from the request path, and the `grpc-timeout` deadline.

use std::time::Duration;

/// Longest path read as a method name; longer ones are not a gRPC method anyone defined.
const MAX_PATH_LEN: usize = 256;

/// The fully qualified method of a gRPC request path: `/package.Service/Method` gives
/// `package.Service/Method`, split at the slash. `None` for a path that is not of that shape
/// (the span is then named `grpc` and `rpc.method` is `_OTHER`).
pub(crate) fn parse(path: &str) -> Option<(&str, usize)> {
    if path.len() > MAX_PATH_LEN {
        return None;
    }
    let full = path.strip_prefix('/')?;
    let slash = full.find('/')?;
    let (service, method) = (&full[..slash], &full[slash + 1..]);
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'$'))
    };
    (valid(service) && valid(method)).then_some((full, slash))
}

/// The `grpc-timeout` header's duration: at most eight digits and a unit (`H`, `M`, `S`, `m`,
/// `u`, `n`). Anything else is ignored.
pub(crate) fn timeout(value: &[u8]) -> Option<Duration> {
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_methods() {
        assert_eq!(
            parse("/tracewire.test.v1.Echo/Unary"),
            Some(("tracewire.test.v1.Echo/Unary", 22))
        );
        assert_eq!(parse("/Echo/Unary"), Some(("Echo/Unary", 4)));
        assert_eq!(parse("/"), None);
        assert_eq!(parse("/only-service"), None);
        assert_eq!(parse("/a/b/c"), None);
        assert_eq!(parse("/a b/c"), None);
        assert_eq!(parse(&format!("/a/{}", "x".repeat(300))), None);
    }

    #[test]
    fn timeouts_parse() {
        assert_eq!(timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(timeout(b"2S"), Some(Duration::from_secs(2)));
        assert_eq!(timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(timeout(b"999999999m"), None);
        assert_eq!(timeout(b"m"), None);
        assert_eq!(timeout(b"10x"), None);
        assert_eq!(timeout(b""), None);
    }
}
