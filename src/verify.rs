//! Checking an index against itself: every record, table, postings file and
//! counter agrees with the others.
//!
//! Owns: what `ostid verify` checks and how a problem is worded. Does not
//! own: the layouts it reads (`store`, `segment`).

use std::collections::HashMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::segment::Segment;
use crate::store::{is_removed, Store, TrackRecord};
use crate::view::View;

/// What `verify` looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub tracks: u64,
    pub segments: u64,
    pub postings: u64,
}

/// Check the index's internal consistency: track records, segment tables,
/// postings files (every posting read, counted per track), file records and
/// counters. Returns what is wrong, and what was checked.
pub fn verify(store: &Store) -> Result<(Vec<String>, Counts)> {
    let mut problems = Vec::new();
    let tracks = store.tracks()?;
    let tables = store.segment_tables()?;
    let by_id: HashMap<u32, &TrackRecord> = tracks.iter().map(|t| (t.id, t)).collect();
    // Every track is in exactly one slot (the tables alone say where).
    let mut slots_of: HashMap<u32, u32> = HashMap::new();
    for tab in tables.values() {
        for &id in tab.iter().filter(|&&id| !is_removed(id)) {
            *slots_of.entry(id).or_default() += 1;
        }
    }
    for t in &tracks {
        match slots_of.get(&t.id).copied().unwrap_or(0) {
            1 => {}
            0 => problems.push(format!("track {} ({}) is in no segment", t.id, t.path)),
            n => problems.push(format!("track {} ({}) is in {n} slots", t.id, t.path)),
        }
    }
    // Duration tables: an index written before them has none (readers
    // then use the records); one that is there must agree with them.
    for (seg, durations) in store.duration_tables()? {
        let Some(tab) = tables.get(&seg) else {
            problems.push(format!(
                "segment {seg} has a duration table but no segment table"
            ));
            continue;
        };
        if durations.len() != tab.len() {
            problems.push(format!(
                "segment {seg} has {} durations for {} slots",
                durations.len(),
                tab.len()
            ));
            continue;
        }
        for (slot, (&id, &d)) in tab.iter().zip(&durations).enumerate() {
            if let Some(t) = by_id.get(&id) {
                if t.duration_s != d {
                    problems.push(format!(
                        "segment {seg} slot {slot} lasts {d} s in its duration table, {} s in the record of track {id} ({})",
                        t.duration_s, t.path
                    ));
                }
            }
        }
    }
    let mut postings_checked = 0u64;
    let mut per_slot = Vec::new();
    for (&seg, tab) in &tables {
        for (slot, &id) in tab.iter().enumerate() {
            if !is_removed(id) && !by_id.contains_key(&id) {
                problems.push(format!(
                    "segment {seg} slot {slot} names track {id}, which has no record"
                ));
            }
        }
        let path = store.segment_path(seg);
        let f = match Segment::open(&path) {
            Ok(f) => f,
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        if f.slots() != tab.len() {
            problems.push(format!(
                "postings file {} has {} tracks, its segment table {}",
                path.display(),
                f.slots(),
                tab.len()
            ));
            continue;
        }
        if let Err(e) = f.check(&mut per_slot) {
            problems.push(format!(
                "postings file {} is damaged: {e}; rebuild the index with `ostid index --rebuild DIR...`",
                path.display()
            ));
            continue;
        }
        postings_checked += f.postings();
        for (slot, &id) in tab.iter().enumerate() {
            if let Some(t) = by_id.get(&id) {
                if per_slot[slot] != t.landmarks {
                    problems.push(format!(
                        "track {} ({}) has {} postings in {}, its record says {}",
                        id,
                        t.path,
                        per_slot[slot],
                        path.display(),
                        t.landmarks
                    ));
                }
            }
        }
    }
    let files = store.file_records()?;
    for (key, id) in &files {
        let shown = String::from_utf8_lossy(key);
        match by_id.get(id) {
            None => problems.push(format!(
                "the file record of {shown} names track {id}, which has no record"
            )),
            Some(t) if t.path_key() != *key => problems.push(format!(
                "the file record of {shown} names track {id}, which is {}",
                t.path
            )),
            Some(_) => {}
        }
    }
    if files.len() != tracks.len() {
        problems.push(format!(
            "{} file records for {} tracks",
            files.len(),
            tracks.len()
        ));
    }
    let c = store.counters();
    let landmarks: u64 = tracks.iter().map(|t| t.landmarks).sum();
    let audio_s: f64 = tracks.iter().map(|t| t.duration_s).sum();
    if c.tracks != tracks.len() as u64
        || c.landmarks != landmarks
        || (c.audio_s - audio_s).abs() > 1.0
    {
        problems.push(format!(
            "counters say {} tracks, {} hashes, {:.0} s; the records add up to {}, {}, {:.0} s",
            c.tracks,
            c.landmarks,
            c.audio_s,
            tracks.len(),
            landmarks,
            audio_s
        ));
    }
    problems.extend(view_problems(store, &tracks)?);
    Ok((
        problems,
        Counts {
            tracks: tracks.len() as u64,
            segments: tables.len() as u64,
            postings: postings_checked,
        },
    ))
}

/// What is wrong with the query view, if there is one: it must say what
/// the catalogue says (`tracks`: every record).
fn view_problems(store: &Store, tracks: &[TrackRecord]) -> Result<Vec<String>> {
    let fix = "`ostid compact` writes it afresh";
    let view = match View::open(store.dir()) {
        Ok(None) => return Ok(Vec::new()),
        Ok(Some(v)) => v,
        Err(e) => return Ok(vec![format!("{e:#}; {fix}")]),
    };
    let mut problems = Vec::new();
    let mut differs = |what: &str| {
        problems.push(format!(
            "the query view ({}) differs from the catalogue in its {what}; {fix}",
            crate::view::path(store.dir()).display()
        ))
    };
    if view.format_version() != store.format_version() || view.params() != store.params() {
        differs("format or parameters");
    }
    if view.tables() != store.view_tables()?.as_slice() {
        differs("segment tables");
    }
    let mut records = tracks.to_vec();
    records.sort_by_key(|t| t.id);
    match view.tracks() {
        Ok(v) if v == records => {}
        Ok(_) => differs("track records"),
        Err(e) => problems.push(format!("{e:#}")),
    }
    Ok(problems)
}
