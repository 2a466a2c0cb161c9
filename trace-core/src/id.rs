//! Trace and span identifiers.
//!
//! Both are non-zero newtypes: an all-zero id is invalid in every propagation format, so a value of
//! these types is always one a peer will accept. Hex conversion never allocates: formatting writes
//! into a stack buffer, parsing reads bytes.

use std::fmt;
use std::num::{NonZeroU64, NonZeroU128};
use std::str::FromStr;

/// Why a hex id was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// The text is not exactly as long as the id's canonical form (32 or 16 characters).
    #[error("expected {expected} hex digits, got {actual}")]
    Length {
        /// The canonical length.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// A byte is not a lower-case hex digit (`0-9a-f`).
    #[error("invalid hex digit at byte {0}")]
    Digit(usize),
    /// Every digit is zero, which no format allows.
    #[error("all-zero id")]
    Zero,
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Value of one lower-case hex digit.
#[inline]
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    }
}

/// Reads up to 32 lower-case hex digits as a number. Lengths are the caller's to check.
#[inline]
pub(crate) fn parse_hex_u128(hex: &[u8]) -> Result<u128, IdParseError> {
    let mut value = 0u128;
    for (index, &byte) in hex.iter().enumerate() {
        let digit = hex_value(byte).ok_or(IdParseError::Digit(index))?;
        value = (value << 4) | u128::from(digit);
    }
    Ok(value)
}

/// Reads up to 16 lower-case hex digits as a number. Lengths are the caller's to check.
#[inline]
pub(crate) fn parse_hex_u64(hex: &[u8]) -> Result<u64, IdParseError> {
    let mut value = 0u64;
    for (index, &byte) in hex.iter().enumerate() {
        let digit = hex_value(byte).ok_or(IdParseError::Digit(index))?;
        value = (value << 4) | u64::from(digit);
    }
    Ok(value)
}

/// Writes `value` as `N` lower-case hex digits, most significant first.
#[inline]
fn write_hex<const N: usize>(mut value: u128) -> [u8; N] {
    let mut out = [b'0'; N];
    for slot in out.iter_mut().rev() {
        *slot = HEX_DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
    out
}

/// A lower-case hex rendering held on the stack; derefs to `str`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    /// The digits as a string slice.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into the buffer.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The digits as bytes.
    pub fn as_bytes(&self) -> &[u8; N] {
        &self.0
    }
}

impl<const N: usize> std::ops::Deref for HexId<N> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> fmt::Display for HexId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for HexId<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A 128-bit trace id, never zero.
///
/// ```
/// use trace_core::TraceId;
///
/// let id: TraceId = "4bf92f3577b34da6a3ce929d0e0e4736".parse()?;
/// assert_eq!(id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(id.low_u64(), 0xa3ce929d0e0e4736);
/// assert!("4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>().is_err());
/// # Ok::<(), trace_core::IdParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceId(NonZeroU128);

impl TraceId {
    /// Number of hex digits in the canonical form.
    pub const HEX_LEN: usize = 32;

    /// A random id from a per-thread generator (no syscall, no lock).
    #[inline]
    pub fn random() -> Self {
        loop {
            if let Some(id) = NonZeroU128::new(fastrand::u128(..)) {
                return Self(id);
            }
        }
    }

    /// The id with this numeric value; `None` for zero.
    #[inline]
    pub const fn from_u128(value: u128) -> Option<Self> {
        match NonZeroU128::new(value) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The id from its high and low 64-bit halves (as Jaeger and Thrift carry it); `None` for zero.
    #[inline]
    pub const fn from_halves(high: u64, low: u64) -> Option<Self> {
        Self::from_u128(((high as u128) << 64) | low as u128)
    }

    /// The id from 16 big-endian bytes; `None` for all zeros.
    #[inline]
    pub const fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        Self::from_u128(u128::from_be_bytes(bytes))
    }

    /// The numeric value.
    #[inline]
    pub const fn to_u128(self) -> u128 {
        self.0.get()
    }

    /// The 16 big-endian bytes (the OTLP and W3C binary form).
    #[inline]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.get().to_be_bytes()
    }

    /// The upper 64 bits (zero for a 64-bit trace id).
    #[inline]
    pub const fn high_u64(self) -> u64 {
        (self.0.get() >> 64) as u64
    }

    /// The lower 64 bits.
    #[inline]
    pub const fn low_u64(self) -> u64 {
        self.0.get() as u64
    }

    /// Parses exactly 32 lower-case hex digits.
    #[inline]
    pub fn from_hex(hex: &[u8]) -> Result<Self, IdParseError> {
        if hex.len() != Self::HEX_LEN {
            return Err(IdParseError::Length {
                expected: Self::HEX_LEN,
                actual: hex.len(),
            });
        }
        Self::from_u128(parse_hex_u128(hex)?).ok_or(IdParseError::Zero)
    }

    /// The 32 lower-case hex digits, on the stack.
    #[inline]
    pub fn to_hex(self) -> HexId<32> {
        HexId(write_hex(self.0.get()))
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({})", self.to_hex())
    }
}

impl FromStr for TraceId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s.as_bytes())
    }
}

/// A 64-bit span id, never zero.
///
/// ```
/// use trace_core::SpanId;
///
/// let id: SpanId = "00f067aa0ba902b7".parse()?;
/// assert_eq!(id.to_u64(), 0xf067aa0ba902b7);
/// assert_eq!(format!("{id}"), "00f067aa0ba902b7");
/// # Ok::<(), trace_core::IdParseError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpanId(NonZeroU64);

impl SpanId {
    /// Number of hex digits in the canonical form.
    pub const HEX_LEN: usize = 16;

    /// A random id from a per-thread generator (no syscall, no lock).
    #[inline]
    pub fn random() -> Self {
        loop {
            if let Some(id) = NonZeroU64::new(fastrand::u64(..)) {
                return Self(id);
            }
        }
    }

    /// The id with this numeric value; `None` for zero.
    #[inline]
    pub const fn from_u64(value: u64) -> Option<Self> {
        match NonZeroU64::new(value) {
            Some(id) => Some(Self(id)),
            None => None,
        }
    }

    /// The id from 8 big-endian bytes; `None` for all zeros.
    #[inline]
    pub const fn from_bytes(bytes: [u8; 8]) -> Option<Self> {
        Self::from_u64(u64::from_be_bytes(bytes))
    }

    /// The numeric value.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        self.0.get()
    }

    /// The 8 big-endian bytes.
    #[inline]
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.get().to_be_bytes()
    }

    /// Parses exactly 16 lower-case hex digits.
    #[inline]
    pub fn from_hex(hex: &[u8]) -> Result<Self, IdParseError> {
        if hex.len() != Self::HEX_LEN {
            return Err(IdParseError::Length {
                expected: Self::HEX_LEN,
                actual: hex.len(),
            });
        }
        Self::from_u64(parse_hex_u64(hex)?).ok_or(IdParseError::Zero)
    }

    /// The 16 lower-case hex digits, on the stack.
    #[inline]
    pub fn to_hex(self) -> HexId<16> {
        HexId(write_hex(u128::from(self.0.get())))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({})", self.to_hex())
    }
}

impl FromStr for SpanId {
    type Err = IdParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_keeps_leading_zeros() {
        let trace = TraceId::from_u128(1).expect("non-zero");
        assert_eq!(trace.to_string(), "00000000000000000000000000000001");
        assert_eq!(trace.to_string().parse::<TraceId>(), Ok(trace));
        let span = SpanId::from_u64(0xab).expect("non-zero");
        assert_eq!(span.to_string(), "00000000000000ab");
        assert_eq!(span.to_string().parse::<SpanId>(), Ok(span));
    }

    #[test]
    fn strict_parsing_rejects_what_the_specs_reject() {
        let zero = "0".repeat(32);
        assert_eq!(zero.parse::<TraceId>(), Err(IdParseError::Zero));
        assert_eq!(
            "0000000000000000".parse::<SpanId>(),
            Err(IdParseError::Zero)
        );
        assert_eq!(
            "4BF92F3577B34DA6A3CE929D0E0E4736".parse::<TraceId>(),
            Err(IdParseError::Digit(1))
        );
        assert_eq!(
            "+bf92f3577b34da6a3ce929d0e0e4736".parse::<TraceId>(),
            Err(IdParseError::Digit(0))
        );
        assert_eq!(
            "4bf92f3577b34da".parse::<SpanId>(),
            Err(IdParseError::Length {
                expected: 16,
                actual: 15
            })
        );
        assert!("4bf92f3577b34da6a3ce929d0e0e47361".parse::<TraceId>().is_err());
        assert!("".parse::<SpanId>().is_err());
        assert!("é0f067aa0ba902b".parse::<SpanId>().is_err());
    }

    #[test]
    fn halves_and_bytes_agree() {
        let id = TraceId::from_halves(0x0102030405060708, 0x090a0b0c0d0e0f10).expect("non-zero");
        assert_eq!(id.high_u64(), 0x0102030405060708);
        assert_eq!(id.low_u64(), 0x090a0b0c0d0e0f10);
        assert_eq!(id.to_bytes()[0], 1);
        assert_eq!(TraceId::from_bytes(id.to_bytes()), Some(id));
        assert_eq!(TraceId::from_halves(0, 0), None);
        let span = SpanId::random();
        assert_eq!(SpanId::from_bytes(span.to_bytes()), Some(span));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(TraceId::random(), TraceId::random());
        assert_ne!(SpanId::random(), SpanId::random());
    }
}
