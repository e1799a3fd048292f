//! `HashRing`: consistent hashing of routing keys onto handlers, weighted by load factor. Each
//! handler owns `load_factor` points on a 64-bit ring (a handler with load factor 0 counts as 100,
//! as in Axon Server); a key goes to the owner of the first point at or after the key's hash. The
//! same key reaches the same handler while the set of handlers is unchanged, and adding or removing
//! a handler moves only the keys of the points it gains or loses.

/// Points a handler gets for a load factor of 0 (Axon's default weight).
const DEFAULT_LOAD_FACTOR: u32 = 100;
/// Upper bound on one handler's points, so a huge load factor cannot blow up memory.
const POINTS_PER_HANDLER_MAX: u32 = 10_000;

#[derive(Debug, Clone, Default)]
pub struct HashRing<T> {
    /// (point, owner), sorted by point.
    points: Vec<(u64, T)>,
}

impl<T: Clone> HashRing<T> {
    /// Builds the ring from `(owner, identity, load_factor)`. The identity names the owner on the
    /// ring (the client id), so an owner that reconnects gets its old points back.
    pub fn new<'a>(members: impl IntoIterator<Item = (T, &'a str, u32)>) -> HashRing<T> {
        let mut points = Vec::new();
        for (owner, identity, load_factor) in members {
            let weight = match load_factor {
                0 => DEFAULT_LOAD_FACTOR,
                n => n.min(POINTS_PER_HANDLER_MAX),
            };
            for i in 0..weight {
                points.push((hash(format!("{identity} #{i}").as_bytes()), owner.clone()));
            }
        }
        points.sort_by_key(|(point, _)| *point);
        HashRing { points }
    }

    /// The owner of `key`, or `None` for an empty ring.
    pub fn pick(&self, key: &str) -> Option<&T> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(key.as_bytes());
        let index = self.points.partition_point(|(point, _)| *point < h);
        let (_, owner) = &self.points[index % self.points.len()];
        Some(owner)
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// FNV-1a, then a 64-bit finaliser (from SplitMix64) so nearby inputs land far apart.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn keys() -> Vec<String> {
        (0..20_000).map(|i| format!("aggregate-{i}")).collect()
    }

    fn assign<'a>(ring: &HashRing<&'a str>, keys: &[String]) -> HashMap<String, &'a str> {
        keys.iter()
            .map(|k| (k.clone(), *ring.pick(k).expect("owner")))
            .collect()
    }

    #[test]
    fn the_same_key_reaches_the_same_handler() {
        let ring = HashRing::new([("a", "client-a", 100), ("b", "client-b", 100)]);
        let again = HashRing::new([("b", "client-b", 100), ("a", "client-a", 100)]);
        for key in keys().iter().take(1000) {
            assert_eq!(ring.pick(key), ring.pick(key));
            assert_eq!(
                ring.pick(key),
                again.pick(key),
                "order of members does not matter"
            );
        }
    }

    #[test]
    fn adding_a_handler_moves_only_its_share() {
        let keys = keys();
        let two = HashRing::new([("a", "client-a", 100), ("b", "client-b", 100)]);
        let three = HashRing::new([
            ("a", "client-a", 100),
            ("b", "client-b", 100),
            ("c", "client-c", 100),
        ]);
        let before = assign(&two, &keys);
        let after = assign(&three, &keys);
        let moved: Vec<_> = keys.iter().filter(|k| before[*k] != after[*k]).collect();
        assert!(
            moved.iter().all(|k| after[*k] == "c"),
            "keys only move to the new handler"
        );
        let share = moved.len() as f64 / keys.len() as f64;
        assert!(
            (0.25..0.42).contains(&share),
            "about a third of the keys move, got {share:.3}"
        );
    }

    #[test]
    fn removing_a_handler_moves_only_its_keys() {
        let keys = keys();
        let three = HashRing::new([
            ("a", "client-a", 100),
            ("b", "client-b", 100),
            ("c", "client-c", 100),
        ]);
        let two = HashRing::new([("a", "client-a", 100), ("b", "client-b", 100)]);
        let before = assign(&three, &keys);
        let after = assign(&two, &keys);
        for key in &keys {
            if before[key] != "c" {
                assert_eq!(
                    before[key], after[key],
                    "{key} did not belong to the removed handler"
                );
            }
        }
    }

    #[test]
    fn traffic_follows_load_factor() {
        let keys = keys();
        let ring = HashRing::new([
            ("light", "client-light", 100),
            ("heavy", "client-heavy", 300),
        ]);
        let heavy = assign(&ring, &keys)
            .values()
            .filter(|o| **o == "heavy")
            .count();
        let share = heavy as f64 / keys.len() as f64;
        assert!(
            (0.68..0.82).contains(&share),
            "a 3:1 load factor takes about 75%, got {share:.3}"
        );
        let zero = HashRing::new([("x", "client-x", 0)]);
        assert_eq!(
            zero.points.len(),
            DEFAULT_LOAD_FACTOR as usize,
            "load factor 0 counts as 100"
        );
    }

    #[test]
    fn an_empty_ring_has_no_owner() {
        let ring: HashRing<u8> = HashRing::new(std::iter::empty());
        assert!(ring.pick("k").is_none());
    }
}
