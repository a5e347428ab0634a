//! The query view: what a query needs of the catalogue, in one file.
//!
//! A query reads little of the catalogue: the parameters, each segment's
//! slot table and durations, and the records of the few tracks it names.
//! Opening sled for that took 4–17 ms of a one-clip `match` (its thread
//! pool's seven threads spin while it starts them; 20 ms at 10,000 h), and
//! sled locks its files, so two queries could not run at once. A writer
//! ([`crate::store`]) therefore leaves `view.bin` beside the catalogue when
//! it closes, and deletes it before it changes anything: a view, when
//! there is one, always says what the catalogue says. A query maps it,
//! checks it, and answers from it without sled; without a view (an index
//! of an older build, a writer killed before it closed) it reads the
//! catalogue as before.
//!
//! Layout (little-endian):
//!
//! | bytes | what |
//! |---|---|
//! | 8 | magic `OSTIDVW1` |
//! | 4 | view layout version ([`VERSION`]) |
//! | 4 | the index's format version |
//! | 8 | length of the head |
//! | 8 | checksum of the format version and the head ([`checksum`]) |
//! | 8 | length of the records |
//! | head | params JSON (u32 length first); segments (u32 count; each: u32 id, u32 slots, the slots' track ids as u32, their durations as f64); the record index (u32 count; each, by ascending id: u32 id, u32 length, u64 offset into the records) |
//! | records | each track's record as JSON |
//!
//! The head is checked whole when opened (~0.4 MB at 1,000 h); a record
//! only when read (a JSON record of another id is damage).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;

use crate::params::Params;
use crate::store::TrackRecord;

/// The view's file name in the index directory.
pub const FILE: &str = "view.bin";
/// Where a view is written before it is renamed into place.
const TEMP: &str = "view.bin.tmp";
const MAGIC: &[u8; 8] = b"OSTIDVW1";
/// Bumped when the layout above changes (an older view is then ignored:
/// the catalogue is read, and the next writer writes a new one). Version
/// 2: the checksum steps over words.
pub const VERSION: u32 = 2;
const HEADER: usize = 40;
/// Bytes of one entry of the record index.
const ENTRY: usize = 16;

/// One segment as the view holds it: its id, and its slots' track ids
/// and durations (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub segment: u32,
    pub tracks: Vec<u32>,
    pub durations_s: Vec<f64>,
}

/// What a writer puts in a view.
pub struct Contents<'a> {
    pub format: u32,
    pub params: &'a Params,
    pub tables: &'a [Table],
    /// Every live track's record, in any order.
    pub records: &'a [TrackRecord],
}

/// FNV-1a's steps over 8-byte words (the last padded with zeros), of the
/// format version and the head: each step is a bijection of the word, so
/// damage to any one word always shows. Catches damage, not an adversary.
/// A word a step rather than a byte: every query checks the head, and at
/// 10,000 h (3.5 MB) byte steps took 4.1–4.7 ms of opening the view.
fn checksum(format: u32, head: &[u8]) -> u64 {
    let step = |h: u64, w: u64| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3);
    let words = head.chunks_exact(8);
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    let h = step(0xcbf2_9ce4_8422_2325, format as u64);
    words
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .chain([u64::from_le_bytes(last)])
        .fold(h, step)
}

/// The view's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// The bytes of a view of `c`.
fn encode(c: &Contents) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    let params = serde_json::to_vec(c.params)?;
    let len32 = |n: usize| -> Result<[u8; 4]> {
        Ok(u32::try_from(n)
            .map_err(|_| anyhow!("too large for a query view"))?
            .to_le_bytes())
    };
    head.extend_from_slice(&len32(params.len())?);
    head.extend_from_slice(&params);
    head.extend_from_slice(&len32(c.tables.len())?);
    for t in c.tables {
        if t.durations_s.len() != t.tracks.len() {
            bail!(
                "segment {}: {} durations for {} slots",
                t.segment,
                t.durations_s.len(),
                t.tracks.len()
            );
        }
        head.extend_from_slice(&t.segment.to_le_bytes());
        head.extend_from_slice(&len32(t.tracks.len())?);
        t.tracks
            .iter()
            .for_each(|x| head.extend_from_slice(&x.to_le_bytes()));
        t.durations_s
            .iter()
            .for_each(|x| head.extend_from_slice(&x.to_le_bytes()));
    }
    let mut order: Vec<&TrackRecord> = c.records.iter().collect();
    order.sort_by_key(|r| r.id);
    head.extend_from_slice(&len32(order.len())?);
    let mut blob = Vec::new();
    for r in order {
        let json = serde_json::to_vec(r)?;
        head.extend_from_slice(&r.id.to_le_bytes());
        head.extend_from_slice(&len32(json.len())?);
        head.extend_from_slice(&(blob.len() as u64).to_le_bytes());
        blob.extend_from_slice(&json);
    }
    let mut out = Vec::with_capacity(HEADER + head.len() + blob.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&c.format.to_le_bytes());
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(c.format, &head).to_le_bytes());
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&blob);
    Ok(out)
}

/// Write a view of `c` into `dir`: to a temporary file, synced, renamed
/// into place, the directory synced (a crash leaves the old view, none, or
/// the new one, never part of one).
pub fn write(dir: &Path, c: &Contents) -> Result<()> {
    let bytes = encode(c)?;
    let temp = dir.join(TEMP);
    let context = || format!("cannot write the query view {}", path(dir).display());
    let mut f = File::create(&temp).with_context(context)?;
    f.write_all(&bytes).with_context(context)?;
    f.sync_all().with_context(context)?;
    drop(f);
    fs::rename(&temp, path(dir)).with_context(context)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(context)?;
    Ok(())
}

/// Delete the view of `dir` (and a temporary one a crash left), syncing
/// the directory when there was one: done before a writer changes the
/// catalogue, so no view outlives what it says.
pub fn remove(dir: &Path) -> io::Result<()> {
    let mut removed = false;
    for name in [FILE, TEMP] {
        match fs::remove_file(dir.join(name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if removed {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// An open view: its tables read, its records left in the mapping.
pub struct View {
    map: Mmap,
    format: u32,
    params: Params,
    tables: Vec<Table>,
    /// Where the record index starts, and its entries.
    index_at: usize,
    records: usize,
    /// Where the records start.
    blob_at: usize,
}

/// Reads little-endian values from a slice, failing past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

impl View {
    /// Open the view of `dir`: `Ok(None)` when there is none (or one of
    /// another layout version), an error when it is damaged.
    pub fn open(dir: &Path) -> Result<Option<View>> {
        let p = path(dir);
        let file = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", p.display())),
        };
        let damaged = || anyhow!("the query view {} is damaged", p.display());
        // SAFETY: a view is written under a temporary name and renamed into
        // place, never modified after (a writer deletes it and writes a new
        // one): the mapped bytes cannot change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(|_| damaged())?;
        let mut r = Reader { bytes: &map, at: 0 };
        if r.take(8) != Some(&MAGIC[..]) {
            return Err(damaged());
        }
        if r.u32().ok_or_else(damaged)? != VERSION {
            return Ok(None);
        }
        let (format, head_len, hash, blob_len) = match (r.u32(), r.u64(), r.u64(), r.u64()) {
            (Some(f), Some(h), Some(x), Some(b)) => (f, h, x, b),
            _ => return Err(damaged()),
        };
        let total = (HEADER as u64)
            .checked_add(head_len)
            .and_then(|n| n.checked_add(blob_len));
        if total != Some(map.len() as u64)
            || checksum(format, &map[HEADER..HEADER + head_len as usize]) != hash
        {
            return Err(damaged());
        }
        let head = &map[HEADER..HEADER + head_len as usize];
        let mut r = Reader { bytes: head, at: 0 };
        let (params, tables, records, index_at) = (|| {
            let n = r.u32()? as usize;
            let params: Params = serde_json::from_slice(r.take(n)?).ok()?;
            let mut tables = Vec::new();
            for _ in 0..r.u32()? {
                let segment = r.u32()?;
                let slots = r.u32()? as usize;
                let tracks = r.take(slots.checked_mul(4)?)?;
                let durations = r.take(slots.checked_mul(8)?)?;
                tables.push(Table {
                    segment,
                    tracks: tracks
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    durations_s: durations
                        .chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
                        .collect(),
                });
            }
            let records = r.u32()? as usize;
            let index_at = HEADER + r.at;
            r.take(records.checked_mul(ENTRY)?)?;
            (r.at == head.len()).then_some((params, tables, records, index_at))
        })()
        .ok_or_else(damaged)?;
        Ok(Some(View {
            format,
            params,
            tables,
            index_at,
            records,
            blob_at: HEADER + head_len as usize,
            map,
        }))
    }

    /// The index's format version when the view was written.
    pub fn format_version(&self) -> u32 {
        self.format
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every segment's slot table, by ascending segment id.
    pub fn tables(&self) -> &[Table] {
        &self.tables
    }

    /// Entry `i` of the record index: (id, length, offset).
    fn entry(&self, i: usize) -> (u32, usize, usize) {
        let at = self.index_at + i * ENTRY;
        let e = &self.map[at..at + ENTRY];
        let u32_at = |k: usize| u32::from_le_bytes([e[k], e[k + 1], e[k + 2], e[k + 3]]);
        let offset = u64::from_le_bytes(e[8..16].try_into().expect("8 bytes"));
        (u32_at(0), u32_at(4) as usize, offset as usize)
    }

    /// The record of track `id` (`None`: no such live track).
    pub fn track(&self, id: u32) -> Result<Option<TrackRecord>> {
        let (mut lo, mut hi) = (0, self.records);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry(mid).0 < id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == self.records || self.entry(lo).0 != id {
            return Ok(None);
        }
        let (_, len, offset) = self.entry(lo);
        let damaged =
            || anyhow!("a track record in the index's query view is damaged; run `ostid verify`");
        let bytes = offset
            .checked_add(len)
            .and_then(|end| {
                self.map
                    .get(self.blob_at + offset..self.blob_at.checked_add(end)?)
            })
            .ok_or_else(damaged)?;
        let rec: TrackRecord = serde_json::from_slice(bytes).map_err(|_| damaged())?;
        if rec.id != id {
            return Err(damaged());
        }
        Ok(Some(rec))
    }

    /// Every record, by ascending id.
    pub fn tracks(&self) -> Result<Vec<TrackRecord>> {
        (0..self.records)
            .map(|i| {
                let id = self.entry(i).0;
                self.track(id)?
                    .ok_or_else(|| anyhow!("the index's query view is damaged; run `ostid verify`"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u32) -> TrackRecord {
        TrackRecord {
            id,
            path: format!("/music/{id}.ogg"),
            path_bytes: (id == 7).then(|| b"/music/\xff.ogg".to_vec()),
            size: 1000 + id as u64,
            mtime_ns: -5,
            title: format!("Track {id}"),
            work: "Work".into(),
            composer: id.is_multiple_of(2).then(|| "Someone".into()),
            track_number: Some(id),
            duration_s: 10.0 + id as f64 / 3.0,
            damaged: None,
            landmarks: 40,
            head_hash: Some(id as u64 * 31),
        }
    }

    fn tables() -> Vec<Table> {
        vec![
            Table {
                segment: 3,
                tracks: vec![7, u32::MAX, 2],
                durations_s: vec![12.3, 0.0, 10.7],
            },
            Table {
                segment: 9,
                tracks: vec![11],
                durations_s: vec![13.7],
            },
        ]
    }

    fn write_view(dir: &Path) {
        let records = [record(11), record(2), record(7)];
        let params = Params::preset("dense").unwrap();
        write(
            dir,
            &Contents {
                format: 5,
                params: &params,
                tables: &tables(),
                records: &records,
            },
        )
        .unwrap();
    }

    #[test]
    fn a_view_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        assert!(View::open(dir.path()).unwrap().is_none());
        write_view(dir.path());
        let v = View::open(dir.path()).unwrap().unwrap();
        assert_eq!(v.format_version(), 5);
        assert_eq!(v.params(), &Params::preset("dense").unwrap());
        assert_eq!(v.tables(), tables().as_slice());
        for id in [2, 7, 11] {
            assert_eq!(v.track(id).unwrap(), Some(record(id)));
        }
        for id in [0, 3, 8, 12, u32::MAX] {
            assert_eq!(v.track(id).unwrap(), None);
        }
        assert_eq!(v.tracks().unwrap(), vec![record(2), record(7), record(11)]);
        // Removed: gone, with a temporary file a crash left.
        fs::write(dir.path().join(TEMP), b"half").unwrap();
        remove(dir.path()).unwrap();
        assert!(View::open(dir.path()).unwrap().is_none());
        assert!(!dir.path().join(TEMP).exists());
    }

    #[test]
    fn a_damaged_view_is_refused_and_one_of_another_layout_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        write_view(dir.path());
        let good = fs::read(path(dir.path())).unwrap();
        let head_len = u64::from_le_bytes(good[16..24].try_into().unwrap()) as usize;
        // Every byte of the header and the head is checked.
        for at in (0..HEADER + head_len).step_by(7) {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(path(dir.path()), &bad).unwrap();
            match View::open(dir.path()) {
                Err(_) => {}
                Ok(None) => assert!((8..12).contains(&at), "byte {at}"),
                Ok(Some(_)) => panic!("byte {at} changed and not noticed"),
            }
        }
        for len in [0, 20, HEADER, good.len() - 1] {
            fs::write(path(dir.path()), &good[..len]).unwrap();
            assert!(View::open(dir.path()).is_err(), "cut to {len}");
        }
        // A record is checked when read: one that names another track, or
        // is not a record, is damage.
        let blob_at = HEADER + head_len;
        let mut bad = good.clone();
        let text = String::from_utf8_lossy(&good[blob_at..]).into_owned();
        let first = text.find("\"id\":2").unwrap();
        bad[blob_at + first + 5] = b'3';
        fs::write(path(dir.path()), &bad).unwrap();
        let v = View::open(dir.path()).unwrap().unwrap();
        assert!(v.track(2).is_err());
        assert!(v.tracks().is_err());
        assert_eq!(v.track(11).unwrap(), Some(record(11)));
        bad[blob_at] = b'x';
        fs::write(path(dir.path()), &bad).unwrap();
        assert!(View::open(dir.path()).unwrap().unwrap().track(2).is_err());
    }
}
