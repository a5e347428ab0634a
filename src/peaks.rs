//! Spectrogram frames in, spectral peaks out, incrementally.
//!
//! A peak is a time-frequency point that is the maximum of the rectangle of
//! +-`radius_bins` x +-`radius_frames` around it and louder than the floor.
//! A maximum of a large rectangle is also the maximum of every smaller one,
//! so query peaks (small rectangle) include every stored peak (large
//! rectangle) that damage left standing. Frame `c` is decided once frame
//! `c + radius_frames` has arrived; memory is `2 * radius_frames + 1` frames.

use std::collections::VecDeque;

/// One spectral peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Spectrogram frame index from the start of the stream.
    pub frame: u32,
    /// Absolute FFT bin.
    pub bin: u16,
    /// Power relative to a full-scale sine (linear).
    pub power: f32,
    /// Where the maximum lies between bins and between frames: the vertex
    /// of the parabola through the log powers of the peak and its two
    /// neighbours, as an offset from `bin` and `frame` in [-0.5, 0.5] (0 at
    /// the edges, on plateaus, and along time for a neighbourhood of one
    /// frame). The warp search moves peaks by fractions
    /// of a bin ([`crate::warp::Pairs`]).
    pub dbin: f32,
    pub dframe: f32,
}

/// Offset of the vertex of the parabola through `(-1, l)`, `(0, c)` and
/// `(1, r)`, log powers, from 0; clamped to [-0.5, 0.5], 0 where the three
/// are not a maximum.
pub fn vertex(l: f32, c: f32, r: f32) -> f32 {
    const TINY: f32 = 1e-30;
    let (l, c, r) = (l.max(TINY).ln(), c.max(TINY).ln(), r.max(TINY).ln());
    let d = l - 2.0 * c + r;
    if d < 0.0 {
        (0.5 * (l - r) / d).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

/// Incremental rectangle-maximum peak picker.
pub struct PeakPicker {
    radius_bins: usize,
    radius_frames: usize,
    floor: f32,
    first_bin: usize,
    /// Work out `dbin` and `dframe` (left 0 otherwise: the index has no
    /// use for them).
    fine: bool,
    /// The last frames seen: (values, values max-filtered along frequency).
    window: VecDeque<(Vec<f32>, Vec<f32>)>,
    /// Index of the frame at the front of `window`.
    front_frame: u32,
    /// Next frame to decide.
    next_center: u32,
    /// Frames pushed so far.
    pushed: u32,
    spare: Vec<(Vec<f32>, Vec<f32>)>,
    scratch_a: Vec<f32>,
    scratch_b: Vec<f32>,
}

impl PeakPicker {
    pub fn new(
        radius_bins: usize,
        radius_frames: usize,
        floor: f32,
        first_bin: usize,
    ) -> PeakPicker {
        PeakPicker {
            radius_bins,
            radius_frames,
            floor,
            first_bin,
            fine: false,
            window: VecDeque::with_capacity(2 * radius_frames + 2),
            front_frame: 0,
            next_center: 0,
            pushed: 0,
            spare: Vec::new(),
            scratch_a: Vec::new(),
            scratch_b: Vec::new(),
        }
    }

    /// Give peaks their positions between bins and frames (`dbin`, `dframe`).
    pub fn with_fine_positions(mut self) -> PeakPicker {
        self.fine = true;
        self
    }

    /// Feed the next frame; peaks of every frame now decided go to `out`.
    pub fn push(&mut self, frame: &[f32], out: &mut dyn FnMut(Peak)) {
        let (mut vals, mut fmax) = self.spare.pop().unwrap_or_default();
        vals.clear();
        vals.extend_from_slice(frame);
        fmax.resize(frame.len(), 0.0);
        max_filter(
            frame,
            self.radius_bins,
            &mut fmax,
            &mut self.scratch_a,
            &mut self.scratch_b,
        );
        self.window.push_back((vals, fmax));
        self.pushed += 1;
        while self.next_center + (self.radius_frames as u32) < self.pushed {
            self.decide(out);
        }
    }

    /// The stream ended: decide the frames still waiting for their future.
    pub fn finish(&mut self, out: &mut dyn FnMut(Peak)) {
        while self.next_center < self.pushed {
            self.decide(out);
        }
    }

    fn decide(&mut self, out: &mut dyn FnMut(Peak)) {
        let c = self.next_center;
        let ci = (c - self.front_frame) as usize;
        let (vals, fmax) = &self.window[ci];
        for (b, (&v, &m)) in vals.iter().zip(fmax.iter()).enumerate() {
            if v < self.floor || v < m {
                continue;
            }
            let beaten = self
                .window
                .iter()
                .enumerate()
                .any(|(j, (_, other))| j != ci && other[b] > v);
            if !beaten {
                let dbin = match (b.checked_sub(1), vals.get(b + 1)) {
                    (Some(l), Some(&r)) if self.fine => vertex(vals[l], v, r),
                    _ => 0.0,
                };
                let dframe = match (ci.checked_sub(1), self.window.get(ci + 1)) {
                    (Some(l), Some((r, _))) if self.fine => vertex(self.window[l].0[b], v, r[b]),
                    _ => 0.0,
                };
                out(Peak {
                    frame: c,
                    bin: (b + self.first_bin) as u16,
                    power: v,
                    dbin,
                    dframe,
                });
            }
        }
        self.next_center += 1;
        // Drop frames no later center can see.
        while self.front_frame + (self.radius_frames as u32) < self.next_center {
            if let Some(old) = self.window.pop_front() {
                self.spare.push(old);
            }
            self.front_frame += 1;
        }
    }
}

/// `out[i] = max(x[i-r..=i+r])` (clipped at the ends). Sliding maxima of
/// doubling widths (1, 2, 4, ... each the max of two of the previous), then
/// two overlapping windows of the largest width cover `2r + 1`: O(n log r)
/// in straight loops the compiler vectorises (3x faster than van Herk's
/// O(n) with its per-element block bookkeeping, for the radii used here).
pub fn max_filter(x: &[f32], r: usize, out: &mut [f32], a: &mut Vec<f32>, b: &mut Vec<f32>) {
    let n = x.len();
    if n == 0 {
        return;
    }
    let w = 2 * r + 1;
    // a[i] = x[i - r], -inf outside.
    a.clear();
    a.resize(r, f32::NEG_INFINITY);
    a.extend_from_slice(x);
    a.resize(n + 2 * r, f32::NEG_INFINITY);
    // Invariant: a[i] = max of the padded input over [i, i + k), for
    // i < a.len().
    let mut k = 1;
    while 2 * k <= w {
        b.clear();
        b.extend(a.iter().zip(&a[k..]).map(|(p, q)| p.max(*q)));
        std::mem::swap(a, b);
        k *= 2;
    }
    // k <= w < 2k: [i, i + w) = [i, i + k) + [i + w - k, i + w).
    for ((o, p), q) in out[..n].iter_mut().zip(a.iter()).zip(&a[w - k..]) {
        *o = p.max(*q);
    }
}

#[cfg(test)]
// The naive twin is written as the definition, index by index.
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;

    /// Seeded xorshift, enough for test data.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed.max(1))
        }
        pub(crate) fn next_f32(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    /// The naive twin: check the whole rectangle for every point.
    fn naive_peaks(
        frames: &[Vec<f32>],
        rb: usize,
        rt: usize,
        floor: f32,
        first_bin: usize,
    ) -> Vec<Peak> {
        let mut out = Vec::new();
        for (t, row) in frames.iter().enumerate() {
            for (b, &v) in row.iter().enumerate() {
                if v < floor {
                    continue;
                }
                let mut ok = true;
                for t2 in t.saturating_sub(rt)..(t + rt + 1).min(frames.len()) {
                    for b2 in b.saturating_sub(rb)..(b + rb + 1).min(row.len()) {
                        if (t2, b2) != (t, b) && frames[t2][b2] > v {
                            ok = false;
                        }
                    }
                }
                if ok {
                    let (dbin, dframe) = (
                        if b > 0 && b + 1 < row.len() {
                            vertex(row[b - 1], v, row[b + 1])
                        } else {
                            0.0
                        },
                        if rt > 0 && t > 0 && t + 1 < frames.len() {
                            vertex(frames[t - 1][b], v, frames[t + 1][b])
                        } else {
                            0.0
                        },
                    );
                    out.push(Peak {
                        frame: t as u32,
                        bin: (b + first_bin) as u16,
                        power: v,
                        dbin,
                        dframe,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn fast_picker_equals_naive_on_random_input() {
        for (seed, rb, rt) in [
            (1u64, 3usize, 2usize),
            (7, 12, 10),
            (42, 7, 6),
            (99, 0, 0),
            (5, 1, 30),
        ] {
            let mut rng = Rng::new(seed);
            let bins = 60;
            let frames: Vec<Vec<f32>> = (0..80)
                .map(|_| (0..bins).map(|_| (rng.next_f32() * 80.0).round()).collect())
                .collect();
            let mut fast = Vec::new();
            let mut p = PeakPicker::new(rb, rt, 15.0, 20).with_fine_positions();
            for f in &frames {
                p.push(f, &mut |pk| fast.push(pk));
            }
            p.finish(&mut |pk| fast.push(pk));
            let naive = naive_peaks(&frames, rb, rt, 15.0, 20);
            assert!(!naive.is_empty());
            assert!(naive.iter().any(|p| p.dbin != 0.0));
            assert_eq!(fast, naive, "seed {seed} rb {rb} rt {rt}");
            // Without fine positions, the same peaks.
            let mut coarse = Vec::new();
            let mut p = PeakPicker::new(rb, rt, 15.0, 20);
            for f in &frames {
                p.push(f, &mut |pk| coarse.push(pk));
            }
            p.finish(&mut |pk| coarse.push(pk));
            let strip =
                |v: &[Peak]| -> Vec<(u32, u16)> { v.iter().map(|p| (p.frame, p.bin)).collect() };
            assert_eq!(strip(&coarse), strip(&naive));
        }
    }

    #[test]
    fn max_filter_matches_definition() {
        let mut rng = Rng::new(3);
        let x: Vec<f32> = (0..37).map(|_| rng.next_f32()).collect();
        for r in 0..40 {
            let mut out = vec![0.0; x.len()];
            max_filter(&x, r, &mut out, &mut Vec::new(), &mut Vec::new());
            for i in 0..x.len() {
                let lo = i.saturating_sub(r);
                let hi = (i + r + 1).min(x.len());
                let want = x[lo..hi].iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                assert_eq!(out[i], want, "r {r} i {i}");
            }
        }
    }
}
