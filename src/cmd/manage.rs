//! Library management: `ostid list`, `works`, `stats`, `rm` and `prune`.
//! Each prints human lines or, with `--json`, JSON Lines from serde structs.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::Status;
use crate::library;
use crate::output::clock;
use crate::params::Params;
use crate::store::{Access, Store, TrackRecord};

/// One line of `ostid list --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackLine {
    pub work: String,
    pub title: String,
    pub composer: Option<String>,
    pub track_number: Option<u32>,
    pub duration_s: f64,
    pub path: String,
    pub damaged: Option<String>,
}

/// One line of `ostid works --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkLine {
    pub work: String,
    pub tracks: u64,
    pub hours: f64,
}

/// `ostid stats --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    pub tracks: u64,
    pub hours: f64,
    pub hashes: u64,
    pub bytes_on_disk: u64,
    pub bytes_per_hour: Option<f64>,
    pub format_version: u32,
    pub params: Params,
}

fn json_line<T: Serialize>(out: &mut dyn Write, v: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    writeln!(out)?;
    Ok(())
}

fn sorted_tracks(store: &Store) -> Result<Vec<TrackRecord>> {
    let mut t = store.tracks()?;
    t.sort_by(|a, b| {
        (
            a.work.to_lowercase(),
            a.track_number,
            a.title.to_lowercase(),
            &a.path,
        )
            .cmp(&(
                b.work.to_lowercase(),
                b.track_number,
                b.title.to_lowercase(),
                &b.path,
            ))
    });
    Ok(t)
}

/// `ostid list [--work TEXT]`: exit 1 when nothing is listed.
pub fn list(db: &Path, work: Option<&str>, json: bool) -> Result<Status> {
    let store = Store::open(db, Access::Read, None)?;
    let want = work.map(str::to_lowercase);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut n = 0;
    for t in sorted_tracks(&store)? {
        if want
            .as_ref()
            .is_some_and(|w| !t.work.to_lowercase().contains(w))
        {
            continue;
        }
        n += 1;
        if json {
            json_line(
                &mut out,
                &TrackLine {
                    work: t.work,
                    title: t.title,
                    composer: t.composer,
                    track_number: t.track_number,
                    duration_s: t.duration_s,
                    path: t.path,
                    damaged: t.damaged,
                },
            )?;
        } else {
            let number = t.track_number.map_or(String::new(), |n| format!("{n:02} "));
            writeln!(
                out,
                "{} — {number}{} ({})  {}",
                t.work,
                t.title,
                clock(t.duration_s),
                t.path
            )?;
        }
    }
    out.flush()?;
    Ok(if n == 0 { Status::NoMatch } else { Status::Ok })
}

/// `ostid works`: tracks and hours per work.
pub fn works(db: &Path, json: bool) -> Result<Status> {
    let store = Store::open(db, Access::Read, None)?;
    let mut per: BTreeMap<String, (String, u64, f64)> = BTreeMap::new();
    for t in store.tracks()? {
        let e = per
            .entry(t.work.to_lowercase())
            .or_insert_with(|| (t.work.clone(), 0, 0.0));
        e.1 += 1;
        e.2 += t.duration_s;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    for (work, tracks, seconds) in per.into_values() {
        let hours = (seconds / 3600.0 * 1000.0).round() / 1000.0;
        if json {
            json_line(
                &mut out,
                &WorkLine {
                    work,
                    tracks,
                    hours,
                },
            )?;
        } else {
            writeln!(out, "{work}: {tracks} tracks, {}", clock(seconds))?;
        }
    }
    out.flush()?;
    Ok(Status::Ok)
}

/// `ostid stats`: counters kept by the index (not recounted) and its size.
pub fn stats(db: &Path, json: bool) -> Result<Status> {
    let store = Store::open(db, Access::Read, None)?;
    let c = store.counters();
    let hours = c.audio_s / 3600.0;
    let bytes = store.disk_bytes();
    let s = Stats {
        tracks: c.tracks,
        hours: (hours * 1000.0).round() / 1000.0,
        hashes: c.landmarks,
        bytes_on_disk: bytes,
        bytes_per_hour: (hours > 0.0).then(|| (bytes as f64 / hours).round()),
        format_version: store.format_version(),
        params: store.params().clone(),
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    if json {
        json_line(&mut out, &s)?;
    } else {
        writeln!(out, "tracks          {}", s.tracks)?;
        writeln!(out, "audio           {:.2} h", hours)?;
        writeln!(out, "hashes          {}", s.hashes)?;
        writeln!(out, "on disk         {:.2} MB", bytes as f64 / 1e6)?;
        if let Some(b) = s.bytes_per_hour {
            writeln!(out, "per audio hour  {:.2} MB", b / 1e6)?;
        }
        writeln!(out, "format          {}", s.format_version)?;
        writeln!(
            out,
            "parameters      {} (digest {:016x})",
            s.params.preset,
            s.params.digest()
        )?;
    }
    out.flush()?;
    Ok(Status::Ok)
}

/// An absolute path with `.` and `..` resolved lexically (the file may be
/// gone), and symlinks resolved where it still exists: the form paths are
/// stored in.
pub fn normalise(p: &Path) -> Result<PathBuf> {
    if let Ok(c) = std::fs::canonicalize(p) {
        return Ok(c);
    }
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Whether `path` (stored bytes) is `target` or lies under it.
fn is_under(path: &[u8], target: &[u8]) -> bool {
    path == target
        || (path.starts_with(target)
            && (target.ends_with(b"/") || path.get(target.len()) == Some(&b'/')))
}

/// `ostid rm PATH...`: remove tracks, or every track under folders. Exit 1
/// when nothing matched.
pub fn rm(db: &Path, paths: &[PathBuf], json: bool, quiet: bool) -> Result<Status> {
    let mut store = Store::open(db, Access::Write, None)?;
    let targets: Vec<Vec<u8>> = paths
        .iter()
        .map(|p| normalise(p).map(|n| library::path_key(&n)))
        .collect::<Result<_>>()?;
    let gone: Vec<TrackRecord> = store
        .tracks()?
        .into_iter()
        .filter(|t| targets.iter().any(|r| is_under(&t.path_key(), r)))
        .collect();
    let ids: Vec<u32> = gone.iter().map(|t| t.id).collect();
    store.remove(&ids)?;
    report_removed(&gone, json)?;
    if !quiet {
        eprintln!("removed {} tracks", gone.len());
    }
    Ok(if gone.is_empty() {
        Status::NoMatch
    } else {
        Status::Ok
    })
}

fn report_removed(gone: &[TrackRecord], json: bool) -> Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for t in gone {
        if json {
            json_line(&mut out, &serde_json::json!({ "removed": t.path }))?;
        } else {
            writeln!(out, "removed {}", t.path)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `ostid prune`: drop tracks whose files are gone. Refuses when every
/// track under a folder given to `ostid index` is missing (an unmounted
/// drive, a renamed mount point) unless `force`.
pub fn prune(db: &Path, dry_run: bool, force: bool, json: bool, quiet: bool) -> Result<Status> {
    let mut store = Store::open(db, Access::Write, None)?;
    let tracks = store.tracks()?;
    let gone: Vec<&TrackRecord> = tracks.iter().filter(|t| !t.file_exists()).collect();
    if !force {
        for root in store.roots()? {
            let under: Vec<&TrackRecord> = tracks
                .iter()
                .filter(|t| is_under(&t.path_key(), &root))
                .collect();
            if !under.is_empty() && under.iter().all(|t| !t.file_exists()) {
                bail!(
                    "every track under {} ({} tracks) is missing: is the drive unmounted? Mount it, or pass --force to drop them",
                    String::from_utf8_lossy(&root),
                    under.len()
                );
            }
        }
    }
    let gone: Vec<TrackRecord> = gone.into_iter().cloned().collect();
    if !dry_run {
        let ids: Vec<u32> = gone.iter().map(|t| t.id).collect();
        store.remove(&ids)?;
    }
    report_removed(&gone, json)?;
    if !quiet {
        let verb = if dry_run { "would remove" } else { "removed" };
        eprintln!("{verb} {} tracks whose files are gone", gone.len());
    }
    Ok(Status::Ok)
}

/// `ostid verify --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyReport {
    pub ok: bool,
    pub problems: Vec<String>,
    pub checked: crate::verify::Counts,
}

/// `ostid verify`: exit 0 when consistent, 1 with a report when not.
pub fn verify(db: &Path, json: bool) -> Result<Status> {
    let store = Store::open(db, Access::Read, None)?;
    let (problems, checked) = crate::verify::verify(&store)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let ok = problems.is_empty();
    if json {
        json_line(
            &mut out,
            &VerifyReport {
                ok,
                problems,
                checked,
            },
        )?;
    } else {
        for p in &problems {
            writeln!(out, "{p}")?;
        }
        writeln!(
            out,
            "{}: {} tracks, {} segments, {} postings checked{}",
            if ok { "ok" } else { "BROKEN" },
            checked.tracks,
            checked.segments,
            checked.postings,
            if ok {
                String::new()
            } else {
                "; rebuild the index with `ostid index --rebuild DIR...`".into()
            }
        )?;
    }
    out.flush()?;
    Ok(if ok { Status::Ok } else { Status::NoMatch })
}

/// `ostid compact --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompactReport {
    pub files_before: usize,
    pub files_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// `ostid compact`: merge the postings files, dropping removed tracks'
/// postings. The summary goes to stderr, or as JSON to stdout.
pub fn compact(db: &Path, json: bool, quiet: bool) -> Result<Status> {
    let mut store = Store::open(db, Access::Write, None)?;
    store.set_merge_failpoint(super::index::merge_failpoint());
    let bytes_before = store.disk_bytes();
    let (files_before, files_after) = store.compact()?;
    store.flush()?;
    let r = CompactReport {
        files_before,
        files_after,
        bytes_before,
        bytes_after: store.disk_bytes(),
    };
    if json {
        let mut out = io::BufWriter::new(io::stdout().lock());
        json_line(&mut out, &r)?;
        out.flush()?;
    } else if !quiet {
        eprintln!(
            "compacted {} postings files into {}; {:.2} MB -> {:.2} MB",
            r.files_before,
            r.files_after,
            r.bytes_before as f64 / 1e6,
            r.bytes_after as f64 / 1e6
        );
    }
    Ok(Status::Ok)
}
