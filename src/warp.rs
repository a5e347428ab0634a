//! Clips played faster, slower or transposed (a PAL film runs 4 % fast, an
//! edit is re-timed, a cue transposed): the warp that lines a clip up with
//! the library, and the answer found through it.
//!
//! Landmark hashes hold exact frequency bins and frame gaps, so a clip sped
//! up by 4 % matches nothing as it is. Rather than weaker scale-free hashes
//! (a bigger index and more chance matches for every query), the clip is
//! fingerprinted again on warped grids ([`Warp`]) until one lines up: along
//! three lines, speed (pitch and tempo together), tempo alone and pitch
//! alone. A cheap first pass probes a coarse grid with few landmarks per
//! peak; the best few points are refined with full queries at half steps.
//! Clips that match well as they are skip the search.

use anyhow::Result;

use crate::fingerprint::{Fingerprinter, Role};
use crate::hash::Landmark;
use crate::matcher::{Matcher, Outcome, Probe};
use crate::params::Params;

/// How a query is mapped back onto the library's time-frequency grid: the
/// clip plays `tempo` times as fast as the original and its frequencies are
/// `pitch` times the original's (`sox speed 1.04` is pitch = tempo = 1.04).
/// An FFT of `fft_size / pitch` samples puts the original's frequency `f` in
/// bin `f / bin_hz` again, and a hop of `hop / tempo` samples puts original
/// frame `i` at frame `i`: peaks, hashes and offsets are then those of the
/// original, with no resampling and no rounding of peak positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Warp {
    pub pitch: f64,
    pub tempo: f64,
}

impl Warp {
    pub const NONE: Warp = Warp {
        pitch: 1.0,
        tempo: 1.0,
    };
}

/// One point of the search: a change along one of the three lines, as a
/// factor (1.04 = 4 % faster or higher).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Speed(f64),
    Tempo(f64),
    Pitch(f64),
}

impl Change {
    pub fn warp(self) -> Warp {
        match self {
            Change::Speed(f) => Warp { pitch: f, tempo: f },
            Change::Tempo(f) => Warp {
                pitch: 1.0,
                tempo: f,
            },
            Change::Pitch(f) => Warp {
                pitch: f,
                tempo: 1.0,
            },
        }
    }

    fn factor(self) -> f64 {
        match self {
            Change::Speed(f) | Change::Tempo(f) | Change::Pitch(f) => f,
        }
    }

    fn with_factor(self, f: f64) -> Change {
        match self {
            Change::Speed(_) => Change::Speed(f),
            Change::Tempo(_) => Change::Tempo(f),
            Change::Pitch(_) => Change::Pitch(f),
        }
    }

    /// Grid step of this line.
    fn step(self, p: &Params) -> f64 {
        match self {
            Change::Tempo(_) => p.warp.tempo_step,
            _ => p.warp.freq_step,
        }
    }
}

/// Points of `line` from `1 - max` to `1 + max` every `step`, 1 excluded.
fn line(max: f64, step: f64, make: fn(f64) -> Change) -> impl Iterator<Item = Change> {
    let n = (max / step).round() as i64;
    (-n..=n)
        .filter(|&i| i != 0)
        .map(move |i| make(1.0 + i as f64 * step))
}

/// The first-pass grid, nearest to unchanged first.
pub fn grid(p: &Params) -> Vec<Change> {
    let w = &p.warp;
    let max_pitch = 2f64.powf(w.max_pitch_semitones / 12.0) - 1.0;
    let mut g: Vec<Change> = line(w.max_speed, w.freq_step, Change::Speed)
        .chain(line(w.max_tempo, w.tempo_step, Change::Tempo))
        .chain(line(max_pitch, w.freq_step, Change::Pitch))
        .collect();
    g.sort_by(|a, b| {
        (a.factor() - 1.0)
            .abs()
            .total_cmp(&(b.factor() - 1.0).abs())
    });
    g
}

/// How many looks at a clip the warp search takes, for the decision rule:
/// each grid point and the half steps between them.
pub fn looks(p: &Params) -> f64 {
    2.0 * grid(p).len() as f64
}

/// Landmarks of `samples` (at the fingerprint rate) seen through `warp`.
pub fn landmarks(params: &Params, samples: &[f32], warp: Warp) -> Vec<Landmark> {
    let mut fp = Fingerprinter::warped(params, Role::Query, warp);
    let mut out = Vec::new();
    fp.push(samples, &mut |l| out.push(l));
    fp.finish(&mut |l| out.push(l));
    out
}

/// Identify a clip, searching warps when it does not match well as it is.
/// `straight` is the answer for the unwarped landmarks.
pub fn identify(
    matcher: &Matcher,
    samples: &[f32],
    straight: Outcome,
    top: usize,
) -> Result<Outcome> {
    let params = matcher.params().clone();
    let w = &params.warp;
    let straight_score = straight.best.as_ref().map_or(0, |m| m.score);
    if !w.enabled || samples.is_empty() {
        return Ok(straight);
    }
    if straight_score >= w.skip_votes {
        // Found as it is; a tempo change still shows as drift of the offset
        // through the clip: re-time the clip so the offset is exact.
        if straight.drift.abs() < w.min_drift || straight.drift.abs() > w.max_tempo {
            return Ok(straight);
        }
        let change = Change::Tempo(1.0 + straight.drift);
        return Ok(refine(matcher, &params, samples, change, top)?
            .filter(|(_, _, score)| *score > straight_score)
            .map_or(straight, |(o, c, _)| labelled(o, c)));
    }

    // First pass: a cheap probe of every grid point.
    let probe_params = Params {
        query_fan_out: w.probe_fan_out,
        ..params.clone()
    };
    // Nearest to unchanged first. Once a probe is so strong that chance all
    // but never gives it, the points up to one step further out are probed
    // too (the other lines at about the same distance: a pitch change also
    // lines up along the speed line, a little worse) and the rest skipped.
    let mut probed: Vec<(Probe, Change)> = Vec::new();
    let mut last_distance = f64::INFINITY;
    for change in grid(&params) {
        let distance = (change.factor() - 1.0).abs();
        if distance > last_distance + 1e-9 {
            break;
        }
        let lms = landmarks(&probe_params, samples, change.warp());
        let probe = matcher.probe(&lms, looks(&params))?;
        if probe.chance <= w.stop_max_chance && last_distance.is_infinite() {
            last_distance = distance + w.freq_step.max(w.tempo_step);
        }
        probed.push((probe, change));
    }
    probed.sort_by_key(|p| std::cmp::Reverse(p.0.score));

    // Second pass: full queries around the best points, at half steps.
    let mut best: Option<(Outcome, Change, u32)> = None;
    for &(_, change) in probed.iter().take(w.refine) {
        if let Some(found) = refine(matcher, &params, samples, change, top)? {
            if best.as_ref().is_none_or(|b| found.2 > b.2) {
                best = Some(found);
            }
        }
    }
    match best {
        // A warped answer replaces the straight one only when it is
        // clearly better supported.
        Some((o, change, score)) if score > straight_score + straight_score / 2 => {
            Ok(labelled(o, change))
        }
        _ => Ok(straight),
    }
}

/// Full queries at `change` and half a grid step either side: the best
/// answer if it reaches the warped threshold, with the factor refined
/// between the grid points (vertex of the parabola through the scores).
fn refine(
    matcher: &Matcher,
    params: &Params,
    samples: &[f32],
    change: Change,
    top: usize,
) -> Result<Option<(Outcome, Change, u32)>> {
    let half = change.step(params) / 2.0;
    let f = change.factor();
    let mut scores = [0u32; 3];
    let mut outcomes: Vec<Option<Outcome>> = vec![None, None, None];
    for (k, df) in [-half, 0.0, half].into_iter().enumerate() {
        let lms = landmarks(params, samples, change.with_factor(f + df).warp());
        let o = matcher.identify(&lms, top, looks(params))?;
        scores[k] = o.best.as_ref().map_or(0, |m| m.score);
        outcomes[k] = Some(o);
    }
    let k = (0..3).max_by_key(|&k| (scores[k], k == 1)).unwrap_or(1);
    if scores[k] == 0 {
        // No warp near this one names a track.
        return Ok(None);
    }
    let mut factor = f + [-half, 0.0, half][k];
    if k == 1 {
        let (l, c, r) = (scores[0] as f64, scores[1] as f64, scores[2] as f64);
        let denom = l - 2.0 * c + r;
        if denom < 0.0 {
            factor += (half * 0.5 * (l - r) / denom).clamp(-half / 2.0, half / 2.0);
        }
    }
    Ok(outcomes[k]
        .take()
        .map(|o| (o, change.with_factor(factor), scores[k])))
}

/// Put the change found on every answer of an outcome.
pub fn labelled(mut o: Outcome, change: Change) -> Outcome {
    let f = change.factor();
    for m in o.best.iter_mut().chain(o.alternatives.iter_mut()) {
        match change {
            Change::Speed(_) => m.speed = (f * 1000.0).round() / 1000.0,
            Change::Tempo(_) => m.tempo = (f * 1000.0).round() / 1000.0,
            Change::Pitch(_) => m.pitch_semitones = (12.0 * f.log2() * 100.0).round() / 100.0,
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_the_ranges_nearest_first_without_the_identity() {
        let p = Params::default();
        let g = grid(&p);
        assert!(g.iter().all(|c| (c.factor() - 1.0).abs() > 1e-9));
        let dist: Vec<f64> = g.iter().map(|c| (c.factor() - 1.0).abs()).collect();
        assert!(dist.windows(2).all(|d| d[0] <= d[1]));
        let speeds: Vec<f64> = g
            .iter()
            .filter_map(|c| match c {
                Change::Speed(f) => Some(*f),
                _ => None,
            })
            .collect();
        let lo = speeds.iter().cloned().fold(f64::MAX, f64::min);
        let hi = speeds.iter().cloned().fold(f64::MIN, f64::max);
        assert!((lo - 0.92).abs() < p.warp.freq_step && (hi - 1.08).abs() < p.warp.freq_step);
        let pitches = g.iter().filter(|c| matches!(c, Change::Pitch(_))).count();
        // +-1 semitone is +-5.9 %.
        assert_eq!(pitches, 2 * (0.0595f64 / p.warp.freq_step).round() as usize);
    }
}
