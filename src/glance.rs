//! A glance: the first look at a clip, at peaks of the index's own size.
//!
//! A look costs a vote per posting of each of its hashes, and the postings
//! of a hash grow with the library (at 1,000 h a query hash has ~50). The
//! straight look finds query peaks in small neighbourhoods (+-6 bins x +-5
//! frames), so that a stored peak (the maximum of +-12 x +-10) that damage
//! left standing is among them, and pairs each with its 24 nearest
//! targets: ~17,000 landmarks for a 10 s clip, most of them pairs the index
//! never stored. The glance finds peaks as the index does and pairs each
//! with its 16 nearest ([`crate::params::GlanceParams`]): a sixth of the
//! landmarks and most of the true votes (on the tuning half, 10 s clips:
//! clean 183 true anchors against 196; pink noise 0 dB 49 against 62),
//! so a sixth of the chance votes and of the cost. It is named by the
//! decision rule as any look; a clip it cannot name (speech over the music
//! hides stored peaks; unknown music) has the straight look as before.

use anyhow::Result;

use crate::hash::Landmark;
use crate::matcher::{Matcher, Outcome};

/// The glance's answer for a clip's glance `landmarks`
/// ([`crate::fingerprint::Fingerprinter::query_with_glance`]), if it names
/// a track. Never with runner-ups asked for (`top` > 1): of those a glance
/// sees too few votes.
pub fn identify(matcher: &Matcher, landmarks: &[Landmark], top: usize) -> Result<Option<Outcome>> {
    if !matcher.params().glance.enabled || top > 1 || landmarks.is_empty() {
        return Ok(None);
    }
    let o = matcher.identify(landmarks, top, 1.0)?;
    Ok(o.best.is_some().then_some(o))
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
    fn a_glance_names_clips_heard_clearly_from_fewer_landmarks_and_nothing_else() {
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

        // 10 s of track 2 from 12 s: named at a glance, where the straight
        // look names it, from a fraction of its landmarks.
        let start = 12 * rate as usize;
        let clip = &tracks[2][start..start + 10 * rate as usize];
        let (straight, glance) = Fingerprinter::query_looks(&p, clip);
        assert_eq!(straight, landmarks(&p, clip, Role::Query));
        assert!(
            glance.len() * 3 < straight.len(),
            "{} glance landmarks, {} straight",
            glance.len(),
            straight.len()
        );
        let glanced = identify(&matcher, &glance, 1)
            .unwrap()
            .expect("named at a glance");
        let g = glanced.best.unwrap();
        assert_eq!(g.title, "t2");
        assert!((g.offset_s - 12.0).abs() < 0.05, "offset {}", g.offset_s);
        let every = matcher.identify(&straight, 1, 1.0).unwrap().best.unwrap();
        assert_eq!(every.track, g.track);
        assert!((every.offset_s - g.offset_s).abs() < 0.05);
        // Runner-ups asked for, or the glance off: no glance.
        assert!(identify(&matcher, &glance, 2).unwrap().is_none());
        let mut off = p.clone();
        off.glance.enabled = false;
        assert!(Fingerprinter::query_looks(&off, clip).1.is_empty());
        // Music that is not in the index: no glance, and no answer.
        let (other, other_glance) = Fingerprinter::query_looks(&p, &bursts(10.0, 99, rate));
        assert!(!other_glance.is_empty());
        assert!(identify(&matcher, &other_glance, 1).unwrap().is_none());
        assert!(matcher.identify(&other, 1, 1.0).unwrap().best.is_none());
    }
}
