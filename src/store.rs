//! The index on disk: a sled database in one directory, guarded by a lock file.
//!
//! Owns: the key layout, the posting encoding, the format version and the
//! parameter digest, the lock, and atomic commits. Does not own: deciding
//! what to index (see `cmd::index`) or how votes are counted (`matcher`).
//!
//! sled holds the catalogue in its default tree, so that one `apply_batch`
//! commits a whole group of tracks atomically: track records, file records,
//! segment tables and counters land together or not at all. The postings of
//! a group go to an immutable *segment file* (`postings/seg-N.bin`), written
//! and fsynced before the batch that references it: a file no batch
//! references (a crash in between) is deleted when the index is next opened
//! for writing. Postings live outside sled because sled's log stored them in
//! 2.5-2.9 times their size (measured: 10.1 MB of values took 25.7 MB; with
//! zstd pages 25.4 MB; as blobs 31.5 MB).
//!
//! Key layout (integers big-endian):
//!
//! | key                               | value                                   |
//! |-----------------------------------|-----------------------------------------|
//! | `M` name                          | meta: format, params, digest, counters  |
//! | `T` track_id:u32                  | [`TrackRecord`] as JSON                 |
//! | `F` path bytes                    | track_id:u32                            |
//! | `S` segment:u32                   | track ids of the segment's slots (u32 LE; `u32::MAX` = removed) |
//! | `R` path bytes                    | (empty) a folder given to `ostid index` |
//!
//! A segment (one commit of up to [`SEGMENT_MAX_TRACKS`] tracks) file is:
//! `OSTIDSEG`, format version (u32 LE), bucket count (u32 LE), bucket offsets
//! (`BUCKETS + 1` u32 LE, from the start of the data), then each bucket's
//! postings: varint triples `(low-hash delta, slot, frame)` sorted by low
//! hash, where the bucket is the top [`BUCKET_BITS`] of the hash and the low
//! hash the rest. Removing a track marks its slot removed in the segment
//! table (atomic with the rest); its postings stay in the file, skipped, and
//! a segment with no live slot is deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::hash::{Landmark, HASH_BITS};
use crate::params::Params;

/// Bumped whenever the layout above changes.
pub const FORMAT_VERSION: u32 = 2;
const SEGMENT_MAGIC: &[u8; 8] = b"OSTIDSEG";
const SEGMENT_HEADER: usize = 8 + 4 + 4 + (BUCKETS + 1) * 4;
/// Top bits of a hash that select its bucket.
pub const BUCKET_BITS: u32 = 12;
pub const BUCKETS: usize = 1 << BUCKET_BITS;
/// Bits of a hash below its bucket.
pub const LOW_BITS: u32 = HASH_BITS - BUCKET_BITS;
const LOW_MASK: u32 = (1 << LOW_BITS) - 1;
/// Tracks per segment at most (slots stay one varint byte).
pub const SEGMENT_MAX_TRACKS: usize = 127;
/// Postings per segment before it is committed.
pub const SEGMENT_MAX_POSTINGS: usize = 600_000;
/// sled's page cache.
const CACHE_BYTES: u64 = 48 << 20;

const REMOVED: u32 = u32::MAX;

/// What the index knows of one track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackRecord {
    pub id: u32,
    /// Absolute, normalised path (lossy where the name is not UTF-8).
    pub path: String,
    /// The exact bytes of the path when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    pub size: u64,
    pub mtime_ns: i128,
    pub title: String,
    pub work: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_number: Option<u32>,
    pub duration_s: f64,
    /// Set when only part of the file decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    pub landmarks: u64,
    pub segment: u32,
    pub slot: u32,
    /// Hash of the file's first MiB: with the size, how a moved file is
    /// recognised without decoding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_hash: Option<u64>,
}

impl TrackRecord {
    /// The exact bytes of the track's path: the key of its file record.
    pub fn path_key(&self) -> Vec<u8> {
        self.path_bytes
            .clone()
            .unwrap_or_else(|| self.path.as_bytes().to_vec())
    }

    /// Whether the track's file is still there.
    pub fn file_exists(&self) -> bool {
        use std::os::unix::ffi::OsStrExt;
        Path::new(std::ffi::OsStr::from_bytes(&self.path_key())).exists()
    }
}

/// Counters kept in the index (never recounted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub tracks: u64,
    pub landmarks: u64,
    pub audio_s: f64,
    pub next_track: u32,
    pub next_segment: u32,
}

/// What `verify` looked at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct VerifyCounts {
    pub tracks: u64,
    pub segments: u64,
    pub postings: u64,
}

/// A track ready to be committed.
pub struct NewTrack {
    pub record: TrackRecord,
    pub path_key: Vec<u8>,
    pub landmarks: Vec<Landmark>,
}

/// An open index. Holds the lock until dropped.
pub struct Store {
    db: sled::Db,
    dir: PathBuf,
    segments: Mutex<HashMap<u32, Arc<SegmentFile>>>,
    params: Params,
    counters: Counters,
    _lock: File,
}

/// Read access to the postings files of a snapshot of the index.
pub struct Postings {
    dir: PathBuf,
    files: HashMap<u32, Arc<SegmentFile>>,
}

impl Postings {
    /// The encoded postings of a bucket, one value per segment in `segments`.
    pub fn bucket(
        &self,
        bucket: u16,
        segments: &[u32],
        out: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<()> {
        out.clear();
        for &seg in segments {
            let f = self.files.get(&seg).ok_or_else(|| {
                anyhow!("segment {seg} is not part of this snapshot of the index")
            })?;
            let (a, b) = (f.offsets[bucket as usize], f.offsets[bucket as usize + 1]);
            if a == b {
                continue;
            }
            let mut value = vec![0u8; (b - a) as usize];
            f.file
                .read_exact_at(&mut value, (SEGMENT_HEADER + a as usize) as u64)
                .with_context(|| {
                    format!("cannot read {}", segment_path(&self.dir, seg).display())
                })?;
            out.push((seg, value));
        }
        Ok(())
    }
}

/// The user's default index location.
pub fn default_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("ostid").join("index"))
}

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = b"M".to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn track_key(id: u32) -> [u8; 5] {
    let mut k = [b'T', 0, 0, 0, 0];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn file_key(path_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(path_key.len() + 1);
    k.push(b'F');
    k.extend_from_slice(path_key);
    k
}

fn segment_key(seg: u32) -> [u8; 5] {
    let mut k = [b'S', 0, 0, 0, 0];
    k[1..].copy_from_slice(&seg.to_be_bytes());
    k
}

fn segment_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join("postings").join(format!("seg-{seg:08}.bin"))
}

/// An open segment file and its bucket offsets.
struct SegmentFile {
    file: File,
    offsets: Vec<u32>,
}

impl SegmentFile {
    fn open(path: &Path) -> Result<SegmentFile> {
        let damaged = || {
            anyhow!(
                "postings file {} is missing or damaged; rebuild the index with `ostid index --rebuild DIR...`",
                path.display()
            )
        };
        let file = File::open(path).map_err(|_| damaged())?;
        let mut head = vec![0u8; SEGMENT_HEADER];
        file.read_exact_at(&mut head, 0).map_err(|_| damaged())?;
        let u32_at =
            |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        if &head[..8] != SEGMENT_MAGIC
            || u32_at(8) != FORMAT_VERSION
            || u32_at(12) as usize != BUCKETS
        {
            return Err(damaged());
        }
        let offsets: Vec<u32> = (0..=BUCKETS).map(|b| u32_at(16 + 4 * b)).collect();
        if offsets.windows(2).any(|w| w[0] > w[1]) {
            return Err(damaged());
        }
        Ok(SegmentFile { file, offsets })
    }
}

/// Write a segment file durably: to a temporary name, fsync, rename, fsync the folder.
fn write_segment(dir: &Path, seg: u32, buckets: Vec<Vec<Posting>>) -> Result<PathBuf> {
    let mut data = Vec::new();
    let mut offsets = Vec::with_capacity(BUCKETS + 1);
    for mut postings in buckets {
        offsets.push(data.len() as u32);
        data.extend_from_slice(&encode_postings(&mut postings));
    }
    offsets.push(data.len() as u32);
    let mut bytes = Vec::with_capacity(SEGMENT_HEADER + data.len());
    bytes.extend_from_slice(SEGMENT_MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(BUCKETS as u32).to_le_bytes());
    for o in offsets {
        bytes.extend_from_slice(&o.to_le_bytes());
    }
    bytes.extend_from_slice(&data);
    let folder = dir.join("postings");
    fs::create_dir_all(&folder).with_context(|| format!("cannot create {}", folder.display()))?;
    let path = segment_path(dir, seg);
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        File::open(&folder)?.sync_all()
    };
    write().with_context(|| format!("cannot write {} (disk full?)", path.display()))?;
    Ok(path)
}

/// Split a hash into its bucket and low part.
pub fn split_hash(hash: u32) -> (u16, u32) {
    ((hash >> LOW_BITS) as u16, hash & LOW_MASK)
}

/// One stored posting, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Posting {
    pub low: u32,
    pub slot: u32,
    pub frame: u32,
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *data.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u32).checked_shl(shift)?;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Encode postings (sorted here) into a value.
pub fn encode_postings(postings: &mut [Posting]) -> Vec<u8> {
    postings.sort_unstable();
    let mut out = Vec::with_capacity(postings.len() * 4);
    let mut prev = 0;
    for p in postings.iter() {
        put_varint(&mut out, p.low - prev);
        put_varint(&mut out, p.slot);
        put_varint(&mut out, p.frame);
        prev = p.low;
    }
    out
}

/// Decode a value; `None` if it is malformed.
pub fn decode_postings(data: &[u8], out: &mut Vec<Posting>) -> Option<()> {
    let mut pos = 0;
    let mut low = 0u32;
    while pos < data.len() {
        low = low.checked_add(get_varint(data, &mut pos)?)?;
        let slot = get_varint(data, &mut pos)?;
        let frame = get_varint(data, &mut pos)?;
        out.push(Posting { low, slot, frame });
    }
    Some(())
}

/// How a command wants the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It must exist; nothing is created.
    Read,
    /// Create it if missing (with the given params).
    Write,
}

impl Store {
    /// Open the index at `dir`. `params` are what the caller wants: for a new
    /// index they are recorded; for an existing one, `Some` must agree with
    /// what is recorded (`None` accepts whatever the index has).
    pub fn open(dir: &Path, access: Access, params: Option<&Params>) -> Result<Store> {
        let sled_dir = dir.join("sled");
        let exists = sled_dir.join("conf").exists();
        if !exists && access == Access::Read {
            bail!(
                "no index at {}; create one with `ostid index DIR` (or point --db / OSTID_DB at an existing one)",
                dir.display()
            );
        }
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the index directory {}", dir.display()))?;
        let lock = take_lock(dir)?;
        let db = sled::Config::new()
            .path(&sled_dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(None)
            .open()
            .map_err(|e| {
                anyhow!(
                    "the index at {} will not open ({e}); rebuild it with `ostid index --rebuild DIR...`",
                    dir.display()
                )
            })?;
        let stored_version = db.get(meta_key("format"))?;
        let stored_params = match stored_version {
            None => {
                let p = params.cloned().unwrap_or_default();
                p.validate()
                    .map_err(|e| anyhow!("invalid parameters: {e}"))?;
                let mut batch = sled::Batch::default();
                batch.insert(meta_key("format"), &FORMAT_VERSION.to_be_bytes()[..]);
                batch.insert(meta_key("params"), serde_json::to_vec(&p)?);
                batch.insert(meta_key("digest"), &p.digest().to_be_bytes()[..]);
                batch.insert(
                    meta_key("counters"),
                    serde_json::to_vec(&Counters::default())?,
                );
                db.apply_batch(batch)?;
                db.flush()?;
                p
            }
            Some(v) => {
                let version = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .unwrap_or(0);
                if version != FORMAT_VERSION {
                    bail!(
                        "the index at {} has format version {version}, this ostid reads version {FORMAT_VERSION}; rebuild it with `ostid index --rebuild DIR...`",
                        dir.display()
                    );
                }
                let raw = db
                    .get(meta_key("params"))?
                    .ok_or_else(|| anyhow!("the index at {} has no parameters recorded; rebuild it with `ostid index --rebuild DIR...`", dir.display()))?;
                let stored: Params = serde_json::from_slice(&raw).with_context(|| {
                    format!("the parameters recorded in {} are unreadable; rebuild it with `ostid index --rebuild DIR...`", dir.display())
                })?;
                if let Some(want) = params {
                    if want.digest() != stored.digest() {
                        bail!(
                            "the index at {} was built with preset/parameters '{}' (digest {:016x}), not '{}' (digest {:016x}); drop --preset/--params to use it as it is, or rebuild it with `ostid index --rebuild --preset {} DIR...`",
                            dir.display(),
                            stored.preset,
                            stored.digest(),
                            want.preset,
                            want.digest(),
                            want.preset
                        );
                    }
                }
                stored
            }
        };
        let counters = match db.get(meta_key("counters"))? {
            Some(raw) => serde_json::from_slice(&raw).context("index counters unreadable")?,
            None => Counters::default(),
        };
        if access == Access::Write {
            remove_orphans(&db, dir)?;
        }
        Ok(Store {
            db,
            dir: dir.to_path_buf(),
            segments: Mutex::new(HashMap::new()),
            params: stored_params,
            counters,
            _lock: lock,
        })
    }

    /// Remove an index directory entirely (for `--rebuild`): takes the lock first.
    pub fn destroy(dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let lock = take_lock(dir)?;
        for sub in ["sled", "postings"] {
            let d = dir.join(sub);
            if d.exists() {
                fs::remove_dir_all(&d).with_context(|| format!("cannot remove {}", d.display()))?;
            }
        }
        drop(lock);
        Ok(())
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The record of the track stored for this path key, if any.
    pub fn track_for_path(&self, path_key: &[u8]) -> Result<Option<TrackRecord>> {
        let Some(id) = self.db.get(file_key(path_key))? else {
            return Ok(None);
        };
        let id = <[u8; 4]>::try_from(id.as_ref())
            .map(u32::from_be_bytes)
            .map_err(|_| anyhow!("corrupt file record in the index"))?;
        self.track(id)
    }

    pub fn track(&self, id: u32) -> Result<Option<TrackRecord>> {
        match self.db.get(track_key(id))? {
            None => Ok(None),
            Some(raw) => Ok(Some(
                serde_json::from_slice(&raw).context("corrupt track record in the index")?,
            )),
        }
    }

    /// All track records, by id.
    pub fn tracks(&self) -> Result<Vec<TrackRecord>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(b"T") {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).context("corrupt track record in the index")?);
        }
        Ok(out)
    }

    /// Track ids of every segment's slots.
    pub fn segment_tables(&self) -> Result<BTreeMap<u32, Vec<u32>>> {
        let mut out = BTreeMap::new();
        for item in self.db.scan_prefix(b"S") {
            let (k, v) = item?;
            let seg = u32::from_be_bytes(
                k[1..5]
                    .try_into()
                    .map_err(|_| anyhow!("corrupt segment key"))?,
            );
            out.insert(seg, decode_u32s(&v));
        }
        Ok(out)
    }

    fn segment_file(&self, seg: u32) -> Result<Arc<SegmentFile>> {
        let mut open = self
            .segments
            .lock()
            .map_err(|_| anyhow!("segment table poisoned"))?;
        if let Some(f) = open.get(&seg) {
            return Ok(f.clone());
        }
        let f = Arc::new(SegmentFile::open(&segment_path(&self.dir, seg))?);
        open.insert(seg, f.clone());
        Ok(f)
    }

    /// The postings files of every segment, opened now: reads through them
    /// keep working after this store (and its lock) is dropped, even if a
    /// writer later deletes a file (the open handle keeps it alive).
    pub fn postings(&self) -> Result<Postings> {
        let mut files = HashMap::new();
        for seg in self.segment_tables()?.into_keys() {
            files.insert(seg, self.segment_file(seg)?);
        }
        Ok(Postings {
            dir: self.dir.clone(),
            files,
        })
    }

    /// Commit a group of new tracks as one segment, removing the tracks they
    /// replace, all in one atomic batch, then flush to disk.
    pub fn commit(&mut self, tracks: Vec<NewTrack>, replaced: &[u32]) -> Result<Vec<u32>> {
        let mut counters = self.counters;
        let mut batch = sled::Batch::default();
        let emptied = self.remove_into(replaced, &mut batch, &mut counters)?;
        let mut ids = Vec::with_capacity(tracks.len());
        if !tracks.is_empty() {
            let seg = counters.next_segment;
            counters.next_segment += 1;
            let mut buckets: Vec<Vec<Posting>> = vec![Vec::new(); BUCKETS];
            let mut table = Vec::with_capacity(tracks.len());
            for (slot, t) in tracks.into_iter().enumerate() {
                let id = counters.next_track;
                counters.next_track += 1;
                for l in &t.landmarks {
                    let (b, low) = split_hash(l.hash);
                    buckets[b as usize].push(Posting {
                        low,
                        slot: slot as u32,
                        frame: l.frame,
                    });
                }
                let mut rec = t.record;
                rec.id = id;
                rec.segment = seg;
                rec.slot = slot as u32;
                rec.landmarks = t.landmarks.len() as u64;
                counters.tracks += 1;
                counters.landmarks += rec.landmarks;
                counters.audio_s += rec.duration_s;
                batch.insert(&track_key(id)[..], serde_json::to_vec(&rec)?);
                batch.insert(file_key(&t.path_key), &id.to_be_bytes()[..]);
                table.push(id);
                ids.push(id);
            }
            // The file first: a crash before the batch leaves an orphan that
            // the next writer deletes; the batch is the commit point.
            write_segment(&self.dir, seg, buckets)?;
            batch.insert(&segment_key(seg)[..], encode_u32s(&table));
        }
        batch.insert(meta_key("counters"), serde_json::to_vec(&counters)?);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        self.counters = counters;
        for seg in emptied {
            if let Ok(mut open) = self.segments.lock() {
                open.remove(&seg);
            }
            // Unreferenced now; if this fails, the next writer removes it.
            let _ = fs::remove_file(segment_path(&self.dir, seg));
        }
        Ok(ids)
    }

    /// Add the removal of tracks to `batch`; returns segments left with no
    /// live track (their files are deleted after the commit).
    fn remove_into(
        &self,
        ids: &[u32],
        batch: &mut sled::Batch,
        counters: &mut Counters,
    ) -> Result<Vec<u32>> {
        let mut by_segment: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for &id in ids {
            let Some(rec) = self.track(id)? else { continue };
            by_segment.entry(rec.segment).or_default().insert(rec.slot);
            batch.remove(&track_key(id)[..]);
            let path_key = rec.path_key();
            // Only drop the file record if it still points at this track.
            if let Some(cur) = self.db.get(file_key(&path_key))? {
                if cur.as_ref() == id.to_be_bytes() {
                    batch.remove(file_key(&path_key));
                }
            }
            counters.tracks = counters.tracks.saturating_sub(1);
            counters.landmarks = counters.landmarks.saturating_sub(rec.landmarks);
            counters.audio_s = (counters.audio_s - rec.duration_s).max(0.0);
        }
        let mut emptied = Vec::new();
        for (seg, slots) in by_segment {
            let mut table = match self.db.get(segment_key(seg))? {
                Some(v) => decode_u32s(&v),
                None => continue,
            };
            for &s in &slots {
                if let Some(t) = table.get_mut(s as usize) {
                    *t = REMOVED;
                }
            }
            if table.iter().all(|&t| t == REMOVED) {
                batch.remove(&segment_key(seg)[..]);
                emptied.push(seg);
            } else {
                batch.insert(&segment_key(seg)[..], encode_u32s(&table));
            }
        }
        Ok(emptied)
    }

    /// Remove tracks (postings, records and file records) in one atomic
    /// commit.
    pub fn remove(&mut self, ids: &[u32]) -> Result<()> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        self.commit(Vec::new(), &ids).map(|_| ())
    }

    /// A track's file moved: point the track and a new file record at the
    /// new path, drop the old file record, in one atomic batch.
    pub fn relink(&mut self, mut rec: TrackRecord, old_key: &[u8], new_key: &[u8]) -> Result<()> {
        let mut batch = sled::Batch::default();
        if let Some(cur) = self.db.get(file_key(old_key))? {
            if cur.as_ref() == rec.id.to_be_bytes() {
                batch.remove(file_key(old_key));
            }
        }
        batch.insert(file_key(new_key), &rec.id.to_be_bytes()[..]);
        rec.path_bytes = std::str::from_utf8(new_key)
            .is_err()
            .then(|| new_key.to_vec());
        batch.insert(&track_key(rec.id)[..], serde_json::to_vec(&rec)?);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Remember folders given to `ostid index` (for `prune`'s unmounted-drive check).
    pub fn add_roots(&self, roots: &[Vec<u8>]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for r in roots {
            let mut k = b"R".to_vec();
            k.extend_from_slice(r);
            batch.insert(k, &[][..]);
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Folders given to `ostid index`, as path bytes.
    pub fn roots(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(b"R") {
            let (k, _) = item?;
            out.push(k[1..].to_vec());
        }
        Ok(out)
    }

    /// Check the index's internal consistency: track records, segment
    /// tables, postings files (every posting decoded, counted per track),
    /// file records and counters. Returns what is wrong, and what was checked.
    pub fn verify(&self) -> Result<(Vec<String>, VerifyCounts)> {
        let mut problems = Vec::new();
        let tracks = self.tracks()?;
        let tables = self.segment_tables()?;
        let by_id: HashMap<u32, &TrackRecord> = tracks.iter().map(|t| (t.id, t)).collect();
        for t in &tracks {
            match tables.get(&t.segment) {
                None => problems.push(format!(
                    "track {} ({}) points at segment {}, which does not exist",
                    t.id, t.path, t.segment
                )),
                Some(tab) if tab.get(t.slot as usize) != Some(&t.id) => problems.push(format!(
                    "track {} ({}) is not in slot {} of segment {}",
                    t.id, t.path, t.slot, t.segment
                )),
                _ => {}
            }
        }
        let mut postings_checked = 0u64;
        let mut decoded: Vec<Posting> = Vec::new();
        for (&seg, tab) in &tables {
            for (slot, &id) in tab.iter().enumerate() {
                if !is_removed(id) && !by_id.contains_key(&id) {
                    problems.push(format!(
                        "segment {seg} slot {slot} names track {id}, which has no record"
                    ));
                }
            }
            let path = segment_path(&self.dir, seg);
            let f = match SegmentFile::open(&path) {
                Ok(f) => f,
                Err(e) => {
                    problems.push(format!("{e:#}"));
                    continue;
                }
            };
            let mut per_slot = vec![0u64; tab.len()];
            let mut value = Vec::new();
            for b in 0..BUCKETS {
                let (lo, hi) = (f.offsets[b], f.offsets[b + 1]);
                value.resize((hi - lo) as usize, 0);
                decoded.clear();
                let ok = f
                    .file
                    .read_exact_at(&mut value, (SEGMENT_HEADER + lo as usize) as u64)
                    .is_ok()
                    && decode_postings(&value, &mut decoded).is_some();
                if !ok {
                    problems.push(format!(
                        "postings file {} is damaged (bucket {b}); rebuild the index with `ostid index --rebuild DIR...`",
                        path.display()
                    ));
                    break;
                }
                for p in &decoded {
                    match per_slot.get_mut(p.slot as usize) {
                        Some(n) => *n += 1,
                        None => {
                            problems.push(format!(
                                "postings file {} has a posting for slot {}, past its {} tracks",
                                path.display(),
                                p.slot,
                                tab.len()
                            ));
                            break;
                        }
                    }
                }
                postings_checked += decoded.len() as u64;
            }
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
        let mut file_records = 0u64;
        for item in self.db.scan_prefix(b"F") {
            let (k, v) = item?;
            file_records += 1;
            let id = v
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| anyhow!("corrupt file record"))?;
            match by_id.get(&id) {
                None => problems.push(format!(
                    "the file record of {} names track {id}, which has no record",
                    String::from_utf8_lossy(&k[1..])
                )),
                Some(t) => {
                    if t.path_key() != k[1..] {
                        problems.push(format!(
                            "the file record of {} names track {id}, which is {}",
                            String::from_utf8_lossy(&k[1..]),
                            t.path
                        ));
                    }
                }
            }
        }
        if file_records != tracks.len() as u64 {
            problems.push(format!(
                "{} file records for {} tracks",
                file_records,
                tracks.len()
            ));
        }
        let c = self.counters;
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
        Ok((
            problems,
            VerifyCounts {
                tracks: tracks.len() as u64,
                segments: tables.len() as u64,
                postings: postings_checked,
            },
        ))
    }

    /// The counters kept in the index.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Bytes the index takes on disk (every file under its directory).
    pub fn disk_bytes(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(entries) = fs::read_dir(p) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path()),
                    Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir)
    }

    /// Flush everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.db.flush();
    }
}

/// Delete segment files no segment table references (left by a crash
/// between writing the file and committing its batch) and temporary files.
fn remove_orphans(db: &sled::Db, dir: &Path) -> Result<()> {
    let folder = dir.join("postings");
    let Ok(entries) = fs::read_dir(&folder) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let referenced = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".bin"))
            .and_then(|n| n.parse::<u32>().ok())
            .map(|seg| db.contains_key(segment_key(seg)))
            .transpose()?
            .unwrap_or(false);
        if !referenced {
            fs::remove_file(entry.path()).with_context(|| {
                format!("cannot remove the stray file {}", entry.path().display())
            })?;
        }
    }
    Ok(())
}

fn encode_u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_u32s(v: &[u8]) -> Vec<u32> {
    v.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Is this slot's track removed?
pub fn is_removed(id: u32) -> bool {
    id == REMOVED
}

/// Take the index's lock file, or say who holds it.
fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim().replace('\n', " ");
            let holder = if holder.is_empty() {
                "another process".to_string()
            } else {
                holder
            };
            bail!(
                "the index at {} is in use by {holder}; wait for it to finish (or stop it) and try again",
                dir.display()
            );
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    let cmd: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    file.set_len(0)?;
    let mut w = &file;
    writeln!(w, "pid {} ({})", std::process::id(), cmd.join(" "))
        .and_then(|_| w.flush())
        .map_err(|e: io::Error| anyhow!("cannot write the lock file {}: {e}", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_round_trip() {
        let mut ps: Vec<Posting> = (0..500u32)
            .map(|i| Posting {
                low: (i * 7919) & LOW_MASK,
                slot: i % 127,
                frame: i * 37 % 100_000,
            })
            .collect();
        let enc = encode_postings(&mut ps);
        let mut dec = Vec::new();
        decode_postings(&enc, &mut dec).unwrap();
        assert_eq!(dec, ps);
        assert!(enc.len() < ps.len() * 6);
        // Malformed input is rejected, not a panic.
        let mut junk = Vec::new();
        assert!(decode_postings(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], &mut junk).is_none());
    }

    #[test]
    fn split_hash_covers_all_bits() {
        let (b, low) = split_hash(crate::hash::HASH_MASK);
        assert_eq!(b as usize, BUCKETS - 1);
        assert_eq!(low, LOW_MASK);
    }
}
