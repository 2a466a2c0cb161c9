//! The batching pipeline's settings.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a [`BatchExporter`](crate::BatchExporter) queues, batches, times out and retries.
///
/// `Default` gives the OpenTelemetry batch span processor's defaults plus a retry budget. In
/// serialized form durations are whole milliseconds (`scheduled_delay_ms`, ...), as the
/// `OTEL_BSP_*` variables give them, and missing fields take their defaults:
///
/// ```
/// use std::time::Duration;
/// use trace_exporters::BatchConfig;
///
/// let config: BatchConfig =
///     serde_json::from_str(r#"{ "max_queue_size": 4096, "scheduled_delay_ms": 500 }"#)?;
/// assert_eq!(config.max_queue_size, 4096);
/// assert_eq!(config.scheduled_delay, Duration::from_millis(500));
/// assert_eq!(config.max_batch_size, 512);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchConfig {
    /// Spans the queue holds before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`, default
    /// 2,048). At least 1, at most [`MAX_QUEUE_SIZE`](Self::MAX_QUEUE_SIZE) (the queue's room is
    /// allocated up front). For an exporter that encodes spans as they end (OTLP protobuf), the
    /// limit counts the chunks handed to the export task; the chunks being filled, one for each
    /// of 8 groups of threads, hold up to 31 spans more each (see
    /// [`BatchExporter`](crate::BatchExporter)).
    pub max_queue_size: usize,
    /// Spans per export call (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512). At least 1, at most
    /// `max_queue_size`.
    pub max_batch_size: usize,
    /// The longest a span waits in the queue before a smaller batch is sent
    /// (`OTEL_BSP_SCHEDULE_DELAY`, default 1 s). At least 1 ms.
    #[serde(rename = "scheduled_delay_ms", with = "crate::duration_ms")]
    pub scheduled_delay: Duration,
    /// The longest one export call may take before it counts as a retryable failure
    /// (`OTEL_BSP_EXPORT_TIMEOUT`, default 10 s).
    #[serde(rename = "export_timeout_ms", with = "crate::duration_ms")]
    pub export_timeout: Duration,
    /// The longest one batch is tried, retries included, before its spans are dropped
    /// (default 30 s).
    #[serde(rename = "max_retry_time_ms", with = "crate::duration_ms")]
    pub max_retry_time: Duration,
    /// The wait before the first retry; each further retry doubles it, and every wait is
    /// jittered down by up to half (default 100 ms). A `Retry-After` from the destination
    /// replaces it.
    #[serde(rename = "initial_backoff_ms", with = "crate::duration_ms")]
    pub initial_backoff: Duration,
    /// The longest wait between two attempts when the destination gave no `Retry-After`
    /// (default 5 s).
    #[serde(rename = "max_backoff_ms", with = "crate::duration_ms")]
    pub max_backoff: Duration,
}

impl BatchConfig {
    /// Default queue bound.
    pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
    /// The largest queue bound: larger settings are brought down to it. The queue allocates its
    /// room when it is made, so a setting of, say, `usize::MAX` from a mistyped environment
    /// variable must not ask for all of memory.
    pub const MAX_QUEUE_SIZE: usize = 1 << 20;
    /// Default batch size.
    pub const DEFAULT_MAX_BATCH_SIZE: usize = 512;
    /// Default scheduled delay.
    pub const DEFAULT_SCHEDULED_DELAY: Duration = Duration::from_secs(1);
    /// Default timeout of one export call.
    pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default retry budget of one batch.
    pub const DEFAULT_MAX_RETRY_TIME: Duration = Duration::from_secs(30);
    /// Default first backoff.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(100);
    /// Default longest backoff.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);

    /// The settings with out-of-range values brought into range, as the pipeline uses them.
    pub fn normalized(&self) -> Self {
        let max_queue_size = self.max_queue_size.clamp(1, Self::MAX_QUEUE_SIZE);
        Self {
            max_queue_size,
            max_batch_size: self.max_batch_size.clamp(1, max_queue_size),
            scheduled_delay: self.scheduled_delay.max(Duration::from_millis(1)),
            export_timeout: self.export_timeout.max(Duration::from_millis(1)),
            max_retry_time: self.max_retry_time,
            initial_backoff: self.initial_backoff.max(Duration::from_millis(1)),
            max_backoff: self.max_backoff.max(self.initial_backoff),
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_queue_size: Self::DEFAULT_MAX_QUEUE_SIZE,
            max_batch_size: Self::DEFAULT_MAX_BATCH_SIZE,
            scheduled_delay: Self::DEFAULT_SCHEDULED_DELAY,
            export_timeout: Self::DEFAULT_EXPORT_TIMEOUT,
            max_retry_time: Self::DEFAULT_MAX_RETRY_TIME,
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_out_of_range_values() {
        let config = BatchConfig {
            max_queue_size: 0,
            max_batch_size: 10,
            scheduled_delay: Duration::ZERO,
            ..BatchConfig::default()
        }
        .normalized();
        assert_eq!(config.max_queue_size, 1);
        assert_eq!(config.max_batch_size, 1);
        assert_eq!(config.scheduled_delay, Duration::from_millis(1));
        let huge = BatchConfig {
            max_queue_size: usize::MAX,
            max_batch_size: usize::MAX,
            ..BatchConfig::default()
        }
        .normalized();
        assert_eq!(huge.max_queue_size, BatchConfig::MAX_QUEUE_SIZE);
        assert_eq!(huge.max_batch_size, BatchConfig::MAX_QUEUE_SIZE);
    }
}
