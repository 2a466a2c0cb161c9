//! The list API's query string, read and checked: every value from the network is bounded and
//! validated, and anything wrong is a message for a `400`, never a panic.

use std::borrow::Cow;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use trace_core::{TraceId, TraceSummary, Value};

use crate::semconv::HTTP_RESPONSE_STATUS_CODE;

/// Longest query string accepted.
pub(crate) const MAX_QUERY_LEN: usize = 4096;
/// Longest text filter value accepted (service, route, debug id).
pub(crate) const MAX_TEXT_LEN: usize = 256;
/// Traces listed when the query gives no `limit`.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// Most traces one list answer carries; larger limits are capped to it.
pub(crate) const MAX_LIMIT: usize = 500;
/// Largest `min_duration_ms` accepted: a day.
const MAX_MIN_DURATION_MS: f64 = 86_400_000.0;

/// Why a query was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("the query string is longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    #[error("the value of `{0}` is not valid percent-encoded UTF-8")]
    NotUtf8(String),
    #[error("unknown query parameter `{0}`; known: {KNOWN}")]
    Unknown(String),
    #[error("`{0}` is given more than once")]
    Repeated(&'static str),
    #[error("`{0}` is longer than {MAX_TEXT_LEN} bytes")]
    ValueTooLong(&'static str),
    #[error("`status` must be error, ok, 1xx to 5xx or a status code from 100 to 599, got {0:?}")]
    Status(String),
    #[error("`min_duration_ms` must be a number of milliseconds from 0 to 86400000, got {0:?}")]
    MinDuration(String),
    #[error("`trace_id` must be 32 hex digits, not all zero, got {0:?}")]
    TraceId(String),
    #[error("`order` must be recent, slowest or errors, got {0:?}")]
    Order(String),
    #[error(
        "`limit` must be a whole number from 1 (larger values are capped to {MAX_LIMIT}), got {0:?}"
    )]
    Limit(String),
}

const KNOWN: &str = "service, route, status, min_duration_ms, trace_id, debug_id, order, limit";

/// Which traces come first (and, for `errors`, which are listed at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Order {
    /// The trace with the most recently ended span first.
    #[default]
    Recent,
    /// The longest first.
    Slowest,
    /// Only traces with an error span (or a 5xx root), the most recent first.
    Errors,
}

impl Order {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Recent => "recent",
            Self::Slowest => "slowest",
            Self::Errors => "errors",
        }
    }
}

/// The `status` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFilter {
    /// A span of the trace failed, or the root answered 5xx.
    Error,
    /// Neither.
    Ok,
    /// The root's HTTP status is in this class (1 to 5).
    Class(u16),
    /// The root's HTTP status is this code.
    Code(u16),
}

impl StatusFilter {
    fn parse(value: &str) -> Result<Self, QueryError> {
        let bad = || QueryError::Status(value.to_owned());
        match value.to_ascii_lowercase().as_str() {
            "error" | "errors" => Ok(Self::Error),
            "ok" => Ok(Self::Ok),
            class if class.len() == 3 && class.ends_with("xx") => match class.as_bytes()[0] {
                digit @ b'1'..=b'5' => Ok(Self::Class(u16::from(digit - b'0'))),
                _ => Err(bad()),
            },
            code => match code.parse::<u16>() {
                Ok(code @ 100..=599) => Ok(Self::Code(code)),
                _ => Err(bad()),
            },
        }
    }
}

/// A checked list query.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ListQuery {
    pub(crate) service: Option<String>,
    pub(crate) route: Option<String>,
    pub(crate) status: Option<StatusFilter>,
    pub(crate) min_duration: Option<Duration>,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) debug_id: Option<String>,
    pub(crate) order: Order,
    pub(crate) limit: usize,
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn decode(raw: &str) -> Result<Cow<'_, str>, ()> {
    let plus_as_space: Cow<'_, str> = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    let decoded = percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map_err(drop)?
        .into_owned();
    Ok(Cow::Owned(decoded))
}

fn set<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), QueryError> {
    if slot.is_some() {
        return Err(QueryError::Repeated(name));
    }
    *slot = Some(value);
    Ok(())
}

fn text(name: &'static str, value: &str) -> Result<String, QueryError> {
    if value.len() > MAX_TEXT_LEN {
        return Err(QueryError::ValueTooLong(name));
    }
    Ok(value.to_owned())
}

impl ListQuery {
    /// Reads a query string (without the `?`). Empty values mean "no filter", as a form sends
    /// its blank fields.
    pub(crate) fn parse(query: Option<&str>) -> Result<Self, QueryError> {
        let query = query.unwrap_or("");
        if query.len() > MAX_QUERY_LEN {
            return Err(QueryError::TooLong);
        }
        let mut service = None;
        let mut route = None;
        let mut status = None;
        let mut min_duration = None;
        let mut trace_id = None;
        let mut debug_id = None;
        let mut order = None;
        let mut limit = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(raw_key).map_err(|()| QueryError::NotUtf8(raw_key.to_owned()))?;
            let value = decode(raw_value).map_err(|()| QueryError::NotUtf8(key.to_string()))?;
            let value = value.trim();
            let known = [
                "service",
                "route",
                "status",
                "min_duration_ms",
                "trace_id",
                "debug_id",
                "order",
                "limit",
            ];
            let Some(name) = known.iter().copied().find(|k| *k == key) else {
                return Err(QueryError::Unknown(key.chars().take(64).collect()));
            };
            if value.is_empty() {
                continue;
            }
            match name {
                "service" => set(&mut service, name, text(name, value)?)?,
                "route" => set(&mut route, name, text(name, value)?)?,
                "debug_id" => set(&mut debug_id, name, text(name, value)?)?,
                "status" => set(&mut status, name, StatusFilter::parse(value)?)?,
                "min_duration_ms" => {
                    let millis = value
                        .parse::<f64>()
                        .ok()
                        .filter(|ms| ms.is_finite() && (0.0..=MAX_MIN_DURATION_MS).contains(ms))
                        .ok_or_else(|| QueryError::MinDuration(value.to_owned()))?;
                    set(
                        &mut min_duration,
                        name,
                        Duration::from_secs_f64(millis / 1e3),
                    )?;
                }
                "trace_id" => {
                    let id = TraceId::from_hex(value.to_ascii_lowercase().as_bytes())
                        .map_err(|_| QueryError::TraceId(value.to_owned()))?;
                    set(&mut trace_id, name, id)?;
                }
                "order" => {
                    let parsed = match value {
                        "recent" => Order::Recent,
                        "slowest" => Order::Slowest,
                        "errors" => Order::Errors,
                        other => return Err(QueryError::Order(other.to_owned())),
                    };
                    set(&mut order, name, parsed)?;
                }
                _ => {
                    // Digits only, not all zeros; a number too large for u64 is a large limit.
                    if !value.bytes().all(|b| b.is_ascii_digit())
                        || value.bytes().all(|b| b == b'0')
                    {
                        return Err(QueryError::Limit(value.to_owned()));
                    }
                    let parsed = value
                        .parse::<u64>()
                        .ok()
                        .and_then(|n| usize::try_from(n).ok())
                        .map_or(MAX_LIMIT, |n| n.min(MAX_LIMIT));
                    set(&mut limit, "limit", parsed)?;
                }
            }
        }
        Ok(Self {
            service,
            route,
            status,
            min_duration,
            trace_id,
            debug_id,
            order: order.unwrap_or_default(),
            limit: limit.unwrap_or(DEFAULT_LIMIT),
        })
    }

    /// Whether a trace passes every filter (the order's own filter included).
    pub(crate) fn matches(&self, summary: &TraceSummary) -> bool {
        if self.order == Order::Errors && !is_failed(summary) {
            return false;
        }
        if let Some(service) = &self.service
            && !summary.services().iter().any(|s| s.as_str() == service)
        {
            return false;
        }
        if let Some(route) = &self.route
            && !summary
                .routes()
                .iter()
                .any(|r| r.as_str().contains(route.as_str()))
        {
            return false;
        }
        if let Some(status) = self.status {
            let code = root_status_code(summary);
            let pass = match status {
                StatusFilter::Error => is_failed(summary),
                StatusFilter::Ok => !is_failed(summary),
                StatusFilter::Class(class) => code.is_some_and(|c| c / 100 == i64::from(class)),
                StatusFilter::Code(wanted) => code == Some(i64::from(wanted)),
            };
            if !pass {
                return false;
            }
        }
        if let Some(min) = self.min_duration
            && summary.duration() < min
        {
            return false;
        }
        if let Some(trace_id) = self.trace_id
            && summary.trace_id() != trace_id
        {
            return false;
        }
        if let Some(debug_id) = &self.debug_id
            && summary.debug_id() != Some(debug_id.as_str())
        {
            return false;
        }
        true
    }
}

/// The root span's `http.response.status_code`.
pub(crate) fn root_status_code(summary: &TraceSummary) -> Option<i64> {
    match summary.root().attribute(HTTP_RESPONSE_STATUS_CODE) {
        Some(Value::I64(code)) => Some(*code),
        _ => None,
    }
}

/// A span failed, or the root answered with a server error.
pub(crate) fn is_failed(summary: &TraceSummary) -> bool {
    summary.error_count() > 0 || root_status_code(summary).is_some_and(|c| c >= 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_filter() {
        let query = ListQuery::parse(Some(
            "service=api&route=%2Fusers&status=5xx&min_duration_ms=2.5&trace_id=4BF92F3577B34DA6A3CE929D0E0E4736&debug_id=my+id&order=slowest&limit=10",
        ))
        .expect("valid");
        assert_eq!(query.service.as_deref(), Some("api"));
        assert_eq!(query.route.as_deref(), Some("/users"));
        assert_eq!(query.status, Some(StatusFilter::Class(5)));
        assert_eq!(query.min_duration, Some(Duration::from_micros(2500)));
        assert_eq!(
            query.trace_id.map(|t| t.to_string()).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(query.debug_id.as_deref(), Some("my id"));
        assert_eq!(query.order, Order::Slowest);
        assert_eq!(query.limit, 10);
    }

    #[test]
    fn blank_values_are_no_filter_and_limits_are_capped() {
        let query =
            ListQuery::parse(Some("service=&route=&limit=99999999999999999999999")).expect("valid");
        assert_eq!(query.service, None);
        assert_eq!(query.limit, MAX_LIMIT);
        assert_eq!(ListQuery::parse(None).expect("valid").limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (query, expected) in [
            ("limit=0", QueryError::Limit("0".into())),
            ("limit=-3", QueryError::Limit("-3".into())),
            ("min_duration_ms=NaN", QueryError::MinDuration("NaN".into())),
            ("min_duration_ms=-1", QueryError::MinDuration("-1".into())),
            ("status=600", QueryError::Status("600".into())),
            ("status=9xx", QueryError::Status("9xx".into())),
            ("trace_id=xyz", QueryError::TraceId("xyz".into())),
            ("order=oldest", QueryError::Order("oldest".into())),
            ("colour=red", QueryError::Unknown("colour".into())),
            ("route=a&route=b", QueryError::Repeated("route")),
            ("debug_id=%FF", QueryError::NotUtf8("debug_id".into())),
        ] {
            assert_eq!(ListQuery::parse(Some(query)), Err(expected), "{query}");
        }
        let long = format!("service={}", "s".repeat(MAX_TEXT_LEN + 1));
        assert_eq!(
            ListQuery::parse(Some(&long)),
            Err(QueryError::ValueTooLong("service"))
        );
        let huge = "a=".repeat(MAX_QUERY_LEN);
        assert_eq!(ListQuery::parse(Some(&huge)), Err(QueryError::TooLong));
    }
}
