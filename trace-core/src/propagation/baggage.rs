//! SKELETON: to be written.

use http::HeaderMap;

use super::{ExtractError, Extracted, Presence, Propagator};
use crate::SpanContext;

/// SKELETON.
#[derive(Debug, Clone, Default)]
pub struct BaggagePropagator;

impl BaggagePropagator {
    /// SKELETON.
    pub fn new() -> Self {
        Self
    }
}

impl Propagator for BaggagePropagator {
    fn name(&self) -> &'static str {
        "baggage"
    }

    fn extract(&self, _headers: &HeaderMap, _into: &mut Extracted) -> Result<Presence, ExtractError> {
        Ok(Presence::Absent)
    }

    fn inject(&self, _context: &SpanContext, _headers: &mut HeaderMap) {}
}
