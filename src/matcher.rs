//! Query landmarks + the store in, ranked matches out (data only, no printing).
//!
//! Every query landmark is looked up; each stored posting with the same hash
//! votes for (track, stored frame - query frame). A clip of a track piles its
//! votes on one offset; chance agreements scatter. Whether a pile is more
//! than chance is decided by [`chance`]: the votes chance alone would put on
//! one offset of that track for *this* query (from how many postings its
//! hashes have there), the tail probability of the observed votes, and the
//! number of offsets and looks examined. A track is named when the expected
//! number of chance answers that strong is below `decision.max_chance`.
//! Other offsets of the same track that score nearly as well are the
//! repeats of looping music; other tracks that pass too and score nearly as
//! well are copies or versions.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::chance;
use crate::hash::{self, Landmark};
use crate::params::Params;
use crate::readcache::{IdHash, MATCHERS, READ_CACHE};
use crate::shortlist;
use crate::store::{self, Part, Store, TrackRecord};
use crate::view::View;
use crate::votes::{bits, KeyLayout, VoteKey, Votes, WIDE};

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
    /// Expected number of answers at least this strong that chance alone
    /// would give for this clip (every offset of every track, every look).
    pub chance: f64,
    /// Probability that the answer is right, calibrated on the evaluation's
    /// tuning half (README: reliability).
    pub confidence: f64,
    /// How the clip was played relative to the track: `speed` changes tempo
    /// and pitch together (1.042: PAL speed-up), `tempo` the pace alone,
    /// `pitch_semitones` the pitch alone. 1, 1 and 0 when unchanged.
    pub speed: f64,
    pub tempo: f64,
    pub pitch_semitones: f64,
    /// First and last query frame whose peaks voted for this answer (where
    /// in the clip the track is heard). Not printed.
    #[serde(skip)]
    pub heard_frames: (u32, u32),
    /// The track's id in the index. Not printed.
    #[serde(skip)]
    pub track: u32,
}

/// The answer for one query.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub best: Option<Match>,
    /// Copies and versions above the threshold, then runner-ups (`--top`).
    pub alternatives: Vec<Match>,
    /// How the best match's offset moves through the clip, frames per
    /// frame: a clip played `1 + drift` times as fast (tempo) spreads its
    /// votes along that slope. 0 without a match.
    pub drift: f64,
}

/// What the decision rule sees of one query ([`Matcher::features`]).
#[derive(Debug, Clone, Serialize)]
pub struct Features {
    pub landmarks: usize,
    /// Offsets of the whole library, over the score's smoothing.
    pub positions: f64,
    /// `tail[k - 1]`: offsets of the whole library with a score >= k.
    pub tail: Vec<u64>,
    pub tracks: Vec<TrackFeatures>,
}

/// One track's part of [`Features`].
#[derive(Debug, Clone, Serialize)]
pub struct TrackFeatures {
    pub path: String,
    pub score: u32,
    pub windows: u32,
    /// Distinct query frames among the best offset's votes.
    pub distinct_frames: u32,
    pub rate: f64,
    pub chance: f64,
    pub frames: f64,
    pub tail: Vec<u32>,
}
/// Postings each track gave a query (before votes are deduplicated): by
/// track id where ids are few enough for a table, else in a map.
enum TrackPostings {
    Dense(Vec<u32>),
    Map(HashMap<u32, u64, IdHash>),
}

impl TrackPostings {
    fn get(&self, track: u32) -> u64 {
        match self {
            TrackPostings::Dense(counts) => counts.get(track as usize).map_or(0, |&n| n as u64),
            TrackPostings::Map(counts) => counts.get(&track).copied().unwrap_or(0),
        }
    }
}

/// Track ids below this are counted in a table ([`TrackPostings::Dense`],
/// 4 bytes an id up to the largest).
const DENSE_TRACKS: u32 = 1 << 20;

/// A query's votes as gathered: keys in the order they were read, or,
/// where they were too many to hold, their coarse counts over the files'
/// frames ([`Matcher::line_key`]; the votes are read again for the
/// shortlist).
enum Keys {
    Packed(Vec<u64>, KeyLayout),
    Counted(shortlist::Counts, KeyLayout, Memo),
    Wide(Vec<u128>),
}

/// Looks with more votes than this are shortlisted ([`crate::shortlist`])
/// before they are sorted, where the caller asks only for offsets that
/// reach a score: below it, sorting them all is as cheap. At 1,000 h the
/// warp search's probes of an unknown 10 s clip draw ~25,000-55,000
/// votes each: 8,192 against 32,768 took its CPU time from 244 to 214 ms
/// (10 tuning clips x 3 runs; 16,384: 221 ms) and, on 10 other clips, its
/// wall time from 138 to 126 ms; at 5.68 h nothing changed (37 ms of CPU).
const SHORTLIST_ABOVE: usize = 1 << 13;

/// Looks with more votes than this that will be shortlisted are not held
/// (8 bytes a vote, 8 MB): their postings are counted, then read again to
/// shortlist (but for the first [`MEMO_FRAMES`], kept from the first
/// read). At 10,000 h a 10 s clip's first look draws ~9 M.
const STREAM_ABOVE: usize = 1 << 20;

/// The most frames a streamed look keeps from its counting pass for its
/// keep pass (4 bytes each, 8 MiB): those lookups are not read again. At
/// 1,000 h the streamed looks of unknown 10 s clips read 1.0-1.3 M, so
/// every one is read once; with the held try skipped where it would fill
/// up ([`Matcher::expected_votes`]), such a clip's lookups went from
/// 83,000-101,000 to 47,000-62,000 and its time from 197 to 136 ms
/// (median, 5 clips x 5 runs, whole process).
const MEMO_FRAMES: usize = 1 << 21;

/// The frames a streamed look's lookups read, in the order looked up,
/// from the first until one does not fit ([`Matcher::visit_frames`]).
struct Memo {
    frames: Vec<u32>,
    /// `ends[k]`: where the frames of lookup `k` end in `frames`.
    ends: Vec<usize>,
    /// The most frames held.
    cap: usize,
}

impl Memo {
    fn new(cap: usize) -> Memo {
        Memo {
            // Room reserved, not touched: pages come as frames are kept.
            frames: Vec::with_capacity(cap.min(MEMO_FRAMES)),
            ends: Vec::new(),
            cap,
        }
    }

    /// The frames of lookup `k`, if kept.
    fn get(&self, k: usize) -> Option<&[u32]> {
        let end = *self.ends.get(k)?;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        Some(&self.frames[start..end])
    }

    /// Keep `frames`, lookup `k`'s, if every lookup before it is kept and
    /// they fit (once one does not, none after it is kept).
    fn keep(&mut self, k: usize, frames: &[u32]) {
        if k == self.ends.len() && self.frames.len() + frames.len() <= self.cap {
            self.frames.extend_from_slice(frames);
            self.ends.push(self.frames.len());
        }
    }
}

/// Where a matcher finds the records of the tracks it names.
enum Records {
    /// Read from the index as answers need them: the index stays open (and
    /// locked) with the matcher.
    Index(Box<Store>),
    /// Every record, read at once ([`Matcher::release`]).
    Loaded(HashMap<u32, TrackRecord>),
    /// Read from the index's query view as answers need them: nothing is
    /// locked.
    View(Box<View>),
}

/// Looks queries up in a snapshot of one index. It keeps the index open to
/// read the records of the tracks it names, until [`Matcher::release`]
/// reads them all and lets the index go (a long scan does not block
/// `index`). Queries take `&self`: clips are looked up on several threads
/// at once, reading the same postings files.
pub struct Matcher {
    parts: Vec<Part>,
    params: Params,
    /// Every live track's duration, seconds: all the decision rule needs
    /// of a track it does not name.
    durations_s: HashMap<u32, f64, IdHash>,
    records: Records,
    max_lead_frames: i64,
    /// Offsets a chance answer could take, over the whole library: frames
    /// of every track, divided by the +-1 frame a score is smoothed over.
    library_positions: f64,
    /// Every look counts this many times (`ostid scan`: one recording is
    /// many windows, each a chance for a chance answer).
    looks_factor: f64,
    /// The largest track id and frame within a track of any posting:
    /// whether a query's votes fit a `u64` key ([`KeyLayout`]).
    max_track: u32,
    max_frame: u32,
    /// Unique to this matcher ([`ReadCache`]).
    id: u64,
    /// Whether one clip's looks run on several threads at once.
    spread_looks: bool,
    /// Votes above which a look is shortlisted ([`SHORTLIST_ABOVE`]) and
    /// above which it is not held ([`STREAM_ABOVE`]).
    shortlist_above: usize,
    stream_above: usize,
    /// Frames a streamed look keeps for its second pass ([`MEMO_FRAMES`]).
    memo_frames: usize,
    /// Where each postings file's frames start in one line of them all
    /// ([`Matcher::line_key`]).
    part_bases: Vec<u64>,
}

/// Offsets closer than this (frames) are the same position.
const SAME_POSITION_FRAMES: i64 = 31;

/// A clip may start at most this long (frames, ~1 s) before a track begins:
/// a clip that lies mostly before the track is not in it, and the shared
/// openings of pieces (a first chord) otherwise draw chance votes there.
const MAX_LEAD_FRAMES: i64 = 31;

impl Matcher {
    /// A matcher of `store`'s index as it is now.
    pub fn new(store: Store) -> Result<Matcher> {
        let params = store.params().clone();
        let parts = store.parts()?;
        Ok(Matcher::of_parts(
            params,
            parts,
            Records::Index(Box::new(store)),
        ))
    }

    /// A matcher of an index's query view and the segments it names
    /// ([`Store::open_view`]): it holds no lock.
    pub fn from_view(view: Box<View>, parts: Vec<Part>) -> Matcher {
        let params = view.params().clone();
        Matcher::of_parts(params, parts, Records::View(view))
    }

    fn of_parts(params: Params, parts: Vec<Part>, records: Records) -> Matcher {
        let durations_s: HashMap<u32, f64, IdHash> = parts
            .iter()
            .flat_map(|p| p.tracks.iter().copied().zip(p.durations_s.iter().copied()))
            .filter(|&(t, _)| !store::is_removed(t))
            .collect();
        let frames: f64 = durations_s
            .values()
            .map(|d| d / params.frame_s() + MAX_LEAD_FRAMES as f64)
            .sum();
        let max_track = parts
            .iter()
            .flat_map(|p| p.tracks.iter().copied())
            .filter(|&t| !store::is_removed(t))
            .max()
            .unwrap_or(0);
        let max_frame = parts
            .iter()
            .flat_map(|p| (0..p.file.slots()).map(|s| p.file.span(s)))
            .max()
            .unwrap_or(0);
        let part_bases = parts
            .iter()
            .scan(0u64, |base, p| {
                let at = *base;
                *base += p.file.frames() as u64;
                Some(at)
            })
            .collect();
        Matcher {
            parts,
            params,
            durations_s,
            records,
            max_lead_frames: MAX_LEAD_FRAMES,
            library_positions: frames / chance::SMOOTHING_FRAMES,
            looks_factor: 1.0,
            max_track,
            max_frame,
            id: MATCHERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            spread_looks: false,
            shortlist_above: SHORTLIST_ABOVE,
            stream_above: STREAM_ABOVE,
            memo_frames: MEMO_FRAMES,
            part_bases,
        }
    }

    /// Shortlist looks with more than `shortlist_above` votes, hold at
    /// most `stream_above`, and keep at most `memo_frames` of a streamed
    /// look's frames for its second pass (tests: answers depend on none).
    #[cfg(test)]
    fn set_vote_limits(&mut self, shortlist_above: usize, stream_above: usize, memo_frames: usize) {
        self.shortlist_above = shortlist_above;
        self.stream_above = stream_above;
        self.memo_frames = memo_frames;
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Read every track record now and close the index: the matcher goes
    /// on answering from its snapshot while other processes use the index
    /// (a scan, a long batch).
    pub fn release(&mut self) -> Result<()> {
        if let Records::Index(store) = &self.records {
            let all = store.tracks()?.into_iter().map(|t| (t.id, t)).collect();
            // Dropping the store releases the lock.
            self.records = Records::Loaded(all);
        }
        Ok(())
    }

    /// The record of a track (`None`: removed since this snapshot was taken).
    fn record(&self, track: u32) -> Result<Option<TrackRecord>> {
        match &self.records {
            Records::Index(store) => store.track(track),
            Records::Loaded(all) => Ok(all.get(&track).cloned()),
            Records::View(view) => view.track(track),
        }
    }

    /// Count every look `factor` times: a caller that asks many queries of
    /// one input (the windows of a recording) keeps chance answers rare per
    /// input, not per query.
    pub fn set_looks_factor(&mut self, factor: f64) {
        self.looks_factor = factor.max(1.0);
    }

    /// Spread the looks of one clip (the warp search's probes, the close
    /// look beside it) over the threads of the current rayon pool: one
    /// clip answered sooner, with the answer one thread gives. For a clip
    /// or two at a time: it costs some work one thread would not do
    /// (points past where a strong probe stops the search, a close look
    /// taken beside a warp search that names the clip), and a batch's
    /// clips fill the threads already.
    pub fn set_spread_looks(&mut self, spread: bool) {
        self.spread_looks = spread;
    }

    /// Whether one clip's looks are spread over threads
    /// ([`Matcher::set_spread_looks`]).
    pub fn spreads_looks(&self) -> bool {
        self.spread_looks
    }

    /// How many times every look counts ([`Matcher::set_looks_factor`]).
    pub fn looks_factor(&self) -> f64 {
        self.looks_factor
    }

    /// Name answers only when the expected chance answers are at most
    /// `max_chance` (`--max-chance`).
    pub fn set_max_chance(&mut self, max_chance: f64) {
        self.params.decision.max_chance = max_chance;
    }

    /// Let a query start up to `seconds` before a track does (a window of a
    /// long recording in which a cue begins), and report such offsets as
    /// negative. Clips default to ~1 s, reported as 0.
    pub fn allow_lead(&mut self, seconds: f64) {
        self.max_lead_frames = (seconds / self.params.frame_s()).ceil() as i64;
    }

    /// Every (track, offset, query anchor) vote of a query, to `each` in
    /// the order read; the anchor is the query peak (frame and bin) the
    /// landmark starts from. Each distinct hash is looked up once per
    /// segment.
    fn visit<K: VoteKey>(
        &self,
        landmarks: &[Landmark],
        layout: &KeyLayout,
        mut each: impl FnMut(K) -> bool,
    ) -> Result<()> {
        let keys = query_keys(landmarks);
        let mut hits: Vec<(u32, u32)> = Vec::new();
        let mut scratch: Vec<u8> = Vec::new();
        // One run per distinct hash: the hash above, each anchor below.
        let hash_of = |run: &[u64]| (run[0] >> 32) as u32;
        let runs: Vec<&[u64]> = keys.chunk_by(|a, b| a >> 32 == b >> 32).collect();
        // Whether `each` wants more.
        let mut emit = |run: &[u64], hits: &[(u32, u32)]| {
            let mut going = true;
            for anchor in run.iter().map(|&k| k as u32) {
                let qframe = (anchor >> hash::FREQ_BITS) as i64;
                for &(track, frame) in hits {
                    going &= each(K::pack(track, frame as i64 - qframe, anchor, layout));
                }
            }
            going
        };
        let read = |part: &Part, hash: u32, scratch: &mut Vec<u8>, hits: &mut Vec<(u32, u32)>| {
            part.file
                .lookup(hash, scratch, |slot, frame| {
                    if let Some(&track) = part.tracks.get(slot as usize) {
                        if !store::is_removed(track) {
                            hits.push((track, frame));
                        }
                    }
                })
                .with_context(|| format!("cannot read postings file {} of the index", part.id))
        };
        for part in &self.parts {
            let file = &part.file;
            if file.reads_lookups() {
                // Each lookup is a system call: the looks at one clip (and
                // the clips of a batch) share what was read.
                let going = READ_CACHE.with(|cache| -> Result<bool> {
                    let mut cache = cache.borrow_mut();
                    cache.serve(self.id);
                    for &run in &runs {
                        let (start, len) = cache.find(part.id, hash_of(run), |hits| {
                            read(part, hash_of(run), &mut scratch, hits)
                        })?;
                        if !emit(run, &cache.hits[start..start + len]) {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })?;
                if !going {
                    return Ok(());
                }
                continue;
            }
            let mut ahead = Ahead::new(file, &runs);
            for (i, &run) in runs.iter().enumerate() {
                ahead.ask(i);
                hits.clear();
                read(part, hash_of(run), &mut scratch, &mut hits)?;
                if !emit(run, &hits) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Every vote of a query as (index of its postings file in `parts`,
    /// global frame in that file, query anchor), to `each`: the postings
    /// read from the files as they are, not located in their tracks and
    /// not through the [`ReadCache`] (a look this large would only push
    /// out what other looks share). Lookups `memo` holds are served from
    /// it; the rest are read, and kept in it while they fit.
    fn visit_frames(
        &self,
        landmarks: &[Landmark],
        memo: &mut Memo,
        mut each: impl FnMut(usize, u32, u32),
    ) -> Result<()> {
        let keys = query_keys(landmarks);
        let runs: Vec<&[u64]> = keys.chunk_by(|a, b| a >> 32 == b >> 32).collect();
        let mut scratch: Vec<u8> = Vec::new();
        let mut read: Vec<u32> = Vec::new();
        // Lookups so far, over the files in turn.
        let mut k = 0;
        for (p, part) in self.parts.iter().enumerate() {
            let mut ahead = Ahead::new(&part.file, &runs);
            for (i, &run) in runs.iter().enumerate() {
                let frames = match memo.get(k) {
                    Some(frames) => frames,
                    None => {
                        ahead.ask(i);
                        read.clear();
                        part.file
                            .lookup_frames((run[0] >> 32) as u32, &mut scratch, |g| read.push(g))
                            .with_context(|| {
                                format!("cannot read postings file {} of the index", part.id)
                            })?;
                        memo.keep(k, &read);
                        &read[..]
                    }
                };
                for anchor in run.iter().map(|&k| k as u32) {
                    for &g in frames {
                        each(p, g, anchor);
                    }
                }
                k += 1;
            }
        }
        Ok(())
    }

    /// [`Matcher::visit_frames`] in batches of [`COUNT_BATCH`] votes, so
    /// that a caller can ask the CPU for what each vote will touch before
    /// it touches any (a streamed look's table rows are misses each).
    fn visit_frame_batches(
        &self,
        landmarks: &[Landmark],
        memo: &mut Memo,
        mut each: impl FnMut(&[(usize, u32, u32)]),
    ) -> Result<()> {
        let mut batch: Vec<(usize, u32, u32)> = Vec::with_capacity(COUNT_BATCH);
        self.visit_frames(landmarks, memo, |p, gframe, anchor| {
            batch.push((p, gframe, anchor));
            if batch.len() == COUNT_BATCH {
                each(&batch);
                batch.clear();
            }
        })?;
        each(&batch);
        Ok(())
    }

    /// Where vote `(p, gframe, anchor)` of [`Matcher::visit_frames`] is in
    /// one line of the files' frames laid end to end, as a key of
    /// [`shortlist::Counts`] (no anchor bits): offsets of one track are
    /// neighbours there as they are in the track.
    fn line_key(&self, p: usize, gframe: u32, anchor: u32, layout: &KeyLayout) -> u64 {
        let qframe = (anchor >> hash::FREQ_BITS) as u64;
        self.part_bases[p] + gframe as u64 + layout.bias as u64 - qframe
    }

    /// The track and frame of a vote of [`Matcher::visit_frames`] (`None`:
    /// past the file's slots, or a removed track).
    fn locate(&self, p: usize, gframe: u32) -> Option<(u32, u32)> {
        let part = &self.parts[p];
        let (slot, frame) = part.file.locate(gframe)?;
        let track = *part.tracks.get(slot as usize)?;
        (!store::is_removed(track)).then_some((track, frame))
    }

    /// A cheap look at a query, strong or not, for comparing warps of one
    /// clip: the best (track, offset) vote count, and the chance of the
    /// likeliest track (what the decision rule would say of it, over
    /// `looks`): a probe that chance all but never gives ends the search.
    pub fn probe(&self, landmarks: &[Landmark], looks: f64) -> Result<Probe> {
        self.probe_as(landmarks, looks, true)
    }

    /// [`Matcher::probe`]'s chance alone (its score may be below the best
    /// where that is below [`PROBE_FRAMES_FROM`]): a little cheaper.
    pub fn probe_chance(&self, landmarks: &[Landmark], looks: f64) -> Result<f64> {
        Ok(self.probe_as(landmarks, looks, false)?.chance)
    }

    fn probe_as(&self, landmarks: &[Landmark], looks: f64, exact_score: bool) -> Result<Probe> {
        let (mut keys, postings) = self.gather(landmarks, PROBE_FRAMES_FROM)?;
        // Offsets below PROBE_FRAMES_FROM have no chance figure: only the
        // best score of all is wanted of them. A shortlist gives the scores
        // that reach its floor exactly and the others no higher than they
        // are: a best score below the floor is the best of all once a
        // shortlist for one more than it finds nothing higher.
        let mut floor = PROBE_FRAMES_FROM;
        let (per_track, top) = loop {
            let (votes, shortlisted) = self.select(landmarks, &mut keys, floor, 1)?;
            let (per_track, top) =
                self.candidates_from(&votes, PROBE_FRAMES_FROM, PROBE_FRAMES_FROM);
            if !exact_score || !shortlisted || top >= floor || floor == top + 1 {
                break (per_track, top);
            }
            floor = top + 1;
        };
        let mut probe = Probe {
            score: top,
            chance: f64::INFINITY,
        };
        for (t, cands) in &per_track {
            let Some(best) = cands.iter().max_by_key(|c| (c.score, c.frames)) else {
                continue;
            };
            if best.frames > 0 {
                probe.chance = probe
                    .chance
                    .min(self.chance_of(*t, best.frames, &postings, looks));
            }
        }
        Ok(probe)
    }

    /// Votes of a query, sorted and deduplicated: one vote per query peak
    /// and offset (an anchor paired with many targets counts once); with
    /// the number of postings each track gave before that (what chance
    /// spreads over the track's offsets). With a `floor` above 1, only the
    /// offsets scoring at least `floor` and the votes within `near` frames
    /// of one are sure to be there ([`Matcher::select`]).
    fn sorted_votes(
        &self,
        landmarks: &[Landmark],
        floor: u32,
        near: u32,
    ) -> Result<(Votes, TrackPostings)> {
        let (mut keys, postings) = self.gather(landmarks, floor)?;
        Ok((self.select(landmarks, &mut keys, floor, near)?.0, postings))
    }

    /// A query's votes as keys, in the order they were read, and each
    /// track's count of them. Where a shortlist for `floor` will be taken
    /// and they are more than [`STREAM_ABOVE`], only their coarse counts
    /// ([`Keys::Counted`]).
    fn gather(&self, landmarks: &[Landmark], floor: u32) -> Result<(Keys, TrackPostings)> {
        let Some(layout) = self.narrow_layout(landmarks) else {
            let mut keys: Vec<u128> = Vec::new();
            self.visit(landmarks, &WIDE, |k| {
                keys.push(k);
                true
            })?;
            let postings = self.count_tracks(&keys, &WIDE);
            return Ok((Keys::Wide(keys), postings));
        };
        let mut keys: Vec<u64> = Vec::new();
        if floor <= 1 || self.max_track >= DENSE_TRACKS {
            self.visit(landmarks, &layout, |k| {
                keys.push(k);
                true
            })?;
            let postings = self.count_tracks(&keys, &layout);
            return Ok((Keys::Packed(keys, layout), postings));
        }
        // Held while they are few enough: tried unless the look is
        // expected to draw more (a try that fills up is read for nothing).
        if self.expected_votes(landmarks) <= self.stream_above as f64 {
            let mut full = false;
            self.visit(landmarks, &layout, |k: u64| {
                full = keys.len() == self.stream_above;
                if !full {
                    keys.push(k);
                }
                !full
            })?;
            if !full {
                let postings = self.count_tracks(&keys, &layout);
                return Ok((Keys::Packed(keys, layout), postings));
            }
        }
        // Too many: counted (in one line of all the files' frames, see
        // [`Matcher::line_key`]), and read again for the shortlist.
        drop(keys);
        let mut counts = shortlist::Counts::new(usize::MAX, 0);
        let mut tracks = vec![0u32; self.max_track as usize + 1];
        let mut memo = Memo::new(self.memo_frames);
        // In batches whose table rows are asked for first: each is a miss
        // in a table of 8 MiB, and asked together they overlap.
        self.visit_frame_batches(landmarks, &mut memo, |batch| {
            self.count_batch(batch, &mut counts, &mut tracks, &layout)
        })?;
        Ok((
            Keys::Counted(counts, layout, memo),
            TrackPostings::Dense(tracks),
        ))
    }

    /// The votes `landmarks` draw if each hash has as many postings as the
    /// average hash: what decides whether a look is tried held. Measured at
    /// 1,000 h, looks of unknown 10 s clips drew 52 postings a lookup
    /// against an average of 50.
    fn expected_votes(&self, landmarks: &[Landmark]) -> f64 {
        let postings: u64 = self.parts.iter().map(|p| p.file.postings()).sum();
        landmarks.len() as f64 * postings as f64 / (1u64 << hash::HASH_BITS) as f64
    }

    /// Count votes of [`Matcher::visit_frames`] in `counts` (by their place
    /// in the files) and in `tracks` (by track).
    fn count_batch(
        &self,
        batch: &[(usize, u32, u32)],
        counts: &mut shortlist::Counts,
        tracks: &mut [u32],
        layout: &KeyLayout,
    ) {
        for &(p, gframe, anchor) in batch {
            counts.prefetch(self.line_key(p, gframe, anchor, layout));
            self.parts[p].file.prefetch_locate(gframe);
        }
        for &(p, gframe, anchor) in batch {
            counts.add(self.line_key(p, gframe, anchor, layout));
            if let Some((track, _)) = self.locate(p, gframe) {
                if let Some(n) = tracks.get_mut(track as usize) {
                    *n += 1;
                }
            }
        }
    }

    /// Each track's votes among `keys`.
    fn count_tracks<K: VoteKey>(&self, keys: &[K], layout: &KeyLayout) -> TrackPostings {
        if self.max_track < DENSE_TRACKS {
            let mut counts = vec![0u32; self.max_track as usize + 1];
            for k in keys {
                if let Some(n) = counts.get_mut(k.track(layout) as usize) {
                    *n += 1;
                }
            }
            TrackPostings::Dense(counts)
        } else {
            let mut counts: HashMap<u32, u64, IdHash> = HashMap::default();
            for k in keys {
                *counts.entry(k.track(layout)).or_default() += 1;
            }
            TrackPostings::Map(counts)
        }
    }

    /// The votes of `keys` (gathered from `landmarks`), sorted and
    /// deduplicated, offsets before the lead allowed dropped. Where there
    /// are many and `floor` is above 1, only a shortlist of them
    /// ([`crate::shortlist`]): every offset scoring `floor` or more scores
    /// as it would with all the votes, and every vote within `near` frames
    /// of one is there; other offsets may score less than they would.
    /// Whether they were shortlisted comes with them; if not, `keys` are
    /// taken (sorted in place). Counted keys are read again.
    fn select(
        &self,
        landmarks: &[Landmark],
        keys: &mut Keys,
        floor: u32,
        near: u32,
    ) -> Result<(Votes, bool)> {
        let lead = -self.max_lead_frames;
        let (mut kept, layout, shortlisted) = match keys {
            Keys::Packed(all, layout) => {
                let shortlisted = floor > 1 && all.len() > self.shortlist_above;
                let kept = if shortlisted {
                    shortlist::shortlist(all, layout.anchor_bits, floor, near)
                } else {
                    std::mem::take(all)
                };
                (kept, *layout, shortlisted)
            }
            Keys::Counted(counts, layout, memo) => {
                // Only the votes kept are located in their tracks.
                let mut kept = Vec::new();
                let keeper = counts.keeper(floor, near);
                // In batches, as they were counted.
                self.visit_frame_batches(landmarks, memo, |batch| {
                    for &(p, gframe, anchor) in batch {
                        keeper.prefetch(self.line_key(p, gframe, anchor, layout));
                    }
                    for &(p, gframe, anchor) in batch {
                        if keeper.keeps(self.line_key(p, gframe, anchor, layout)) {
                            if let Some((track, frame)) = self.locate(p, gframe) {
                                let qframe = (anchor >> hash::FREQ_BITS) as i64;
                                kept.push(u64::pack(track, frame as i64 - qframe, anchor, layout));
                            }
                        }
                    }
                })?;
                (kept, *layout, true)
            }
            Keys::Wide(all) => {
                let mut all = std::mem::take(all);
                all.sort_unstable();
                all.dedup();
                let votes = all
                    .into_iter()
                    .map(|k| k.unpack(&WIDE))
                    .filter(|&(_, o, _)| o as i64 >= lead)
                    .collect();
                return Ok((Votes::Wide(votes), false));
            }
        };
        u64::sort(&mut kept, &layout);
        kept.dedup();
        kept.retain(|k| k.unpack(&layout).1 as i64 >= lead);
        Ok((Votes::Packed(kept, layout), shortlisted))
    }

    /// A `u64` layout for the votes of `landmarks`, if they fit one.
    fn narrow_layout(&self, landmarks: &[Landmark]) -> Option<KeyLayout> {
        let max_qframe = landmarks.iter().map(|l| l.frame).max().unwrap_or(0);
        // An anchor is its frame above its bin.
        let anchor_bits = bits(((max_qframe as u64 + 1) << hash::FREQ_BITS) - 1);
        // An offset is a stored frame less a query frame.
        let bias = max_qframe as i64;
        let offset_bits = bits(self.max_frame as u64 + bias as u64);
        let track_bits = bits(self.max_track as u64);
        (anchor_bits + offset_bits + track_bits <= 64).then_some(KeyLayout {
            anchor_bits,
            offset_bits,
            track_bits,
            bias,
        })
    }

    /// Candidate offsets per track, scores smoothed over +-1 frame; query
    /// windows are counted where the score reaches `count_windows_from`.
    /// Tracks come in the votes' order (by track id).
    fn candidates(&self, votes: &Votes, count_windows_from: u32) -> Vec<(u32, Vec<Candidate>)> {
        self.candidates_from(votes, count_windows_from, 0).0
    }

    /// [`Matcher::candidates`], keeping only candidates scoring at least
    /// `keep_from`; with the best score of all, kept or not.
    fn candidates_from(
        &self,
        votes: &Votes,
        count_windows_from: u32,
        keep_from: u32,
    ) -> (Vec<(u32, Vec<Candidate>)>, u32) {
        // Runs of equal (track, offset), as ranges of `votes`, one at a
        // time with their neighbours (not collected: at 1,000 h a query has
        // a million of them).
        let mut runs = runs_of(votes).peekable();
        let window = self.params.vote_window_frames;
        // Smooth over +-1 frame: a clip that starts between two hops splits
        // its votes between neighbouring offsets. The query windows the votes
        // fall in are counted only where there are enough votes to name a track.
        // Votes are sorted by track: each track's candidates are one run.
        let mut per_track: Vec<(u32, Vec<Candidate>)> = Vec::new();
        let mut top = 0;
        let mut ws: Vec<u32> = Vec::new();
        let mut prev: Option<Run> = None;
        while let Some(r) = runs.next() {
            let before = prev.replace(r);
            let after = runs.peek().copied();
            let adjacent = |n: Option<Run>| {
                n.filter(|n| n.track == r.track && (n.offset - r.offset).abs() == 1)
            };
            let neighbours = [adjacent(before), adjacent(after)];
            let mut score = r.votes();
            let mut weighted = r.votes() as f64 * r.offset as f64;
            for n in neighbours.iter().flatten() {
                score += n.votes();
                weighted += n.votes() as f64 * n.offset as f64;
            }
            top = top.max(score);
            if score < keep_from {
                continue;
            }
            let (mut windows, mut frames) = (0, 0);
            if score >= count_windows_from {
                ws.clear();
                for run in std::iter::once(r).chain(neighbours.iter().flatten().copied()) {
                    ws.extend(
                        votes
                            .range(run.start..run.end)
                            .map(|(_, _, a)| a >> hash::FREQ_BITS),
                    );
                }
                ws.sort_unstable();
                ws.dedup();
                frames = ws.len() as u32;
                ws.dedup_by_key(|f| *f / window);
                windows = ws.len() as u32;
            }
            let candidate = Candidate {
                offset: r.offset,
                score,
                windows,
                frames,
                refined: weighted / score as f64,
            };
            match per_track.last_mut() {
                Some((t, cands)) if *t == r.track => cands.push(candidate),
                _ => per_track.push((r.track, vec![candidate])),
            }
        }
        (per_track, top)
    }

    /// What the decision rule sees of a query, for tuning
    /// (`examples/score_probe.rs`): how many offsets of the whole library
    /// reach each score (`tail[k - 1]`: score >= k), and for the `n` best
    /// tracks their best score, query windows, chance rate and own tail.
    pub fn features(&self, landmarks: &[Landmark], n: usize, looks: f64) -> Result<Features> {
        const TAIL: usize = 40;
        let (votes, postings) = self.sorted_votes(landmarks, 0, 0)?;
        let per_track = self.candidates(&votes, 0);
        let mut tail = vec![0u64; TAIL];
        let mut tracks: Vec<TrackFeatures> = Vec::new();
        for (t, cands) in &per_track {
            let mut own = vec![0u32; TAIL];
            for c in cands {
                for k in 0..(c.score as usize).min(TAIL) {
                    tail[k] += 1;
                    own[k] += 1;
                }
            }
            let best = cands
                .iter()
                .max_by_key(|c| (c.score, std::cmp::Reverse(c.offset)))
                .expect("a track with votes has a candidate");
            let Some(rec) = self.record(*t)? else {
                continue;
            };
            let frames = self.offsets(*t);
            tracks.push(TrackFeatures {
                path: rec.path.clone(),
                score: best.score,
                windows: best.windows,
                distinct_frames: best.frames,
                rate: chance::rate(postings.get(*t), frames),
                chance: self.chance_of(*t, best.frames, &postings, looks),
                frames,
                tail: own,
            });
        }
        tracks.sort_by(|a, b| b.score.cmp(&a.score).then(a.path.cmp(&b.path)));
        tracks.truncate(n);
        Ok(Features {
            landmarks: landmarks.len(),
            positions: self.library_positions,
            tail,
            tracks,
        })
    }

    /// Every track's best offset for a query, strong or not, best first:
    /// (track path, offset in frames, votes, query windows). For tuning and
    /// diagnostics (`examples/score_probe.rs`).
    pub fn track_scores(&self, landmarks: &[Landmark]) -> Result<Vec<(String, i64, u32, u32)>> {
        let (votes, _) = self.sorted_votes(landmarks, 0, 0)?;
        let per_track = self.candidates(&votes, 0);
        let mut out: Vec<(String, i64, u32, u32)> = Vec::new();
        for (t, cands) in per_track {
            let Some(best) = cands
                .iter()
                .max_by_key(|c| (c.score, std::cmp::Reverse(c.offset)))
            else {
                continue;
            };
            if let Some(rec) = self.record(t)? {
                out.push((rec.path, best.offset, best.score, best.windows));
            }
        }
        out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Offsets a query may take in a track, frames.
    fn offsets(&self, track: u32) -> f64 {
        let duration_s = self.durations_s.get(&track).copied().unwrap_or(0.0);
        duration_s / self.params.frame_s() + self.max_lead_frames as f64
    }

    /// Expected number of chance answers with votes from at least `score`
    /// distinct query frames in `track`, over every offset of the library
    /// and `looks`.
    fn chance_of(&self, track: u32, score: u32, postings: &TrackPostings, looks: f64) -> f64 {
        if !self.durations_s.contains_key(&track) {
            return f64::INFINITY;
        }
        let rate = chance::rate(postings.get(track), self.offsets(track));
        let d = &self.params.decision;
        let looks = looks * self.looks_factor;
        chance::expected(rate, score, self.library_positions * looks, d.dispersion)
    }

    /// Identify a query from its landmarks. `top` >= 1 is how many answers
    /// the caller wants at least (best + runner-ups). `looks` is how many
    /// looks at one clip this answer is chosen from (1 for a first look;
    /// the warp search tries many): each is one more chance for a chance
    /// match, and the rule counts them.
    pub fn identify(&self, landmarks: &[Landmark], top: usize, looks: f64) -> Result<Outcome> {
        let d = &self.params.decision;
        let (min_votes, min_windows) = (d.min_votes, self.params.min_windows);
        // Without runner-ups asked for, a track can only be named, or be
        // a copy named beside the answer, from an offset with `min_votes`:
        // the others are not kept (at 1,000 h they are most of a million),
        // and the votes are shortlisted for them (and for the drift).
        let keep_from = if top <= 1 { min_votes } else { 0 };
        let (votes, postings) = self.sorted_votes(landmarks, keep_from, MAX_DRIFT_FRAMES as u32)?;
        let per_track = self.candidates_from(&votes, min_votes, keep_from).0;
        // The best offset of each track, and the expected chance answers
        // of its strength (only for offsets that could be named at all).
        let mut ranked: Vec<(u32, Vec<Candidate>, f64)> = per_track
            .into_iter()
            .map(|(t, mut cands)| {
                cands.sort_by(|a, b| b.score.cmp(&a.score).then(a.offset.cmp(&b.offset)));
                let best = cands[0];
                let chance = if best.score >= min_votes && best.windows >= min_windows {
                    self.chance_of(t, best.frames, &postings, looks)
                } else {
                    f64::INFINITY
                };
                (t, cands, chance)
            })
            .collect();
        let strong = |chance: f64| chance <= d.max_chance;
        // The least likely by chance first; ties (and the rest) by score.
        ranked.sort_by(|a, b| {
            let (sa, sb) = (strong(a.2), strong(b.2));
            sb.cmp(&sa)
                .then(if sa && sb {
                    a.2.total_cmp(&b.2)
                } else {
                    std::cmp::Ordering::Equal
                })
                .then(b.1[0].score.cmp(&a.1[0].score))
                .then(a.0.cmp(&b.0))
        });

        let mut outcome = Outcome::default();
        if let Some((track, cands, _)) = ranked.first().filter(|r| strong(r.2)) {
            outcome.drift = drift(&votes, *track, cands[0].offset);
        }
        let frame_s = self.params.frame_s();
        let mut runner_ups = 0;
        for (rank, (track, cands, chance)) in ranked.iter().enumerate() {
            let best = cands[0];
            // Alternatives named without --top are copies and versions: they
            // pass the rule too and score at least half the answer's.
            let above = strong(*chance)
                && outcome
                    .best
                    .as_ref()
                    .is_none_or(|b| best.score * 2 >= b.score);
            if rank == 0 && !above {
                break;
            }
            if rank > 0 && !above {
                if runner_ups + 1 >= top {
                    break;
                }
                runner_ups += 1;
            }
            let Some(rec) = self.record(*track)? else {
                continue;
            };
            // Repeats: other positions scoring at least half as well.
            let mut positions: Vec<Candidate> = Vec::new();
            for c in cands
                .iter()
                .filter(|c| c.score >= min_votes && c.windows >= min_windows)
            {
                if c.score < best.score.div_ceil(2) {
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
            let clamp = self.max_lead_frames <= MAX_LEAD_FRAMES;
            let to_s = |c: &Candidate| {
                let s = c.refined * frame_s;
                if clamp {
                    s.max(0.0)
                } else {
                    s
                }
            };
            let mut offsets_s: Vec<f64> = positions.iter().map(|c| round_ms(to_s(c))).collect();
            offsets_s.sort_by(f64::total_cmp);
            // Runner-ups below the floor have no chance figure of their own;
            // their distinct frames were not counted, so their votes stand in
            // (at most as many: a figure no larger than the true one).
            let chance = if chance.is_finite() {
                *chance
            } else {
                let frames = if best.frames > 0 {
                    best.frames
                } else {
                    best.score
                };
                self.chance_of(*track, frames, &postings, looks)
            };
            let m = Match {
                title: rec.title,
                work: rec.work,
                composer: rec.composer,
                path: rec.path,
                offset_s: round_ms(to_s(&best)),
                offsets_s,
                score: best.score,
                chance: chance::round(chance),
                confidence: chance::confidence(chance, d),
                speed: 1.0,
                tempo: 1.0,
                pitch_semitones: 0.0,
                heard_frames: heard(&votes, *track, best.offset),
                track: *track,
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

/// A query's (hash, anchor) pairs as one number each, sorted, distinct:
/// the hash in the top 32 bits, the anchor (frame above bin) below.
fn query_keys(landmarks: &[Landmark]) -> Vec<u64> {
    let mut keys: Vec<u64> = landmarks
        .iter()
        .map(|l| {
            let (f1, _, _) = hash::unpack(hash::unmix(l.hash));
            (l.hash as u64) << 32 | (l.frame << hash::FREQ_BITS | f1 as u32) as u64
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The directory and then the postings of later lookups in a mapped
/// file, asked of the CPU ahead of the lookups (distances in distinct
/// hashes), so that their misses overlap.
struct Ahead<'a> {
    file: &'a crate::segment::Segment,
    runs: &'a [&'a [u64]],
}

impl<'a> Ahead<'a> {
    const DIR: usize = 16;
    const POSTINGS: usize = 8;

    fn new(file: &'a crate::segment::Segment, runs: &'a [&'a [u64]]) -> Ahead<'a> {
        let ahead = Ahead { file, runs };
        for i in 0..Self::DIR.min(runs.len()) {
            ahead.directory(i);
        }
        ahead
    }

    fn directory(&self, i: usize) {
        if let Some(r) = self.runs.get(i) {
            self.file.prefetch_directory((r[0] >> 32) as u32);
        }
    }

    /// Before lookup `i`.
    fn ask(&mut self, i: usize) {
        self.directory(i + Self::DIR);
        if let Some(r) = self.runs.get(i + Self::POSTINGS) {
            self.file.prefetch_postings((r[0] >> 32) as u32);
        }
    }
}

/// First and last query frame of the votes for `track` at `offset` +-1.
fn heard(votes: &Votes, track: u32, offset: i64) -> (u32, u32) {
    let lo = votes.partition_point(|v| (v.0, v.1 as i64) < (track, offset - 1));
    let hi = votes.partition_point(|v| (v.0, v.1 as i64) <= (track, offset + 1));
    votes
        .range(lo..hi)
        .map(|v| v.2 >> hash::FREQ_BITS)
        .fold(None, |acc: Option<(u32, u32)>, f| {
            Some(acc.map_or((f, f), |(a, b)| (a.min(f), b.max(f))))
        })
        .unwrap_or((0, 0))
}

/// Largest offset drift looked at around a match, frames (an 8 % tempo
/// change over a 10 s clip).
const MAX_DRIFT_FRAMES: i64 = 25;
/// Votes of a streamed look counted or kept together
/// ([`Matcher::visit_frame_batches`]).
const COUNT_BATCH: usize = 32;

/// Slope of offset against query frame for the votes of `track` near
/// `offset`: least squares, then again on the votes within 2 frames of the
/// first line (chance votes scattered around it only dilute the first fit).
fn drift(votes: &Votes, track: u32, offset: i64) -> f64 {
    let lo = votes.partition_point(|v| (v.0, v.1 as i64) < (track, offset - MAX_DRIFT_FRAMES));
    let hi = votes.partition_point(|v| (v.0, v.1 as i64) <= (track, offset + MAX_DRIFT_FRAMES));
    let points: Vec<(f64, f64)> = votes
        .range(lo..hi)
        .map(|(_, o, a)| ((a >> hash::FREQ_BITS) as f64, o as f64))
        .collect();
    let fit = |pts: &mut dyn Iterator<Item = (f64, f64)>| -> Option<(f64, f64)> {
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (x, y) in pts {
            n += 1.0;
            sx += x;
            sy += y;
            sxx += x * x;
            sxy += x * y;
        }
        let var = n * sxx - sx * sx;
        if n < 3.0 || var <= 0.0 {
            return None;
        }
        let slope = (n * sxy - sx * sy) / var;
        Some((slope, (sy - slope * sx) / n))
    };
    let Some((slope, icept)) = fit(&mut points.iter().copied()) else {
        return 0.0;
    };
    let near = points
        .iter()
        .copied()
        .filter(|&(x, y)| (y - (slope * x + icept)).abs() <= 2.0);
    fit(&mut near.into_iter()).map_or(slope, |f| f.0)
}

/// The runs of sorted votes that share a track and an offset, in order.
fn runs_of(votes: &Votes) -> impl Iterator<Item = Run> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= votes.len() {
            return None;
        }
        let (track, offset, _) = votes.get(start);
        let len = match votes {
            // Equal (track, offset) is equal bits above the anchor.
            Votes::Packed(keys, layout) => {
                let high = |k: u64| k >> layout.anchor_bits;
                let first = high(keys[start]);
                keys[start..].iter().position(|&k| high(k) != first)
            }
            Votes::Wide(v) => v[start..]
                .iter()
                .position(|v| v.0 != track || v.1 != offset),
        }
        .unwrap_or(votes.len() - start);
        let run = Run {
            track,
            offset: offset as i64,
            start,
            end: start + len,
        };
        start = run.end;
        Some(run)
    })
}

/// Votes `start..end` of the sorted votes share a track and an offset.
#[derive(Debug, Clone, Copy)]
struct Run {
    track: u32,
    offset: i64,
    start: usize,
    end: usize,
}

impl Run {
    fn votes(&self) -> u32 {
        (self.end - self.start) as u32
    }
}

/// Votes from which a probe counts a candidate's query frames (below, its
/// chance is not worth working out: no look could name it).
const PROBE_FRAMES_FROM: u32 = 4;

/// What [`Matcher::probe`] sees of a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Probe {
    /// Votes at the best (track, offset), smoothed over +-1 frame.
    pub score: u32,
    /// Expected chance answers as strong as the likeliest track's best
    /// offset (infinite when no offset has [`PROBE_FRAMES_FROM`] votes).
    pub chance: f64,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    offset: i64,
    score: u32,
    /// Distinct query windows the votes fall in (counted only when
    /// `score >= min_votes`; 0 otherwise).
    windows: u32,
    /// Distinct query frames the votes come from (counted likewise): what
    /// the chance test counts. Peaks of one frame are not independent
    /// chances: one chord of a timbre two pieces share gives votes from
    /// every harmonic at once.
    frames: u32,
    /// Vote-weighted offset, in frames (sub-frame precision).
    refined: f64,
}

fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::votes::{radix_sort, Vote};

    /// Random landmarks from a small alphabet of hashes (every query hash
    /// draws many votes), over `frames` frames.
    fn random_landmarks(seed: u64, n: usize, frames: u32, alphabet: u32) -> Vec<Landmark> {
        let mut state = seed * 2 + 1;
        let mut next = move |m: u32| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % m as u64) as u32
        };
        let mut lms: Vec<Landmark> = (0..n)
            .map(|_| Landmark {
                hash: crate::hash::mix(next(alphabet) * 977 % crate::hash::HASH_MASK),
                frame: next(frames),
            })
            .collect();
        lms.sort_by_key(|l| (l.frame, l.hash));
        lms
    }

    #[test]
    fn shortlisted_and_streamed_looks_answer_as_looks_at_every_vote() {
        use crate::store::{test_track, Access};
        let p = Params::default();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, Some(&p)).unwrap();
        // 20 tracks of 3 minutes whose hashes come from 60,000.
        let tracks: Vec<Vec<Landmark>> = (0..20)
            .map(|n| random_landmarks(n + 1, 45_000, 5_600, 60_000))
            .collect();
        // Committed in three batches: three postings files, so a streamed
        // look's line of frames spans files (`Matcher::line_key`).
        for batch in [0..7u32, 7..14, 14..20] {
            let new = batch
                .map(|n| test_track(n, 180.0, tracks[n as usize].clone()))
                .collect();
            store.commit(new, &[]).unwrap();
        }
        assert_eq!(store.parts().unwrap().len(), 3);
        drop(store);
        let open = || {
            let mut m = Matcher::new(Store::open(dir.path(), Access::Read, None).unwrap()).unwrap();
            m.release().unwrap();
            m
        };
        let every = {
            let mut m = open();
            m.set_vote_limits(usize::MAX, usize::MAX, 0);
            m
        };
        let limited = |shortlist_above, stream_above, memo_frames| {
            let mut m = open();
            m.set_vote_limits(shortlist_above, stream_above, memo_frames);
            m
        };
        let shortlisted = limited(0, usize::MAX, 0);
        // Streamed: every lookup read twice, some (the first few hundred
        // frames) kept from the first pass, or all.
        let streamed = limited(0, 1000, 0);
        let part_kept = limited(0, 1000, 300);
        let all_kept = limited(0, 1000, usize::MAX);
        // Read through the query view the writer left: the same tables
        // and names, no catalogue.
        let viewed = match Store::open_view(dir.path(), None).unwrap() {
            store::Viewed::View(v, parts) => Matcher::from_view(v, parts),
            _ => panic!("no view after the writer closed"),
        };
        // A known clip (10 s of track 7 from frame 2,000, a third of its
        // landmarks, with as many others), a weak one and an unknown one.
        let drifted = |keep: usize, noise: usize, seed: u64, tempo: f64| {
            let mut q: Vec<Landmark> = tracks[7]
                .iter()
                .filter(|l| (2_000..2_312).contains(&l.frame))
                .step_by(keep)
                .map(|l| Landmark {
                    hash: l.hash,
                    frame: ((l.frame - 2_000) as f64 / tempo) as u32,
                })
                .collect();
            q.extend(random_landmarks(seed, noise, 312, 60_000));
            q.sort_by_key(|l| (l.frame, l.hash));
            q
        };
        let clip = |keep: usize, noise: usize, seed: u64| drifted(keep, noise, seed, 1.0);
        // Known clips named far above the floor and near it, unknown ones
        // whose best offsets score above and below a probe's floor.
        let mut queries = vec![
            clip(3, 600, 77),
            clip(180, 600, 78),
            clip(230, 600, 78),
            clip(usize::MAX, 600, 79),
            // Played 4 % fast: the offset drifts by 12 frames.
            drifted(2, 600, 81, 1.04),
        ];
        queries.extend((80..92).map(|seed| clip(usize::MAX, 40 + 10 * (seed as usize - 80), seed)));
        let outcome = |o: Outcome| (o.best, o.alternatives, o.drift);
        let mut named = Vec::new();
        for (i, q) in queries.iter().enumerate() {
            let want = outcome(every.identify(q, 1, 1.0).unwrap());
            named.push(want.0.as_ref().map(|m| m.title.clone()));
            let probe = every.probe(q, 1.0).unwrap();
            for (name, m) in [
                ("shortlisted", &shortlisted),
                ("streamed", &streamed),
                ("streamed, some frames kept", &part_kept),
                ("streamed, every frame kept", &all_kept),
                ("read through the view", &viewed),
            ] {
                assert_eq!(
                    outcome(m.identify(q, 1, 1.0).unwrap()),
                    want,
                    "{name}, query {i}"
                );
                assert_eq!(m.probe(q, 1.0).unwrap(), probe, "{name} probe, query {i}");
                assert_eq!(
                    m.probe_chance(q, 1.0).unwrap(),
                    probe.chance,
                    "{name}, query {i}"
                );
                // Runner-ups asked for: every vote, as before.
                assert_eq!(
                    outcome(m.identify(q, 3, 1.0).unwrap()),
                    outcome(every.identify(q, 3, 1.0).unwrap())
                );
            }
        }
        assert_eq!(named[0].as_deref(), Some("t7"));
        assert_eq!(named[3], None, "the unknown clip is not named");
    }

    /// Narrow keys are the wide ones' twin: the same order, the same votes,
    /// at the edges of a layout.
    #[test]
    fn narrow_keys_sort_and_invert_as_wide_ones() {
        let l = KeyLayout {
            anchor_bits: 19,
            offset_bits: 30,
            track_bits: 15,
            bias: 1000,
        };
        let max_off = (1i32 << 30) - 1 - 1000;
        let mut votes: Vec<Vote> = Vec::new();
        for t in [0, 1, 7, (1 << 15) - 1] {
            for o in [-1000, -999, -1, 0, 1, 12_345, max_off] {
                for a in [0, 1, (1 << 19) - 1] {
                    votes.push((t, o, a));
                }
            }
        }
        votes.sort();
        let narrow: Vec<u64> = votes
            .iter()
            .map(|v| u64::pack(v.0, v.1 as i64, v.2, &l))
            .collect();
        assert!(narrow.windows(2).all(|w| w[0] < w[1]));
        for (&k, &v) in narrow.iter().zip(&votes) {
            assert_eq!(k.unpack(&l), v);
            assert_eq!(k.track(&l), v.0);
        }
        let mut shuffled = narrow.clone();
        shuffled.reverse();
        shuffled.rotate_left(narrow.len() / 3);
        radix_sort(&mut shuffled, 64);
        assert_eq!(shuffled, narrow);
        // Kept packed, they read back as the votes, and find as they do.
        let packed = Votes::Packed(narrow, l);
        let wide = Votes::Wide(votes.clone());
        for v in [&packed, &wide] {
            assert_eq!(v.len(), votes.len());
            assert!(v.range(0..v.len()).eq(votes.iter().copied()));
            for track in [0, 1, 2, 7, 1 << 15] {
                for offset in [-1001, -1000, 0, 1, 2, 12_345, max_off as i64 + 1] {
                    let below = |x: &Vote| (x.0, x.1 as i64) < (track, offset);
                    assert_eq!(
                        v.partition_point(|x| below(&x)),
                        votes.partition_point(below)
                    );
                    assert_eq!(heard(v, track, offset), heard(&wide, track, offset));
                }
            }
        }
        let runs = |v: &Votes| {
            runs_of(v)
                .map(|r| (r.track, r.offset, r.start, r.end))
                .collect::<Vec<_>>()
        };
        assert_eq!(runs(&packed), runs(&wide));
        assert_eq!(runs(&wide).len(), votes.len() / 3);
        assert_eq!(bits(0), 0);
        assert_eq!(bits(1), 1);
        assert_eq!(bits(u64::MAX), 64);
    }
}
