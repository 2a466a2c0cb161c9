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

/// Digit values of the lower-case hex alphabet; every other byte maps to `0xff`.
const HEX_VALUES: [u8; 256] = {
    let mut table = [0xff_u8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// The first byte that is not a lower-case hex digit.
#[cold]
fn first_bad_digit(hex: &[u8]) -> IdParseError {
    let index = hex
        .iter()
        .position(|&b| HEX_VALUES[usize::from(b)] == 0xff)
        .unwrap_or_default();
    IdParseError::Digit(index)
}

/// Reads up to 16 lower-case hex digits as a number. Lengths are the caller's to check.
///
/// Branch-free over the digits (a table lookup per byte, validity checked once at the end):
/// ids are parsed on every traced request.
#[inline]
pub(crate) fn parse_hex_u64(hex: &[u8]) -> Result<u64, IdParseError> {
    let mut value = 0u64;
    let mut invalid = 0u8;
    for &byte in hex {
        let digit = HEX_VALUES[usize::from(byte)];
        invalid |= digit;
        value = (value << 4) | u64::from(digit & 0xf);
    }
    if hex.len() > 16 {
        return Err(IdParseError::Length {
            expected: 16,
            actual: hex.len(),
        });
    }
    if invalid & 0xf0 != 0 {
        return Err(first_bad_digit(hex));
    }
    Ok(value)
}

/// Reads up to 32 lower-case hex digits as a number. Lengths are the caller's to check.
#[inline]
pub(crate) fn parse_hex_u128(hex: &[u8]) -> Result<u128, IdParseError> {
    // Two independent 64-bit halves decode in parallel rather than as one long dependency chain.
    if hex.len() > 32 {
        return Err(IdParseError::Length {
            expected: 32,
            actual: hex.len(),
        });
    }
    let (high, low) = hex.split_at(hex.len().saturating_sub(16));
    match (parse_hex_u64(high), parse_hex_u64(low)) {
        (Ok(high), Ok(low)) => Ok((u128::from(high) << 64) | u128::from(low)),
        _ => Err(first_bad_digit(hex)),
    }
}

/// Decodes exactly 8 lower-case hex digits at once, as one 64-bit word (SWAR); `None` if any
/// byte is not a digit. Ids of fixed length (`traceparent`, B3) take this path: four words for a
/// trace id instead of 32 dependent steps.
#[inline]
fn decode_hex_word(chunk: [u8; 8]) -> Option<u32> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Sets the high bit of every byte `b` with `low < b < high`; exact for bytes below 0x80.
    const fn between(x: u64, low: u8, high: u8) -> u64 {
        let x7 = x & (ONES * 0x7f);
        (ONES * (127 + high as u64)).wrapping_sub(x7)
            & !x
            & x7.wrapping_add(ONES * (127 - low as u64))
            & HIGH
    }
    let word = u64::from_be_bytes(chunk);
    if word & HIGH != 0 {
        return None;
    }
    let digits = between(word, b'0' - 1, b'9' + 1);
    let letters = between(word, b'a' - 1, b'f' + 1);
    if digits | letters != HIGH {
        return None;
    }
    // `0`-`9` are 0x30-0x39 and `a`-`f` 0x61-0x66: the low nibble, plus 9 when bit 6 is set.
    let nibbles = (word & (ONES * 0x0f)) + ((word >> 6) & ONES) * 9;
    // Pack the eight nibbles (one per byte, first digit most significant) into 32 bits.
    let pairs = (nibbles | (nibbles >> 4)) & 0x00ff_00ff_00ff_00ff;
    let quads = (pairs | (pairs >> 8)) & 0x0000_ffff_0000_ffff;
    Some(((quads | (quads >> 16)) & 0xffff_ffff) as u32)
}

/// Decodes exactly `8 * N` lower-case hex digits, `N` words at a time.
#[inline]
fn decode_hex_words<const N: usize>(hex: &[u8]) -> Option<u128> {
    let mut value = 0u128;
    for chunk in hex.chunks_exact(8).take(N) {
        let word: [u8; 8] = chunk.try_into().ok()?;
        value = (value << 32) | u128::from(decode_hex_word(word)?);
    }
    Some(value)
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

/// Short ASCII text rendered on the stack (an id in lower-case hex, a `traceparent`); derefs to
/// `str`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    /// Wraps bytes the caller rendered; they must be ASCII for `as_str` to show them.
    pub(crate) const fn from_ascii(bytes: [u8; N]) -> Self {
        Self(bytes)
    }

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
        let value = match decode_hex_words::<4>(hex) {
            Some(value) => value,
            None => return Err(first_bad_digit(hex)),
        };
        Self::from_u128(value).ok_or(IdParseError::Zero)
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
        let value = match decode_hex_words::<2>(hex) {
            Some(value) => value as u64,
            None => return Err(first_bad_digit(hex)),
        };
        Self::from_u64(value).ok_or(IdParseError::Zero)
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
        assert!(
            "4bf92f3577b34da6a3ce929d0e0e47361"
                .parse::<TraceId>()
                .is_err()
        );
        assert!("".parse::<SpanId>().is_err());
        assert!("é0f067aa0ba902b".parse::<SpanId>().is_err());
    }

    #[test]
    fn word_decoder_agrees_with_the_table_for_every_byte_in_every_position() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut chunk = *b"0123abcd";
                chunk[position] = byte;
                let expected = parse_hex_u64(&chunk).ok().map(|v| v as u32);
                assert_eq!(decode_hex_word(chunk), expected, "{byte:#x} at {position}");
            }
        }
        assert_eq!(decode_hex_word(*b"ffffffff"), Some(u32::MAX));
        assert_eq!(decode_hex_word(*b"00000000"), Some(0));
        assert_eq!(decode_hex_word(*b"a0b1c2d3"), Some(0xa0b1_c2d3));
        let id = TraceId::random();
        assert_eq!(TraceId::from_hex(id.to_hex().as_bytes()), Ok(id));
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
