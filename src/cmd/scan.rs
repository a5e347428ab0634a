//! `ostid scan`: the cue sheet of a long recording (an episode, a film, a
//! stream). The input is decoded as a stream and looked up in overlapping
//! windows, a few at once on the threads of a pool; [`CueSheet`] merges the
//! windows' answers into segments. Memory stays flat in the input's length:
//! a batch of windows' samples and the open segments (plus, for the table,
//! CSV and SVG, the finished segments).

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use rayon::prelude::*;

use super::{exit_on_interrupt, pool, ScanConfig, Status};
use crate::closelook;
use crate::cueformats;
use crate::cuesheet::{CueRules, CueSheet, Hit, Segment};
use crate::decode::{self, Flow, Source};
use crate::fingerprint::Fingerprinter;
use crate::glance;
use crate::matcher::{Matcher, Outcome};
use crate::output::{self, ScanFormat};
use crate::warp::{self, Change};
use crate::{progress, timeline};

/// Window length and hop, seconds.
pub const WINDOW_S: f64 = 8.0;
pub const HOP_S: f64 = 4.0;
/// While the recording's speed is unknown, the (costly) warp search runs on
/// at most one unmatched window per this many seconds of recording.
const WARP_SEARCH_EVERY_S: f64 = 30.0;

/// A window after the looks short of the warp search.
enum Window {
    Named(Outcome),
    /// Named by none: the straight look's outcome.
    Unnamed(Outcome),
}

/// The looks at one window short of the warp search: a glance, the
/// straight look, the look at the speed the recording was found to play at
/// (`warp`, if any), the close look. Also whether the answer depended on
/// `warp`: a window named at a glance or by the straight look did not.
fn first_looks(matcher: &Matcher, warp: Option<Change>, samples: &[f32]) -> Result<(Window, bool)> {
    let params = matcher.params();
    let (lms, glance) = Fingerprinter::query_looks(params, samples);
    if let Some(o) = glance::identify(matcher, &glance, 1)? {
        return Ok((Window::Named(o), false));
    }
    let straight = matcher.identify(&lms, 1, 1.0)?;
    if straight.best.is_some() {
        return Ok((Window::Named(straight), false));
    }
    if let Some(change) = warp {
        let lms = warp::landmarks(params, samples, change.warp());
        // The straight look and the one at the known speed.
        let o = matcher.identify(&lms, 1, 2.0)?;
        if o.best.is_some() {
            return Ok((Window::Named(warp::labelled(o, change)), true));
        }
    }
    if let Some(o) = closelook::identify(matcher, samples, 1)? {
        return Ok((Window::Named(o), true));
    }
    Ok((Window::Unnamed(straight), true))
}

/// Windows looked up a few at a time, [`WINDOWS_PER_THREAD`] in a row on
/// each thread (what overlapping windows read is then read once), then
/// taken in order with what the scan remembers: the speed the recording
/// was found to play at (a PAL film runs fast from start to end; a window
/// whose answer depended on it is looked at again if it changed) and when
/// the warp search last ran (it runs in order, on at most one unnamed
/// window per [`WARP_SEARCH_EVERY_S`]). The answers are those of the
/// windows looked up one after the other.
struct Looker {
    matcher: Matcher,
    warp: Option<Change>,
    last_search_s: f64,
    pool: rayon::ThreadPool,
    /// Windows waiting: start in samples, samples.
    pending: Vec<(usize, Vec<f32>)>,
}

/// Consecutive windows a thread looks up in a batch.
const WINDOWS_PER_THREAD: usize = 2;

impl Looker {
    /// Windows looked up at once. Each waits for the last of its batch:
    /// one thread takes them one at a time (cues come soonest on a live
    /// pipe).
    fn batch(&self) -> usize {
        match self.pool.current_num_threads() {
            1 => 1,
            n => n * WINDOWS_PER_THREAD,
        }
    }

    /// The answers of the pending windows, in order, with their starts.
    fn look_pending(&mut self, rate: f64) -> Result<Vec<(usize, Outcome)>> {
        let pending = std::mem::take(&mut self.pending);
        let before = self.warp;
        let matcher = &self.matcher;
        let at_once: Vec<Result<(Window, bool)>> = self.pool.install(|| {
            pending
                .par_chunks(WINDOWS_PER_THREAD)
                .flat_map_iter(|chunk| {
                    chunk
                        .iter()
                        .map(|(_, samples)| first_looks(matcher, before, samples))
                })
                .collect()
        });
        let mut out = Vec::with_capacity(pending.len());
        for ((start, samples), r) in pending.iter().zip(at_once) {
            let start_s = *start as f64 / rate;
            let (window, depended) = r?;
            // On a worker, as every look: each thread that looks keeps a
            // cache of what it read.
            let window = if depended && self.warp != before {
                self.pool
                    .install(|| first_looks(matcher, self.warp, samples))?
                    .0
            } else {
                window
            };
            let o = match window {
                Window::Named(o) => o,
                Window::Unnamed(straight) if start_s - self.last_search_s < WARP_SEARCH_EVERY_S => {
                    straight
                }
                Window::Unnamed(straight) => {
                    self.last_search_s = start_s;
                    let o = self
                        .pool
                        .install(|| warp::identify(matcher, samples, straight, 1))?;
                    if let Some(m) = &o.best {
                        if m.speed != 1.0 {
                            self.warp = Some(Change::Speed(m.speed));
                        } else if m.tempo != 1.0 {
                            self.warp = Some(Change::Tempo(m.tempo));
                        } else if m.pitch_semitones != 0.0 {
                            self.warp = Some(Change::Pitch(2f64.powf(m.pitch_semitones / 12.0)));
                        }
                    }
                    o
                }
            };
            out.push((*start, o));
        }
        Ok(out)
    }
}

/// The last voting peak of a cue is an anchor; the cue's last peaks are
/// only targets, which lie up to a pair's time gap later: measured on the
/// fixture episode, cue ends came out ~0.3 s early without this.
const END_BIAS_S: f64 = 0.25;

/// The hits of one window's answer, with where in the recording each is heard.
fn hits(o: Outcome, start_s: f64, frame_s: f64, fft_s: f64) -> Vec<Hit> {
    o.best
        .into_iter()
        .chain(o.alternatives)
        .map(|m| {
            let rate = m.speed * m.tempo;
            let (a, b) = m.heard_frames;
            let heard_s = (
                start_s + a as f64 * frame_s / rate,
                start_s + ((b + 1) as f64 * frame_s + fft_s / 2.0) / rate + END_BIAS_S,
            );
            Hit {
                track: m,
                window_start_s: start_s,
                heard_s,
            }
        })
        .collect()
}

pub fn run(db: PathBuf, cfg: ScanConfig) -> Result<Status> {
    exit_on_interrupt();
    super::read_lookups_from_env()?;
    let mut matcher = super::open_matcher(&db, None)?;
    // The matcher reads a snapshot: the index is free for `ostid index`
    // while a long scan runs.
    matcher.release()?;
    // The warp search runs on one window at a time, in order: on every
    // thread.
    matcher.set_spread_looks(true);
    matcher.allow_lead(WINDOW_S);
    // Chance answers are kept rare per hour of recording, not per window.
    matcher.set_looks_factor(3600.0 / HOP_S);
    if let Some(e) = cfg.max_chance {
        matcher.set_max_chance(e);
    }
    let params = matcher.params().clone();
    let rate = params.sample_rate_hz as f64;
    let frame_s = params.frame_s();
    let fft_s = params.fft_size as f64 / rate;
    let window = (WINDOW_S * rate) as usize;
    let hop = (HOP_S * rate) as usize;
    let mut looker = Looker {
        matcher,
        warp: None,
        last_search_s: f64::NEG_INFINITY,
        pool: pool(cfg.threads)?,
        pending: Vec::new(),
    };

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut sheet = CueSheet::new(CueRules::default());
    let mut segments: Vec<Segment> = Vec::new();
    let live = cfg.format == ScanFormat::Json;
    let mut emit = |s: Segment, out: &mut dyn Write| -> io::Result<()> {
        if live {
            output::write_segment_json(out, &s)?;
            out.flush()?;
        }
        segments.push(s);
        Ok(())
    };

    let pb = progress::position(cfg.quiet, "scanning");
    // Samples from `buf_start` on; windows start every `hop` samples.
    let mut buf: Vec<f32> = Vec::with_capacity(window + hop * 4);
    let mut buf_start = 0usize;
    let mut next = 0usize;
    let mut failure: Option<anyhow::Error> = None;
    let mut closed: Vec<Segment> = Vec::new();
    // Windows: looked up a batch at a time; their hits handed to the sheet
    // in order, collecting what closes.
    let mut step = |window: Option<(&[f32], usize)>, closed: &mut Vec<Segment>| -> Result<()> {
        let flush = match window {
            Some((samples, start)) => {
                looker.pending.push((start, samples.to_vec()));
                looker.pending.len() >= looker.batch()
            }
            None => true,
        };
        if !flush {
            return Ok(());
        }
        for (start, o) in looker.look_pending(rate)? {
            let start_s = start as f64 / rate;
            sheet.push(start_s, hits(o, start_s, frame_s, fft_s), &mut |s| {
                closed.push(s)
            });
        }
        Ok(())
    };
    let source = Source::from_arg(&cfg.input);
    let report = decode::decode(&source, params.sample_rate_hz, 0.0, |chunk| {
        buf.extend_from_slice(chunk);
        while buf_start + buf.len() >= next + window {
            let at = next - buf_start;
            if let Err(e) = step(Some((&buf[at..at + window], next)), &mut closed) {
                failure = Some(e);
                return Flow::Stop;
            }
            for s in closed.drain(..) {
                if let Err(e) = emit(s, &mut out) {
                    failure = Some(e.into());
                    return Flow::Stop;
                }
            }
            next += hop;
            // Keep the last window's worth for the tail at the end.
            let drop = (next - buf_start).min(buf.len().saturating_sub(window));
            buf.drain(..drop);
            buf_start += drop;
            pb.set_message(output::clock(next as f64 / rate));
        }
        Flow::Continue
    });
    pb.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    let report = report.map_err(|e| anyhow::anyhow!("{}: {e}", cfg.input))?;
    // The tail after the last full window, or a recording shorter than one.
    let total = buf_start + buf.len();
    let covered = if next == 0 { 0 } else { next - hop + window };
    let tail_start = total.saturating_sub(window).max(buf_start);
    if total > covered && total - tail_start >= rate as usize {
        let at = tail_start - buf_start;
        step(Some((&buf[at..], tail_start)), &mut closed)?;
    }
    step(None, &mut closed)?;
    sheet.finish(&mut |s| closed.push(s));
    for s in closed.drain(..) {
        emit(s, &mut out)?;
    }
    if let Some(t) = report.truncated_at_s {
        eprintln!(
            "ostid: {}: truncated at {}; scanned what decoded",
            cfg.input,
            output::clock(t)
        );
    }

    segments.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    match cfg.format {
        ScanFormat::Json => {}
        ScanFormat::Table => output::write_segment_table(&mut out, &segments)?,
        ScanFormat::Csv => output::write_segment_csv(&mut out, &segments)?,
        ScanFormat::Audacity => cueformats::write_audacity(&mut out, &segments)?,
        ScanFormat::Srt => cueformats::write_srt(&mut out, &segments)?,
        ScanFormat::Vtt => cueformats::write_vtt(&mut out, &segments)?,
        ScanFormat::FfMetadata => cueformats::write_ffmetadata(&mut out, &segments)?,
        ScanFormat::Cue => {
            let name = match cfg.input.as_str() {
                "-" => "recording.wav".to_string(),
                path => std::path::Path::new(path)
                    .file_name()
                    .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned()),
            };
            cueformats::write_cue(&mut out, &segments, &name)?
        }
    }
    out.flush()?;
    if let Some(svg) = &cfg.svg {
        let duration_s = total as f64 / rate;
        std::fs::write(svg, timeline::svg(&segments, duration_s, &cfg.input))
            .with_context(|| format!("cannot write the timeline {}", svg.display()))?;
    }
    if !cfg.quiet {
        eprintln!(
            "{} cues in {} of audio",
            segments.len(),
            output::clock(total as f64 / rate)
        );
    }
    Ok(if segments.is_empty() {
        Status::NoMatch
    } else {
        Status::Ok
    })
}
