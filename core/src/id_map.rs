//! Maps keyed by the machine's ids. The ids are already unique integers, so hashing them again
//! with SipHash is wasted work on the hot path; this hasher takes the integer as it is (spread by
//! one multiply so sequential ids fill the buckets evenly).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for keys that hash as one `u64` (every id type in this crate).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = n as u64;
    }
}

/// A `HashMap` keyed by [`crate::RequestId`], [`crate::AttemptId`] or [`crate::ProviderId`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttemptId, RequestId};

    #[test]
    fn ids_round_trip_through_the_map() {
        let mut m: IdMap<RequestId, u64> = IdMap::default();
        for i in 0..1000 {
            m.insert(RequestId(i), i * 2);
        }
        assert!((0..1000).all(|i| m[&RequestId(i)] == i * 2));
        let mut a: IdMap<AttemptId, ()> = IdMap::default();
        a.insert(AttemptId(u64::MAX), ());
        assert!(a.contains_key(&AttemptId(u64::MAX)));
    }
}
