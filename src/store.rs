//! The index on disk: a sled catalogue and postings files in one directory,
//! guarded by a lock file.
//!
//! Owns: the key layout, the format version and the parameter digest, the
//! lock, atomic commits, and which postings files make up the index (merging
//! them as it grows). Does not own: the postings files' layout
//! ([`crate::segment`]), deciding what to index (`cmd::index`), how votes
//! are counted (`matcher`) or checking the whole (`verify`).
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
//! | `D` segment:u32                   | durations of the segment's slots, seconds (f64 LE): what a query needs of every track |
//! | `R` path bytes                    | (empty) a folder given to `ostid index` |
//!
//! A query needs the duration of every track (the offsets chance spreads
//! its votes over) and the full record only of the tracks it names: the `D`
//! tables give the first in one read per segment, where reading every
//! record took ~0.5 s of a known clip's 1.44 s at 10,000 h (and peak RSS
//! fell from 437 to 271 MB without them). Indexes written before the
//! `D` tables get them from the records when next opened for writing, and
//! are read from the records until then.
//!
//! Removing a track marks its slot removed in the segment table (atomic with
//! the rest); its postings stay in the file, skipped, until a merge drops
//! them, and a segment with no live slot is deleted.
//!
//! Merges keep a lookup to a few reads however the index grows: segments
//! are sorted into levels by size (each level [`MERGE_FAN_IN`] times the
//! one below), and when a level holds [`MERGE_FAN_IN`] segments they become
//! one of the next. A merge is a commit like any other: the new file is
//! written and fsynced, then one batch writes its segment and duration
//! tables and drops the old segments' tables, then the old files are
//! deleted. Track records do not say where a track is (the tables do), so
//! a merge rewrites none of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::hash::Landmark;
use crate::params::Params;
use crate::segment::{self, Segment};
use crate::view::{self, View};

/// Bumped whenever the layout above (or a segment file's) changes.
/// Version 4: track records no longer say which segment and slot hold the
/// track (the segment tables do); version 3 records still carry those
/// fields, which this build ignores. Version 5: the directory may hold a
/// query view ([`crate::view`]), which a writer deletes before it changes
/// anything; a version-4 build would leave it stale, so it must refuse.
pub const FORMAT_VERSION: u32 = 5;
/// The oldest format this build reads. Opening one for writing marks it
/// [`FORMAT_VERSION`] first, so that an older build, which would trust the
/// stale fields, refuses it rather than remove the wrong slots.
pub const OLDEST_READABLE: u32 = 3;
/// Tracks per commit at most.
pub const SEGMENT_MAX_TRACKS: usize = 127;
/// Postings per commit before it is made.
pub const SEGMENT_MAX_POSTINGS: usize = 600_000;
/// A level of segments holds this many before they are merged into one.
pub const MERGE_FAN_IN: usize = 4;
/// sled's page cache.
const CACHE_BYTES: u64 = 48 << 20;
/// sled's file written afresh is about this many times the keys and
/// values it holds (measured: 3.8 at 1,000 h simulated, 12,504 tracks,
/// 4.9 MB of them; 2.3 at 10,000 h, 49 MB): with [`CATALOGUE_SLACK`],
/// a fresh copy is not rewritten again.
pub const CATALOGUE_OVERHEAD: u64 = 3;
/// Bytes of emptied segments a catalogue may hold before `ostid index`
/// rewrites it ([`Store::shrink_catalogue`]): sled was seen zeroing and
/// syncing all of them on each open (the compacted 10,000 h index: 145
/// MB, ~90 ms), though not always (the same library as indexed: 10
/// writes an open).
pub const CATALOGUE_SLACK: u64 = 32 << 20;

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
    segments: Mutex<HashMap<u32, Arc<Segment>>>,
    params: Params,
    /// The format the index is in (older than [`FORMAT_VERSION`] only when
    /// opened for reading).
    format: u32,
    counters: Counters,
    merge_failpoint: Option<MergeStep>,
    /// Opened to write: the query view was deleted as it opened, and is
    /// written afresh when the store is dropped (even if nothing changed).
    access: Access,
    _lock: File,
}

/// One segment of a snapshot of the index: its file and the track of each slot.
pub struct Part {
    pub id: u32,
    pub file: Arc<Segment>,
    /// Track ids by slot (`u32::MAX`: removed, see [`is_removed`]).
    pub tracks: Vec<u32>,
    /// Durations by slot, seconds (0 where removed).
    pub durations_s: Vec<f64>,
}

/// Points of a merge where crash tests stop the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeStep {
    /// The merged file is on disk; nothing points at it yet.
    Written,
    /// The catalogue points at the merged file; the old files are still there.
    Committed,
    /// A catalogue rewrite (`compact`, or `index` shrinking it): a fresh
    /// copy is complete beside the old.
    CatalogueWritten,
    /// A catalogue rewrite: the old catalogue is moved aside; the copy is
    /// not yet in its place.
    CatalogueSwapped,
}

/// Where [`Store::rewrite_catalogue`] writes the fresh catalogue, and
/// where the old one waits to be deleted once the fresh one is in place.
const SLED_NEW: &str = "sled.new";
const SLED_OLD: &str = "sled.old";
/// Written in [`SLED_NEW`] once it holds the whole catalogue, synced.
const SLED_COMPLETE: &str = "ostid-complete";

/// The catalogue's sled configuration at `path`.
fn sled_config(path: &Path) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(CACHE_BYTES)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(None)
}

/// Open the catalogue of `config`, under the index's own lock: a sled
/// lock still held is then this process's own, a catalogue just closed
/// whose writer threads have not yet let go of its file (sled's handle
/// returns before they do). Waited for, up to a second.
fn open_catalogue(config: &sled::Config) -> sled::Result<sled::Db> {
    let mut tries = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if tries < 100 && e.to_string().contains("could not acquire lock") =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

/// Finish or undo a catalogue rewrite that a crash interrupted (called
/// under the lock, before the catalogue is opened): a complete copy takes
/// the place of an old catalogue already moved aside; otherwise the old
/// catalogue stands and whatever the rewrite left is deleted.
fn recover_catalogue(dir: &Path) -> Result<()> {
    let (cur, new, old) = (dir.join("sled"), dir.join(SLED_NEW), dir.join(SLED_OLD));
    let context = || format!("cannot finish rewriting the catalogue in {}", dir.display());
    if !cur.exists() && new.join(SLED_COMPLETE).exists() {
        fs::rename(&new, &cur).with_context(context)?;
        sync_dir(dir).with_context(context)?;
    }
    let _ = fs::remove_file(cur.join(SLED_COMPLETE));
    for stale in [new, old] {
        if stale.exists() {
            fs::remove_dir_all(&stale).with_context(context)?;
        }
    }
    Ok(())
}

/// Make a directory's entries (renames, new files) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The user's default index location.
pub fn default_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("ostid").join("index"))
}

/// The parameters an index records. A field this build does not know was
/// written by a newer one (parameters only ever gain fields): that says so,
/// rather than that the index is damaged.
fn read_params(raw: &[u8], dir: &Path) -> Result<Params> {
    serde_json::from_slice(raw).map_err(|e| {
        let msg = e.to_string();
        match msg
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) => anyhow!(
                "the index at {} records parameter `{field}`, unknown to this ostid ({}): it was written by a newer one; use that ostid, or rebuild the index with this one (`ostid index --rebuild DIR...`)",
                dir.display(),
                env!("CARGO_PKG_VERSION")
            ),
            None => anyhow!(
                "the parameters recorded in {} are unreadable ({msg}); rebuild it with `ostid index --rebuild DIR...`",
                dir.display()
            ),
        }
    })
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

fn durations_key(seg: u32) -> [u8; 5] {
    let mut k = [b'D', 0, 0, 0, 0];
    k[1..].copy_from_slice(&seg.to_be_bytes());
    k
}

fn segment_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join("postings").join(format!("seg-{seg:08}.bin"))
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
        // A rewrite cut off between its renames leaves the catalogue in
        // SLED_NEW (put back in place below, under the lock).
        let exists =
            sled_dir.join("conf").exists() || dir.join(SLED_NEW).join(SLED_COMPLETE).exists();
        if !exists && access == Access::Read {
            bail!(
                "no index at {}; create one with `ostid index DIR` (or point --db / OSTID_DB at an existing one)",
                dir.display()
            );
        }
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the index directory {}", dir.display()))?;
        let lock = take_lock(dir, false)?;
        // A writer, once it is sure to open: before anything changes, no
        // view may say what the catalogue will no longer say (a crash from
        // here on leaves none; one refused keeps it).
        let unview = || {
            view::remove(dir).with_context(|| {
                format!("cannot remove the query view {}", view::path(dir).display())
            })
        };
        recover_catalogue(dir)?;
        let db = open_catalogue(&sled_config(&sled_dir))
            .map_err(|e| {
                anyhow!(
                    "the index at {} will not open ({e}); rebuild it with `ostid index --rebuild DIR...`",
                    dir.display()
                )
            })?;
        let stored_version = db.get(meta_key("format"))?;
        let mut format = FORMAT_VERSION;
        let stored_params = match stored_version {
            None => {
                let p = params.cloned().unwrap_or_default();
                p.validate()
                    .map_err(|e| anyhow!("invalid parameters: {e}"))?;
                unview()?;
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
                if version > FORMAT_VERSION {
                    bail!(
                        "the index at {} has format version {version}, written by a newer ostid (this one, {}, reads version {FORMAT_VERSION}); use that ostid, or rebuild the index with this one (`ostid index --rebuild DIR...`)",
                        dir.display(),
                        env!("CARGO_PKG_VERSION")
                    );
                }
                if version < OLDEST_READABLE {
                    bail!(
                        "the index at {} has format version {version}, this ostid reads versions {OLDEST_READABLE} to {FORMAT_VERSION}; rebuild it with `ostid index --rebuild DIR...`",
                        dir.display()
                    );
                }
                let raw = db
                    .get(meta_key("params"))?
                    .ok_or_else(|| anyhow!("the index at {} has no parameters recorded; rebuild it with `ostid index --rebuild DIR...`", dir.display()))?;
                let stored = read_params(&raw, dir)?;
                check_params(dir, &stored, params)?;
                if access == Access::Write {
                    unview()?;
                }
                if version < FORMAT_VERSION && access == Access::Write {
                    db.insert(meta_key("format"), &FORMAT_VERSION.to_be_bytes()[..])?;
                    db.flush()?;
                } else {
                    format = version;
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
            add_duration_tables(&db)?;
        }
        Ok(Store {
            db,
            dir: dir.to_path_buf(),
            segments: Mutex::new(HashMap::new()),
            params: stored_params,
            format,
            counters,
            merge_failpoint: None,
            access,
            _lock: lock,
        })
    }

    /// What a query needs of the index at `dir`, from its query view
    /// ([`crate::view`]) without opening the catalogue: the view and every
    /// segment's file and tables. The lock is held (shared, so queries run
    /// side by side) only while they are opened: the files stay readable
    /// after a writer replaces them. `params` as in [`Store::open`].
    pub fn open_view(dir: &Path, params: Option<&Params>) -> Result<Viewed> {
        if !view::path(dir).exists() {
            return Ok(Viewed::None);
        }
        let lock = take_lock(dir, true)?;
        let v = match View::open(dir) {
            Ok(Some(v)) => v,
            Ok(None) => return Ok(Viewed::None),
            Err(e) => return Ok(Viewed::Damaged(e)),
        };
        if v.format_version() != FORMAT_VERSION {
            // Not written by this build: the catalogue decides.
            return Ok(Viewed::None);
        }
        check_params(dir, v.params(), params)?;
        let parts = v
            .tables()
            .iter()
            .map(|t| {
                Ok(Part {
                    id: t.segment,
                    file: Arc::new(Segment::open(&segment_path(dir, t.segment))?),
                    tracks: t.tracks.clone(),
                    durations_s: t.durations_s.clone(),
                })
            })
            .collect::<Result<Vec<Part>>>()?;
        drop(lock);
        Ok(Viewed::View(Box::new(v), parts))
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every segment's slot table as a query view holds it (durations
    /// from the records where an index predates the `D` tables).
    pub fn view_tables(&self) -> Result<Vec<view::Table>> {
        let mut durations = self.duration_tables()?;
        self.segment_tables()?
            .into_iter()
            .map(|(segment, tracks)| {
                let durations_s = match durations.remove(&segment) {
                    Some(d) if d.len() == tracks.len() => d,
                    _ => durations_from_records(&self.db, &tracks)?,
                };
                Ok(view::Table {
                    segment,
                    tracks,
                    durations_s,
                })
            })
            .collect()
    }

    /// Write the query view of the catalogue as it is now.
    pub fn write_view(&self) -> Result<()> {
        let tables = self.view_tables()?;
        let records = self.tracks()?;
        view::write(
            &self.dir,
            &view::Contents {
                format: self.format,
                params: &self.params,
                tables: &tables,
                records: &records,
            },
        )
    }

    /// Remove an index directory entirely (for `--rebuild`): takes the lock first.
    pub fn destroy(dir: &Path) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let lock = take_lock(dir, false)?;
        view::remove(dir)
            .with_context(|| format!("cannot remove {}", view::path(dir).display()))?;
        // With what a cut-off catalogue rewrite left, which the next open
        // would otherwise put back.
        for sub in ["sled", SLED_NEW, SLED_OLD, "postings"] {
            let d = dir.join(sub);
            if d.exists() {
                fs::remove_dir_all(&d).with_context(|| format!("cannot remove {}", d.display()))?;
            }
        }
        drop(lock);
        Ok(())
    }

    /// The index's format version.
    pub fn format_version(&self) -> u32 {
        self.format
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
        per_segment(&self.db, b'S', decode_u32s)
    }

    fn segment_file(&self, seg: u32) -> Result<Arc<Segment>> {
        let mut open = self
            .segments
            .lock()
            .map_err(|_| anyhow!("segment table poisoned"))?;
        if let Some(f) = open.get(&seg) {
            return Ok(f.clone());
        }
        let f = Arc::new(Segment::open(&segment_path(&self.dir, seg))?);
        open.insert(seg, f.clone());
        Ok(f)
    }

    /// Every segment, its file opened (mapped) now, with its slots' tracks:
    /// reads through them keep working after this store (and its lock) is
    /// dropped, even if a writer later merges or deletes the file (the
    /// mapping keeps it alive).
    pub fn parts(&self) -> Result<Vec<Part>> {
        self.view_tables()?
            .into_iter()
            .map(|t| {
                Ok(Part {
                    id: t.segment,
                    file: self.segment_file(t.segment)?,
                    tracks: t.tracks,
                    durations_s: t.durations_s,
                })
            })
            .collect()
    }

    /// Durations of every segment's slots, as the `D` tables hold them.
    pub fn duration_tables(&self) -> Result<BTreeMap<u32, Vec<f64>>> {
        per_segment(&self.db, b'D', decode_f64s)
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
            let mut table = Vec::with_capacity(tracks.len());
            let mut durations = Vec::with_capacity(tracks.len());
            let mut landmarks: Vec<Vec<Landmark>> = Vec::with_capacity(tracks.len());
            for t in tracks {
                let id = counters.next_track;
                counters.next_track += 1;
                let mut rec = t.record;
                rec.id = id;
                rec.landmarks = t.landmarks.len() as u64;
                counters.tracks += 1;
                counters.landmarks += rec.landmarks;
                counters.audio_s += rec.duration_s;
                batch.insert(&track_key(id)[..], serde_json::to_vec(&rec)?);
                batch.insert(file_key(&t.path_key), &id.to_be_bytes()[..]);
                table.push(id);
                durations.push(rec.duration_s);
                ids.push(id);
                landmarks.push(t.landmarks);
            }
            // The file first: a crash before the batch leaves an orphan that
            // the next writer deletes; the batch is the commit point.
            let refs: Vec<&[Landmark]> = landmarks.iter().map(|l| &l[..]).collect();
            segment::write(&segment_path(&self.dir, seg), &refs)?;
            batch.insert(&segment_key(seg)[..], encode_u32s(&table));
            batch.insert(&durations_key(seg)[..], encode_f64s(&durations));
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
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Where each track is: the segment tables say (records do not keep
        // it, so that a merge rewrites only the tables).
        let wanted: BTreeSet<u32> = ids.iter().copied().collect();
        let mut by_segment: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        let mut tables = self.segment_tables()?;
        for (&seg, table) in &tables {
            for (slot, id) in table.iter().enumerate() {
                if !is_removed(*id) && wanted.contains(id) {
                    by_segment.entry(seg).or_default().push(slot as u32);
                }
            }
        }
        for &id in &wanted {
            let Some(rec) = self.track(id)? else { continue };
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
            let Some(mut table) = tables.remove(&seg) else {
                continue;
            };
            for &s in &slots {
                if let Some(t) = table.get_mut(s as usize) {
                    *t = REMOVED;
                }
            }
            if table.iter().all(|&t| t == REMOVED) {
                batch.remove(&segment_key(seg)[..]);
                batch.remove(&durations_key(seg)[..]);
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

    /// Every file record: (path bytes, track id).
    pub fn file_records(&self) -> Result<Vec<(Vec<u8>, u32)>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(b"F") {
            let (k, v) = item?;
            let id = v
                .as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| anyhow!("corrupt file record"))?;
            out.push((k[1..].to_vec(), id));
        }
        Ok(out)
    }

    /// Where segment `seg`'s postings file lives.
    pub fn segment_path(&self, seg: u32) -> PathBuf {
        segment_path(&self.dir, seg)
    }

    /// Stop the process at `step` of the next merge, as a crash would (tests).
    pub fn set_merge_failpoint(&mut self, step: Option<MergeStep>) {
        self.merge_failpoint = step;
    }

    /// Merge segments while a level is full (see the module doc). Returns
    /// how many merges were made.
    pub fn tidy(&mut self) -> Result<usize> {
        let mut merges = 0;
        loop {
            let mut by_level: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
            for seg in self.segment_tables()?.into_keys() {
                let n = self.segment_file(seg)?.postings();
                by_level.entry(level(n)).or_default().push((seg, n));
            }
            let due = by_level.into_values().find(|segs| {
                segs.len() >= MERGE_FAN_IN
                    && segs.iter().map(|s| s.1).sum::<u64>() <= segment::MAX_POSTINGS
            });
            let Some(segs) = due else {
                return Ok(merges);
            };
            let ids: Vec<u32> = segs.iter().map(|s| s.0).collect();
            self.merge(&ids)?;
            merges += 1;
        }
    }

    /// Merge the segments whose files are small (up to
    /// [`segment::READ_LOOKUPS_ABOVE`] bytes, the mapped ones) into one,
    /// when there are two or more: `ostid index` does so when a run ends,
    /// as every lookup reads every file (a simulated 40 h index as the
    /// levels leave it, 6 files: 212 ms for an unknown clip; as one: 85
    /// ms). A run rewrites at most that many bytes for it. Returns whether
    /// it merged.
    pub fn gather_small(&mut self) -> Result<bool> {
        let mut small = Vec::new();
        let mut postings = 0;
        for seg in self.segment_tables()?.into_keys() {
            let file = self.segment_file(seg)?;
            if file.bytes() <= segment::READ_LOOKUPS_ABOVE {
                small.push(seg);
                postings += file.postings();
            }
        }
        if small.len() < 2 || postings > segment::MAX_POSTINGS {
            return Ok(false);
        }
        self.merge(&small)?;
        Ok(true)
    }

    /// Merge every segment into as few as a file holds, dropping the
    /// postings of removed tracks: (segments before, segments after).
    pub fn compact(&mut self) -> Result<(usize, usize)> {
        let tables = self.segment_tables()?;
        let mut groups: Vec<Vec<u32>> = Vec::new();
        let mut size = 0u64;
        for &seg in tables.keys() {
            let n = self.segment_file(seg)?.postings();
            match groups.last_mut() {
                Some(g) if size + n <= segment::MAX_POSTINGS => g.push(seg),
                _ => {
                    groups.push(vec![seg]);
                    size = 0;
                }
            }
            size += n;
        }
        for g in groups {
            let holes = g.iter().any(|s| {
                tables
                    .get(s)
                    .is_some_and(|t| t.iter().any(|&id| is_removed(id)))
            });
            if g.len() > 1 || holes {
                self.merge(&g)?;
            }
        }
        self.rewrite_catalogue()?;
        Ok((tables.len(), self.segment_tables()?.len()))
    }

    /// Write the catalogue afresh and put the copy in its place. sled never
    /// gives back segments of its file that it has emptied, and was seen
    /// zeroing every one of them, then syncing, each time it opened the
    /// compacted 10,000 h simulated index (277 segments of 512 KB, ~90 ms
    /// of every `ostid match`; not the same library as indexed). Crash-safe:
    /// the copy is written and synced beside the catalogue before renames
    /// swap the two, and [`Store::open`] finishes or undoes a swap that was
    /// cut off.
    pub fn rewrite_catalogue(&mut self) -> Result<()> {
        let dir = self.dir.clone();
        let (cur, new, old) = (dir.join("sled"), dir.join(SLED_NEW), dir.join(SLED_OLD));
        let context = || {
            format!(
                "cannot rewrite the catalogue of the index at {}",
                dir.display()
            )
        };
        if new.exists() {
            fs::remove_dir_all(&new).with_context(context)?;
        }
        self.db.flush()?;
        {
            let fresh = open_catalogue(&sled_config(&new)).with_context(context)?;
            let mut batch = sled::Batch::default();
            for (n, kv) in self.db.iter().enumerate() {
                let (k, v) = kv?;
                batch.insert(k, v);
                if n % 4096 == 4095 {
                    fresh.apply_batch(std::mem::take(&mut batch))?;
                }
            }
            fresh.apply_batch(batch)?;
            fresh.flush()?;
        }
        File::create(new.join(SLED_COMPLETE))
            .and_then(|f| f.sync_all())
            .and_then(|_| sync_dir(&new))
            .and_then(|_| sync_dir(&dir))
            .with_context(context)?;
        self.failpoint(MergeStep::CatalogueWritten);
        fs::rename(&cur, &old)
            .and_then(|_| sync_dir(&dir))
            .with_context(context)?;
        self.failpoint(MergeStep::CatalogueSwapped);
        fs::rename(&new, &cur)
            .and_then(|_| sync_dir(&dir))
            .with_context(context)?;
        // The copy just closed above: its writer threads may still hold it.
        let fresh = open_catalogue(&sled_config(&cur)).with_context(context)?;
        drop(std::mem::replace(&mut self.db, fresh));
        let _ = fs::remove_file(cur.join(SLED_COMPLETE));
        fs::remove_dir_all(&old).with_context(context)?;
        Ok(())
    }

    /// Bytes of the catalogue's file, and of the keys and values it holds.
    pub fn catalogue_bytes(&self) -> Result<(u64, u64)> {
        let on_disk = self.db.size_on_disk()?;
        let mut data = 0u64;
        for kv in self.db.iter() {
            let (k, v) = kv?;
            data += (k.len() + v.len()) as u64;
        }
        Ok((on_disk, data))
    }

    /// [`Store::rewrite_catalogue`] when sled's file holds more than
    /// `slack` bytes beyond what a fresh copy would take
    /// ([`CATALOGUE_OVERHEAD`] times its keys and values): what `ostid
    /// index` does when a run has merged segments (sled keeps the
    /// segments of its file that rewritten values empty; merges made
    /// before format 4 rewrote every moved track's record). Returns
    /// whether it rewrote.
    pub fn shrink_catalogue(&mut self, slack: u64) -> Result<bool> {
        if self.db.size_on_disk()? <= slack {
            return Ok(false);
        }
        let (on_disk, data) = self.catalogue_bytes()?;
        if on_disk <= CATALOGUE_OVERHEAD * data + slack {
            return Ok(false);
        }
        self.rewrite_catalogue()?;
        Ok(true)
    }

    /// Merge segments into one (their live tracks, in segment then slot
    /// order), as one atomic commit.
    pub fn merge(&mut self, segs: &[u32]) -> Result<u32> {
        let tables = self.segment_tables()?;
        let mut files = Vec::with_capacity(segs.len());
        let mut keep = Vec::with_capacity(segs.len());
        let mut table = Vec::new();
        for seg in segs {
            let t = tables
                .get(seg)
                .ok_or_else(|| anyhow!("segment {seg} is not in the index"))?;
            files.push(self.segment_file(*seg)?);
            keep.push(t.iter().map(|&id| !is_removed(id)).collect::<Vec<bool>>());
            table.extend(t.iter().copied().filter(|&id| !is_removed(id)));
        }
        let mut counters = self.counters;
        let new = counters.next_segment;
        counters.next_segment += 1;
        let inputs: Vec<&Segment> = files.iter().map(|f| f.as_ref()).collect();
        segment::merge(&segment_path(&self.dir, new), &inputs, &keep)?;
        self.failpoint(MergeStep::Written);
        // The batch is the tables alone: track records do not say where a
        // track is, so none is rewritten (rewriting all of them was 524 of
        // the 703 MB a 10,000 h merge took, and left sled's file full of
        // emptied segments).
        let mut batch = sled::Batch::default();
        let mut all_durations = self.duration_tables()?;
        let mut durations = Vec::with_capacity(table.len());
        for seg in segs {
            let t = &tables[seg];
            let d = match all_durations.remove(seg) {
                Some(d) if d.len() == t.len() => d,
                _ => durations_from_records(&self.db, t)?,
            };
            durations.extend(
                t.iter()
                    .zip(d)
                    .filter(|(&id, _)| !is_removed(id))
                    .map(|(_, d)| d),
            );
        }
        for seg in segs {
            batch.remove(&segment_key(*seg)[..]);
            batch.remove(&durations_key(*seg)[..]);
        }
        batch.insert(&segment_key(new)[..], encode_u32s(&table));
        batch.insert(&durations_key(new)[..], encode_f64s(&durations));
        batch.insert(meta_key("counters"), serde_json::to_vec(&counters)?);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        self.counters = counters;
        self.failpoint(MergeStep::Committed);
        for seg in segs {
            if let Ok(mut open) = self.segments.lock() {
                open.remove(seg);
            }
            // Unreferenced now; if this fails, the next writer removes it.
            let _ = fs::remove_file(segment_path(&self.dir, *seg));
        }
        Ok(new)
    }

    fn failpoint(&self, step: MergeStep) {
        if self.merge_failpoint == Some(step) {
            eprintln!("ostid: merge failpoint {step:?} reached, aborting");
            std::process::abort();
        }
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
        let flushed = self.db.flush();
        if self.access == Access::Write && flushed.is_ok() {
            // Best effort: without a view, queries read the catalogue.
            let _ = self.write_view();
        }
    }
}

/// What [`Store::open_view`] found.
pub enum Viewed {
    /// A view, and the segments it names, opened.
    View(Box<View>, Vec<Part>),
    /// No view this build reads: open the catalogue.
    None,
    /// A damaged view (the catalogue still answers).
    Damaged(anyhow::Error),
}

/// Refuse an index whose recorded parameters are not the ones asked for.
fn check_params(dir: &Path, stored: &Params, want: Option<&Params>) -> Result<()> {
    if let Some(want) = want {
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
    Ok(())
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

/// Give every segment without a `D` table (an index written before them)
/// one from its tracks' records, in one batch.
fn add_duration_tables(db: &sled::Db) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut added = 0;
    for (seg, table) in per_segment(db, b'S', decode_u32s)? {
        if db.contains_key(durations_key(seg))? {
            continue;
        }
        let durations = durations_from_records(db, &table)?;
        batch.insert(&durations_key(seg)[..], encode_f64s(&durations));
        added += 1;
    }
    if added > 0 {
        db.apply_batch(batch)?;
        db.flush()?;
    }
    Ok(())
}

/// Every value under `prefix` + segment:u32, decoded, by segment.
fn per_segment<T>(db: &sled::Db, prefix: u8, decode: fn(&[u8]) -> T) -> Result<BTreeMap<u32, T>> {
    let mut out = BTreeMap::new();
    for item in db.scan_prefix([prefix]) {
        let (k, v) = item?;
        let seg = k
            .get(1..5)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| anyhow!("corrupt segment key in the index; run `ostid verify`"))?;
        out.insert(seg, decode(&v));
    }
    Ok(out)
}

/// Durations of a segment's slots read from its tracks' records (0 where a
/// slot is removed or its record is missing: `verify` reports the latter).
fn durations_from_records(db: &sled::Db, table: &[u32]) -> Result<Vec<f64>> {
    table
        .iter()
        .map(|&id| {
            if is_removed(id) {
                return Ok(0.0);
            }
            Ok(match db.get(track_key(id))? {
                Some(raw) => {
                    serde_json::from_slice::<TrackRecord>(&raw)
                        .context("corrupt track record in the index")?
                        .duration_s
                }
                None => 0.0,
            })
        })
        .collect()
}

fn encode_f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_f64s(v: &[u8]) -> Vec<f64> {
    v.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8 bytes")))
        .collect()
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

/// Take the index's lock file, or say who holds it: shared by queries
/// reading a view, else exclusive (sled's catalogue takes its own
/// exclusive lock). The holder writes who it is (of queries side by side,
/// the last to start).
fn take_lock(dir: &Path, shared: bool) -> Result<File> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    let taken = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match taken {
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

/// A segment's level: how many times [`MERGE_FAN_IN`] its postings are a
/// commit's.
fn level(postings: u64) -> u32 {
    let mut level = 0;
    let mut size = SEGMENT_MAX_POSTINGS as u64 * MERGE_FAN_IN as u64;
    while postings >= size {
        level += 1;
        match size.checked_mul(MERGE_FAN_IN as u64) {
            Some(next) => size = next,
            None => break,
        }
    }
    level
}

/// A new track `/music/N.flac` titled `tN`, for tests.
#[cfg(test)]
pub(crate) fn test_track(n: u32, duration_s: f64, landmarks: Vec<Landmark>) -> NewTrack {
    let path = format!("/music/{n}.flac");
    NewTrack {
        record: TrackRecord {
            id: 0,
            path: path.clone(),
            path_bytes: None,
            size: 1,
            mtime_ns: 0,
            title: format!("t{n}"),
            work: "w".into(),
            composer: None,
            track_number: None,
            duration_s,
            damaged: None,
            landmarks: 0,
            head_hash: None,
        },
        path_key: path.into_bytes(),
        landmarks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_track(n: u32, duration_s: f64) -> NewTrack {
        let landmarks = (0..20)
            .map(|i| Landmark {
                hash: (n * 97 + i * 13) & crate::hash::HASH_MASK,
                frame: i * 3,
            })
            .collect();
        test_track(n, duration_s, landmarks)
    }

    /// A new index at `dir` with tracks 0, 1 and 2 of 10 s, committed.
    fn three_tracks(dir: &Path) -> Store {
        let mut store = Store::open(dir, Access::Write, None).unwrap();
        store
            .commit((0..3).map(|n| new_track(n, 10.0)).collect(), &[])
            .unwrap();
        store
    }

    /// Durations of every live slot, as the parts give them and as the
    /// records say.
    type Durations = Vec<(u32, f64)>;

    fn durations(store: &Store) -> (Durations, Durations) {
        let mut parts: Vec<(u32, f64)> = store
            .parts()
            .unwrap()
            .into_iter()
            .flat_map(|p| p.tracks.into_iter().zip(p.durations_s))
            .filter(|&(t, _)| !is_removed(t))
            .collect();
        parts.sort_by_key(|p| p.0);
        let records = store
            .tracks()
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.duration_s))
            .collect();
        (parts, records)
    }

    #[test]
    fn duration_tables_follow_commits_removals_and_merges() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        let a = store
            .commit((0..3).map(|n| new_track(n, 60.5 + n as f64)).collect(), &[])
            .unwrap();
        store
            .commit((3..5).map(|n| new_track(n, 0.25 * n as f64)).collect(), &[])
            .unwrap();
        assert_eq!(store.duration_tables().unwrap().len(), 2);
        let (parts, records) = durations(&store);
        assert_eq!(parts, records);
        assert_eq!(parts.len(), 5);

        store.remove(&[a[1]]).unwrap();
        let (parts, records) = durations(&store);
        assert_eq!((parts.len(), &parts), (4, &records));

        let segs: Vec<u32> = store.segment_tables().unwrap().into_keys().collect();
        let merged = store.merge(&segs).unwrap();
        let tables = store.duration_tables().unwrap();
        assert_eq!(tables.keys().copied().collect::<Vec<_>>(), vec![merged]);
        let (parts, records) = durations(&store);
        assert_eq!(parts, records);
        assert!(crate::verify::verify(&store).unwrap().0.is_empty());

        // Emptying a segment drops its table with it.
        let all: Vec<u32> = records.iter().map(|r| r.0).collect();
        store.remove(&all).unwrap();
        assert!(store.duration_tables().unwrap().is_empty());
    }

    #[test]
    fn the_catalogue_is_rewritten_only_past_its_slack_and_keeps_every_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        for c in 0..12 {
            store
                .commit(
                    (c * 5..c * 5 + 5).map(|n| new_track(n, 10.0)).collect(),
                    &[],
                )
                .unwrap();
            store.tidy().unwrap();
        }
        store.flush().unwrap();
        let before = (store.tracks().unwrap(), store.segment_tables().unwrap());
        let (on_disk, data) = store.catalogue_bytes().unwrap();
        // Small as it is, the file is far larger than its records.
        let room = on_disk - CATALOGUE_OVERHEAD * data;
        assert!(!store.shrink_catalogue(on_disk).unwrap());
        assert!(!store.shrink_catalogue(room).unwrap());
        assert!(!dir.path().join(SLED_NEW).exists());
        assert!(store.shrink_catalogue(room - 1).unwrap());
        let after = (store.tracks().unwrap(), store.segment_tables().unwrap());
        assert_eq!(before, after);
        assert_eq!(before.0.len(), 60);
        assert!(crate::verify::verify(&store).unwrap().0.is_empty());
        assert!(!dir.path().join(SLED_NEW).exists() && !dir.path().join(SLED_OLD).exists());
        drop(store);
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        assert_eq!(store.tracks().unwrap(), after.0);
    }

    #[test]
    fn an_index_without_duration_tables_reads_the_records_and_gets_them_when_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        store
            .commit((0..4).map(|n| new_track(n, 30.0 + n as f64)).collect(), &[])
            .unwrap();
        // As an index written before the tables.
        for seg in store.duration_tables().unwrap().into_keys() {
            store.db.remove(durations_key(seg)).unwrap();
        }
        store.flush().unwrap();
        drop(store);

        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        assert!(store.duration_tables().unwrap().is_empty());
        let (parts, records) = durations(&store);
        assert_eq!((parts.len(), &parts), (4, &records));
        drop(store);

        let store = Store::open(dir.path(), Access::Write, None).unwrap();
        assert_eq!(store.duration_tables().unwrap().len(), 1);
        let (parts, records) = durations(&store);
        assert_eq!(parts, records);
        assert!(crate::verify::verify(&store).unwrap().0.is_empty());
    }

    #[test]
    fn verify_reports_a_duration_table_at_odds_with_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        store
            .commit((0..2).map(|n| new_track(n, 10.0)).collect(), &[])
            .unwrap();
        let seg = *store.duration_tables().unwrap().keys().next().unwrap();
        store
            .db
            .insert(durations_key(seg), encode_f64s(&[10.0, 11.0]))
            .unwrap();
        let problems = crate::verify::verify(&store).unwrap().0;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("lasts 11 s in its duration table, 10 s in the record"));
    }

    #[test]
    fn a_version_3_index_is_read_and_marked_current_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = three_tracks(dir.path());
        let b = store
            .commit((3..6).map(|n| new_track(n, 20.0)).collect(), &[])
            .unwrap();
        // As version 3 wrote them: every record says where its track is,
        // here wrongly (a merge since moved them all, say).
        for t in store.tracks().unwrap() {
            let mut v = serde_json::to_value(&t).unwrap();
            v["segment"] = serde_json::json!(0);
            v["slot"] = serde_json::json!(0);
            store
                .db
                .insert(track_key(t.id), serde_json::to_vec(&v).unwrap())
                .unwrap();
        }
        let records = store.tracks().unwrap();
        drop(store);
        set_meta(dir.path(), "format", &3u32.to_be_bytes());

        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        assert_eq!(store.format_version(), 3);
        assert_eq!(store.tracks().unwrap(), records);
        assert!(crate::verify::verify(&store).unwrap().0.is_empty());
        drop(store);

        // A writer refused (other parameters) leaves the format as it was.
        let dense = Params::preset("dense").unwrap();
        assert!(Store::open(dir.path(), Access::Write, Some(&dense)).is_err());
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        assert_eq!(store.format_version(), 3);
        drop(store);

        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        assert_eq!(store.format_version(), FORMAT_VERSION);
        // The stale fields would name slot 0 of segment 0: the tables say
        // slot 1 of the second segment.
        store.remove(&[b[1]]).unwrap();
        let tables = store.segment_tables().unwrap();
        let second = tables.values().nth(1).unwrap();
        assert_eq!(second, &vec![b[0], REMOVED, b[2]]);
        assert_eq!(tables.values().next().unwrap().len(), 3);
        assert!(tables
            .values()
            .next()
            .unwrap()
            .iter()
            .all(|&t| !is_removed(t)));
        assert_eq!(store.tracks().unwrap().len(), 5);
        assert!(crate::verify::verify(&store).unwrap().0.is_empty());
        let segs: Vec<u32> = tables.into_keys().collect();
        store.merge(&segs).unwrap();
        assert!(crate::verify::verify(&store).unwrap().0.is_empty());
        drop(store);
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        assert_eq!(store.format_version(), FORMAT_VERSION);
    }

    /// What a query reads of `dir` through its view, if it has one: the
    /// params, the parts' tables and every record.
    /// Params, each part's (id, tracks, durations) and every record.
    type Seen = (Params, Vec<(u32, Vec<u32>, Vec<f64>)>, Vec<TrackRecord>);

    fn viewed(dir: &Path) -> Option<Seen> {
        match Store::open_view(dir, None).unwrap() {
            Viewed::View(v, parts) => {
                let tables = parts
                    .into_iter()
                    .map(|p| {
                        assert_eq!(
                            p.file.slots(),
                            p.tracks.len(),
                            "the file opened is the part's"
                        );
                        (p.id, p.tracks, p.durations_s)
                    })
                    .collect();
                Some((v.params().clone(), tables, v.tracks().unwrap()))
            }
            Viewed::None => None,
            Viewed::Damaged(e) => panic!("{e:#}"),
        }
    }

    /// The same, from the catalogue.
    fn catalogued(store: &Store) -> Seen {
        let tables = store
            .parts()
            .unwrap()
            .into_iter()
            .map(|p| (p.id, p.tracks, p.durations_s))
            .collect();
        let mut records = store.tracks().unwrap();
        records.sort_by_key(|r| r.id);
        (store.params().clone(), tables, records)
    }

    #[test]
    fn a_writer_deletes_the_view_before_it_changes_anything_and_writes_it_when_closed() {
        let dir = tempfile::tempdir().unwrap();
        let dense = Params::preset("dense").unwrap();
        let mut store = Store::open(dir.path(), Access::Write, Some(&dense)).unwrap();
        let a = store
            .commit((0..3).map(|n| new_track(n, 30.0 + n as f64)).collect(), &[])
            .unwrap();
        let mut odd = new_track(3, 12.5);
        odd.record.path_bytes = Some(b"/music/\xff.flac".to_vec());
        odd.path_key = b"/music/\xff.flac".to_vec();
        store.commit(vec![odd, new_track(4, 7.0)], &[]).unwrap();
        store.remove(&[a[1]]).unwrap();
        assert_eq!(
            viewed(dir.path()),
            None,
            "no view while the first writer is open"
        );
        let want = catalogued(&store);
        drop(store);
        assert_eq!(viewed(dir.path()).as_ref(), Some(&want));
        assert_eq!(want.2.len(), 4);
        // A writer refused (other parameters) changes nothing: the view stays.
        assert!(Store::open(dir.path(), Access::Write, Some(&Params::default())).is_err());
        assert_eq!(viewed(dir.path()).as_ref(), Some(&want));

        // The next writer: the view is gone as soon as it has the index,
        // and a writer killed before it closes leaves none (queries then
        // read the catalogue); closed, the view says what it changed.
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        assert!(!view::path(dir.path()).exists());
        let segs: Vec<u32> = store.segment_tables().unwrap().into_keys().collect();
        store.merge(&segs).unwrap();
        store.remove(&[a[0]]).unwrap();
        let want = catalogued(&store);
        drop(store);
        let got = viewed(dir.path()).unwrap();
        assert_eq!(got, want);
        assert_eq!((got.1.len(), got.2.len()), (1, 3));
        assert_eq!(got.0, dense);
        // A query asking for other parameters is refused, as by the catalogue.
        let err = match Store::open_view(dir.path(), Some(&Params::default())) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("other parameters accepted"),
        };
        assert!(
            err.contains("was built with preset/parameters 'dense'"),
            "{err}"
        );
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        let problems = crate::verify::verify(&store).unwrap().0;
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn queries_through_the_view_share_the_index_and_hold_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = three_tracks(dir.path());
        drop(store);
        let first = Store::open_view(dir.path(), None).unwrap();
        let second = Store::open_view(dir.path(), None).unwrap();
        assert!(matches!(
            (&first, &second),
            (Viewed::View(..), Viewed::View(..))
        ));
        // With both open, a writer takes the index, and the views it
        // replaces still answer (their files are held).
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        let all: Vec<u32> = store.tracks().unwrap().iter().map(|t| t.id).collect();
        store.remove(&all).unwrap();
        store.tidy().unwrap();
        if let Viewed::View(v, parts) = &first {
            assert_eq!(v.tracks().unwrap().len(), 3);
            assert!(parts[0].file.iter().count() > 0);
        }
        // While a writer has it there is no view, and the catalogue says
        // who has it.
        assert!(matches!(
            Store::open_view(dir.path(), None).unwrap(),
            Viewed::None
        ));
        let err = match Store::open(dir.path(), Access::Read, None) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("the index opened under a writer"),
        };
        assert!(err.contains("is in use by pid"), "{err}");
        drop(store);
        let (_, tables, records) = viewed(dir.path()).unwrap();
        assert!(records.is_empty());
        assert!(tables.is_empty(), "{tables:?}");
    }

    #[test]
    fn verify_reports_a_view_at_odds_with_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let store = three_tracks(dir.path());
        let tables = store.view_tables().unwrap();
        let mut records = store.tracks().unwrap();
        drop(store);
        let check = |records: &[TrackRecord], tables: &[view::Table]| {
            view::write(
                dir.path(),
                &view::Contents {
                    format: FORMAT_VERSION,
                    params: &Params::default(),
                    tables,
                    records,
                },
            )
            .unwrap();
            let store = Store::open(dir.path(), Access::Read, None).unwrap();
            crate::verify::verify(&store).unwrap().0
        };
        assert_eq!(check(&records, &tables), Vec::<String>::new());
        records[1].title = "another title".into();
        let problems = check(&records, &tables);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("query view"), "{problems:?}");
        records[1].title = "t1".into();
        let mut moved = tables.clone();
        moved[0].durations_s[2] = 11.0;
        assert_eq!(check(&records, &moved).len(), 1);
        // A damaged view: reported, and a query passes over it.
        check(&records, &tables);
        let p = view::path(dir.path());
        let mut bytes = fs::read(&p).unwrap();
        bytes[60] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            Store::open_view(dir.path(), None).unwrap(),
            Viewed::Damaged(_)
        ));
        let store = Store::open(dir.path(), Access::Read, None).unwrap();
        let problems = crate::verify::verify(&store).unwrap().0;
        assert!(
            problems.len() == 1 && problems[0].contains("is damaged"),
            "{problems:?}"
        );
    }

    #[test]
    fn verify_reports_a_track_in_no_slot_or_in_two() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), Access::Write, None).unwrap();
        let ids = store
            .commit((0..3).map(|n| new_track(n, 10.0)).collect(), &[])
            .unwrap();
        let seg = *store.segment_tables().unwrap().keys().next().unwrap();
        store
            .db
            .insert(segment_key(seg), encode_u32s(&[ids[0], ids[0], ids[2]]))
            .unwrap();
        let problems = crate::verify::verify(&store).unwrap().0;
        let no_slot = format!("track {} (/music/1.flac) is in no segment", ids[1]);
        let two = format!("track {} (/music/0.flac) is in 2 slots", ids[0]);
        assert!(problems.contains(&no_slot), "{problems:?}");
        assert!(problems.contains(&two), "{problems:?}");
    }

    #[test]
    fn levels_grow_by_the_fan_in() {
        let commit = SEGMENT_MAX_POSTINGS as u64;
        assert_eq!(level(0), 0);
        assert_eq!(level(commit), 0);
        assert_eq!(level(4 * commit - 1), 0);
        assert_eq!(level(4 * commit), 1);
        assert_eq!(level(16 * commit), 2);
        assert!(level(u64::MAX) < 32);
    }

    /// Rewrites one meta value of a closed index, as another build would.
    fn set_meta(dir: &Path, name: &str, value: &[u8]) {
        // As a writer would: the view goes first.
        view::remove(dir).unwrap();
        let db = open_catalogue(&sled_config(&dir.join("sled"))).unwrap();
        db.insert(meta_key(name), value).unwrap();
        db.flush().unwrap();
    }

    /// A catalogue this process still holds for a moment (sled's writer
    /// threads outlive a closed handle) is waited for, not refused.
    #[test]
    fn a_catalogue_let_go_of_a_moment_later_opens() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled_config(&dir.path().join("sled"));
        let held = open_catalogue(&config).unwrap();
        assert!(config.open().is_err(), "sled refuses a second handle");
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(held);
        });
        open_catalogue(&config).unwrap();
        letting_go.join().unwrap();
    }

    #[test]
    fn an_index_from_a_newer_build_says_so() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path(), Access::Write, None).unwrap());
        let mut params = serde_json::to_value(Params::default()).unwrap();
        params["decision"]["future_knob"] = serde_json::json!(1.5);
        set_meta(dir.path(), "params", &serde_json::to_vec(&params).unwrap());
        let err = format!(
            "{:#}",
            Store::open(dir.path(), Access::Read, None).err().unwrap()
        );
        assert!(err.contains("parameter `future_knob`"), "{err}");
        assert!(err.contains("newer"), "{err}");

        set_meta(dir.path(), "params", b"{not json");
        let err = format!(
            "{:#}",
            Store::open(dir.path(), Access::Read, None).err().unwrap()
        );
        assert!(err.contains("unreadable"), "{err}");
        assert!(!err.contains("newer"), "{err}");

        set_meta(dir.path(), "format", &(FORMAT_VERSION + 1).to_be_bytes());
        let err = format!(
            "{:#}",
            Store::open(dir.path(), Access::Read, None).err().unwrap()
        );
        assert!(err.contains("newer"), "{err}");
        set_meta(dir.path(), "format", &(OLDEST_READABLE - 1).to_be_bytes());
        let err = format!(
            "{:#}",
            Store::open(dir.path(), Access::Read, None).err().unwrap()
        );
        assert!(err.contains("rebuild") && !err.contains("newer"), "{err}");
    }
}
