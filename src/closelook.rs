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

use anyhow::Result;

use crate::hash::{self, Landmark};
use crate::matcher::{Matcher, Outcome};
use crate::params::Params;
use crate::warp::{self, Warp};

/// Looks a close look counts as (the first look and itself).
pub const LOOKS: f64 = 2.0;

/// The close look's answer for `samples` (at the fingerprint rate), if it
/// names a track.
pub fn identify(matcher: &Matcher, samples: &[f32], top: usize) -> Result<Option<Outcome>> {
    let params = matcher.params();
    let c = &params.close_look;
    if !c.enabled || samples.is_empty() {
        return Ok(None);
    }
    let close = Params {
        query_radius_bins: c.radius_bins,
        query_radius_frames: c.radius_frames,
        query_fan_out: c.fan_out.max(warp::probe_fan_out(params, samples.len())),
        ..params.clone()
    };
    let lms = warp::landmarks(&close, samples, Warp::NONE);
    // A probe first, with as few landmarks per peak as the warp search's:
    // where it looks like chance, the full look names nothing. Judged per
    // clip: `scan` counts each look many times over, and its full looks
    // must be stronger still.
    let probe = matcher.probe(
        &thinned(&lms, warp::probe_fan_out(params, samples.len())),
        LOOKS,
    )?;
    if probe.chance / matcher.looks_factor() > c.probe_max_chance {
        return Ok(None);
    }
    let o = matcher.identify(&lms, top, LOOKS)?;
    Ok(o.best.is_some().then_some(o))
}

/// The first `fan_out` landmarks of each anchor peak (landmarks come an
/// anchor's together, nearest target first): the landmarks at that fan-out.
fn thinned(landmarks: &[Landmark], fan_out: usize) -> Vec<Landmark> {
    let anchor = |l: &Landmark| (l.frame, hash::unpack(hash::unmix(l.hash)).0);
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
    fn thinned_landmarks_are_those_of_the_smaller_fan_out() {
        let p = Params::default();
        let mut x: u32 = 0x1234_5678;
        let noise: Vec<f32> = (0..(4 * p.sample_rate_hz) as usize)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x % 2001) as f32 / 1000.0 - 1.0
            })
            .collect();
        let full = warp::landmarks(&p, &noise, Warp::NONE);
        for fan_out in [1, 4, 7] {
            let few = Params {
                query_fan_out: fan_out,
                ..p.clone()
            };
            let expected = warp::landmarks(&few, &noise, Warp::NONE);
            assert!(expected.len() > 100 && expected.len() < full.len());
            assert_eq!(thinned(&full, fan_out), expected);
        }
    }
}
