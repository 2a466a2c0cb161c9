//! SKELETON: to be written.

use http::HeaderMap;

use super::{ExtractError, Extracted, Presence, Propagator};
use crate::SpanContext;

/// SKELETON.
#[derive(Debug, Clone, Default)]
pub struct JaegerPropagator;

impl JaegerPropagator {
    /// SKELETON.
    pub fn new() -> Self {
        Self
    }
}

impl Propagator for JaegerPropagator {
    fn name(&self) -> &'static str {
        "jaeger"
    }

    fn extract(&self, _headers: &HeaderMap, _into: &mut Extracted) -> Result<Presence, ExtractError> {
        Ok(Presence::Absent)
    }

    fn inject(&self, _context: &SpanContext, _headers: &mut HeaderMap) {}
}
