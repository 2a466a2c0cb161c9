//! What goes wrong reading a configuration.

use std::borrow::Cow;

/// A setting that cannot be used, named with the variable (or flag, or file field) it came from.
///
/// ```
/// use trace_exporters::config::ExporterConfig;
///
/// let error = ExporterConfig::from_lookup(|name| {
///     (name == "OTEL_EXPORTER_OTLP_TIMEOUT").then(|| "abc".to_owned())
/// })
/// .unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     r#"OTEL_EXPORTER_OTLP_TIMEOUT="abc" is not a number of milliseconds"#
/// );
/// assert_eq!(error.setting(), "OTEL_EXPORTER_OTLP_TIMEOUT");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// One value that cannot be parsed or is out of range.
    #[error("{setting}={value:?} {problem}")]
    InvalidValue {
        /// Where the value came from: an environment variable (`OTEL_EXPORTER_OTLP_TIMEOUT`), a
        /// command-line flag with its variable (`--otlp-timeout/OTEL_EXPORTER_OTLP_TIMEOUT`), or a
        /// field of a configuration file (`otlp.timeout_ms`).
        setting: Cow<'static, str>,
        /// The value as given.
        value: String,
        /// What is wrong with it, phrased to follow the value (`is not a number of milliseconds`).
        problem: Cow<'static, str>,
    },
    /// Values that are each fine but do not fit together.
    #[error("{0}")]
    Inconsistent(String),
}

impl ConfigError {
    pub(crate) fn invalid(
        setting: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
        problem: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::InvalidValue {
            setting: setting.into(),
            value: value.into(),
            problem: problem.into(),
        }
    }

    /// The variable, flag or field the bad value came from; empty for [`ConfigError::Inconsistent`].
    pub fn setting(&self) -> &str {
        match self {
            Self::InvalidValue { setting, .. } => setting,
            Self::Inconsistent(_) => "",
        }
    }
}
