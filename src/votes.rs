//! Votes as plain integers: a vote (track, offset, query anchor) packed
//! into one `u64` or `u128` that sorts as the vote does ([`KeyLayout`],
//! [`VoteKey`]), the radix sorts that order millions of them, and the
//! sorted votes read back ([`Votes`]). What the votes mean, and which are
//! gathered, is the matcher's.

/// (track, offset in frames, query anchor: frame << FREQ_BITS | bin).
pub(crate) type Vote = (u32, i32, u32);

/// A query's votes, sorted and deduplicated. Kept as the keys they were
/// sorted as where those are `u64`s (8 bytes a vote, read back as
/// [`Vote`]s: a query at 10,000 h holds millions), else as [`Vote`]s.
pub(crate) enum Votes {
    Packed(Vec<u64>, KeyLayout),
    Wide(Vec<Vote>),
}

impl Votes {
    pub(crate) fn len(&self) -> usize {
        match self {
            Votes::Packed(keys, _) => keys.len(),
            Votes::Wide(votes) => votes.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> Vote {
        match self {
            Votes::Packed(keys, layout) => keys[i].unpack(layout),
            Votes::Wide(votes) => votes[i],
        }
    }

    /// Votes `range`, in order.
    pub(crate) fn range(&self, range: std::ops::Range<usize>) -> impl Iterator<Item = Vote> + '_ {
        range.map(|i| self.get(i))
    }

    /// The first vote (by index) for which `below` is false; `below` is
    /// true of every vote before it and false of every one after.
    pub(crate) fn partition_point(&self, below: impl Fn(Vote) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(self.get(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// How a vote is packed into one integer that sorts as the vote does
/// (track, then offset, then anchor): the anchor in the low
/// `anchor_bits`, the offset plus `bias` above it, the track on top.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyLayout {
    pub(crate) anchor_bits: u32,
    pub(crate) offset_bits: u32,
    pub(crate) track_bits: u32,
    pub(crate) bias: i64,
}

/// The layout of a `u128` key: room for any vote.
pub(crate) const WIDE: KeyLayout = KeyLayout {
    anchor_bits: 32,
    offset_bits: 64,
    track_bits: 32,
    bias: 1 << 40,
};

/// A vote packed as one integer ([`KeyLayout`]): sorting plain integers is
/// what makes votes cheap, and a `u64` sorts faster than a `u128` where
/// the query and the library leave room for it.
pub(crate) trait VoteKey: Copy + Ord + Send {
    fn pack(track: u32, offset: i64, anchor: u32, layout: &KeyLayout) -> Self;
    fn unpack(self, layout: &KeyLayout) -> Vote;
    fn track(self, layout: &KeyLayout) -> u32;
    fn sort(keys: &mut Vec<Self>, layout: &KeyLayout);
}

impl VoteKey for u128 {
    fn pack(track: u32, offset: i64, anchor: u32, l: &KeyLayout) -> u128 {
        (track as u128) << (l.offset_bits + l.anchor_bits)
            | ((offset + l.bias) as u64 as u128) << l.anchor_bits
            | anchor as u128
    }
    fn unpack(self, l: &KeyLayout) -> Vote {
        let low = |bits: u32, v: u128| (v & ((1u128 << bits) - 1)) as u64;
        (
            self.track(l),
            offset_i32(low(l.offset_bits, self >> l.anchor_bits) as i64 - l.bias),
            low(l.anchor_bits, self) as u32,
        )
    }
    fn track(self, l: &KeyLayout) -> u32 {
        (self >> (l.offset_bits + l.anchor_bits)) as u32
    }
    fn sort(keys: &mut Vec<u128>, _: &KeyLayout) {
        keys.sort_unstable();
    }
}

impl VoteKey for u64 {
    fn pack(track: u32, offset: i64, anchor: u32, l: &KeyLayout) -> u64 {
        // A layout with no bits for the track (track 0 only) shifts by 64.
        (track as u64)
            .checked_shl(l.offset_bits + l.anchor_bits)
            .unwrap_or(0)
            | ((offset + l.bias) as u64) << l.anchor_bits
            | anchor as u64
    }
    fn unpack(self, l: &KeyLayout) -> Vote {
        let low = |bits: u32, v: u64| v & ((1u64 << bits) - 1);
        (
            self.track(l),
            offset_i32(low(l.offset_bits, self >> l.anchor_bits) as i64 - l.bias),
            low(l.anchor_bits, self) as u32,
        )
    }
    fn track(self, l: &KeyLayout) -> u32 {
        // Shifts of 64 or more (an empty library) leave track 0.
        self.checked_shr(l.offset_bits + l.anchor_bits).unwrap_or(0) as u32
    }
    fn sort(keys: &mut Vec<u64>, l: &KeyLayout) {
        // Distributed by (track, offset); the few votes that share one are
        // put in anchor order after.
        radix_sort_above(
            keys,
            l.track_bits + l.offset_bits + l.anchor_bits,
            l.anchor_bits,
        );
    }
}

/// An offset as a vote holds it: frames within one track fit an `i32` (two
/// years at 32 ms); only a damaged postings file says otherwise.
fn offset_i32(offset: i64) -> i32 {
    offset.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// Sort keys of `bits` significant bits: least significant digit first,
/// 11 bits a pass, passes whose digit is the same for every key skipped.
/// Tens of thousands of keys with ~45 significant bits: four counting
/// passes beat a comparison sort. Votes go through [`radix_sort_above`].
pub(crate) fn radix_sort(keys: &mut [u64], bits: u32) {
    const SMALL: usize = 256;
    if keys.len() <= SMALL {
        keys.sort_unstable();
        return;
    }
    radix_sort_digits(keys, 0, bits, DIGIT_BITS, &mut Vec::new());
}

/// Stable counting passes over bits `from..bits` of the keys, at most
/// `max_digit` at a time (as few passes as that allows, in digits of equal
/// width): the keys end sorted by those bits, in their former order where
/// those are equal. `other` is scratch, grown to the keys' length.
fn radix_sort_digits(keys: &mut [u64], from: u32, bits: u32, max_digit: u32, other: &mut Vec<u64>) {
    if keys.is_empty() || from >= bits {
        return;
    }
    let passes = (bits - from).div_ceil(max_digit);
    let digit_bits = (bits - from).div_ceil(passes);
    let mask = (1u64 << digit_bits) - 1;
    let shifts: Vec<u32> = (from..bits).step_by(digit_bits as usize).collect();
    // Every digit counted in one read of the keys.
    let mut counts = vec![0usize; shifts.len() << digit_bits];
    for &k in keys.iter() {
        for (i, &shift) in shifts.iter().enumerate() {
            counts[(i << digit_bits) + ((k >> shift) & mask) as usize] += 1;
        }
    }
    if other.len() < keys.len() {
        other.resize(keys.len(), 0);
    }
    let other = &mut other[..keys.len()];
    // Where the keys are now: `keys` or `other`.
    let mut in_other = false;
    for (i, &shift) in shifts.iter().enumerate() {
        let digit = |k: u64| ((k >> shift) & mask) as usize;
        let counts = &mut counts[i << digit_bits..(i + 1) << digit_bits];
        let (src, dst) = if in_other {
            (&*other, &mut *keys)
        } else {
            (&*keys, &mut *other)
        };
        if counts[digit(src[0])] == src.len() {
            continue;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        for &k in src.iter() {
            let d = digit(k);
            dst[counts[d]] = k;
            counts[d] += 1;
        }
        in_other = !in_other;
    }
    if in_other {
        keys.copy_from_slice(other);
    }
}

/// Keys above which [`radix_sort_above`] first splits them in place by
/// their top bits, so that the counting passes run on one part at a time:
/// scratch the size of a part, not of all the keys (at 10,000 h an
/// unknown clip's straight look has ~11 M votes: 90 MB of keys, and the
/// scratch was as much again), and passes over data the caches hold.
const SPLIT_ABOVE: usize = 1 << 16;
/// Bits of the top digit of that split.
const SPLIT_BITS: u32 = 8;
/// Widest digit of a counting pass over all the keys.
const DIGIT_BITS: u32 = 11;
/// Widest digit of a counting pass over one part of a split: its keys and
/// counts stay in the caches, so wider digits save a pass.
const PART_DIGIT_BITS: u32 = 13;

/// Reorders `keys` in place so that they ascend by the [`SPLIT_BITS`] bits
/// from `shift` up (the caller's keys have none above those): an American
/// flag sort's one pass. Returns where each part begins, and the end.
fn split_by_top(keys: &mut [u64], shift: u32) -> Vec<usize> {
    let buckets = 1usize << SPLIT_BITS;
    let digit = |k: u64| (k.checked_shr(shift).unwrap_or(0) as usize) & (buckets - 1);
    let mut starts = vec![0usize; buckets + 1];
    for &k in keys.iter() {
        starts[digit(k) + 1] += 1;
    }
    for b in 0..buckets {
        starts[b + 1] += starts[b];
    }
    let mut heads = starts[..buckets].to_vec();
    for b in 0..buckets {
        while heads[b] < starts[b + 1] {
            let mut k = keys[heads[b]];
            let mut d = digit(k);
            // Follow the cycle: each key swapped straight to its part.
            while d != b {
                std::mem::swap(&mut k, &mut keys[heads[d]]);
                heads[d] += 1;
                d = digit(k);
            }
            keys[heads[b]] = k;
            heads[b] += 1;
        }
    }
    starts
}

/// [`radix_sort`] of keys of `bits` significant bits whose lowest `low`
/// bits seldom tell two keys apart (a vote's anchor: most (track, offset)
/// pairs get one vote): counting passes over the bits above `low` only,
/// then each run of keys equal above `low` sorted in place: the same
/// order, in fewer passes (3 of a vote's 5 at 1,000 h). Many keys are
/// first split by their top bits ([`SPLIT_ABOVE`]).
fn radix_sort_above(keys: &mut [u64], bits: u32, low: u32) {
    if low == 0 || keys.len() <= 256 {
        return radix_sort(keys, bits);
    }
    let high = |k: &u64| k.checked_shr(low).unwrap_or(0);
    let mut other = Vec::new();
    let top = bits.saturating_sub(SPLIT_BITS).max(low);
    if keys.len() > SPLIT_ABOVE && top < bits {
        let starts = split_by_top(keys, top);
        for part in starts.windows(2) {
            let part = &mut keys[part[0]..part[1]];
            // Counts no larger than the part: zeroing them is not the work.
            let digit = self::bits(part.len() as u64).clamp(8, PART_DIGIT_BITS);
            radix_sort_digits(part, low, top, digit, &mut other);
        }
    } else {
        radix_sort_digits(keys, low, bits, DIGIT_BITS, &mut other);
    }
    drop(other);
    for run in keys.chunk_by_mut(|a, b| high(a) == high(b)) {
        if run.len() > 1 {
            run.sort_unstable();
        }
    }
}

/// Bits needed to hold `v`.
pub(crate) fn bits(v: u64) -> u32 {
    u64::BITS - v.leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vote_keys_sort_as_votes_and_invert() {
        let votes: Vec<Vote> = vec![
            (0, -31, 0),
            (0, -31, u32::MAX),
            (0, 0, 5),
            (1, i32::MIN, 7),
            (1, 5, 3),
            (1, i32::MAX, 2),
            (u32::MAX, 12, 1),
        ];
        for w in votes.windows(2) {
            let (a, b) = (
                u128::pack(w[0].0, w[0].1 as i64, w[0].2, &WIDE),
                u128::pack(w[1].0, w[1].1 as i64, w[1].2, &WIDE),
            );
            assert_eq!(a < b, w[0] < w[1], "{:?} {:?}", w[0], w[1]);
        }
        for &v in &votes {
            assert_eq!(u128::pack(v.0, v.1 as i64, v.2, &WIDE).unpack(&WIDE), v);
        }
    }

    /// The radix sorts are the standard sort's twins: random keys of every
    /// width, lengths either side of the small-input cut, keys equal in
    /// some digits (passes skipped), keys equal above their low bits, and
    /// duplicates.
    #[test]
    fn radix_sort_sorts_as_the_standard_sort() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for bits in [1, 11, 12, 23, 45, 63, 64] {
            for n in [0, 1, 255, 256, 257, 5_000, 70_000] {
                let mask = if bits == 64 {
                    u64::MAX
                } else {
                    (1 << bits) - 1
                };
                // Every third key shares its middle bits with a constant.
                let keys: Vec<u64> = (0..n)
                    .map(|i| {
                        let k = next() & mask;
                        if i % 3 == 0 {
                            k & !(0xFFF << 20) & mask
                        } else {
                            k
                        }
                    })
                    .chain(std::iter::repeat_n(mask / 2, n / 10))
                    .collect();
                let mut expected = keys.clone();
                expected.sort_unstable();
                for low in [1, 5, 18, bits] {
                    // Runs of keys equal above `low`, as a vote's anchors.
                    let mut got: Vec<u64> = keys
                        .iter()
                        .enumerate()
                        .map(|(i, &k)| {
                            if i % 4 == 1 {
                                k & !((1 << low.min(63)) - 1)
                            } else {
                                k
                            }
                        })
                        .collect();
                    let mut want = got.clone();
                    want.sort_unstable();
                    radix_sort_above(&mut got, bits, low);
                    assert_eq!(got, want, "{bits} bits above {low}, {n} keys");
                }
                let mut got = keys;
                radix_sort(&mut got, bits);
                assert_eq!(got, expected, "{bits} bits, {n} keys");
            }
        }
    }
}
