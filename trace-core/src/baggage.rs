//! Baggage: application key/value pairs that travel with a trace.

use std::fmt;
use std::sync::Arc;

/// Most entries a baggage holds (the limit OpenTelemetry SDKs apply).
pub const MAX_ENTRIES: usize = 180;
/// Longest single entry (key, value and properties), in bytes.
pub const MAX_ENTRY_LEN: usize = 4096;
/// Longest baggage in all, in bytes, counted as the sum of entry lengths.
pub const MAX_TOTAL_LEN: usize = 8192;

/// Why an entry was not added to a [`Baggage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BaggageError {
    /// The key is empty.
    #[error("empty baggage key")]
    EmptyKey,
    /// The entry is longer than [`MAX_ENTRY_LEN`].
    #[error("baggage entry longer than {MAX_ENTRY_LEN} bytes")]
    EntryTooLong,
    /// The baggage already holds [`MAX_ENTRIES`] entries.
    #[error("more than {MAX_ENTRIES} baggage entries")]
    TooManyEntries,
    /// The baggage would grow past [`MAX_TOTAL_LEN`].
    #[error("baggage longer than {MAX_TOTAL_LEN} bytes")]
    TooLong,
}

/// One baggage entry: a key, its (decoded) value, and the raw W3C properties if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaggageEntry {
    /// The key, case preserved.
    pub key: String,
    /// The value, percent-decoded.
    pub value: String,
    /// The `;`-separated properties after the value, as received (W3C only).
    pub properties: Option<String>,
}

impl BaggageEntry {
    fn len(&self) -> usize {
        self.key.len() + self.value.len() + self.properties.as_ref().map_or(0, String::len)
    }
}

/// An immutable set of baggage entries; cloning shares them, and an empty baggage costs nothing.
///
/// Keys are unique: inserting a key again replaces its value. The size limits
/// ([`MAX_ENTRIES`], [`MAX_ENTRY_LEN`], [`MAX_TOTAL_LEN`]) hold for every baggage, whatever
/// format it came from.
///
/// ```
/// use trace_core::Baggage;
///
/// let baggage = Baggage::EMPTY.with_entry("tenant", "acme")?.with_entry("user", "alice")?;
/// assert_eq!(baggage.get("tenant"), Some("acme"));
/// assert_eq!(baggage.len(), 2);
/// # Ok::<(), trace_core::BaggageError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Baggage(Option<Arc<[BaggageEntry]>>);

impl Baggage {
    /// The empty baggage.
    pub const EMPTY: Self = Self(None);

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.as_deref().map_or(0, <[BaggageEntry]>::len)
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter()
            .find(|entry| entry.key == key)
            .map(|entry| entry.value.as_str())
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &BaggageEntry> {
        self.0.as_deref().unwrap_or(&[]).iter()
    }

    /// A copy with `key` set to `value`.
    pub fn with_entry(
        &self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, BaggageError> {
        let mut builder = BaggageBuilder::from(self);
        builder.insert(BaggageEntry {
            key: key.into(),
            value: value.into(),
            properties: None,
        })?;
        Ok(builder.build())
    }

    /// This baggage with every entry of `other` added; `other` wins where both have a key.
    /// Entries past the limits are left out, and their number returned beside the result.
    pub fn merged(&self, other: &Baggage) -> (Self, usize) {
        if self.is_empty() {
            return (other.clone(), 0);
        }
        let mut builder = BaggageBuilder::from(self);
        let rejected = other
            .iter()
            .filter(|entry| builder.insert((*entry).clone()).is_err())
            .count();
        (builder.build(), rejected)
    }
}

impl fmt::Debug for Baggage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|e| (&e.key, &e.value)))
            .finish()
    }
}

/// Collects entries for a [`Baggage`], enforcing its limits as it goes.
#[derive(Debug, Default)]
pub struct BaggageBuilder {
    entries: Vec<BaggageEntry>,
    total_len: usize,
}

impl BaggageBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry, replacing any entry with the same key.
    pub fn insert(&mut self, entry: BaggageEntry) -> Result<(), BaggageError> {
        if entry.key.is_empty() {
            return Err(BaggageError::EmptyKey);
        }
        let len = entry.len();
        if len > MAX_ENTRY_LEN {
            return Err(BaggageError::EntryTooLong);
        }
        let replaced = self.entries.iter().position(|e| e.key == entry.key);
        let freed = replaced.map_or(0, |i| self.entries[i].len());
        if self.total_len - freed + len > MAX_TOTAL_LEN {
            return Err(BaggageError::TooLong);
        }
        match replaced {
            Some(i) => self.entries[i] = entry,
            None if self.entries.len() >= MAX_ENTRIES => return Err(BaggageError::TooManyEntries),
            None => self.entries.push(entry),
        }
        self.total_len = self.total_len - freed + len;
        Ok(())
    }

    /// Whether no entry has been added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished baggage.
    pub fn build(self) -> Baggage {
        if self.entries.is_empty() {
            Baggage::EMPTY
        } else {
            Baggage(Some(self.entries.into()))
        }
    }
}

impl From<&Baggage> for BaggageBuilder {
    fn from(baggage: &Baggage) -> Self {
        let entries: Vec<BaggageEntry> = baggage.iter().cloned().collect();
        let total_len = entries.iter().map(BaggageEntry::len).sum();
        Self { entries, total_len }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &str) -> BaggageEntry {
        BaggageEntry {
            key: key.into(),
            value: value.into(),
            properties: None,
        }
    }

    #[test]
    fn later_entries_replace_earlier_ones() {
        let a = Baggage::EMPTY
            .with_entry("k", "1")
            .and_then(|b| b.with_entry("j", "2"))
            .expect("fits");
        let b = Baggage::EMPTY.with_entry("k", "3").expect("fits");
        let (merged, rejected) = a.merged(&b);
        assert_eq!(rejected, 0);
        assert_eq!(merged.get("k"), Some("3"));
        assert_eq!(merged.get("j"), Some("2"));
        assert_eq!(merged.len(), 2);
    }

    #[test]
    fn limits_hold() {
        let mut builder = BaggageBuilder::new();
        for i in 0..MAX_ENTRIES {
            builder.insert(entry(&format!("k{i}"), "v")).expect("fits");
        }
        assert_eq!(
            builder.insert(entry("one-more", "v")),
            Err(BaggageError::TooManyEntries)
        );
        assert_eq!(builder.insert(entry("k0", "replaced")), Ok(()));
        assert_eq!(
            BaggageBuilder::new().insert(entry("big", &"x".repeat(MAX_ENTRY_LEN))),
            Err(BaggageError::EntryTooLong)
        );
        let mut builder = BaggageBuilder::new();
        builder.insert(entry("a", &"x".repeat(4000))).expect("fits");
        builder.insert(entry("b", &"x".repeat(4000))).expect("fits");
        assert_eq!(
            builder.insert(entry("c", &"x".repeat(500))),
            Err(BaggageError::TooLong)
        );
        assert_eq!(
            BaggageBuilder::new().insert(entry("", "v")),
            Err(BaggageError::EmptyKey)
        );
    }
}
