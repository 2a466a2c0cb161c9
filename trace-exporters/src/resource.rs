//! What every exported span says about the process that made it.

use std::borrow::Cow;

use trace_core::{KeyValue, Value};

/// The SDK name reported as `telemetry.sdk.name`.
pub const SDK_NAME: &str = "tracewire";
/// The SDK version reported as `telemetry.sdk.version` (and Jaeger's `client-version` tag).
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The service and process behind the spans: OTLP's resource, Jaeger's process, Zipkin's local
/// endpoint.
///
/// ```
/// use trace_exporters::Resource;
///
/// let resource = Resource::new("checkout").with_attribute("service.version", "1.4.2");
/// assert_eq!(resource.service_name(), "checkout");
/// assert!(resource.attribute("host.name").is_some());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    service_name: Cow<'static, str>,
    attributes: Vec<KeyValue>,
}

impl Resource {
    /// A resource for `service_name` with the attributes every exporter reports: `host.name` and
    /// `telemetry.sdk.{name,language,version}`.
    pub fn new(service_name: impl Into<Cow<'static, str>>) -> Self {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        Self {
            service_name: service_name.into(),
            attributes: vec![
                KeyValue::new("host.name", host),
                KeyValue::new("telemetry.sdk.name", SDK_NAME),
                KeyValue::new("telemetry.sdk.language", "rust"),
                KeyValue::new("telemetry.sdk.version", SDK_VERSION),
            ],
        }
    }

    /// Adds an attribute (or replaces one with the same key). `service.name` sets the service name.
    pub fn with_attribute(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Value>,
    ) -> Self {
        self.set_attribute(key, value);
        self
    }

    /// Adds an attribute (or replaces one with the same key). `service.name` sets the service name.
    pub fn set_attribute(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        if key == "service.name" {
            if let Value::String(name) = &value {
                self.service_name = Cow::Owned(name.as_str().to_owned());
            }
            return;
        }
        match self.attributes.iter_mut().find(|kv| kv.key == key) {
            Some(existing) => existing.value = value,
            None => self.attributes.push(KeyValue { key, value }),
        }
    }

    /// The service name (`service.name`).
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The attributes other than `service.name`.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    /// One attribute by key.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }
}

impl Default for Resource {
    /// `unknown_service`, as OpenTelemetry names a service nobody named.
    fn default() -> Self {
        Self::new("unknown_service")
    }
}
