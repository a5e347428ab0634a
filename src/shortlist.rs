//! A query's votes in, the few that could matter out: the votes near an
//! offset that could reach a given score.
//!
//! At 10,000 h a look at a 10 s clip draws millions of votes, nearly all
//! scattered by chance one or two to an offset, and sorting them all was
//! most of a query's time. A coarse count comes first: votes per bin of
//! [`BIN_FRAMES`] offsets of a track, in a table of saturating bytes
//! addressed by a hash of the bin's group. Bins that share a slot add up,
//! so a slot's count is never below its bin's: a vote is dropped only when
//! no two neighbouring bins around it hold, between them, the score asked
//! for (an offset's votes, +-1 frame, fall in one bin or two side by side),
//! and then no offset it could be near reaches that score. The
//! scores of every offset that does reach it, and of every vote near one,
//! are exactly the scores of all the votes.
//!
//! Keys are the matcher's `u64` votes: the anchor in the low `anchor_bits`,
//! the offset above it, the track on top; a bin is the key shifted right by
//! `anchor_bits + BIN_BITS` (bins of two tracks never share a number).

use std::cell::RefCell;

/// Offsets per bin, as a shift: 16 frames (0.5 s).
const BIN_BITS: u32 = 4;
/// Offsets per bin.
pub const BIN_FRAMES: u32 = 1 << BIN_BITS;
/// Bins per group: a group is one table row (32 bytes), its bins counted
/// side by side, so the bins around a vote are mostly one read.
const GROUP_BITS: u32 = 5;
const GROUP: usize = 1 << GROUP_BITS;
// A row's cells are bits of one word in a [`Keeper`].
const _: () = assert!(GROUP <= 64 && 64 % GROUP == 0);
/// Table rows: one per 8 votes (a few votes a row, well below any score a
/// shortlist is asked for), between these bounds (32 KB to 8 MB).
const MIN_ROWS_BITS: u32 = 10;
pub const MAX_ROWS_BITS: u32 = 18;

thread_local! {
    /// A table kept per thread: a look's table is cleared, not allocated.
    static TABLE: RefCell<Vec<[u8; GROUP]>> = const { RefCell::new(Vec::new()) };
}

/// Coarse counts of votes: per bin of [`BIN_FRAMES`] offsets of a track,
/// in a table of `2^rows_bits` rows of [`GROUP`] saturating bytes.
pub struct Counts {
    table: Vec<[u8; GROUP]>,
    rows_bits: u32,
    /// A key shifted right by this is its bin.
    shift: u32,
}

impl Counts {
    /// A table for about `votes` votes of keys with `anchor_bits` below
    /// the offset.
    pub fn new(votes: usize, anchor_bits: u32) -> Counts {
        let rows_bits =
            (usize::BITS - (votes / 8).leading_zeros()).clamp(MIN_ROWS_BITS, MAX_ROWS_BITS);
        let mut table = TABLE.with(|t| std::mem::take(&mut *t.borrow_mut()));
        table.clear();
        table.resize(1 << rows_bits, [0; GROUP]);
        Counts {
            table,
            rows_bits,
            shift: anchor_bits + BIN_BITS,
        }
    }

    /// The row of a bin's group: the top bits of its Fibonacci hash.
    fn row(&self, bin: u64) -> usize {
        ((bin >> GROUP_BITS).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.rows_bits)) as usize
    }

    fn count(&self, bin: u64) -> u32 {
        self.table[self.row(bin)][(bin & (GROUP as u64 - 1)) as usize] as u32
    }

    /// Ask the CPU for the table row of `key` ahead of [`Counts::add`].
    pub fn prefetch(&self, key: u64) {
        self.prefetch_bin(key >> self.shift);
    }

    fn prefetch_bin(&self, bin: u64) {
        crate::segment::prefetch(&self.table[self.row(bin)]);
    }

    /// Count one vote.
    pub fn add(&mut self, key: u64) {
        let bin = key >> self.shift;
        let row = self.row(bin);
        let c = &mut self.table[row][(bin & (GROUP as u64 - 1)) as usize];
        *c = c.saturating_add(1);
    }

    /// Whether the vote `key` may be within `near` frames of an offset of
    /// its track whose votes within +-1 frame number at least `floor`
    /// (true of every such vote; false of most others).
    pub fn keeps(&self, key: u64, floor: u32, near: u32) -> bool {
        // Counts saturate at 255: a sum that reaches 255 keeps its votes.
        let floor = floor.min(255);
        let bin = key >> self.shift;
        let reach = reach(near);
        let (lo, hi) = (bin.wrapping_sub(reach), bin.wrapping_add(reach));
        // An offset's votes (+-1 frame) lie in one bin or two side by
        // side, all within `reach` bins of the vote: some two neighbouring
        // bins there must hold `floor` votes between them. (A sum over the
        // whole reach, 5 bins for the drift's 25 frames, was reached by
        // chance far more often: at 10,000 h one look kept 3.4 M votes.)
        if lo >> GROUP_BITS == bin >> GROUP_BITS && hi >> GROUP_BITS == bin >> GROUP_BITS {
            let m = GROUP as u64 - 1;
            self.table[self.row(bin)][(lo & m) as usize..=(hi & m) as usize]
                .windows(2)
                .any(|p| p[0] as u32 + p[1] as u32 >= floor)
        } else {
            let mut last = self.count(lo);
            (1..=2 * reach).any(|d| {
                let c = self.count(lo.wrapping_add(d));
                let reached = last + c >= floor;
                last = c;
                reached
            })
        }
    }
}

/// [`Counts::keeps`] for one `floor` and `near`, answered for most votes
/// from a bit per table cell worked out once (a keep pass asks for every
/// vote, and at 10,000 h the straight look's 11 M questions, each a miss
/// in the 8 MiB table, were a third of an unknown clip's time; the bits
/// take 1 MiB). A bin within reach of its group's edge has neighbours in
/// other rows: those are asked of the table as before.
pub struct Keeper<'a> {
    counts: &'a Counts,
    floor: u32,
    near: u32,
    reach: u64,
    /// Bit `row * GROUP + i`: some two neighbouring cells of the row within
    /// `reach` of cell `i` hold `floor` between them.
    bits: Vec<u64>,
}

impl Keeper<'_> {
    /// Where the answer for `key` is: its bit (`Ok`), or, for a bin within
    /// reach of its group's edge, the table (`Err`, the bin).
    fn place(&self, key: u64) -> Result<usize, u64> {
        let bin = key >> self.counts.shift;
        let at = (bin & (GROUP as u64 - 1)) as usize;
        let reach = self.reach as usize;
        if at < reach || at + reach >= GROUP {
            return Err(bin);
        }
        Ok(self.counts.row(bin) * GROUP + at)
    }

    /// Ask the CPU for what [`Keeper::keeps`] will read of `key`: its bit,
    /// or at a group's edge the table rows either side.
    pub fn prefetch(&self, key: u64) {
        match self.place(key) {
            Ok(cell) => crate::segment::prefetch(&self.bits[cell / 64]),
            Err(bin) => {
                self.counts.prefetch_bin(bin.wrapping_sub(self.reach));
                self.counts.prefetch_bin(bin.wrapping_add(self.reach));
            }
        }
    }

    /// Whether the vote `key` may be near an offset that reaches the
    /// floor: exactly [`Counts::keeps`].
    pub fn keeps(&self, key: u64) -> bool {
        match self.place(key) {
            Ok(cell) => self.bits[cell / 64] >> (cell % 64) & 1 == 1,
            Err(_) => self.counts.keeps(key, self.floor, self.near),
        }
    }
}

impl Counts {
    /// A [`Keeper`] for `floor` and `near`.
    pub fn keeper(&self, floor: u32, near: u32) -> Keeper<'_> {
        let floor = floor.min(255);
        let reach = reach(near);
        let r = reach as usize;
        let mut bits = vec![0u64; (self.table.len() * GROUP).div_ceil(64)];
        if r < GROUP / 2 {
            for (row, cells) in self.table.iter().enumerate() {
                // Pairs (j, j + 1) that hold the floor, as bits of j.
                let mut pairs = 0u64;
                for j in 0..GROUP - 1 {
                    if cells[j] as u32 + cells[j + 1] as u32 >= floor {
                        pairs |= 1 << j;
                    }
                }
                if pairs == 0 {
                    continue;
                }
                // Cell i keeps when a pair j in i - reach ..= i + reach - 1.
                let mut word = 0u64;
                for i in r..GROUP - r {
                    let window = ((1u64 << (2 * r)) - 1) << (i - r);
                    if pairs & window != 0 {
                        word |= 1 << i;
                    }
                }
                let cell = row * GROUP;
                bits[cell / 64] |= word << (cell % 64);
            }
        }
        Keeper {
            counts: self,
            floor,
            near,
            reach,
            bits,
        }
    }
}

impl Drop for Counts {
    fn drop(&mut self) {
        let table = std::mem::take(&mut self.table);
        TABLE.with(|t| *t.borrow_mut() = table);
    }
}

/// Bins either side of a vote's own that can hold votes of an offset the
/// vote is within `near` frames of (an offset's score counts its votes
/// within +-1 frame).
fn reach(near: u32) -> u64 {
    (near as u64 + 1).div_ceil(BIN_FRAMES as u64)
}

/// The votes of `keys` (any order) within `near` frames of an offset of
/// the same track whose votes within +-1 frame number at least `floor`,
/// in the order of `keys`. Every such offset's votes, and every vote near
/// one, are kept; most others are dropped.
pub fn shortlist(keys: &[u64], anchor_bits: u32, floor: u32, near: u32) -> Vec<u64> {
    if floor <= 1 {
        return keys.to_vec();
    }
    let mut counts = Counts::new(keys.len(), anchor_bits);
    for &k in keys {
        counts.add(k);
    }
    let keeper = counts.keeper(floor, near);
    keys.iter().copied().filter(|&k| keeper.keeps(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ANCHOR_BITS: u32 = 12;
    const OFFSET_BITS: u32 = 20;

    fn key(track: u64, offset: u64, anchor: u64) -> u64 {
        track << (OFFSET_BITS + ANCHOR_BITS) | offset << ANCHOR_BITS | anchor
    }

    /// Scores as the matcher's are: distinct (track, offset, anchor)
    /// votes at the offset and its two neighbours.
    fn scores(keys: &[u64]) -> HashMap<(u64, u64), u32> {
        let mut votes: Vec<u64> = keys.to_vec();
        votes.sort_unstable();
        votes.dedup();
        let mut at: HashMap<(u64, u64), u32> = HashMap::new();
        for k in votes {
            *at.entry((
                k >> (OFFSET_BITS + ANCHOR_BITS),
                (k >> ANCHOR_BITS) & ((1 << OFFSET_BITS) - 1),
            ))
            .or_default() += 1;
        }
        let mut smoothed: HashMap<(u64, u64), u32> = HashMap::new();
        for (&(t, o), &n) in &at {
            for d in [o.wrapping_sub(1), o, o + 1] {
                *smoothed.entry((t, d)).or_default() += n;
            }
        }
        smoothed
    }

    /// Seeded numbers below `n` (xorshift).
    fn below(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        }
    }

    /// The naive twin: keep a vote when some offset within `near` frames
    /// of it scores `floor` over all the votes.
    fn naive(keys: &[u64], floor: u32, near: u32) -> Vec<u64> {
        let hot: std::collections::BTreeSet<(u64, u64)> = scores(keys)
            .into_iter()
            .filter(|&(_, n)| n >= floor)
            .map(|(at, _)| at)
            .collect();
        keys.iter()
            .copied()
            .filter(|&k| {
                let (t, o) = (
                    k >> (OFFSET_BITS + ANCHOR_BITS),
                    (k >> ANCHOR_BITS) & ((1 << OFFSET_BITS) - 1),
                );
                let near = near as u64;
                hot.range((t, o.saturating_sub(near))..=(t, o + near))
                    .next()
                    .is_some()
            })
            .collect()
    }

    #[test]
    fn keeps_every_vote_near_an_offset_that_reaches_the_floor() {
        // Chance votes scattered over 400 tracks, piles of several sizes
        // (some split between neighbouring offsets, some on a drifting
        // line), votes repeated by anchors paired with several targets.
        let mut next = below(0x2545_F491_4F6C_DD1Du64);
        for round in 0..6 {
            let mut keys: Vec<u64> = (0..200_000)
                .map(|_| key(next(400), next(60_000), next(4096)))
                .collect();
            for pile in 0..30u64 {
                let (t, o) = (next(400), 100 + next(50_000));
                for v in 0..(2 + pile % 14) {
                    let drift = if pile % 3 == 0 { v / 3 } else { v % 2 };
                    keys.push(key(t, o + drift, next(4096)));
                }
            }
            let dup: Vec<u64> = keys.iter().step_by(97).copied().collect();
            keys.extend(dup);
            for (floor, near) in [(4, 1), (11, 25), (3, 0), (20, 25)] {
                let fast = shortlist(&keys, ANCHOR_BITS, floor, near);
                let want = naive(&keys, floor, near);
                let kept: std::collections::HashSet<u64> = fast.iter().copied().collect();
                for k in &want {
                    assert!(
                        kept.contains(k),
                        "round {round}: vote {k:x} near a score of {floor} dropped"
                    );
                }
                // The order of the input is kept.
                let mut pos = keys.iter();
                assert!(fast.iter().all(|k| pos.any(|x| x == k)));
                // And it is a shortlist: most chance votes go.
                if floor >= 4 {
                    assert!(
                        fast.len() < keys.len() / 4,
                        "floor {floor}: kept {} of {}",
                        fast.len(),
                        keys.len()
                    );
                }
            }
        }
    }

    #[test]
    fn a_keeper_answers_as_the_table_does() {
        let mut next = below(0x9E37_79B9_7F4A_7C15u64);
        // A table far too small for its votes: counts of every size, some
        // saturated, so that every floor keeps some votes and drops others.
        let mut keys: Vec<u64> = (0..300_000)
            .map(|_| key(next(50), next(4_000), next(4096)))
            .collect();
        // And piles that saturate their bytes.
        for _ in 0..20 {
            let (t, o) = (next(50), next(4_000));
            keys.extend((0..300).map(|a| key(t, o, a)));
        }
        let mut counts = Counts::new(8_000, ANCHOR_BITS);
        for &k in &keys {
            counts.add(k);
        }
        let probes: Vec<u64> = (0..50_000)
            .map(|_| key(next(60), next(5_000), next(4096)))
            .chain(keys.iter().step_by(7).copied())
            .collect();
        for (floor, near) in [
            (4, 1),
            (11, 25),
            (3, 0),
            (30, 25),
            (60, 40),
            (300, 25),
            (8, 600),
        ] {
            let keeper = counts.keeper(floor, near);
            let mut kept = 0;
            for &k in &probes {
                let want = counts.keeps(k, floor, near);
                assert_eq!(
                    keeper.keeps(k),
                    want,
                    "floor {floor}, near {near}, key {k:x}"
                );
                kept += want as usize;
            }
            if near < 600 {
                assert!(
                    kept > 0 && kept < probes.len(),
                    "floor {floor}, near {near}: {kept}"
                );
            }
        }
    }

    #[test]
    fn a_floor_of_one_keeps_everything() {
        let keys: Vec<u64> = (0..1000).map(|i| key(i % 7, i * 31 % 5000, i)).collect();
        assert_eq!(shortlist(&keys, ANCHOR_BITS, 1, 0), keys);
        assert_eq!(shortlist(&keys, ANCHOR_BITS, 0, 0), keys);
    }
}
