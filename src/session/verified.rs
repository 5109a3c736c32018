//! Signed cookie values already verified, with what they hold. A browser sends the same
//! session cookie (and the same `session_data`) with every request until it is re-issued,
//! and verifying one (percent-decoding, base64, an HMAC, and for `session_data` two JSON
//! parses) costs more than the rest of a get-session answered from the cookie cache.
//!
//! Only values that verified are kept, so the map holds nothing a client made up; a value
//! verifies or not under the engine's secret alone, so remembering the outcome changes no
//! answer. Whatever is time-bound in it is checked by the caller at every use. At most
//! `max` values are kept; past that the map starts over.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

/// Bytes at the end of a value that its hash covers: signed values end with their
/// signature, so their ends differ; hashing hundreds of bytes per request cost more than
/// the rest of a cache hit. Keys are still compared whole.
const HASHED_TAIL: usize = 48;

pub struct Verified<V> {
    map: Mutex<HashMap<Box<str>, Arc<V>, TailHash>>,
    max: usize,
}

impl<V> Verified<V> {
    pub fn new(max: usize) -> Self {
        Verified { map: Mutex::new(HashMap::with_hasher(TailHash(RandomState::new()))), max }
    }

    /// What `value` holds: remembered, or `verify(value)` (remembered when it is `Some`).
    pub fn get_or_verify(&self, value: &str, verify: impl FnOnce(&str) -> Option<V>) -> Option<Arc<V>> {
        if let Some(known) = self.lock().get(value) {
            return Some(known.clone());
        }
        let held = Arc::new(verify(value)?);
        let mut map = self.lock();
        if map.len() >= self.max {
            map.clear();
        }
        map.insert(value.into(), held.clone());
        Some(held)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Arc<V>, TailHash>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V> std::fmt::Debug for Verified<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verified({} values)", self.len())
    }
}

/// Hashes the last [`HASHED_TAIL`] bytes of a `str` key (SipHash with random keys).
#[derive(Clone)]
struct TailHash(RandomState);

impl BuildHasher for TailHash {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(DefaultHasher);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn even_length(v: &str) -> Option<usize> {
        v.len().is_multiple_of(2).then_some(v.len())
    }

    #[test]
    fn only_values_that_verify_are_remembered() {
        let verified = Verified::new(10);
        assert_eq!(verified.get_or_verify("ab", even_length).as_deref(), Some(&2));
        assert_eq!(verified.get_or_verify("abc", even_length), None);
        assert_eq!(verified.len(), 1);
        // Remembered: not verified again.
        assert_eq!(verified.get_or_verify("ab", |_| panic!("verified twice")).as_deref(), Some(&2));
    }

    #[test]
    fn values_with_the_same_end_are_told_apart() {
        let verified = Verified::new(10);
        let tail = "x".repeat(HASHED_TAIL);
        let (a, b) = (format!("aa{tail}"), format!("bbbb{tail}"));
        assert_eq!(verified.get_or_verify(&a, even_length).as_deref(), Some(&a.len()));
        assert_eq!(verified.get_or_verify(&b, even_length).as_deref(), Some(&b.len()));
        assert_eq!(verified.get_or_verify(&format!("cc{tail}"), |_| None::<usize>), None);
    }

    #[test]
    fn at_most_max_values_are_kept() {
        let verified = Verified::new(3);
        for i in 0..10 {
            assert!(verified.get_or_verify(&format!("{i:02}"), even_length).is_some());
            assert!(verified.len() <= 3);
        }
    }
}
