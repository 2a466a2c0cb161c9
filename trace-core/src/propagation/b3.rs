//! SKELETON: to be written.

use http::HeaderMap;

use super::{ExtractError, Extracted, Presence, Propagator};
use crate::SpanContext;

/// SKELETON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum B3Encoding {
    /// SKELETON.
    #[default]
    SingleHeader,
    /// SKELETON.
    MultipleHeaders,
}

/// SKELETON.
#[derive(Debug, Clone, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// SKELETON.
    pub fn new(encoding: B3Encoding) -> Self {
        Self { encoding }
    }
}

impl Propagator for B3Propagator {
    fn name(&self) -> &'static str {
        match self.encoding {
            B3Encoding::SingleHeader => "b3",
            B3Encoding::MultipleHeaders => "b3multi",
        }
    }

    fn extract(&self, _headers: &HeaderMap, _into: &mut Extracted) -> Result<Presence, ExtractError> {
        Ok(Presence::Absent)
    }

    fn inject(&self, _context: &SpanContext, _headers: &mut HeaderMap) {}
}
