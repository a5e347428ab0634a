//! Clips played faster, slower or transposed (a PAL film runs 4 % fast, an
//! edit is re-timed, a cue transposed): the warp that lines a clip up with
//! the library, and the answer found through it.
//!
//! Landmark hashes hold exact frequency bins and frame gaps, so a clip sped
//! up by 4 % matches nothing as it is. Rather than weaker scale-free hashes
//! (a bigger index and more chance matches for every query), the clip is
//! seen through warps ([`Warp`]) until one lines up: along three lines,
//! speed (pitch and tempo together), tempo alone and pitch alone. A cheap
//! first pass probes a coarse grid with few landmarks per peak, moving the
//! clip's peaks rather than fingerprinting it again ([`Pairs`]); around the
//! best few points, probes at quarter steps find the factor, and one full
//! query there (moved peaks too, at the full fan-out) answers. Clips that
//! match well as they are skip the search.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::Result;
use rayon::prelude::*;

use crate::fingerprint::{Fingerprinter, Role};
use crate::hash::{mix, pack, Landmark, Pairer};
use crate::matcher::{Matcher, Outcome, Probe};
use crate::params::{Params, WarpParams};
use crate::peaks::{Peak, PeakPicker};
use crate::spectrogram::SpectrogramBuilder;

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

/// Points of the pitch line: transpositions come in semitones, so the line
/// steps by an equal fraction of a semitone, the nearest to `freq_step`
/// that divides `max_pitch_semitones` (1/8 by default: 0.72 %), and the
/// largest transposition is a point of it (-1 semitone, 0.9439, lay
/// nearly half a step from both of its neighbours on a grid of equal
/// factors).
fn pitch_line(w: &WarpParams) -> impl Iterator<Item = Change> {
    let step = 12.0 * (1.0 + w.freq_step).log2();
    let n = (w.max_pitch_semitones / step).round().max(1.0) as i64;
    let step = w.max_pitch_semitones / n as f64;
    (-n..=n)
        .filter(|&i| i != 0)
        .map(move |i| Change::Pitch(2f64.powf(i as f64 * step / 12.0)))
}

/// The first-pass grid, nearest to unchanged first.
pub fn grid(p: &Params) -> Vec<Change> {
    let w = &p.warp;
    let mut g: Vec<Change> = line(w.max_speed, w.freq_step, Change::Speed)
        .chain(line(w.max_tempo, w.tempo_step, Change::Tempo))
        .chain(pitch_line(w))
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

/// Landmarks of `samples` (at the fingerprint rate) seen through `warp`,
/// fingerprinted on the warped grid: exact, and a spectrogram per warp. The
/// search moves peaks instead ([`Pairs`]); this is its naive twin in tests.
pub fn landmarks(params: &Params, samples: &[f32], warp: Warp) -> Vec<Landmark> {
    let mut fp = Fingerprinter::warped(params, Role::Query, warp);
    let mut out = Vec::new();
    fp.push(samples, &mut |l| out.push(l));
    fp.finish(&mut |l| out.push(l));
    out
}

/// Targets kept per anchor beyond the fan-out, for those a warp moves out
/// of the target zone.
const SPARE_TARGETS: usize = 2;

/// The pairs of a clip's peaks, found once on the clip's own grid at
/// positions finer than a bin and a frame, and hashed anew for each warp.
/// A warp barely changes which points are maxima or which targets are
/// nearest, only where they lie: moving the peaks costs a fraction of a
/// spectrogram and peak picking per warp ([`landmarks`]), and the first
/// pass looks at ~46 warps.
pub struct Pairs {
    /// (anchor bin, anchor frame, target bin, target frame) on the clip's
    /// grid, an anchor's pairs together and nearest first.
    pairs: Vec<[f32; 4]>,
    /// Where each anchor's pairs start in `pairs`, and the end.
    anchors: Vec<usize>,
    fan_out: usize,
    /// Half an FFT, in hops: where a frame's centre lies after its start.
    half_frame: f64,
    first_bin: i64,
    end_bin: i64,
    min_dt: i64,
    max_dt: i64,
    max_df: i64,
}

impl Pairs {
    /// The pairs of `samples` (at the fingerprint rate), `fan_out` targets
    /// per anchor, for the warps [`grid`] can reach (and half a step more).
    pub fn new(params: &Params, samples: &[f32], fan_out: usize) -> Pairs {
        let w = &params.warp;
        let pitch = 2f64.powf(w.max_pitch_semitones / 12.0);
        let freq_max = (1.0 + w.max_speed).max(pitch) + w.freq_step;
        let freq_min = (1.0 - w.max_speed).min(1.0 / pitch) - w.freq_step;
        let tempo_min = 1.0 - w.max_speed.max(w.max_tempo) - w.tempo_step;
        // The band and the target zone of the original, as the clip may
        // hold them.
        let wide = Params {
            min_freq_hz: (params.min_freq_hz as f64 * freq_min) as f32,
            max_freq_hz: (params.max_freq_hz as f64 * freq_max) as f32,
            ..params.clone()
        };
        let max_dt = ((params.max_dt_frames as f64 / tempo_min).ceil() as u32)
            .min((1 << crate::hash::DT_BITS) - 1);
        let max_df =
            ((params.max_df_bins as f64 * freq_max).ceil() as u32).min(crate::hash::MAX_DF);
        let mut spectrogram = SpectrogramBuilder::new(&wide);
        let mut picker = PeakPicker::new(
            params.query_radius_bins,
            params.query_radius_frames,
            params.peak_floor_power(),
            wide.first_bin(),
        )
        .with_fine_positions();
        let mut pairer = Pairer::new(
            fan_out + SPARE_TARGETS,
            params.min_dt_frames,
            max_dt,
            max_df,
        );
        let mut pairs = Vec::new();
        let mut anchors = Vec::new();
        let mut last = None;
        let mut keep = |a: &Peak, p: &Peak| {
            if last != Some((a.frame, a.bin)) {
                anchors.push(pairs.len());
                last = Some((a.frame, a.bin));
            }
            pairs.push([
                a.bin as f32 + a.dbin,
                a.frame as f32 + a.dframe,
                p.bin as f32 + p.dbin,
                p.frame as f32 + p.dframe,
            ]);
        };
        spectrogram.push(samples, &mut |frame| {
            picker.push(frame, &mut |peak| pairer.push_pairs(peak, &mut keep));
        });
        picker.finish(&mut |peak| pairer.push_pairs(peak, &mut keep));
        pairer.finish_pairs(&mut keep);
        anchors.push(pairs.len());
        Pairs {
            pairs,
            anchors,
            fan_out,
            half_frame: params.fft_size as f64 / 2.0 / params.hop_samples as f64,
            first_bin: params.first_bin() as i64,
            end_bin: params.end_bin() as i64,
            min_dt: params.min_dt_frames as i64,
            max_dt: params.max_dt_frames as i64,
            max_df: params.max_df_bins as i64,
        }
    }

    /// The landmarks of the clip seen through `warp`, on the original's
    /// grid: up to `fan_out` targets per anchor that stay in the target
    /// zone and the band.
    pub fn landmarks(&self, warp: Warp) -> Vec<Landmark> {
        self.landmarks_with(warp, self.fan_out)
    }

    /// [`Pairs::landmarks`] with up to `fan_out` targets per anchor (at
    /// most the fan-out the pairs were made for).
    pub fn landmarks_with(&self, warp: Warp, fan_out: usize) -> Vec<Landmark> {
        let fan_out = fan_out.min(self.fan_out);
        // A frame of the clip centred at frame `i` is centred at `tempo * i
        // + shift` of the original's (its FFT is `1 / pitch` as long).
        let shift = warp.tempo * self.half_frame * (1.0 - 1.0 / warp.pitch);
        let (tempo, inv_pitch) = (warp.tempo as f32, (1.0 / warp.pitch) as f32);
        let shift = shift as f32;
        let in_band = |b: i64| (self.first_bin..self.end_bin).contains(&b);
        let mut out = Vec::with_capacity(self.anchors.len() * fan_out);
        for group in self.anchors.windows(2) {
            let mut taken = 0;
            for &[fa, ta, fp, tp] in &self.pairs[group[0]..group[1]] {
                let f1 = round(fa * inv_pitch);
                let f2 = round(fp * inv_pitch);
                let t1 = round(ta * tempo + shift);
                let t2 = round(tp * tempo + shift);
                let (dt, df) = (t2 - t1, f2 - f1);
                if t1 < 0
                    || !(self.min_dt..=self.max_dt).contains(&dt)
                    || df.abs() > self.max_df
                    || !in_band(f1)
                    || !in_band(f2)
                {
                    continue;
                }
                out.push(Landmark {
                    hash: mix(pack(f1 as u16, df as i32, dt as u32)),
                    frame: t1 as u32,
                });
                taken += 1;
                if taken == fan_out {
                    break;
                }
            }
        }
        out
    }
}

/// `x.round() as i64` (halves away from zero) without a call to the C
/// library's `roundf`, which the build's baseline x86-64 has no instruction
/// for: the integer part, plus or minus one where the fraction reaches a
/// half. The fraction `x - trunc(x)` is exact in `f32` below 2^23, far
/// above any bin or frame here; larger values are already whole.
fn round(x: f32) -> i64 {
    let whole = x as i64;
    let frac = x - whole as f32;
    // Comparisons as 0 or 1, not branches: the fraction is a coin toss.
    whole + (frac >= 0.5) as i64 - (frac <= -0.5) as i64
}

/// Clips shorter than this are probed with proportionally more landmarks
/// per peak, up to the full fan-out: a probe of a 3 s clip at the fan-out
/// of a 10 s one has too few votes to tell warps a quarter step apart
/// (tuning half: speed -8 % 3 s 94 % -> 86 %).
const PROBE_FULL_LENGTH_S: f64 = 10.0;

/// Landmarks per anchor peak of a first-pass probe of `samples` samples.
pub fn probe_fan_out(params: &Params, samples: usize) -> usize {
    scaled_fan_out(params, params.warp.probe_fan_out, samples)
}

/// Landmarks per anchor peak of a scout probe of `samples` samples, if the
/// first pass scouts (fewer than a first-pass probe's).
pub fn scout_fan_out(params: &Params, samples: usize) -> Option<usize> {
    let w = &params.warp;
    (w.scout_fan_out > 0 && w.scout_fan_out < w.probe_fan_out)
        .then(|| scaled_fan_out(params, w.scout_fan_out, samples))
}

/// Landmarks per anchor peak of a finer probe of `samples` samples (around
/// the best first-pass points, and the close look's probe).
pub fn refine_fan_out(params: &Params, samples: usize) -> usize {
    scaled_fan_out(params, params.warp.refine_fan_out, samples)
}

/// `fan_out` for a 10 s clip, scaled for shorter ones.
fn scaled_fan_out(params: &Params, fan_out: usize, samples: usize) -> usize {
    let seconds = samples as f64 / params.sample_rate_hz as f64;
    let scaled = (fan_out as f64 * PROBE_FULL_LENGTH_S / seconds.max(0.1)).ceil();
    (scaled as usize).clamp(fan_out, params.query_fan_out.max(fan_out))
}

/// A clip in the search: its pairs for probes (at the larger of the two
/// probe fan-outs), and at the full fan-out (made for the first full
/// query; most clips never need them).
struct Clip<'a> {
    samples: &'a [f32],
    pairs: Pairs,
    /// Landmarks per anchor of a first-pass probe and of a finer one.
    first: usize,
    fine: usize,
    /// ...and of a scout probe, if the first pass scouts.
    scout: Option<usize>,
    full: OnceLock<Pairs>,
}

impl Clip<'_> {
    fn new<'a>(params: &Params, samples: &'a [f32]) -> Clip<'a> {
        let first = probe_fan_out(params, samples.len());
        let fine = refine_fan_out(params, samples.len());
        Clip {
            samples,
            pairs: Pairs::new(params, samples, first.max(fine)),
            first,
            fine,
            scout: scout_fan_out(params, samples.len()),
            full: OnceLock::new(),
        }
    }

    /// A probe at `change` with `fan_out` landmarks per anchor (`first`
    /// or `fine`).
    fn probe(
        &self,
        matcher: &Matcher,
        params: &Params,
        change: Change,
        fan_out: usize,
    ) -> Result<Probe> {
        let lms = self.pairs.landmarks_with(change.warp(), fan_out);
        matcher.probe(&lms, looks(params))
    }
}

/// Identify a clip, searching warps when it does not match well as it is.
/// `straight` is the answer for the unwarped landmarks.
pub fn identify(
    matcher: &Matcher,
    samples: &[f32],
    straight: Outcome,
    top: usize,
) -> Result<Outcome> {
    // The search's own peaks and fan-out (`WarpParams::radius_bins`).
    let p = matcher.params();
    let params = p.with_query_peaks(p.warp.radius_bins, p.warp.radius_frames, p.warp.fan_out);
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
        let clip = Clip::new(&params, samples);
        let centre = clip.probe(matcher, &params, change, clip.fine)?;
        return Ok(refine(matcher, &params, &clip, change, centre, top)?
            .filter(|(_, _, score)| *score > straight_score)
            .map_or(straight, |(o, c, _)| labelled(o, c)));
    }
    let found = search(matcher, samples, top, &AtomicBool::new(false))?;
    Ok(preferred(straight, found))
}

/// The answer of a clip whose straight look gave `straight` (below
/// `WarpParams::skip_votes`) and whose warp search found `found`: a
/// warped answer replaces the straight one only when it is clearly better
/// supported.
pub fn preferred(straight: Outcome, found: Option<Found>) -> Outcome {
    let straight_score = straight.best.as_ref().map_or(0, |m| m.score);
    match found {
        Some((o, change, score)) if score > straight_score + straight_score / 2 => {
            labelled(o, change)
        }
        _ => straight,
    }
}

/// A warped answer: the outcome, the change it was found through, and its
/// score.
pub type Found = (Outcome, Change, u32);

/// The warp search over the whole grid, whatever the straight look found:
/// the best warped answer, if any reaches the threshold. Once `cancel` is
/// set (the caller no longer needs the answer: a look taken beside it named
/// the clip), no further probe is taken and the result means nothing.
pub fn search(
    matcher: &Matcher,
    samples: &[f32],
    top: usize,
    cancel: &AtomicBool,
) -> Result<Option<Found>> {
    let p = matcher.params();
    let params = p.with_query_peaks(p.warp.radius_bins, p.warp.radius_frames, p.warp.fan_out);
    let w = &params.warp;
    if !w.enabled || samples.is_empty() {
        return Ok(None);
    }
    // First pass: a cheap probe of every grid point.
    let clip = Clip::new(&params, samples);
    let probed = first_pass(matcher, &params, &clip, cancel)?;
    // Where even the likeliest point looks like chance, no finer probe
    // will name the clip.
    let likeliest = probed
        .iter()
        .map(|p| p.0.chance)
        .fold(f64::INFINITY, f64::min);
    if likeliest / matcher.looks_factor() > w.refine_max_chance {
        return Ok(None);
    }

    // Second pass: finer probes around the best points, a full query at
    // the best of each.
    let refined = spread(matcher, probed.iter().take(w.refine), |&(probe, change)| {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // The finer probes are compared with their centre seen as they are.
        let centre = if clip.fine == clip.first {
            probe
        } else {
            clip.probe(matcher, &params, change, clip.fine)?
        };
        refine(matcher, &params, &clip, change, centre, top)
    })?;
    let mut best: Option<Found> = None;
    for found in refined.into_iter().flatten() {
        if best.as_ref().is_none_or(|b| found.2 > b.2) {
            best = Some(found);
        }
    }
    Ok(best)
}

/// The first pass: a probe of every grid point, nearest to unchanged
/// first, strongest first in the result. When the clip scouts
/// (`WarpParams::scout_fan_out`), every point gets a scout probe (fewer
/// landmarks) and only the best `scout_keep` are probed again at the
/// first-pass fan-out: they are the result. Once a probe is so strong that
/// chance all but never gives it, the points up to one step further out
/// are probed too (the other lines at about the same distance: a pitch
/// change also lines up along the speed line, a little worse) and the rest
/// skipped. Spread over threads ([`Matcher::spreads_looks`]), points past
/// that distance may be probed before it is known; their probes are
/// dropped, so the answer is the one-thread answer.
fn first_pass(
    matcher: &Matcher,
    params: &Params,
    clip: &Clip,
    cancel: &AtomicBool,
) -> Result<Vec<(Probe, Change)>> {
    let w = &params.warp;
    let distance = |c: &Change| (c.factor() - 1.0).abs();
    // The farthest distance still probed, as the bits of a positive f64
    // (which order as the numbers do).
    let last = AtomicU64::new(f64::INFINITY.to_bits());
    let within = |c: &Change, last: u64| distance(c) <= f64::from_bits(last) + 1e-9;
    let probes = spread(matcher, grid(params).iter(), |&change| {
        if !within(&change, last.load(Ordering::Relaxed)) || cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let probe = clip.probe(matcher, params, change, clip.scout.unwrap_or(clip.first))?;
        if probe.chance <= w.stop_max_chance {
            let stop = distance(&change) + w.freq_step.max(w.tempo_step);
            last.fetch_min(stop.to_bits(), Ordering::Relaxed);
        }
        Ok(Some((probe, change)))
    })?;
    let last = last.load(Ordering::Relaxed);
    let mut probed: Vec<(Probe, Change)> = probes
        .into_iter()
        .flatten()
        .filter(|(_, change)| within(change, last))
        .collect();
    probed.sort_by_key(|p| std::cmp::Reverse(p.0.score));
    if clip.scout.is_none() {
        return Ok(probed);
    }
    let again = spread(matcher, probed.iter().take(w.scout_keep), |&(_, change)| {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        Ok(Some((
            clip.probe(matcher, params, change, clip.first)?,
            change,
        )))
    })?;
    let mut again: Vec<(Probe, Change)> = again.into_iter().flatten().collect();
    again.sort_by_key(|p| std::cmp::Reverse(p.0.score));
    Ok(again)
}

/// `f` of each item, in order: on the threads of the current pool when
/// the matcher spreads a clip's looks, else one after the other.
fn spread<'a, T: Sync + 'a, R: Send>(
    matcher: &Matcher,
    items: impl Iterator<Item = &'a T>,
    f: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    if matcher.spreads_looks() {
        let items: Vec<&T> = items.collect();
        items.into_par_iter().map(&f).collect()
    } else {
        items.map(f).collect()
    }
}

/// Probes at quarter steps within half a grid step of `change` (`centre`
/// is its score), then one full query (`full`: the clip's pairs at the full
/// fan-out) at the best factor, the vertex of the parabola through the best
/// probe and its neighbours: the answer there, if it reaches the threshold.
/// A probe costs a fraction of a full query, and the votes of a warp fall
/// off within a quarter step of the right one. Moved peaks reach any
/// factor; a spectrogram on the warped grid does not (its FFT lengths come
/// in steps of two samples, 0.2 % of pitch).
fn refine(
    matcher: &Matcher,
    params: &Params,
    clip: &Clip,
    change: Change,
    centre: Probe,
    top: usize,
) -> Result<Option<(Outcome, Change, u32)>> {
    let quarter = change.step(params) / 4.0;
    let f = change.factor();
    let looks = looks(params);
    let around = [0usize, 1, 3, 4];
    let probes = spread(matcher, around.iter(), |&k| {
        let at = change.with_factor(f + (k as f64 - 2.0) * quarter);
        clip.probe(matcher, params, at, clip.fine)
    })?;
    let mut scores = [centre.score; 5];
    let mut chance = centre.chance;
    for (&k, probe) in around.iter().zip(&probes) {
        scores[k] = probe.score;
        chance = chance.min(probe.chance);
    }
    // A full query names nothing where the finer probes look like chance
    // (judged per clip, as the close look's probe).
    if chance / matcher.looks_factor() > params.warp.full_max_chance {
        return Ok(None);
    }
    // The best, nearest the centre on ties.
    let k = (0..5)
        .max_by_key(|&k| (scores[k], std::cmp::Reverse((k as i64 - 2).abs())))
        .unwrap_or(2);
    let mut factor = f + (k as f64 - 2.0) * quarter;
    if (1..4).contains(&k) {
        let (l, c, r) = (scores[k - 1] as f64, scores[k] as f64, scores[k + 1] as f64);
        let denom = l - 2.0 * c + r;
        if denom < 0.0 {
            factor += (quarter * 0.5 * (l - r) / denom).clamp(-quarter / 2.0, quarter / 2.0);
        }
    }
    let change = change.with_factor(factor);
    let full = clip
        .full
        .get_or_init(|| Pairs::new(params, clip.samples, params.query_fan_out));
    let o = matcher.identify(&full.landmarks(change.warp()), top, looks)?;
    Ok(o.best
        .as_ref()
        .map(|m| m.score)
        .map(|score| (o, change, score)))
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
    fn round_is_the_standard_rounding() {
        let mut x: u32 = 0x9E37_79B9;
        let mut values: Vec<f32> = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.499_999_97,
            -0.499_999_97,
            8_388_607.5,
            1e9,
            -1e9,
        ];
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values.push((x as f32 / u32::MAX as f32 - 0.3) * 20_000.0);
            values.push((x % 4000) as f32 / 4.0 - 500.0);
        }
        for v in values {
            assert_eq!(round(v), v.round() as i64, "{v}");
        }
    }

    #[test]
    fn grid_covers_the_ranges_nearest_first_without_the_identity() {
        let p = Params::default();
        let g = grid(&p);
        assert!(g.iter().all(|c| (c.factor() - 1.0).abs() > 1e-9));
        let dist: Vec<f64> = g.iter().map(|c| (c.factor() - 1.0).abs()).collect();
        assert!(dist.windows(2).all(|d| d[0] <= d[1]));
        // The factors of one line's points.
        let factors = |on_line: fn(&Change) -> bool| -> Vec<f64> {
            g.iter()
                .filter(|c| on_line(c))
                .map(|c| c.factor())
                .collect()
        };
        let speeds = factors(|c| matches!(c, Change::Speed(_)));
        let lo = speeds.iter().cloned().fold(f64::MAX, f64::min);
        let hi = speeds.iter().cloned().fold(f64::MIN, f64::max);
        assert!((lo - 0.92).abs() < p.warp.freq_step && (hi - 1.08).abs() < p.warp.freq_step);
        let pitches = factors(|c| matches!(c, Change::Pitch(_)));
        // Every eighth of a semitone (0.72 %, the nearest to the 0.75 %
        // step) to +-1 semitone exactly.
        assert_eq!(pitches.len(), 16);
        for semitone in [-1.0f64, -0.5, 0.125, 1.0] {
            let f = 2f64.powf(semitone / 12.0);
            assert!(pitches.iter().any(|p| (p - f).abs() < 1e-12), "{f}");
        }
    }

    /// Chords of three random tones struck every quarter second and dying
    /// away, 8 s at the fingerprint rate, played `speed` times as fast
    /// (pitch and tempo).
    fn notes(params: &Params, speed: f64) -> Vec<f32> {
        let sr = params.sample_rate_hz as f64;
        let mut x: u64 = 0x9E37_79B9;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f64 / 10_000.0
        };
        let chords: Vec<[f64; 3]> = (0..32)
            .map(|_| [0; 3].map(|_| 150.0 + 2500.0 * rand()))
            .collect();
        let n = (8.0 * sr / speed) as usize;
        (0..n)
            .map(|k| {
                let t = k as f64 * speed / sr;
                let i = ((t * 4.0) as usize).min(31);
                let decay = (-(t - i as f64 / 4.0) * 12.0).exp();
                chords[i]
                    .iter()
                    .map(|f| (decay * (2.0 * std::f64::consts::PI * f * t).sin()) as f32 / 4.0)
                    .sum()
            })
            .collect()
    }

    #[test]
    fn moved_peaks_line_a_faster_clip_up_with_the_original() {
        let p = Params::default();
        let probe = Params {
            query_fan_out: p.warp.probe_fan_out,
            ..p.clone()
        };
        let original: std::collections::HashSet<Landmark> =
            landmarks(&probe, &notes(&p, 1.0), Warp::NONE)
                .into_iter()
                .collect();
        let pairs = Pairs::new(&p, &notes(&p, 1.04), p.warp.probe_fan_out);
        let shared = |change: Change| {
            pairs
                .landmarks(change.warp())
                .iter()
                .filter(|l| original.contains(l))
                .count()
        };
        let (right, unwarped, wrong) = (
            shared(Change::Speed(1.04)),
            shared(Change::Speed(1.0)),
            shared(Change::Speed(1.025)),
        );
        assert!(
            right * 2 >= original.len(),
            "{right} of {} landmarks found again",
            original.len()
        );
        assert!(
            right > 5 * unwarped.max(wrong),
            "{right} {unwarped} {wrong}"
        );
        // The same clip fingerprinted on the warped grid agrees.
        let warped = landmarks(&probe, &notes(&p, 1.04), Change::Speed(1.04).warp())
            .into_iter()
            .filter(|l| original.contains(l))
            .count();
        assert!(right * 10 >= warped * 8, "{right} against {warped}");
    }

    #[test]
    fn a_first_pass_spread_over_threads_is_the_first_pass_in_turn() {
        use crate::fingerprint::Role;
        use crate::store::{test_track, Access, Store};
        let p = Params::default();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, Some(&p)).unwrap();
        let original = notes(&p, 1.0);
        let mut fp = Fingerprinter::new(&p, Role::Index);
        let mut lms = Vec::new();
        fp.push(&original, &mut |l| lms.push(l));
        fp.finish(&mut |l| lms.push(l));
        store
            .commit(vec![test_track(0, 8.0, lms.clone())], &[])
            .unwrap();
        drop(store);
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        let mut matcher = Matcher::new(store).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        // Sped up (found at a glance of the grid: the pass stops early),
        // and backwards (nothing found: every point probed).
        let faster = notes(&p, 1.04);
        let backwards: Vec<f32> = original.iter().rev().copied().collect();
        let mut unscouted = p.clone();
        unscouted.warp.scout_fan_out = 0;
        for samples in [&faster, &backwards] {
            let mut bests = Vec::new();
            for p in [&p, &unscouted] {
                let clip = Clip::new(p, samples);
                let mut passes = Vec::new();
                for spread in [false, true] {
                    matcher.set_spread_looks(spread);
                    passes.push(
                        pool.install(|| first_pass(&matcher, p, &clip, &AtomicBool::new(false)))
                            .unwrap(),
                    );
                }
                assert_eq!(passes[0], passes[1]);
                let probed = passes[0].len();
                if clip.scout.is_some() {
                    // Scouted: only the points probed again come back.
                    assert_eq!(probed, p.warp.scout_keep);
                } else if std::ptr::eq(samples, &faster) {
                    assert!(probed < grid(p).len(), "{probed} points probed");
                    assert!(passes[0][0].0.chance <= p.warp.stop_max_chance);
                } else {
                    assert_eq!(probed, grid(p).len());
                }
                bests.push(passes[0][0]);
            }
            if std::ptr::eq(samples, &faster) {
                // The scouts lead to the point the full first pass finds
                // best, probed alike.
                assert_eq!(bests[0], bests[1]);
            }
        }
        // The whole search finds the sped-up clip, unless given up before
        // it starts (a look beside it named the clip): then no probe.
        matcher.set_spread_looks(false);
        let found = search(&matcher, &faster, 1, &AtomicBool::new(false)).unwrap();
        let (o, change, _) = found.expect("found through a warp");
        assert_eq!(o.best.expect("named").track, 0);
        assert!((change.factor() - 1.04).abs() < 0.01, "{change:?}");
        let clip = Clip::new(&p, &faster);
        assert!(first_pass(&matcher, &p, &clip, &AtomicBool::new(true))
            .unwrap()
            .is_empty());
        assert!(search(&matcher, &faster, 1, &AtomicBool::new(true))
            .unwrap()
            .is_none());
        // An index whose search refines nothing unless the first pass is
        // likelier than any chance: the search ends after the first pass.
        let mut strict = p.clone();
        strict.warp.refine_max_chance = 0.0;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, Some(&strict)).unwrap();
        store.commit(vec![test_track(0, 8.0, lms)], &[]).unwrap();
        drop(store);
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        let matcher = Matcher::new(store).unwrap();
        assert!(search(&matcher, &faster, 1, &AtomicBool::new(false))
            .unwrap()
            .is_none());
    }

    #[test]
    fn fewer_targets_of_more_pairs_are_the_pairs_of_fewer() {
        // The search makes a clip's pairs once, for its finer probes, and
        // takes its first-pass probes from them with fewer targets: what
        // pairs made for that fan-out alone give (but where a warp moves
        // more than the spare targets out of the zone).
        let p = Params::default();
        let samples = notes(&p, 1.04);
        let (four, two) = (Pairs::new(&p, &samples, 4), Pairs::new(&p, &samples, 2));
        for change in [Change::Speed(1.0), Change::Speed(1.04), Change::Pitch(0.97)] {
            let w = change.warp();
            assert_eq!(four.landmarks_with(w, 4), four.landmarks(w));
            assert_eq!(four.landmarks_with(w, 9), four.landmarks(w), "capped at 4");
            let (taken, own) = (four.landmarks_with(w, 2), two.landmarks(w));
            assert!(own.len() > 100, "{} landmarks", own.len());
            let own_set: std::collections::HashSet<_> = own.iter().collect();
            let same = taken.iter().filter(|l| own_set.contains(l)).count();
            assert!(
                same * 100 >= own.len() * 99 && taken.len() * 100 <= own.len() * 101,
                "{change:?}: {same} shared of {} and {}",
                taken.len(),
                own.len()
            );
        }
    }
}
