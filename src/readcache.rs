//! What a thread has read of the postings files, kept for the looks that
//! read it again ([`ReadCache`]), and the cheap hasher of the matcher's
//! maps keyed by the index's own ids ([`IdHash`]).

use anyhow::Result;
use std::collections::HashMap;

/// Postings of read lookups ([`crate::segment::READ_LOOKUPS_ABOVE`]) kept
/// per thread, at most this many (track, frame) pairs (8 MB). One clip
/// reads fewer; a scan or a batch fills it. Measured at 1,000 h (2
/// threads), 1 M pairs against 4 M: a 10-minute scan 3.06 s and 124 MB
/// against 2.88 s and 204 MB; the 80-clip batch the same time (~5.7 s),
/// 166 against 250 MB.
const READ_CACHE_HITS: usize = 1 << 20;

thread_local! {
    pub(crate) static READ_CACHE: std::cell::RefCell<ReadCache> = std::cell::RefCell::new(ReadCache::default());
}

/// The postings a thread has read, by (postings file, hash), for one
/// matcher at a time: the probes of a warp search look many hashes up
/// again, and each read is a system call.
#[derive(Default)]
pub(crate) struct ReadCache {
    matcher: u64,
    index: HashMap<(u32, u32), (usize, usize), IdHash>,
    pub(crate) hits: Vec<(u32, u32)>,
}

impl ReadCache {
    /// Serve matcher `id` (a cache of another is emptied).
    pub(crate) fn serve(&mut self, id: u64) {
        if self.matcher != id {
            self.clear();
            self.matcher = id;
        }
    }

    fn clear(&mut self) {
        self.index.clear();
        self.hits.clear();
    }

    /// Where the postings of `hash` in file `part` are in `hits`, read
    /// with `read` (which appends them) the first time.
    pub(crate) fn find(
        &mut self,
        part: u32,
        hash: u32,
        read: impl FnOnce(&mut Vec<(u32, u32)>) -> Result<()>,
    ) -> Result<(usize, usize)> {
        if let Some(&at) = self.index.get(&(part, hash)) {
            return Ok(at);
        }
        if self.hits.len() > READ_CACHE_HITS {
            self.clear();
        }
        if self.hits.capacity() == 0 {
            // Room for the cap and a few reads past it, at once: grown by
            // doubling, the vector took twice the cap (massif, 10,000 h).
            self.hits
                .reserve_exact(READ_CACHE_HITS + (READ_CACHE_HITS >> 3));
        }
        let start = self.hits.len();
        read(&mut self.hits)?;
        let at = (start, self.hits.len() - start);
        self.index.insert((part, hash), at);
        Ok(at)
    }
}

/// Hashing for maps keyed by track ids and (file, hash) pairs, which a
/// look fills by the tens of thousands (a track's postings at 10,000 h:
/// up to 125,000 inserts a look): a multiply and a rotate a word (as rustc's
/// FxHash), where the standard map's SipHash guards against keys chosen
/// to collide, which an index's own ids are not. No output depends on a
/// map's order (the standard one's is random per process).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

pub(crate) struct IdHasher(u64);

impl IdHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn finish(&self) -> u64 {
        // The table takes its slot from the low bits and its tag from the
        // top 7: the product's best-mixed bits are the high ones.
        self.0.rotate_left(26)
    }
}

/// Tells matchers apart in [`ReadCache`].
pub(crate) static MATCHERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash;

    /// The maps' hasher spreads what they are keyed by (sequential track
    /// ids, (file, mixed hash) pairs) over a table's slots as a random one
    /// would (~63 % of 2^16 slots taken by 2^16 keys), and a map keyed by
    /// it holds what the standard one holds.
    #[test]
    fn id_hash_spreads_ids_as_a_random_hash() {
        use std::hash::BuildHasher;
        let slots = |hashes: Vec<u64>| {
            let mut seen = vec![false; 1 << 16];
            for h in hashes {
                seen[(h & 0xFFFF) as usize] = true;
            }
            seen.iter().filter(|&&s| s).count()
        };
        let ids = slots((0..1u32 << 16).map(|t| IdHash.hash_one(t)).collect());
        let pairs = slots(
            (0..1u32 << 16)
                .map(|i| IdHash.hash_one((i % 3, hash::mix(i / 3))))
                .collect(),
        );
        for taken in [ids, pairs] {
            assert!(taken > 40_000, "{taken} of 65,536 slots");
        }
        let mut fast: HashMap<(u32, u32), u32, IdHash> = HashMap::default();
        let mut std: HashMap<(u32, u32), u32> = HashMap::new();
        for i in 0..100_000u32 {
            fast.insert((i % 7, i / 7), i);
            std.insert((i % 7, i / 7), i);
        }
        assert_eq!(fast.len(), std.len());
        assert!(std.iter().all(|(k, v)| fast.get(k) == Some(v)));
    }
}
