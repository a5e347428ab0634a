//! Peaks in, landmarks out: pairs of peaks packed into hashes.
//!
//! A landmark is an anchor peak and one of its nearest later peaks in a
//! target zone. Its hash packs the anchor's frequency bin, the frequency gap
//! and the time gap; the bit layout below is the contract with the store.
//! The packed value is then mixed (a bijection) so that the directory
//! blocks of a postings file, taken from its top bits, are evenly filled.

use std::collections::VecDeque;

use crate::peaks::Peak;

/// Bits of the anchor's FFT bin (bins 0..512).
pub const FREQ_BITS: u32 = 9;
/// Bits of the frequency gap, stored offset by `MAX_DF + 1`.
pub const DF_BITS: u32 = 8;
/// Bits of the time gap in frames (1..64).
pub const DT_BITS: u32 = 6;
/// Largest frequency gap a hash can hold, bins.
pub const MAX_DF: u32 = (1 << (DF_BITS - 1)) - 1;
/// Width of a hash.
pub const HASH_BITS: u32 = FREQ_BITS + DF_BITS + DT_BITS;
pub const HASH_MASK: u32 = (1 << HASH_BITS) - 1;

// Layout of the raw hash, most significant first: | f1 (9) | df (8) | dt (6) |
const DT_SHIFT: u32 = 0;
const DF_SHIFT: u32 = DT_BITS;
const F1_SHIFT: u32 = DT_BITS + DF_BITS;

/// Pack an anchor bin, a signed frequency gap and a time gap.
pub fn pack(f1: u16, df: i32, dt: u32) -> u32 {
    debug_assert!((f1 as u32) < (1 << FREQ_BITS));
    debug_assert!(df.unsigned_abs() <= MAX_DF);
    debug_assert!(dt < (1 << DT_BITS));
    let df_field = (df + MAX_DF as i32 + 1) as u32;
    ((f1 as u32) << F1_SHIFT) | (df_field << DF_SHIFT) | (dt << DT_SHIFT)
}

/// Inverse of [`pack`].
pub fn unpack(raw: u32) -> (u16, i32, u32) {
    let f1 = (raw >> F1_SHIFT) & ((1 << FREQ_BITS) - 1);
    let df = ((raw >> DF_SHIFT) & ((1 << DF_BITS) - 1)) as i32 - (MAX_DF as i32 + 1);
    let dt = (raw >> DT_SHIFT) & ((1 << DT_BITS) - 1);
    (f1 as u16, df, dt)
}

const MIX_MUL: u32 = 0x0051_9E37 | 1; // odd, so invertible mod 2^23
const MIX_SHIFT: u32 = 11;

const fn mul_inverse(a: u32) -> u32 {
    // Newton's iteration for the inverse of an odd number mod 2^32.
    let mut x = a;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u32.wrapping_sub(a.wrapping_mul(x)));
        i += 1;
    }
    x
}

const MIX_INV: u32 = mul_inverse(MIX_MUL);

/// Spread raw hashes evenly over the hash space (a bijection on 23 bits).
pub fn mix(raw: u32) -> u32 {
    let mut x = raw.wrapping_mul(MIX_MUL) & HASH_MASK;
    x ^= x >> MIX_SHIFT;
    x.wrapping_mul(MIX_MUL) & HASH_MASK
}

/// Inverse of [`mix`].
pub fn unmix(h: u32) -> u32 {
    let mut x = h.wrapping_mul(MIX_INV) & HASH_MASK;
    x ^= (x >> MIX_SHIFT) ^ (x >> (2 * MIX_SHIFT));
    x.wrapping_mul(MIX_INV) & HASH_MASK
}

/// A landmark: a mixed hash at the anchor's frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Landmark {
    pub hash: u32,
    pub frame: u32,
}

/// Pairs peaks into landmarks as they stream in (peaks must come in frame order).
pub struct Pairer {
    fan_out: usize,
    min_dt: u32,
    max_dt: u32,
    max_df: u32,
    queue: VecDeque<Peak>,
    cands: Vec<(u32, u32, Peak)>,
}

impl Pairer {
    pub fn new(fan_out: usize, min_dt: u32, max_dt: u32, max_df: u32) -> Pairer {
        Pairer {
            fan_out,
            min_dt,
            max_dt,
            max_df,
            queue: VecDeque::new(),
            cands: Vec::new(),
        }
    }

    pub fn push(&mut self, peak: Peak, out: &mut dyn FnMut(Landmark)) {
        self.push_pairs(peak, &mut |a, p| out(landmark(a, p)));
    }

    pub fn finish(&mut self, out: &mut dyn FnMut(Landmark)) {
        self.finish_pairs(&mut |a, p| out(landmark(a, p)));
    }

    /// [`Pairer::push`] giving the pairs of peaks themselves (anchor,
    /// target), an anchor's pairs together and nearest first.
    pub fn push_pairs(&mut self, peak: Peak, out: &mut impl FnMut(&Peak, &Peak)) {
        while let Some(front) = self.queue.front() {
            if front.frame + self.max_dt >= peak.frame {
                break;
            }
            self.emit_front(out);
        }
        self.queue.push_back(peak);
    }

    pub fn finish_pairs(&mut self, out: &mut impl FnMut(&Peak, &Peak)) {
        while !self.queue.is_empty() {
            self.emit_front(out);
        }
    }

    /// Pair the oldest peak with its nearest targets (by time gap, then
    /// frequency gap) and drop it.
    fn emit_front(&mut self, out: &mut impl FnMut(&Peak, &Peak)) {
        let Some(a) = self.queue.pop_front() else {
            return;
        };
        self.cands.clear();
        for p in &self.queue {
            let dt = p.frame - a.frame;
            if dt > self.max_dt {
                break;
            }
            // Peaks come in frame order: once `fan_out` targets are in
            // hand, a later frame cannot be among the nearest.
            if self
                .cands
                .get(self.fan_out.wrapping_sub(1))
                .is_some_and(|c| dt > c.0)
            {
                break;
            }
            let df = p.bin as i32 - a.bin as i32;
            if dt >= self.min_dt && df.unsigned_abs() <= self.max_df {
                self.cands.push((dt, df.unsigned_abs(), *p));
            }
        }
        self.cands
            .sort_unstable_by_key(|&(dt, adf, p)| (dt, adf, p.bin));
        for (_, _, p) in self.cands.iter().take(self.fan_out) {
            out(&a, p);
        }
    }
}

/// The landmark of an anchor and a target peak.
fn landmark(a: &Peak, p: &Peak) -> Landmark {
    Landmark {
        hash: mix(pack(a.bin, p.bin as i32 - a.bin as i32, p.frame - a.frame)),
        frame: a.frame,
    }
}

/// The first `fan_out` landmarks of each anchor peak (landmarks come an
/// anchor's together, nearest target first): the landmarks at that fan-out.
pub fn thinned(landmarks: &[Landmark], fan_out: usize) -> Vec<Landmark> {
    let anchor = |l: &Landmark| (l.frame, unpack(unmix(l.hash)).0);
    landmarks
        .chunk_by(|a, b| anchor(a) == anchor(b))
        .flat_map(|run| run.iter().take(fan_out))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_round_trip() {
        for f1 in [0u16, 1, 20, 255, 511] {
            for df in [-(MAX_DF as i32), -1, 0, 1, 64, MAX_DF as i32] {
                for dt in [0u32, 1, 31, 63] {
                    let raw = pack(f1, df, dt);
                    assert!(raw <= HASH_MASK);
                    assert_eq!(unpack(raw), (f1, df, dt));
                }
            }
        }
    }

    #[test]
    fn mix_is_a_bijection() {
        let mut seen = vec![false; 1 << HASH_BITS];
        for raw in 0..(1u32 << HASH_BITS) {
            let h = mix(raw);
            assert!(h <= HASH_MASK);
            assert!(!seen[h as usize]);
            seen[h as usize] = true;
            if raw % 4099 == 0 {
                assert_eq!(unmix(h), raw);
            }
        }
    }

    #[test]
    fn pairer_takes_nearest_targets_in_zone() {
        let pk = |frame, bin| Peak {
            frame,
            bin,
            power: 1.0,
            dbin: 0.0,
            dframe: 0.0,
        };
        let mut p = Pairer::new(2, 1, 10, 50);
        let mut out = Vec::new();
        for peak in [
            pk(0, 100),
            pk(0, 120),
            pk(3, 90),
            pk(5, 200),
            pk(7, 110),
            pk(30, 100),
        ] {
            p.push(peak, &mut |l| out.push(l));
        }
        p.finish(&mut |l| out.push(l));
        let decoded: Vec<(u32, u16, i32, u32)> = out
            .iter()
            .map(|l| {
                let (f1, df, dt) = unpack(unmix(l.hash));
                (l.frame, f1, df, dt)
            })
            .collect();
        // Anchor (0,100): same-frame peak excluded (dt 0), (5,200) out of zone.
        assert_eq!(&decoded[..2], &[(0, 100, -10, 3), (0, 100, 10, 7)]);
        assert_eq!(&decoded[2..4], &[(0, 120, -30, 3), (0, 120, -10, 7)]);
        assert_eq!(decoded[4], (3, 90, 20, 4));
        assert_eq!(decoded.len(), 5);
    }

    #[test]
    fn thinned_landmarks_are_those_of_the_smaller_fan_out() {
        let p = crate::params::Params::default();
        let mut x: u32 = 0x1234_5678;
        let noise: Vec<f32> = (0..(4 * p.sample_rate_hz) as usize)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let full = crate::warp::landmarks(&p, &noise, crate::warp::Warp::NONE);
        for fan_out in [1, 4, 7] {
            let few = crate::params::Params {
                query_fan_out: fan_out,
                ..p.clone()
            };
            let expected = crate::warp::landmarks(&few, &noise, crate::warp::Warp::NONE);
            assert!(expected.len() > 100 && expected.len() < full.len());
            assert_eq!(thinned(&full, fan_out), expected);
        }
    }
}
