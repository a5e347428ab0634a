//! A second look at a clip the first look could not name: music under
//! dialogue or noise.
//!
//! A query peak is the maximum of its neighbourhood (+-6 bins x +-5 frames
//! by default). Under speech, a harmonic of the voice a few bins or frames
//! away is louder than the music's peak and hides it, although the music's
//! peak is still there in the spectrum. Smaller neighbourhoods keep those
//! peaks (every peak of a larger neighbourhood is one of a smaller one, so
//! nothing the first look saw is lost). More peaks also mean more chance
//! votes, which the decision rule sees (more postings per track), and the
//! look is one more chance: it counts as a second look.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;

use crate::hash;
use crate::matcher::{Matcher, Outcome};
use crate::warp::{self, Warp};

/// Looks a close look counts as (the first look and itself).
pub const LOOKS: f64 = 2.0;

/// The close look's answer for `samples` (at the fingerprint rate), if it
/// names a track.
pub fn identify(matcher: &Matcher, samples: &[f32], top: usize) -> Result<Option<Outcome>> {
    identify_unless(matcher, samples, top, &AtomicBool::new(false))
}

/// [`identify`], given up (`None`) once `cancel` is set: a look taken
/// beside it named the clip.
pub fn identify_unless(
    matcher: &Matcher,
    samples: &[f32],
    top: usize,
    cancel: &AtomicBool,
) -> Result<Option<Outcome>> {
    let params = matcher.params();
    let c = &params.close_look;
    if !c.enabled || samples.is_empty() || cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let close = params.with_query_peaks(
        c.radius_bins,
        c.radius_frames,
        c.fan_out.max(warp::refine_fan_out(params, samples.len())),
    );
    let lms = warp::landmarks(&close, samples, Warp::NONE);
    // A probe first, with as few landmarks per peak as the warp search's
    // finer probes: where it looks like chance, the full look names
    // nothing. Judged per clip: `scan` counts each look many times over,
    // and its full looks must be stronger still.
    let chance = matcher.probe_chance(
        &hash::thinned(&lms, warp::refine_fan_out(params, samples.len())),
        LOOKS,
    )?;
    if chance / matcher.looks_factor() > c.probe_max_chance || cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let o = matcher.identify(&lms, top, LOOKS)?;
    Ok(o.best.is_some().then_some(o))
}
