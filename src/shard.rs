//! `classify --shard K/N`: which inputs shard K of N takes, from each input's path as given,
//! so every machine that runs the same command agrees, the N shards are disjoint and together
//! cover every input, and adding a file to a folder never moves the others between shards.

use std::path::Path;
use std::str::FromStr;

use anyhow::{Result, bail};

/// Shard `index` (1-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let Some((k, n)) = s.split_once('/') else {
            bail!("expected K/N (shard K of N, 1-based, e.g. 2/8), got {s:?}");
        };
        let parse = |what: &str, v: &str| -> Result<u64> {
            v.trim().parse::<u64>().map_err(|_| {
                anyhow::anyhow!("{what} in {s:?} is not a whole number (expected K/N, e.g. 2/8)")
            })
        };
        let (index, count) = (parse("K", k)?, parse("N", n)?);
        if count == 0 {
            bail!("N in {s:?} must be at least 1");
        }
        if index == 0 || index > count {
            bail!("K in {s:?} must be between 1 and N = {count} (shards are numbered from 1)");
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Whether this shard takes `path`: a fixed 64-bit hash of the path's bytes (FNV-1a, then
    /// splitmix64's finaliser so that every bit counts), modulo N.
    pub fn contains(&self, path: &Path) -> bool {
        stable_hash(path.as_os_str().as_encoded_bytes()) % self.count == self.index - 1
    }
}

/// The same value on every machine and every build (unlike std's randomly keyed hasher).
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h = fnv1a(bytes);
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_of_n_and_refuses_the_rest() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        assert_eq!("1/1".parse::<Shard>().unwrap().to_string(), "1/1");
        for bad in ["0/4", "5/4", "1/0", "2", "a/3", "1/b", "-1/3", "1/2/3", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn shards_are_disjoint_cover_everything_and_do_not_depend_on_the_set() {
        let paths: Vec<String> = (0..1000).map(|i| format!("images/{i:04}.jpg")).collect();
        for n in [1, 2, 3, 7] {
            let shards: Vec<Shard> = (1..=n).map(|k| Shard { index: k, count: n }).collect();
            let mut sizes = vec![0usize; n as usize];
            for p in &paths {
                let owners: Vec<usize> = (0..n as usize)
                    .filter(|&i| shards[i].contains(Path::new(p)))
                    .collect();
                assert_eq!(owners.len(), 1, "{p} is in shards {owners:?} of {n}");
                sizes[owners[0]] += 1;
            }
            // Balanced enough to spread work (1000 paths: each shard within 30% of its share).
            let share = 1000 / n as usize;
            assert!(
                sizes
                    .iter()
                    .all(|&s| s * 10 >= share * 7 && s * 10 <= share * 13),
                "{sizes:?}"
            );
        }
    }

    #[test]
    fn the_hash_is_fnv1a_as_published() {
        // FNV-1a 64's published test vectors: shards must not move between builds.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
