//! `ostid index`: walk folders, fingerprint new and changed files in
//! parallel, and commit them through one writer.
//!
//! Workers (rayon) decode and fingerprint; results travel over a bounded
//! channel to this thread, the only one that writes the store. Tracks are
//! committed in groups (a segment) at most every few seconds, each group in
//! one atomic batch followed by a flush, so a killed process loses at most
//! the group in flight and the next run finishes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;

use super::{interrupted, pool, requested_params, watch_interrupt, IndexConfig, Status};
use crate::decode::{self, DecodeError, DecodeReport, Flow, Source, MIN_DECODED_S};
use crate::fingerprint::{Fingerprinter, Role};
use crate::hash::Landmark;
use crate::library::{self, FoundFile};
use crate::output::clock;
use crate::params::Params;
use crate::progress;
use crate::store::{
    Access, MergeStep, NewTrack, Store, TrackRecord, CATALOGUE_SLACK, SEGMENT_MAX_POSTINGS,
    SEGMENT_MAX_TRACKS,
};

/// Commit pending tracks at least this often.
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// Crash tests: abort the process (as a crash would) once this many tracks
/// are committed; implies [`EACH_TRACK_ENV`].
const FAILPOINT_ENV: &str = "OSTID_FAILPOINT_ABORT_AFTER_TRACKS";
/// Crash tests: commit after every track instead of every few seconds.
const EACH_TRACK_ENV: &str = "OSTID_COMMIT_EACH_TRACK";
/// Crash tests: abort the process in the first merge, once its file is
/// `written` or once it is `committed` (before the old files are deleted),
/// or in a rewrite of the catalogue (`compact`'s, or `index`'s when it
/// shrinks the catalogue), once the copy is complete (`catalogue-written`)
/// or once the old catalogue is moved aside (`catalogue-swapped`).
const MERGE_FAILPOINT_ENV: &str = "OSTID_FAILPOINT_ABORT_IN_MERGE";

/// The merge step [`MERGE_FAILPOINT_ENV`] names, if any (tests).
pub(crate) fn merge_failpoint() -> Option<MergeStep> {
    match std::env::var(MERGE_FAILPOINT_ENV).as_deref() {
        Ok("written") => Some(MergeStep::Written),
        Ok("committed") => Some(MergeStep::Committed),
        Ok("catalogue-written") => Some(MergeStep::CatalogueWritten),
        Ok("catalogue-swapped") => Some(MergeStep::CatalogueSwapped),
        _ => None,
    }
}

/// Decode and fingerprint one file.
pub fn fingerprint_file(
    path: &Path,
    params: &Params,
) -> Result<(DecodeReport, Vec<Landmark>), DecodeError> {
    let mut fp = Fingerprinter::new(params, Role::Index);
    let mut landmarks = Vec::new();
    let report = decode::decode(
        &Source::Path(path.to_path_buf()),
        params.sample_rate_hz,
        MIN_DECODED_S,
        |chunk| {
            if interrupted() {
                return Flow::Stop;
            }
            fp.push(chunk, &mut |l| landmarks.push(l));
            Flow::Continue
        },
    )?;
    fp.finish(&mut |l| landmarks.push(l));
    landmarks.sort_unstable();
    landmarks.dedup();
    Ok((report, landmarks))
}

/// Tracks decoded but not yet committed, and the tracks they replace.
struct Pending {
    tracks: Vec<NewTrack>,
    replaced: Vec<u32>,
    postings: usize,
    since: Instant,
    /// Tracks committed so far.
    committed: u64,
    /// Merges made so far.
    merges: usize,
    each_track: bool,
}

impl Default for Pending {
    fn default() -> Pending {
        Pending {
            tracks: Vec::new(),
            replaced: Vec::new(),
            postings: 0,
            since: Instant::now(),
            committed: 0,
            merges: 0,
            each_track: false,
        }
    }
}

impl Pending {
    fn add(&mut self, track: NewTrack, replaces: Option<u32>) {
        self.postings += track.landmarks.len();
        self.tracks.push(track);
        self.replaced.extend(replaces);
    }

    /// A segment is full, or the last commit is old enough.
    fn is_due(&self) -> bool {
        self.each_track
            || self.tracks.len() >= SEGMENT_MAX_TRACKS
            || self.postings >= SEGMENT_MAX_POSTINGS
            || self.since.elapsed() >= COMMIT_EVERY
    }

    /// Commit what is pending as one segment. `failpoint` (tests): abort the
    /// process, as a crash would, once that many tracks are committed.
    fn commit(&mut self, store: &mut Store, failpoint: Option<u64>) -> Result<()> {
        if !self.tracks.is_empty() || !self.replaced.is_empty() {
            let n = self.tracks.len() as u64;
            store.commit(
                std::mem::take(&mut self.tracks),
                &std::mem::take(&mut self.replaced),
            )?;
            // Keep lookups to a few reads: merge a level once it is full.
            self.merges += store.tidy()?;
            self.committed += n;
            if failpoint.is_some_and(|n| self.committed >= n) {
                eprintln!("ostid: failpoint {FAILPOINT_ENV} reached, aborting");
                std::process::abort();
            }
        }
        self.postings = 0;
        self.since = Instant::now();
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    indexed: u64,
    unchanged: u64,
    relinked: u64,
    damaged: u64,
    failed: u64,
    audio_s: f64,
}

/// Tracks whose files no longer exist (and that know their head hash), by size.
fn missing_by_size(store: &Store) -> Result<HashMap<u64, Vec<TrackRecord>>> {
    let mut out: HashMap<u64, Vec<TrackRecord>> = HashMap::new();
    for t in store.tracks()? {
        if t.head_hash.is_some() && !t.file_exists() {
            out.entry(t.size).or_default().push(t);
        }
    }
    Ok(out)
}

/// The missing track `f` is, if its size and first MiB match one.
fn moved_here(gone: &mut HashMap<u64, Vec<TrackRecord>>, f: &FoundFile) -> Option<TrackRecord> {
    let same_size = gone.get_mut(&f.size)?;
    let h = library::head_hash(&f.path).ok()?;
    let i = same_size.iter().position(|t| t.head_hash == Some(h))?;
    Some(same_size.swap_remove(i))
}

fn record_for(
    f: &FoundFile,
    report: &DecodeReport,
    head_hash: Option<u64>,
) -> (TrackRecord, Vec<u8>) {
    let info = library::track_info(&f.path, &report.tags);
    let damaged = match (report.truncated_at_s, report.damaged_packets) {
        (Some(t), _) => Some(format!("truncated at {}", clock(t))),
        (None, n) if n > 0 => Some(format!("{n} damaged packets skipped")),
        _ => None,
    };
    let (path, path_bytes) = match f.path.to_str() {
        Some(s) => (s.to_string(), None),
        None => (
            f.path.to_string_lossy().into_owned(),
            Some(library::path_key(&f.path)),
        ),
    };
    let rec = TrackRecord {
        id: 0,
        path,
        path_bytes,
        size: f.size,
        mtime_ns: f.mtime_ns,
        title: info.title,
        work: info.work,
        composer: info.composer,
        track_number: info.track_number,
        duration_s: report.duration_s,
        damaged,
        landmarks: 0,
        head_hash,
    };
    (rec, library::path_key(&f.path))
}

pub fn run(db: PathBuf, cfg: IndexConfig) -> Result<Status> {
    watch_interrupt();
    let started = Instant::now();
    let requested = requested_params(cfg.preset.as_deref(), cfg.params_file.as_deref())?;
    if cfg.rebuild {
        Store::destroy(&db)?;
    }
    let mut store = Store::open(&db, Access::Write, requested.as_ref())?;
    store.set_merge_failpoint(merge_failpoint());
    let params = store.params().clone();
    let failpoint: Option<u64> = std::env::var(FAILPOINT_ENV)
        .ok()
        .and_then(|v| v.parse().ok());

    let roots: Vec<Vec<u8>> = cfg
        .paths
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .map(|p| library::path_key(&p))
        .collect();
    store.add_roots(&roots)?;
    let walk = library::walk(&cfg.paths);
    let mut tally = Tally::default();
    for (path, err) in &walk.errors {
        eprintln!("ostid: {}: {err}", path.display());
        tally.failed += 1;
    }
    let mut todo: Vec<(FoundFile, Option<u32>)> = Vec::new();
    // Tracks whose files are gone, by size: a new file of the same size and
    // first MiB is the same file moved, relinked without decoding.
    let mut gone: Option<HashMap<u64, Vec<TrackRecord>>> = None;
    for f in walk.files {
        let key = library::path_key(&f.path);
        match store.track_for_path(&key)? {
            Some(rec) if rec.size == f.size && rec.mtime_ns == f.mtime_ns => tally.unchanged += 1,
            Some(rec) => todo.push((f, Some(rec.id))),
            None => {
                let gone = match &mut gone {
                    Some(g) => g,
                    None => gone.insert(missing_by_size(&store)?),
                };
                match moved_here(gone, &f) {
                    Some(mut rec) => {
                        let old_key = rec.path_key();
                        let names = library::renamed(
                            Path::new(&rec.path),
                            &f.path,
                            library::TrackInfo {
                                title: rec.title.clone(),
                                work: rec.work.clone(),
                                composer: rec.composer.clone(),
                                track_number: rec.track_number,
                            },
                        );
                        (rec.title, rec.work, rec.track_number) =
                            (names.title, names.work, names.track_number);
                        rec.path = f.path.to_string_lossy().into_owned();
                        rec.mtime_ns = f.mtime_ns;
                        store.relink(rec, &old_key, &key)?;
                        tally.relinked += 1;
                    }
                    None => todo.push((f, None)),
                }
            }
        }
    }

    // Longest first, handed out one at a time as workers free up: no worker
    // is left alone with a long file at the end.
    todo.sort_by_key(|t| std::cmp::Reverse(t.0.size));
    let pool = pool(cfg.threads)?;
    let threads = pool.current_num_threads();
    let pb = progress::bar(todo.len() as u64, cfg.quiet, "indexing");
    let abort = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel(threads * 2);

    let writer_result: Result<usize> = std::thread::scope(|s| {
        let todo = &todo;
        let abort = &abort;
        let params = &params;
        s.spawn(move || {
            pool.install(|| {
                todo.iter()
                    .par_bridge()
                    .for_each_with(tx, |tx, (f, replaced)| {
                        if interrupted() || abort.load(Ordering::Relaxed) {
                            return;
                        }
                        // Read while the file is hot, on the worker, not the writer.
                        let res = fingerprint_file(&f.path, params)
                            .map(|(r, l)| (r, l, library::head_hash(&f.path).ok()));
                        let _ = tx.send((f, *replaced, res));
                    })
            })
        });

        let mut pending = Pending {
            each_track: failpoint.is_some() || std::env::var_os(EACH_TRACK_ENV).is_some(),
            ..Pending::default()
        };
        for (f, replaced, res) in rx {
            pb.inc(1);
            match res {
                Err(DecodeError::Interrupted) => {}
                Err(e) => {
                    tally.failed += 1;
                    pb.suspend(|| eprintln!("ostid: {}: {e}", f.path.display()));
                }
                Ok((report, landmarks, head_hash)) => {
                    let (record, path_key) = record_for(f, &report, head_hash);
                    if let Some(d) = &record.damaged {
                        tally.damaged += 1;
                        pb.suspend(|| {
                            eprintln!("ostid: {}: {d}; indexed what decoded", f.path.display())
                        });
                    } else {
                        tally.indexed += 1;
                    }
                    tally.audio_s += report.duration_s;
                    pending.add(
                        NewTrack {
                            record,
                            path_key,
                            landmarks,
                        },
                        replaced,
                    );
                    let rate = tally.audio_s / started.elapsed().as_secs_f64().max(1e-3);
                    pb.set_message(format!(
                        "{:.2} h audio, {:.0}x real time",
                        tally.audio_s / 3600.0,
                        rate
                    ));
                    if pending.is_due() {
                        if let Err(e) = pending.commit(&mut store, failpoint) {
                            abort.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                    }
                }
            }
        }
        pending.commit(&mut store, failpoint)?;
        Ok(pending.merges)
    });
    pb.finish_and_clear();
    let merges = writer_result.context(
        "indexing stopped; every track committed before this is kept: fix the cause and run the same command again",
    )?;
    store.flush()?;
    let was_interrupted = interrupted();
    if !was_interrupted {
        let gathered = store
            .gather_small()
            .context("merging the index's small postings files failed; the index is as it was before the merge")?;
        // sled keeps the parts of its file that rewritten values emptied
        // (format 3's merges rewrote every moved track's record; format 4's
        // write tables only): a cheap check, a rewrite only past the slack.
        if merges > 0 || gathered {
            store.shrink_catalogue(CATALOGUE_SLACK).context(
                "rewriting the index's catalogue failed; the index is as it was before the rewrite",
            )?;
        }
    }

    let elapsed = started.elapsed().as_secs_f64();
    if !cfg.quiet || was_interrupted {
        let rate = if tally.audio_s > 0.0 {
            format!(" ({:.0}x real time)", tally.audio_s / elapsed.max(1e-9))
        } else {
            String::new()
        };
        let relinked = if tally.relinked > 0 {
            format!(", moved {}", tally.relinked)
        } else {
            String::new()
        };
        eprintln!(
            "{}indexed {}, unchanged {}, damaged {}, failed {}{relinked}; {:.2} h of audio in {:.1} s{rate}",
            if was_interrupted { "interrupted: " } else { "" },
            tally.indexed,
            tally.unchanged,
            tally.damaged,
            tally.failed,
            tally.audio_s / 3600.0,
            elapsed,
        );
    }
    if was_interrupted {
        let done = tally.indexed + tally.damaged + tally.failed;
        eprintln!(
            "ostid: stopped after {done} of {} files; everything listed is saved, run the same command again to finish",
            todo.len()
        );
        return Ok(Status::Interrupted);
    }
    Ok(if tally.failed + tally.damaged > 0 {
        Status::Error
    } else {
        Status::Ok
    })
}
