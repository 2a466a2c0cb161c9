//! Parsing and checking single values, shared by the environment, the flags and `validate`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use super::{ConfigError, SamplerArgument};

/// What is wrong with a value, phrased to follow it: `is not a number of milliseconds`.
pub(super) type Problem = Cow<'static, str>;

/// The largest UDP payload over IPv4.
const MAX_UDP_PAYLOAD: usize = 65_507;
/// The smallest Jaeger agent datagram accepted: room for the batch header and a small span.
const MIN_PACKET_SIZE: usize = 512;

/// The port a Jaeger collector takes Thrift over HTTP on.
pub(crate) const JAEGER_COLLECTOR_PORT: u16 = 14268;
/// The collector path for Thrift batches.
pub(crate) const JAEGER_COLLECTOR_PATH: &str = "/api/traces";

/// Normalises a Jaeger collector endpoint: a full URL (`http://jaeger:14268/api/traces`) is used
/// as is, as Jaeger's clients take `JAEGER_ENDPOINT`, except that one without a path gets
/// `/api/traces`; `host:port` (or a bare host, meaning port 14268) means
/// `http://host:port/api/traces`. An IPv6 address goes in brackets.
///
/// The same rules apply wherever a collector endpoint is given (the `jaeger` module's
/// `collector_endpoint` is this function with its own error type).
///
/// ```
/// use trace_exporters::config::normalize_jaeger_endpoint;
///
/// assert_eq!(
///     normalize_jaeger_endpoint("jaeger:14268")?,
///     "http://jaeger:14268/api/traces"
/// );
/// assert_eq!(
///     normalize_jaeger_endpoint("jaeger")?,
///     "http://jaeger:14268/api/traces"
/// );
/// assert_eq!(
///     normalize_jaeger_endpoint("https://jaeger.example.com/custom/traces")?,
///     "https://jaeger.example.com/custom/traces"
/// );
/// assert!(normalize_jaeger_endpoint("jaeger:port").is_err());
/// # Ok::<(), trace_exporters::config::ConfigError>(())
/// ```
pub fn normalize_jaeger_endpoint(endpoint: &str) -> Result<String, ConfigError> {
    normalize_jaeger(endpoint)
        .map_err(|problem| ConfigError::invalid("JAEGER_ENDPOINT", endpoint, problem))
}

/// See [`normalize_jaeger_endpoint`].
pub(crate) fn normalize_jaeger(endpoint: &str) -> Result<String, Problem> {
    let endpoint = endpoint.trim();
    if !endpoint.contains("://") {
        let (host, port) = host_port_parts(endpoint)?;
        let port = port.unwrap_or(JAEGER_COLLECTOR_PORT);
        return Ok(format!("http://{host}:{port}{JAEGER_COLLECTOR_PATH}"));
    }
    let uri: Uri = endpoint
        .parse()
        .map_err(|_| Problem::from("is not a URL or host:port"))?;
    check_uri(&uri)?;
    if uri
        .path_and_query()
        .is_none_or(|path| matches!(path.as_str(), "" | "/"))
    {
        Ok(format!(
            "{}{JAEGER_COLLECTOR_PATH}",
            endpoint.trim_end_matches('/')
        ))
    } else {
        Ok(endpoint.to_owned())
    }
}

/// Normalises a Jaeger agent address to `host:port`: a bare host gets port 6831, an IPv6
/// address goes in brackets.
#[cfg_attr(not(feature = "jaeger-agent"), allow(dead_code))] // The agent exporter's.
pub(crate) fn normalize_jaeger_agent(endpoint: &str) -> Result<String, Problem> {
    let (host, port) = host_port_parts(endpoint.trim())?;
    Ok(format!(
        "{host}:{}",
        port.unwrap_or(super::DEFAULT_JAEGER_AGENT_PORT)
    ))
}

/// `host[:port]` split, an IPv6 address in brackets; an error for an empty host, a port that is
/// not 1-65535, or characters no host name has.
fn host_port_parts(text: &str) -> Result<(String, Option<u16>), Problem> {
    let bracketed = |ip: IpAddr| match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let bad_port = || Problem::from("has a port that is not a number (1-65535)");
    if let Ok(address) = text.parse::<SocketAddr>() {
        check_port(address.port()).map_err(|_| bad_port())?;
        return Ok((bracketed(address.ip()), Some(address.port())));
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((bracketed(ip), None));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => {
            let port = port.parse::<u16>().ok().filter(|port| *port != 0);
            (host, Some(port.ok_or_else(bad_port)?))
        }
        None => (text, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !host_ok {
        return Err("is not a URL or host:port".into());
    }
    Ok((host.to_owned(), port))
}

/// `url` with `https://` (or `http://` when `insecure`) in front when it has no scheme.
pub(super) fn with_scheme(url: &str, insecure: bool) -> String {
    let url = url.trim();
    if url.contains("://") {
        url.to_owned()
    } else if insecure {
        format!("http://{url}")
    } else {
        format!("https://{url}")
    }
}

pub(super) fn check_url(url: &str) -> Result<(), Problem> {
    let uri: Uri = url.parse().map_err(|_| Problem::from("is not a URL"))?;
    check_uri(&uri)
}

fn check_uri(uri: &Uri) -> Result<(), Problem> {
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("is not an http:// or https:// URL".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("is a URL without a host".into());
    }
    // `Uri` accepts any text after the host's colon; a port must be a number.
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    let host_and_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, rest)| rest);
    let after_host = host_and_port
        .rsplit_once(']')
        .map_or(host_and_port, |(_, rest)| rest);
    if let Some((_, port)) = after_host.rsplit_once(':')
        && port.parse::<u16>().is_err()
    {
        return Err("has a port that is not a number (1-65535)".into());
    }
    Ok(())
}

pub(super) fn check_key(key: &str) -> Result<(), Problem> {
    if key.trim().is_empty() {
        return Err("is an empty key".into());
    }
    Ok(())
}

pub(super) fn check_host(host: &str) -> Result<(), Problem> {
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err("is not a host name or IP address".into());
    }
    Ok(())
}

pub(super) fn check_port(port: u16) -> Result<(), Problem> {
    if port == 0 {
        return Err("is not a port number (1-65535)".into());
    }
    Ok(())
}

pub(super) fn check_packet_size(size: usize) -> Result<(), Problem> {
    if !(MIN_PACKET_SIZE..=MAX_UDP_PAYLOAD).contains(&size) {
        return Err(format!(
            "is not a datagram size between {MIN_PACKET_SIZE} and {MAX_UDP_PAYLOAD} bytes"
        )
        .into());
    }
    Ok(())
}

pub(super) fn check_positive_duration(duration: Duration) -> Result<(), Problem> {
    if duration.is_zero() {
        return Err("must be at least 1 millisecond".into());
    }
    Ok(())
}

pub(super) fn check_size(size: usize) -> Result<(), Problem> {
    if size == 0 {
        return Err("must be at least 1".into());
    }
    if size > crate::BatchConfig::MAX_QUEUE_SIZE {
        return Err(format!(
            "must be at most {} (the queue's room is allocated up front)",
            crate::BatchConfig::MAX_QUEUE_SIZE
        )
        .into());
    }
    Ok(())
}

pub(super) fn check_sampler_arg(kind: SamplerArgument, arg: f64) -> Result<(), Problem> {
    match kind {
        SamplerArgument::Ratio if !(0.0..=1.0).contains(&arg) => {
            Err("is not a ratio between 0 and 1".into())
        }
        SamplerArgument::TracesPerSecond if !(arg.is_finite() && arg > 0.0) => {
            Err("is not a positive number of traces per second".into())
        }
        _ => Ok(()),
    }
}

/// `host:port`, with an IPv6 address in brackets.
pub(super) fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The header map, or an error that names the bad header but shows no header value (they carry
/// credentials).
pub(super) fn header_map(
    headers: &BTreeMap<String, String>,
    setting: &'static str,
) -> Result<HeaderMap, ConfigError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let (header_name, header_value) = header(name, value).map_err(|problem| {
            let redacted = headers
                .keys()
                .map(|key| format!("{key}={REDACTED}"))
                .collect::<Vec<_>>()
                .join(",");
            ConfigError::invalid(setting, redacted, problem)
        })?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// What stands for a secret in error messages.
pub(super) const REDACTED: &str = "<redacted>";

/// One header, or why it cannot be sent (naming the header, never showing its value).
pub(super) fn header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), Problem> {
    let header_name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("has {name:?}, which is not a valid HTTP header name"))?;
    let header_value = HeaderValue::from_str(value)
        .map_err(|_| format!("has a value for {name:?} that is not a valid HTTP header value"))?;
    Ok((header_name, header_value))
}

/// A `key=value,...` list with the values replaced, for error messages about secrets.
pub(super) fn redact_pairs(list: &str) -> String {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('=') {
            Some((key, _)) => format!("{}={REDACTED}", key.trim()),
            None => REDACTED.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn parse_millis(value: &str) -> Result<Duration, Problem> {
    let millis: u64 = value
        .trim()
        .parse()
        .map_err(|_| Problem::from("is not a number of milliseconds"))?;
    let duration = Duration::from_millis(millis);
    check_positive_duration(duration)?;
    Ok(duration)
}

pub(super) fn parse_size(value: &str) -> Result<usize, Problem> {
    let size: usize = value
        .trim()
        .parse()
        .map_err(|_| Problem::from("is not a whole number"))?;
    check_size(size)?;
    Ok(size)
}

pub(super) fn parse_port(value: &str) -> Result<u16, Problem> {
    let port: u16 = value
        .trim()
        .parse()
        .map_err(|_| Problem::from("is not a port number (1-65535)"))?;
    check_port(port)?;
    Ok(port)
}

pub(super) fn parse_packet_size(value: &str) -> Result<usize, Problem> {
    let size: usize = value.trim().parse().map_err(|_| {
        Problem::from(format!(
            "is not a datagram size between {MIN_PACKET_SIZE} and {MAX_UDP_PAYLOAD} bytes"
        ))
    })?;
    check_packet_size(size)?;
    Ok(size)
}

pub(super) fn parse_bool(value: &str) -> Result<bool, Problem> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("is not true or false".into()),
    }
}

pub(super) fn parse_number(value: &str) -> Result<f64, Problem> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|number| !number.is_nan())
        .ok_or_else(|| Problem::from("is not a number"))
}

/// How a `key=value,key=value` list is written.
#[derive(Debug, Clone, Copy)]
pub(super) struct PairsFormat {
    /// Keys and values are percent-decoded (the OpenTelemetry encoding of
    /// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`).
    pub(super) percent_encoded: bool,
    /// Values are secrets (headers): error messages point at an entry by its position.
    pub(super) secret_values: bool,
}

impl PairsFormat {
    pub(super) const RESOURCE: Self = Self {
        percent_encoded: true,
        secret_values: false,
    };
    pub(super) const HEADERS: Self = Self {
        percent_encoded: true,
        secret_values: true,
    };
    pub(super) const PLAIN: Self = Self {
        percent_encoded: false,
        secret_values: false,
    };
}

/// `key=value` pairs separated by commas (white space around each part ignored; empty entries
/// skipped).
pub(super) fn parse_key_values(
    list: &str,
    format: PairsFormat,
) -> Result<Vec<(String, String)>, Problem> {
    let mut pairs = Vec::new();
    let entries = list.split(',').map(str::trim).filter(|e| !e.is_empty());
    for (index, entry) in entries.enumerate() {
        let which = if format.secret_values {
            format!("entry {}", index + 1)
        } else {
            format!("entry {entry:?}")
        };
        let decode = |part: &str| -> Result<String, Problem> {
            if !format.percent_encoded {
                return Ok(part.to_owned());
            }
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|_| format!("has {which}, which is not UTF-8 once percent-decoded").into())
        };
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| Problem::from(format!("has {which}, which is not `key=value`")))?;
        let key = decode(key.trim())?;
        if key.is_empty() {
            return Err(format!("has {which}, which has an empty key").into());
        }
        pairs.push((key, decode(value.trim())?));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jaeger_endpoints_are_normalised() {
        let cases = [
            ("jaeger:14268", "http://jaeger:14268/api/traces"),
            ("jaeger", "http://jaeger:14268/api/traces"),
            ("::1", "http://[::1]:14268/api/traces"),
            ("[::1]:14268", "http://[::1]:14268/api/traces"),
            ("http://jaeger:14268", "http://jaeger:14268/api/traces"),
            ("http://jaeger:14268/", "http://jaeger:14268/api/traces"),
            (
                "http://jaeger:14268/api/traces",
                "http://jaeger:14268/api/traces",
            ),
            (
                "https://j.example/x?format=jaeger.thrift",
                "https://j.example/x?format=jaeger.thrift",
            ),
        ];
        for (given, expected) in cases {
            assert_eq!(normalize_jaeger(given).as_deref(), Ok(expected), "{given}");
        }
        for bad in [
            "",
            "jaeger:port",
            "ftp://jaeger:21/x",
            "http://",
            "ja eger:1",
        ] {
            assert!(normalize_jaeger(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn jaeger_agent_addresses_are_normalised() {
        assert_eq!(normalize_jaeger_agent("agent").as_deref(), Ok("agent:6831"));
        assert_eq!(normalize_jaeger_agent("::1").as_deref(), Ok("[::1]:6831"));
        assert_eq!(
            normalize_jaeger_agent("[::1]:6832").as_deref(),
            Ok("[::1]:6832")
        );
        for bad in ["", ":6831", "host:0", "host:99999", "a b:1", "http://x:1"] {
            assert!(normalize_jaeger_agent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_messages() {
        let problem = parse_key_values("authorization", PairsFormat::HEADERS).expect_err("bad");
        assert_eq!(problem, "has entry 1, which is not `key=value`");
        let problem = parse_key_values("a=1,b=%FF", PairsFormat::HEADERS).expect_err("bad");
        assert_eq!(
            problem,
            "has entry 2, which is not UTF-8 once percent-decoded"
        );
        assert_eq!(
            redact_pairs("authorization=Bearer x, bare ,k=v"),
            "authorization=<redacted>,<redacted>,k=<redacted>"
        );
    }

    #[test]
    fn hosts_and_ports() {
        assert_eq!(host_port("agent", 6831), "agent:6831");
        assert_eq!(host_port("::1", 6831), "[::1]:6831");
        assert_eq!(host_port("[::1]", 6831), "[::1]:6831");
    }

    #[test]
    fn key_values_decode_percent_escapes() {
        let pairs =
            parse_key_values(" a=1 ,, b = x%2Cy%3Dz ,c=", PairsFormat::RESOURCE).expect("valid");
        assert_eq!(
            pairs,
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x,y=z".to_owned()),
                ("c".to_owned(), String::new())
            ]
        );
        assert!(parse_key_values("a", PairsFormat::RESOURCE).is_err());
        assert!(parse_key_values("=1", PairsFormat::RESOURCE).is_err());
        assert!(parse_key_values("a=%FF", PairsFormat::RESOURCE).is_err());
        assert_eq!(
            parse_key_values("a=%41", PairsFormat::PLAIN).expect("plain"),
            [("a".to_owned(), "%41".to_owned())]
        );
    }
}
