//! Window answers in, cue-sheet segments out, incrementally.
//!
//! A long recording is looked up in overlapping windows. Each window names
//! the tracks it hears ([`Hit`]s: the best answer and any others above the
//! threshold), each at an alignment: where the track would have started in
//! the recording. Consecutive hits of one track at one alignment (within
//! half a second, or at any of a looping track's repeats) extend one
//! segment; a gap of more than [`CueRules::gap_s`] closes it, so a cue that
//! returns later is a new segment. Two tracks may be open at once (a cross-
//! fade). A segment is emitted as soon as it is closed, so a consumer on a
//! pipe sees it a window and a gap after the cue ends.

use serde::{Deserialize, Serialize};

use crate::matcher::Match;

/// One track heard in one window.
#[derive(Debug, Clone)]
pub struct Hit {
    pub track: Match,
    /// Recording time where the window starts, seconds.
    pub window_start_s: f64,
    /// Recording times of the first and last peak that voted for it.
    pub heard_s: (f64, f64),
}

impl Hit {
    /// Track time at recording time 0, at each position the window occurs
    /// in the track (several for looping music).
    fn alignments(&self) -> impl Iterator<Item = f64> + '_ {
        let s = self.track.speed * self.track.tempo;
        std::iter::once(self.track.offset_s)
            .chain(self.track.offsets_s.iter().copied())
            .map(move |o| o - s * self.window_start_s)
    }

    fn track_time(&self, alignment: f64, rec_s: f64) -> f64 {
        alignment + self.track.speed * self.track.tempo * rec_s
    }
}

/// One cue: a stretch of the recording where one track plays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    /// In and out in the recording, seconds.
    pub start_s: f64,
    pub end_s: f64,
    pub title: String,
    pub work: String,
    pub composer: Option<String>,
    pub path: String,
    /// In and out inside the track, seconds.
    pub track_start_s: f64,
    pub track_end_s: f64,
    /// The best window's confidence.
    pub confidence: f64,
    /// Playback speed relative to the track (1.0 unless changed; see
    /// `ostid match`'s `speed` and `tempo`).
    pub speed: f64,
}

/// How hits are merged into segments.
#[derive(Debug, Clone, Copy)]
pub struct CueRules {
    /// Alignments closer than this are the same cue, seconds.
    pub same_alignment_s: f64,
    /// A segment not heard for longer than this is closed, seconds.
    pub gap_s: f64,
    /// A segment heard in one window only needs this confidence.
    pub lone_confidence: f64,
    /// A segment shorter than this (seconds) needs `lone_confidence` too: a
    /// chord two pieces share draws a short burst of agreeing votes.
    pub min_length_s: f64,
}

impl Default for CueRules {
    fn default() -> CueRules {
        CueRules {
            same_alignment_s: 0.5,
            gap_s: 4.0,
            lone_confidence: 0.9,
            min_length_s: 3.0,
        }
    }
}

struct Open {
    first: Match,
    alignment: f64,
    start_s: f64,
    end_s: f64,
    windows: u32,
    confidence: f64,
    /// Recording time of the last window that heard it.
    last_window_s: f64,
}

/// Builds segments from the hits of successive windows.
pub struct CueSheet {
    rules: CueRules,
    open: Vec<Open>,
    /// The previous window's hits that opened nothing: a cue fading in is
    /// heard weakly before it wins a window.
    previous: Vec<Hit>,
}

impl CueSheet {
    pub fn new(rules: CueRules) -> CueSheet {
        CueSheet {
            rules,
            open: Vec::new(),
            previous: Vec::new(),
        }
    }

    fn matching(&self, hit: &Hit) -> Option<(usize, f64)> {
        self.open.iter().enumerate().find_map(|(i, o)| {
            let same_track = o.first.path == hit.track.path
                && (o.first.speed * o.first.tempo - hit.track.speed * hit.track.tempo).abs() < 0.01;
            let a = hit
                .alignments()
                .find(|a| (a - o.alignment).abs() <= self.rules.same_alignment_s)?;
            same_track.then_some((i, a))
        })
    }

    /// The hits of the window starting at `window_start_s`, best first.
    /// Segments closed by it go to `out`.
    pub fn push(&mut self, window_start_s: f64, hits: Vec<Hit>, out: &mut dyn FnMut(Segment)) {
        let mut unplaced = Vec::new();
        for (rank, hit) in hits.into_iter().enumerate() {
            if let Some((i, _)) = self.matching(&hit) {
                let o = &mut self.open[i];
                o.start_s = o.start_s.min(hit.heard_s.0);
                o.end_s = o.end_s.max(hit.heard_s.1);
                o.windows += 1;
                o.confidence = o.confidence.max(hit.track.confidence);
                o.last_window_s = window_start_s;
            } else if rank == 0 {
                // Only a window's best answer opens a cue (others may be
                // copies of it); a hit of the same cue in the window before
                // moves its start back.
                let alignment = hit.alignments().next().unwrap_or(0.0);
                let mut start_s = hit.heard_s.0;
                let mut windows = 1;
                for p in &self.previous {
                    if p.track.path == hit.track.path
                        && p.alignments()
                            .any(|a| (a - alignment).abs() <= self.rules.same_alignment_s)
                    {
                        start_s = start_s.min(p.heard_s.0);
                        windows += 1;
                    }
                }
                self.open.push(Open {
                    first: hit.track.clone(),
                    alignment,
                    start_s,
                    end_s: hit.heard_s.1,
                    windows,
                    confidence: hit.track.confidence,
                    last_window_s: window_start_s,
                });
            } else {
                unplaced.push(hit);
            }
        }
        self.previous = unplaced;
        // Close what this window no longer hears, once the gap is passed.
        let gap = self.rules.gap_s;
        let mut i = 0;
        while i < self.open.len() {
            let o = &self.open[i];
            if o.last_window_s < window_start_s && window_start_s - o.end_s > gap {
                let o = self.open.remove(i);
                self.emit(o, out);
            } else {
                i += 1;
            }
        }
    }

    /// End of the recording: close everything.
    pub fn finish(&mut self, out: &mut dyn FnMut(Segment)) {
        let mut open = std::mem::take(&mut self.open);
        open.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        for o in open {
            self.emit(o, out);
        }
    }

    fn emit(&self, o: Open, out: &mut dyn FnMut(Segment)) {
        let short = o.windows < 2 || o.end_s - o.start_s < self.rules.min_length_s;
        if short && o.confidence < self.rules.lone_confidence {
            return;
        }
        let m = &o.first;
        let hit = Hit {
            track: m.clone(),
            window_start_s: 0.0,
            heard_s: (0.0, 0.0),
        };
        let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
        out(Segment {
            start_s: r3(o.start_s),
            end_s: r3(o.end_s),
            title: m.title.clone(),
            work: m.work.clone(),
            composer: m.composer.clone(),
            path: m.path.clone(),
            track_start_s: r3(hit.track_time(o.alignment, o.start_s).max(0.0)),
            track_end_s: r3(hit.track_time(o.alignment, o.end_s).max(0.0)),
            confidence: o.confidence,
            speed: r3(m.speed * m.tempo),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn track(path: &str, offset_s: f64, confidence: f64) -> Match {
        Match {
            title: path.to_uppercase(),
            work: "W".into(),
            composer: None,
            path: path.into(),
            offset_s,
            offsets_s: vec![offset_s],
            score: 40,
            chance: 1e-9,
            confidence,
            speed: 1.0,
            tempo: 1.0,
            pitch_semitones: 0.0,
            heard_frames: (0, 0),
            track: 0,
        }
    }

    /// Windows of 8 s every 4 s over a recording where `a` plays from 10 to
    /// 30 s (track time 50..70), `b` from 40 to 52 s (track 0..12), and `a`
    /// again from 60 to 70 s (track 0..10); a lone weak hit at 80 s.
    #[test]
    fn cues_become_segments_and_a_reprise_is_a_new_one() {
        let mut sheet = CueSheet::new(CueRules::default());
        let mut segs = Vec::new();
        let mut w = 0.0;
        while w < 100.0 {
            let end = w + 8.0;
            let mut hits = Vec::new();
            for (path, from, to, track_at_from) in [
                ("a", 10.0, 30.0, 50.0),
                ("b", 40.0, 52.0, 0.0),
                ("a", 60.0, 70.0, 0.0),
            ] {
                let (lo, hi) = (f64::max(w, from), f64::min(end, to));
                if hi - lo >= 3.0 {
                    hits.push(Hit {
                        track: track(path, track_at_from + (w - from), 0.99),
                        window_start_s: w,
                        heard_s: (lo, hi),
                    });
                }
            }
            if w == 80.0 {
                hits.push(Hit {
                    track: track("c", 5.0, 0.6),
                    window_start_s: w,
                    heard_s: (80.0, 88.0),
                });
            }
            sheet.push(w, hits, &mut |s| segs.push(s));
            w += 4.0;
        }
        sheet.finish(&mut |s| segs.push(s));
        let got: Vec<(&str, f64, f64, f64, f64)> = segs
            .iter()
            .map(|s| {
                (
                    s.path.as_str(),
                    s.start_s,
                    s.end_s,
                    s.track_start_s,
                    s.track_end_s,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", 10.0, 30.0, 50.0, 70.0),
                ("b", 40.0, 52.0, 0.0, 12.0),
                ("a", 60.0, 70.0, 0.0, 10.0),
            ]
        );
    }
}
