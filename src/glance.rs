//! A glance: the first look at a clip, with few landmarks per peak.
//!
//! A look costs a vote per posting of each of its hashes, and the postings
//! of a hash grow with the library (at 1,000 h a query hash has ~50). A
//! clip heard clearly has votes to spare: the warp search's probes tell
//! warps apart with 4 landmarks per peak where a full look makes 24. The
//! glance looks at the clip as it is with that few landmarks (a sixth of
//! the votes to collect) and trusts what it sees only when chance all but
//! never gives an answer as strong (`glance.max_chance`, 30 times below
//! the decision rule's) with the votes that spare a clip the warp search
//! (`warp.skip_votes`). The tracks it names are then counted again with
//! the landmarks of 8 targets per peak (`glance.recount_fan_out`), as a
//! look at those landmarks counts them ([`Matcher::identify_in`]): its
//! score, repeats of looping music and chance figure, named by the same
//! rule, without sorting the votes for every other track. Every other clip
//! has the full look as before.

use std::borrow::Cow;

use anyhow::Result;

use crate::hash::{self, Landmark};
use crate::matcher::{Matcher, Outcome};

/// For a clip of straight-look `landmarks`: the full look's answer among
/// the tracks a glance names, if it names one strongly enough. Never with
/// runner-ups asked for (`top` > 1): of those a glance sees too few votes.
pub fn identify(matcher: &Matcher, landmarks: &[Landmark], top: usize) -> Result<Option<Outcome>> {
    let p = matcher.params();
    let g = &p.glance;
    if !g.enabled || top > 1 || g.fan_out >= p.query_fan_out {
        return Ok(None);
    }
    // Versions score close to the answer in full, less close in a glance:
    // any within a quarter are recounted too.
    let o = matcher.identify_near(&hash::thinned(landmarks, g.fan_out), 1.0, 4)?;
    let bar = g.max_chance.min(p.decision.max_chance);
    let Some(best) = o
        .best
        .as_ref()
        .filter(|m| m.chance <= bar && m.score >= p.warp.skip_votes)
    else {
        return Ok(None);
    };
    let tracks: Vec<u32> = std::iter::once(best)
        .chain(&o.alternatives)
        .map(|m| m.track)
        .collect();
    let recount = if g.recount_fan_out < p.query_fan_out {
        Cow::Owned(hash::thinned(landmarks, g.recount_fan_out))
    } else {
        Cow::Borrowed(landmarks)
    };
    let full = matcher.identify_in(&recount, &tracks, 1.0)?;
    Ok(full.best.is_some().then_some(full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{Fingerprinter, Role};
    use crate::params::Params;
    use crate::store::{test_track, Access, Store};

    /// Seconds of tone bursts at pseudo-random pitches, a new chord every
    /// 50 ms: peaks everywhere, unlike any other seed's.
    fn bursts(seconds: f32, seed: u64, rate: u32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let step = (rate / 20) as usize;
        let n = (seconds * rate as f32) as usize;
        let mut out = vec![0.0f32; n];
        for start in (0..n).step_by(step) {
            for _ in 0..3 {
                let hz = 200.0 + (next() % 3000) as f32;
                for (i, s) in out[start..(start + step).min(n)].iter_mut().enumerate() {
                    *s += 0.2 * (std::f32::consts::TAU * hz * i as f32 / rate as f32).sin();
                }
            }
        }
        out
    }

    fn landmarks(p: &Params, samples: &[f32], role: Role) -> Vec<Landmark> {
        let mut f = Fingerprinter::new(p, role);
        let mut out = Vec::new();
        f.push(samples, &mut |l| out.push(l));
        f.finish(&mut |l| out.push(l));
        out
    }

    #[test]
    fn a_glance_names_what_a_look_at_its_recount_names_and_nothing_else() {
        let p = Params::default();
        let rate = p.sample_rate_hz;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, Some(&p)).unwrap();
        let tracks: Vec<Vec<f32>> = (0..4).map(|n| bursts(40.0, n, rate)).collect();
        let new = tracks
            .iter()
            .zip(0..)
            .map(|(samples, n)| {
                let duration_s = samples.len() as f64 / rate as f64;
                test_track(n, duration_s, landmarks(&p, samples, Role::Index))
            })
            .collect();
        store.commit(new, &[]).unwrap();
        drop(store);
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        let matcher = Matcher::new(store).unwrap();

        // 10 s of track 2 from 12 s: named at a glance, as the full look names it.
        let start = 12 * rate as usize;
        let clip = &tracks[2][start..start + 10 * rate as usize];
        let lms = landmarks(&p, clip, Role::Query);
        let glanced = identify(&matcher, &lms, 1)
            .unwrap()
            .expect("named at a glance");
        // The recount's answer is a look's at its landmarks.
        let recount = hash::thinned(&lms, p.glance.recount_fan_out);
        assert!(recount.len() < lms.len());
        let full = matcher.identify(&recount, 1, 1.0).unwrap();
        let (g, f) = (glanced.best.unwrap(), full.best.unwrap());
        assert_eq!(g.title, "t2");
        assert!((g.offset_s - 12.0).abs() < 0.05, "offset {}", g.offset_s);
        assert_eq!(g, f);
        assert_eq!(glanced.alternatives, full.alternatives);
        let every = matcher.identify(&lms, 1, 1.0).unwrap().best.unwrap();
        assert_eq!((every.track, every.offset_s), (g.track, g.offset_s));
        assert!(every.score > g.score);
        // Runner-ups asked for: no glance.
        assert!(identify(&matcher, &lms, 2).unwrap().is_none());
        // Music that is not in the index: no glance, and no answer.
        let other = landmarks(&p, &bursts(10.0, 99, rate), Role::Query);
        assert!(identify(&matcher, &other, 1).unwrap().is_none());
        assert!(matcher.identify(&other, 1, 1.0).unwrap().best.is_none());
    }
}
