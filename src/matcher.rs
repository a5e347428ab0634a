//! Query landmarks + the store in, ranked matches out (data only, no printing).
//!
//! Every query landmark is looked up; each stored posting with the same hash
//! votes for (track, stored frame - query frame). A clip of a track piles its
//! votes on one offset; chance agreements scatter. A track is named when its
//! best offset (votes within +-1 frame) reaches `min_votes`. Other offsets of
//! the same track that score nearly as well are the repeats of looping music;
//! other tracks that score above the threshold are copies or versions.

use std::collections::HashMap;
use std::rc::Rc;

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use crate::hash::{self, Landmark};
use crate::params::Params;
use crate::store::{self, Posting, Store, TrackRecord};

/// One identified track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub title: String,
    pub work: String,
    pub composer: Option<String>,
    pub path: String,
    /// Where the clip starts in the track, seconds (the best-supported position).
    pub offset_s: f64,
    /// Every position where the clip occurs in the track (looping music), ascending.
    pub offsets_s: Vec<f64>,
    /// Landmarks agreeing on the offset.
    pub score: u32,
    /// In [0, 1]; see the README for what a value means in measured precision.
    pub confidence: f64,
}

/// The answer for one query.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub best: Option<Match>,
    /// Copies and versions above the threshold, then runner-ups (`--top`).
    pub alternatives: Vec<Match>,
    /// Landmarks the query produced.
    pub query_landmarks: usize,
}

/// Buckets decoded once and kept for the next queries, up to this many postings.
const CACHE_MAX_POSTINGS: usize = 30_000_000;

type Bucket = Rc<Vec<(u32, Vec<Posting>)>>;

/// Looks queries up in one store.
pub struct Matcher<'a> {
    store: &'a Store,
    params: Params,
    tables: HashMap<u32, Vec<u32>>,
    segments: Vec<u32>,
    tracks: HashMap<u32, TrackRecord>,
    cache: HashMap<u16, Bucket>,
    cached_postings: usize,
    raw: Vec<(u32, sled::IVec)>,
}

/// Offsets closer than this (frames) are the same position.
const SAME_POSITION_FRAMES: i64 = 31;

impl<'a> Matcher<'a> {
    pub fn new(store: &'a Store) -> Result<Matcher<'a>> {
        let tables: HashMap<u32, Vec<u32>> = store.segment_tables()?.into_iter().collect();
        let mut segments: Vec<u32> = tables.keys().copied().collect();
        segments.sort_unstable();
        let tracks = store.tracks()?.into_iter().map(|t| (t.id, t)).collect();
        Ok(Matcher {
            store,
            params: store.params().clone(),
            tables,
            segments,
            tracks,
            cache: HashMap::new(),
            cached_postings: 0,
            raw: Vec::new(),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    fn bucket(&mut self, b: u16) -> Result<Bucket> {
        if let Some(hit) = self.cache.get(&b) {
            return Ok(hit.clone());
        }
        self.store.bucket(b, &self.segments, &mut self.raw)?;
        let mut segs = Vec::with_capacity(self.raw.len());
        let mut n = 0;
        for (seg, value) in &self.raw {
            let mut ps = Vec::new();
            store::decode_postings(value, &mut ps).ok_or_else(|| {
                anyhow!("corrupt postings in the index; rebuild it with `ostid index --rebuild DIR...`")
            })?;
            n += ps.len();
            segs.push((*seg, ps));
        }
        let bucket = Rc::new(segs);
        if self.cached_postings + n <= CACHE_MAX_POSTINGS {
            self.cached_postings += n;
            self.cache.insert(b, bucket.clone());
        }
        Ok(bucket)
    }

    /// Collect (track, offset, query anchor) votes for a query; the anchor is
    /// the query peak (frame and bin) the landmark starts from.
    fn votes(&mut self, landmarks: &[Landmark]) -> Result<Vec<(u32, i64, u32)>> {
        let mut q: Vec<(u16, u32, u32)> = landmarks
            .iter()
            .map(|l| {
                let (b, low) = store::split_hash(l.hash);
                let (f1, _, _) = hash::unpack(hash::unmix(l.hash));
                (b, low, l.frame << hash::FREQ_BITS | f1 as u32)
            })
            .collect();
        q.sort_unstable();
        q.dedup();
        let mut votes = Vec::new();
        let mut i = 0;
        while i < q.len() {
            let b = q[i].0;
            let end = i + q[i..].iter().take_while(|x| x.0 == b).count();
            let bucket = self.bucket(b)?;
            for (seg, postings) in bucket.iter() {
                let Some(table) = self.tables.get(seg) else { continue };
                for &(_, low, anchor) in &q[i..end] {
                    let qframe = anchor >> hash::FREQ_BITS;
                    let start = postings.partition_point(|p| p.low < low);
                    for p in postings[start..].iter().take_while(|p| p.low == low) {
                        let Some(&track) = table.get(p.slot as usize) else { continue };
                        if store::is_removed(track) {
                            continue;
                        }
                        votes.push((track, p.frame as i64 - qframe as i64, anchor));
                    }
                }
            }
            i = end;
        }
        Ok(votes)
    }

    /// Identify a query from its landmarks. `top` >= 1 is how many answers
    /// the caller wants at least (best + runner-ups).
    pub fn identify(&mut self, landmarks: &[Landmark], top: usize) -> Result<Outcome> {
        let mut votes = self.votes(landmarks)?;
        // One vote per query peak and offset: an anchor paired with many
        // targets counts once.
        votes.sort_unstable();
        votes.dedup();
        // Run-length count: (track, offset, votes).
        let mut counts: Vec<(u32, i64, u32)> = Vec::new();
        for (t, o, _) in votes {
            match counts.last_mut() {
                Some(last) if last.0 == t && last.1 == o => last.2 += 1,
                _ => counts.push((t, o, 1)),
            }
        }
        // Smooth over +-1 frame: a clip that starts between two hops splits
        // its votes between neighbouring offsets.
        let n = counts.len();
        let mut per_track: HashMap<u32, Vec<Candidate>> = HashMap::new();
        for k in 0..n {
            let (t, o, c) = counts[k];
            let mut score = c;
            let mut weighted = c as f64 * o as f64;
            for j in [k.wrapping_sub(1), k + 1] {
                if let Some(&(t2, o2, c2)) = counts.get(j) {
                    if t2 == t && (o2 - o).abs() == 1 {
                        score += c2;
                        weighted += c2 as f64 * o2 as f64;
                    }
                }
            }
            per_track.entry(t).or_default().push(Candidate {
                offset: o,
                score,
                refined: weighted / score as f64,
            });
        }
        let mut ranked: Vec<(u32, Vec<Candidate>)> = per_track
            .into_iter()
            .map(|(t, mut cands)| {
                cands.sort_by(|a, b| b.score.cmp(&a.score).then(a.offset.cmp(&b.offset)));
                (t, cands)
            })
            .collect();
        ranked.sort_by(|a, b| b.1[0].score.cmp(&a.1[0].score).then(a.0.cmp(&b.0)));

        let min_votes = self.params.min_votes;
        let mut outcome = Outcome {
            query_landmarks: landmarks.len(),
            ..Default::default()
        };
        let frame_s = self.params.frame_s();
        let mut runner_ups = 0;
        for (rank, (track, cands)) in ranked.iter().enumerate() {
            let best = cands[0];
            let above = best.score >= min_votes;
            if rank == 0 && !above {
                break;
            }
            if rank > 0 && !above {
                if runner_ups + 1 >= top {
                    break;
                }
                runner_ups += 1;
            }
            let Some(rec) = self.tracks.get(track) else { continue };
            // Repeats: other positions scoring at least half as well.
            let mut positions: Vec<Candidate> = Vec::new();
            for c in cands {
                if c.score < min_votes.max(best.score.div_ceil(2)) {
                    break;
                }
                if positions
                    .iter()
                    .all(|p| (p.offset - c.offset).abs() > SAME_POSITION_FRAMES)
                {
                    positions.push(*c);
                }
            }
            if positions.is_empty() {
                positions.push(best);
            }
            let to_s = |c: &Candidate| (c.refined * frame_s).max(0.0);
            let mut offsets_s: Vec<f64> = positions.iter().map(|c| round_ms(to_s(c))).collect();
            offsets_s.sort_by(f64::total_cmp);
            let m = Match {
                title: rec.title.clone(),
                work: rec.work.clone(),
                composer: rec.composer.clone(),
                path: rec.path.clone(),
                offset_s: round_ms(to_s(&best)),
                offsets_s,
                score: best.score,
                confidence: confidence(best.score, min_votes),
            };
            if rank == 0 {
                outcome.best = Some(m);
            } else {
                outcome.alternatives.push(m);
            }
        }
        Ok(outcome)
    }
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    offset: i64,
    score: u32,
    /// Vote-weighted offset, in frames (sub-frame precision).
    refined: f64,
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// Confidence of a score: 0 below the threshold, rising towards 1 as the
/// votes exceed it. The README maps values to measured precision.
pub fn confidence(score: u32, min_votes: u32) -> f64 {
    if score < min_votes {
        return (score as f64 / min_votes as f64 * 0.5).min(0.49);
    }
    let excess = (score - min_votes) as f64;
    let c = 1.0 - 0.5 * (-excess / min_votes as f64).exp();
    (c * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidence_is_monotone_and_bounded() {
        let mut prev = -1.0;
        for s in 0..200 {
            let c = confidence(s, 8);
            assert!((0.0..=1.0).contains(&c));
            assert!(c >= prev);
            prev = c;
        }
        assert!(confidence(7, 8) < 0.5);
        assert!(confidence(8, 8) >= 0.5);
    }
}
