//! One immutable postings file: the landmarks of a group of tracks, laid out
//! so that a hash's postings are found in one read.
//!
//! Owns: the file layout, writing a file durably (streaming, in hash order),
//! looking a hash up, walking every posting (for `verify` and merges), and
//! merging files into one. Does not own: which files make up the index or
//! which track a slot holds (`store`, in sled), or how votes are counted
//! (`matcher`).
//!
//! Every track of a file (a *slot*) owns a run of *global frames*: slot `s`
//! spans `starts[s]..starts[s + 1]`, one frame past its last landmark. A
//! posting is a hash and a global frame; the file holds them sorted by
//! (hash, global frame). The top `dir_bits` of a hash select a block of a
//! directory that says where the block's postings begin; each posting is the
//! rest of its hash (`low_bits`) and its global frame (`frame_bits`),
//! bit-packed in `low_bits + frame_bits` bits. The directory is sized so that
//! a block holds ~32 postings: one lookup reads two directory words and a
//! cache line or two of postings.
//!
//! Layout (integers little-endian):
//!
//! | bytes                      | what                                              |
//! |----------------------------|---------------------------------------------------|
//! | 8                          | magic `OSTIDSEG`                                  |
//! | 4                          | format version ([`VERSION`])                      |
//! | 4, 4                       | `dir_bits`, `frame_bits`                          |
//! | 4                          | slots                                             |
//! | 8                          | postings                                          |
//! | 4 x (slots + 1)            | `starts`: first global frame of each slot, then the total |
//! | 4 x (2^dir_bits + 1)       | directory: index of the first posting of each block, then the count |
//! | ceil(postings x width / 8) | postings, bit-packed, least significant bit first |
//! | 8                          | zeros (so an 8-byte read at any posting stays in the file) |

use std::fs::{self, File};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use memmap2::{Advice, Mmap, UncheckedAdvice};

use crate::hash::{Landmark, HASH_BITS};

/// Bumped whenever the layout above changes.
pub const VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"OSTIDSEG";
const HEADER: usize = 8 + 4 + 4 + 4 + 4 + 8;
/// Postings a directory block holds on average (about).
const BLOCK_POSTINGS: u64 = 32;
const MIN_DIR_BITS: u32 = 8;
/// The largest file: posting indices are u32.
pub const MAX_POSTINGS: u64 = u32::MAX as u64;
/// Bytes written to the file at a time.
const WRITE_CHUNK: usize = 1 << 20;

/// Directory bits for a file of about `postings` postings.
fn dir_bits_for(postings: u64) -> u32 {
    let blocks = (postings / BLOCK_POSTINGS).max(1);
    (63 - blocks.leading_zeros()).clamp(MIN_DIR_BITS, HASH_BITS)
}

/// Bits that hold a global frame below `total`.
fn frame_bits_for(total: u32) -> u32 {
    (32 - total.saturating_sub(1).leading_zeros()).max(1)
}

/// The file's part of a posting key: (hash, global frame) in one ordered number.
fn key(hash: u32, gframe: u32) -> u64 {
    (hash as u64) << 32 | gframe as u64
}

/// Writes one file in (hash, global frame) order, straight to disk: memory is
/// the directory and a buffer, whatever the file's size.
pub struct Writer {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
    buf: Vec<u8>,
    starts: Vec<u32>,
    dir: Vec<u32>,
    dir_bits: u32,
    low_bits: u32,
    frame_bits: u32,
    width: u32,
    count: u64,
    max_postings: u64,
    last: Option<u64>,
    /// Blocks below this have their start in `dir`.
    filled: usize,
    acc: u64,
    acc_bits: u32,
}

impl Writer {
    /// Start a file at `path` (written under a temporary name until
    /// [`Writer::finish`]) for slots spanning `starts` (ascending, one more
    /// than the slots) and at most `max_postings` postings.
    pub fn create(path: &Path, starts: Vec<u32>, max_postings: u64) -> Result<Writer> {
        if starts.is_empty() || starts.windows(2).any(|w| w[0] > w[1]) {
            bail!("segment slots must be given as ascending starts");
        }
        if max_postings > MAX_POSTINGS {
            bail!("a segment holds at most {MAX_POSTINGS} postings");
        }
        let total = *starts.last().expect("starts is not empty");
        let dir_bits = dir_bits_for(max_postings);
        let low_bits = HASH_BITS - dir_bits;
        let frame_bits = frame_bits_for(total);
        if let Some(folder) = path.parent() {
            fs::create_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        let tmp = path.with_extension("tmp");
        let mut file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let dir = vec![0u32; (1usize << dir_bits) + 1];
        // Header, starts and directory are written by `finish`; postings go after them.
        let data_at = HEADER + 4 * starts.len() + 4 * dir.len();
        file.seek(SeekFrom::Start(data_at as u64))?;
        Ok(Writer {
            path: path.to_path_buf(),
            tmp,
            file,
            buf: Vec::with_capacity(WRITE_CHUNK + 8),
            starts,
            dir,
            dir_bits,
            low_bits,
            frame_bits,
            width: low_bits + frame_bits,
            count: 0,
            max_postings,
            last: None,
            filled: 0,
            acc: 0,
            acc_bits: 0,
        })
    }

    /// The global frame where `slot` begins.
    pub fn start(&self, slot: usize) -> u32 {
        self.starts[slot]
    }

    /// Add a posting; postings come in (hash, global frame) order.
    pub fn push(&mut self, hash: u32, gframe: u32) -> Result<()> {
        let k = key(hash, gframe);
        if self.last.is_some_and(|l| l > k)
            || hash >> HASH_BITS != 0
            || gframe >= *self.starts.last().expect("starts is not empty")
            || self.count >= self.max_postings
        {
            bail!("postings out of order or out of range while writing a segment");
        }
        self.last = Some(k);
        let block = (hash >> self.low_bits) as usize;
        // Blocks up to this one start at or before this posting.
        if block >= self.filled {
            self.dir[self.filled..=block].fill(self.count as u32);
            self.filled = block + 1;
        }
        let low = (hash & ((1 << self.low_bits) - 1)) as u64;
        let value = low << self.frame_bits | gframe as u64;
        self.acc |= value << self.acc_bits;
        self.acc_bits += self.width;
        while self.acc_bits >= 8 {
            self.buf.push(self.acc as u8);
            self.acc >>= 8;
            self.acc_bits -= 8;
        }
        self.count += 1;
        if self.buf.len() >= WRITE_CHUNK {
            self.file
                .write_all(&self.buf)
                .with_context(|| format!("cannot write {} (disk full?)", self.path.display()))?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Complete the file: fsync it, give it its name, fsync the folder.
    pub fn finish(mut self) -> Result<PathBuf> {
        let write = |w: &mut Writer| -> io::Result<()> {
            if w.acc_bits > 0 {
                w.buf.push(w.acc as u8);
            }
            w.buf.extend_from_slice(&[0u8; 8]);
            w.file.write_all(&w.buf)?;
            let filled = w.filled;
            w.dir[filled..].fill(w.count as u32);
            let mut head = Vec::with_capacity(HEADER + 4 * (w.starts.len() + w.dir.len()));
            head.extend_from_slice(MAGIC);
            head.extend_from_slice(&VERSION.to_le_bytes());
            head.extend_from_slice(&w.dir_bits.to_le_bytes());
            head.extend_from_slice(&w.frame_bits.to_le_bytes());
            head.extend_from_slice(&((w.starts.len() - 1) as u32).to_le_bytes());
            head.extend_from_slice(&w.count.to_le_bytes());
            for s in &w.starts {
                head.extend_from_slice(&s.to_le_bytes());
            }
            for d in &w.dir {
                head.extend_from_slice(&d.to_le_bytes());
            }
            w.file.seek(SeekFrom::Start(0))?;
            w.file.write_all(&head)?;
            w.file.sync_all()?;
            fs::rename(&w.tmp, &w.path)?;
            if let Some(folder) = w.path.parent() {
                File::open(folder)?.sync_all()?;
            }
            Ok(())
        };
        let result = write(&mut self);
        if result.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        result.with_context(|| format!("cannot write {} (disk full?)", self.path.display()))?;
        Ok(self.path.clone())
    }
}

/// Files larger than this are looked up with `pread` rather than through
/// the mapping. A mapped page a lookup touches stays in the process (its
/// peak RSS) until exit, and is mapped and unmapped at a cost: at 1,000 h
/// one 10 s clip touched ~1.5 GB of pages and spent 62 % of its time in
/// the kernel (faults, fault-around, unmapping). A read copies the few
/// hundred bytes a lookup needs. Below this size the mapping is cheaper
/// (each lookup is a cache miss, not a system call) and its pages few: a
/// simulated 40 h index (one 60 MB file) answered an unknown clip in 355 ms
/// read with a 32 MB threshold, 93 ms mapped with this one.
pub const READ_LOOKUPS_ABOVE: usize = 64 << 20;

/// The most postings one read lookup reads: a directory block holds ~32,
/// and one hash far more than this (~360 a hash at 10,000 h) only in a
/// damaged file.
const MAX_READ_POSTINGS: u64 = 1 << 24;

/// [`READ_LOOKUPS_ABOVE`] for files opened from now on in this process
/// (`OSTID_READ_LOOKUPS_ABOVE`: tests read small files too).
static READ_ABOVE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(READ_LOOKUPS_ABOVE);

/// Read lookups in files larger than `bytes` opened from now on.
pub fn set_read_lookups_above(bytes: usize) {
    READ_ABOVE.store(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// An open file, mapped into memory (and read by `pread` for lookups when
/// large, [`READ_LOOKUPS_ABOVE`]). Files are never changed once named (a
/// merge writes a new one; removal unlinks), so a mapping or an open file
/// stays valid for as long as it is held, even after the file is deleted.
pub struct Segment {
    map: Mmap,
    file: File,
    /// Lookups read with `pread` instead of the mapping.
    read_lookups: bool,
    low_bits: u32,
    frame_bits: u32,
    width: u32,
    blocks: usize,
    postings: u64,
    starts: Vec<u32>,
    /// `coarse[i]`: the slot holding global frame `i << coarse_shift`.
    coarse: Vec<u32>,
    coarse_shift: u32,
    dir_at: usize,
    data_at: usize,
}

/// Open `path` for reading without access-time updates where the system
/// allows it (the file's owner may ask; anyone else opens it plainly): at
/// 1,000 h every lookup is a `pread`, and the kernel's access-time check
/// on each was 4 % of a known clip's profile (no wall-time difference
/// measurable through this machine's noise).
fn open_noatime(path: &Path) -> io::Result<File> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let noatime = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path);
        if noatime.is_ok() {
            return noatime;
        }
    }
    fs::OpenOptions::new().read(true).open(path)
}

/// Stretches of global frames the coarse slot table has per slot (about).
const COARSE_PER_SLOT: u64 = 4;

/// The coarse slot table of [`Segment::locate`] for slots spanning `starts`.
fn coarse_table(starts: &[u32]) -> (Vec<u32>, u32) {
    let total = *starts.last().expect("slots + 1 starts") as u64;
    let slots = (starts.len() - 1) as u64;
    let stretch = (total / (COARSE_PER_SLOT * slots.max(1))).max(1);
    let shift = 63 - stretch.leading_zeros();
    // The last start at or below each stretch's first frame, in one walk
    // of the starts: a search per stretch took ~20 ms of CPU to open the
    // 10,000 h file (125,070 slots; `perf stat`, a 1 s clip, whole
    // process: 104 -> 82 ms). Its twin in the tests searches.
    let mut slot = 0usize;
    let coarse = (0..=(total >> shift))
        .map(|i| {
            let g = i << shift;
            while slot + 1 < starts.len() && starts[slot + 1] as u64 <= g {
                slot += 1;
            }
            slot as u32
        })
        .collect();
    (coarse, shift)
}

impl Segment {
    /// Open and map a file, checking its header and size (not its postings:
    /// see [`Segment::check`]).
    pub fn open(path: &Path) -> Result<Segment> {
        let damaged = || {
            anyhow!(
                "postings file {} is missing or damaged; rebuild the index with `ostid index --rebuild DIR...`",
                path.display()
            )
        };
        let file = open_noatime(path).map_err(|_| damaged())?;
        // SAFETY: segment files are written under a temporary name and
        // never modified once renamed (see the module doc), so the mapped
        // bytes cannot change under us.
        let map = unsafe { Mmap::map(&file) }.map_err(|_| damaged())?;
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(map.get(i..i + 4)?.try_into().ok()?))
        };
        if map.get(..8) != Some(&MAGIC[..]) || u32_at(8) != Some(VERSION) {
            return Err(damaged());
        }
        let (dir_bits, frame_bits, slots) = match (u32_at(12), u32_at(16), u32_at(20)) {
            (Some(d), Some(f), Some(s)) => (d, f, s as usize),
            _ => return Err(damaged()),
        };
        let postings = map
            .get(24..32)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or_else(damaged)?;
        if !(MIN_DIR_BITS..=HASH_BITS).contains(&dir_bits)
            || !(1..=32).contains(&frame_bits)
            || postings > MAX_POSTINGS
        {
            return Err(damaged());
        }
        let low_bits = HASH_BITS - dir_bits;
        let width = low_bits + frame_bits;
        let blocks = 1usize << dir_bits;
        let starts_at = HEADER;
        let dir_at = starts_at + 4 * (slots + 1);
        let data_at = dir_at + 4 * (blocks + 1);
        let data_len = (postings * width as u64).div_ceil(8) as usize;
        if map.len() as u64 != (data_at + data_len + 8) as u64 {
            return Err(damaged());
        }
        let starts: Vec<u32> = (0..=slots)
            .map(|s| u32_at(starts_at + 4 * s).unwrap_or(0))
            .collect();
        let total = *starts.last().expect("slots + 1 starts");
        if starts.windows(2).any(|w| w[0] > w[1]) || frame_bits_for(total) > frame_bits {
            return Err(damaged());
        }
        // Lookups touch a few lines of a file far larger than they need.
        let _ = map.advise(Advice::Random);
        let (coarse, coarse_shift) = coarse_table(&starts);
        let read_lookups = map.len() > READ_ABOVE.load(std::sync::atomic::Ordering::Relaxed);
        Ok(Segment {
            map,
            file,
            read_lookups,
            low_bits,
            frame_bits,
            width,
            blocks,
            postings,
            starts,
            coarse,
            coarse_shift,
            dir_at,
            data_at,
        })
    }

    /// The file's size, bytes.
    pub fn bytes(&self) -> usize {
        self.map.len()
    }

    /// Whether lookups read the file (`pread`) rather than the mapping.
    pub fn reads_lookups(&self) -> bool {
        self.read_lookups
    }

    /// Postings in the file (removed slots' included).
    pub fn postings(&self) -> u64 {
        self.postings
    }

    /// Tracks (slots) the file was written with.
    pub fn slots(&self) -> usize {
        self.starts.len() - 1
    }

    /// Global frames each slot spans.
    pub fn span(&self, slot: usize) -> u32 {
        self.starts[slot + 1] - self.starts[slot]
    }

    /// Global frames of the file: every slot's span.
    pub fn frames(&self) -> u32 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Where block `b`'s postings begin (clamped, so a damaged directory
    /// cannot send a read past the postings).
    fn dir(&self, b: usize) -> u64 {
        let at = self.dir_at + 4 * b;
        let raw = u32::from_le_bytes(
            self.map[at..at + 4]
                .try_into()
                .expect("four bytes inside the mapped directory"),
        );
        (raw as u64).min(self.postings)
    }

    /// Posting `i`: its low hash bits above its global frame.
    fn value(&self, i: u64) -> u64 {
        self.value_in(&self.map[self.data_at..], 0, i)
    }

    /// Posting `i` from `bytes`, which hold the postings from bit `base`.
    fn value_in(&self, bytes: &[u8], base: u64, i: u64) -> u64 {
        let bit = i * self.width as u64 - base;
        let at = (bit / 8) as usize;
        let word = u64::from_le_bytes(
            bytes[at..at + 8]
                .try_into()
                .expect("8 spare bytes follow the last posting, in the file and in a read"),
        );
        (word >> (bit % 8)) & ((1u64 << self.width) - 1)
    }

    /// The slot a global frame falls in, and the frame within it.
    pub fn locate(&self, gframe: u32) -> Option<(u32, u32)> {
        // The coarse table names the slot at the start of gframe's stretch;
        // slots shorter than a stretch are stepped over.
        let mut slot = *self.coarse.get((gframe >> self.coarse_shift) as usize)? as usize;
        while slot < self.slots() && self.starts[slot + 1] <= gframe {
            slot += 1;
        }
        (slot < self.slots()).then(|| (slot as u32, gframe - self.starts[slot]))
    }

    /// Ask the CPU for what [`Segment::locate`] will read of `gframe`
    /// first (its entry of the coarse slot table).
    pub fn prefetch_locate(&self, gframe: u32) {
        if let Some(entry) = self.coarse.get((gframe >> self.coarse_shift) as usize) {
            prefetch(entry);
        }
    }

    /// Ask the CPU to fetch the directory words of `hash`'s block: a first
    /// step ahead of [`Segment::lookup`], so that the misses of many
    /// lookups overlap instead of following one another.
    pub fn prefetch_directory(&self, hash: u32) {
        let block = (hash >> self.low_bits) as usize;
        if block < self.blocks && !self.read_lookups {
            prefetch(&self.map[self.dir_at + 4 * block]);
        }
    }

    /// Ask the CPU to fetch the first postings of `hash`'s block (reads the
    /// directory: best after [`Segment::prefetch_directory`]).
    pub fn prefetch_postings(&self, hash: u32) {
        let block = (hash >> self.low_bits) as usize;
        if block < self.blocks && !self.read_lookups {
            // Every line of the block: the search within it goes to two
            // or three of them, one after another.
            let (a, b) = (self.dir(block), self.dir(block + 1));
            let first = self.data_at + (a * self.width as u64 / 8) as usize;
            let end = self.data_at + (b.max(a) * self.width as u64).div_ceil(8) as usize;
            for at in (first..end.min(first + MAX_PREFETCH_BYTES)).step_by(64) {
                prefetch(&self.map[at]);
            }
        }
    }

    /// The postings of `hash` as (slot, frame), in slot order. `scratch`
    /// holds what a read lookup reads (reused from call to call).
    pub fn lookup(
        &self,
        hash: u32,
        scratch: &mut Vec<u8>,
        mut f: impl FnMut(u32, u32),
    ) -> io::Result<()> {
        self.lookup_frames(hash, scratch, |gframe| {
            if let Some((slot, frame)) = self.locate(gframe) {
                f(slot, frame);
            }
        })
    }

    /// [`Segment::lookup`] as global frames ([`Segment::locate`] finds
    /// their slots): for a caller that wants few of them located.
    pub fn lookup_frames(
        &self,
        hash: u32,
        scratch: &mut Vec<u8>,
        f: impl FnMut(u32),
    ) -> io::Result<()> {
        let block = (hash >> self.low_bits) as usize;
        if block >= self.blocks {
            return Ok(());
        }
        if !self.read_lookups {
            let (a, b) = (self.dir(block), self.dir(block + 1));
            self.scan(&self.map[self.data_at..], 0, a, b, hash, f);
            return Ok(());
        }
        let mut words = [0u8; 8];
        self.file
            .read_exact_at(&mut words, (self.dir_at + 4 * block) as u64)?;
        let word = |i: usize| {
            let raw = u32::from_le_bytes([words[i], words[i + 1], words[i + 2], words[i + 3]]);
            (raw as u64).min(self.postings)
        };
        let (a, b) = (word(0), word(4));
        let b = b.max(a);
        if b - a > MAX_READ_POSTINGS {
            // Only a damaged directory says so (`verify` reports it): not
            // a reason to read gigabytes into memory.
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a damaged directory block; run `ostid verify`",
            ));
        }
        // The block's postings, and the 8 bytes after (in the file too) so
        // that every posting can be read as one u64.
        let width = self.width as u64;
        let first = a * width / 8;
        let end = (b * width).div_ceil(8) + 8;
        scratch.resize((end - first) as usize, 0);
        self.file
            .read_exact_at(scratch, self.data_at as u64 + first)?;
        self.scan(scratch, first * 8, a, b, hash, f);
        Ok(())
    }

    /// The postings of `hash` among postings `a..b` (one directory block),
    /// read from `bytes`, which hold the postings from bit `base`.
    fn scan(&self, bytes: &[u8], base: u64, a: u64, b: u64, hash: u32, mut f: impl FnMut(u32)) {
        let low = (hash & ((1 << self.low_bits) - 1)) as u64;
        let first = low << self.frame_bits;
        let (mut lo, mut hi) = (a, b.max(a));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.value_in(bytes, base, mid) < first {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let frame_mask = (1u64 << self.frame_bits) - 1;
        for i in lo..b {
            let v = self.value_in(bytes, base, i);
            if v >> self.frame_bits != low {
                break;
            }
            f((v & frame_mask) as u32);
        }
    }

    /// Every posting as (hash, global frame), in file order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_releasing(RELEASE_BYTES)
    }

    /// [`Segment::iter`], releasing pages every `every` bytes.
    fn iter_releasing(&self, every: usize) -> Iter<'_> {
        Iter {
            seg: self,
            block: 0,
            i: 0,
            released: self.data_at,
            every,
        }
    }

    /// Drop the pages of bytes `from..to` of the mapping from this
    /// process (whole pages inside the range); a later read maps them
    /// again from the file. Returns where the next release may start.
    fn release(&self, from: usize, to: usize) -> usize {
        const PAGE: usize = 4096;
        let start = from.next_multiple_of(PAGE);
        let end = to / PAGE * PAGE;
        if end > start {
            // SAFETY: the mapping is a shared, read-only map of a file that
            // is never modified (see `Segment::open`): dropped pages are
            // read again from the file when next touched, and no reference
            // into them is held across this call (`Iter` reads postings
            // by value).
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start)
            };
            return end;
        }
        from
    }

    /// Check every posting: the directory ascends and covers the postings
    /// exactly, postings are in (hash, global frame) order, every global
    /// frame falls in a slot. Counts each slot's postings into `per_slot`.
    pub fn check(&self, per_slot: &mut Vec<u64>) -> Result<(), String> {
        per_slot.clear();
        per_slot.resize(self.slots(), 0);
        let mut prev = 0;
        for b in 0..=self.blocks {
            let at = self.dir_at + 4 * b;
            let raw = u32::from_le_bytes(
                self.map[at..at + 4]
                    .try_into()
                    .expect("four bytes inside the mapped directory"),
            ) as u64;
            let last = b == self.blocks;
            if raw < prev
                || raw > self.postings
                || (b == 0 && raw != 0)
                || (last && raw != self.postings)
            {
                return Err(format!("its directory is damaged (block {b})"));
            }
            prev = raw;
        }
        let mut last = None;
        for (hash, gframe) in self.iter() {
            let k = key(hash, gframe);
            if last.is_some_and(|l| l > k) {
                return Err("its postings are out of order".into());
            }
            last = Some(k);
            match self.locate(gframe) {
                Some((slot, _)) => per_slot[slot as usize] += 1,
                None => return Err(format!("a posting's frame {gframe} lies past its tracks")),
            }
        }
        Ok(())
    }
}

/// The most bytes of one block [`Segment::prefetch_postings`] asks for.
const MAX_PREFETCH_BYTES: usize = 512;

/// A hint to the CPU that the cache line of `value` is needed soon.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint; it reads nothing and cannot fault,
        // and the address is that of a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(value as *const T as *const i8) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Every posting of a file as (hash, global frame), in file order. The
/// pages it has walked past are released as it goes ([`RELEASE_BYTES`]).
pub struct Iter<'a> {
    seg: &'a Segment,
    block: usize,
    i: u64,
    /// Mapped bytes before this were released.
    released: usize,
    every: usize,
}

/// A walk through a file (a merge, `verify`) releases the pages it has
/// passed every this many bytes: a merge at 1,000 h reads 1.5 GB of
/// postings, which would otherwise all count in its peak RSS.
const RELEASE_BYTES: usize = 16 << 20;

impl Iterator for Iter<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        let seg = self.seg;
        if self.i >= seg.postings {
            return None;
        }
        while self.block + 1 < seg.blocks && seg.dir(self.block + 1) <= self.i {
            self.block += 1;
        }
        let v = seg.value(self.i);
        self.i += 1;
        if self.i.is_multiple_of(512) {
            let at = seg.data_at + (self.i * seg.width as u64 / 8) as usize;
            if at - self.released >= self.every {
                self.released = seg.release(self.released, at);
            }
        }
        let hash = (self.block as u32) << seg.low_bits | (v >> seg.frame_bits) as u32;
        Some((hash, (v & ((1u64 << seg.frame_bits) - 1)) as u32))
    }
}

/// Write the landmarks of tracks, one slot each in the order given, as a new file.
pub fn write(path: &Path, tracks: &[&[Landmark]]) -> Result<PathBuf> {
    let mut starts = vec![0u32];
    let mut keys: Vec<u64> = Vec::new();
    for landmarks in tracks {
        let start = *starts.last().expect("starts is not empty");
        let span = landmarks.iter().map(|l| l.frame + 1).max().unwrap_or(1);
        let end = start
            .checked_add(span)
            .ok_or_else(|| anyhow!("too much audio for one segment"))?;
        keys.extend(landmarks.iter().map(|l| key(l.hash, start + l.frame)));
        starts.push(end);
    }
    keys.sort_unstable();
    let mut w = Writer::create(path, starts, keys.len() as u64)?;
    for k in keys {
        w.push((k >> 32) as u32, k as u32)?;
    }
    w.finish()
}

/// Merge files into one at `path`: the slots of each input in turn, those
/// that `keep[input][slot]` keeps, renumbered from 0 in that order.
pub fn merge(path: &Path, inputs: &[&Segment], keep: &[Vec<bool>]) -> Result<PathBuf> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Where each kept slot starts in the new file.
    let mut starts = vec![0u32];
    let mut moved: Vec<Vec<Option<u32>>> = Vec::with_capacity(inputs.len());
    let mut max_postings = 0;
    for (seg, keep) in inputs.iter().zip(keep) {
        let mut m = Vec::with_capacity(seg.slots());
        for slot in 0..seg.slots() {
            if keep.get(slot).copied().unwrap_or(false) {
                let start = *starts.last().expect("starts is not empty");
                m.push(Some(start));
                let end = start
                    .checked_add(seg.span(slot))
                    .ok_or_else(|| anyhow!("too much audio for one segment"))?;
                starts.push(end);
            } else {
                m.push(None);
            }
        }
        moved.push(m);
        max_postings += seg.postings();
    }
    let mut w = Writer::create(path, starts, max_postings.min(MAX_POSTINGS))?;
    let mut iters: Vec<Iter> = inputs.iter().map(|s| s.iter()).collect();
    // (hash, input, global frame): equal hashes come out input by input,
    // which is the new file's slot order.
    let mut heap = BinaryHeap::new();
    for (n, it) in iters.iter_mut().enumerate() {
        if let Some((h, g)) = it.next() {
            heap.push(Reverse((h, n, g)));
        }
    }
    while let Some(Reverse((hash, n, gframe))) = heap.pop() {
        if let Some((slot, frame)) = inputs[n].locate(gframe) {
            if let Some(start) = moved[n][slot as usize] {
                w.push(hash, start + frame)?;
            }
        }
        if let Some((h, g)) = iters[n].next() {
            heap.push(Reverse((h, n, g)));
        }
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded random tracks: (hash, frame) landmarks, common hashes included.
    fn tracks(seed: u64, n: usize) -> Vec<Vec<Landmark>> {
        let mut x = seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|t| {
                let len = (rnd() % 3000) as usize + t;
                let mut ls: Vec<Landmark> = (0..len)
                    .map(|i| Landmark {
                        hash: if i % 17 == 0 {
                            12345
                        } else {
                            (rnd() as u32) & crate::hash::HASH_MASK
                        },
                        frame: (rnd() % 20_000) as u32,
                    })
                    .collect();
                ls.sort_unstable();
                ls.dedup();
                ls
            })
            .collect()
    }

    /// The naive twin of a lookup: every posting of every kept track, filtered.
    fn naive(tracks: &[Vec<Landmark>], hash: u32) -> Vec<(u32, u32)> {
        let mut out: Vec<(u32, u32)> = tracks
            .iter()
            .enumerate()
            .flat_map(|(s, ls)| {
                ls.iter()
                    .filter(move |l| l.hash == hash)
                    .map(move |l| (s as u32, l.frame))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Write tracks (one slot each) as a file at `path`.
    fn written(path: &Path, ts: &[Vec<Landmark>]) -> PathBuf {
        let refs: Vec<&[Landmark]> = ts.iter().map(|t| &t[..]).collect();
        write(path, &refs).unwrap()
    }

    /// A lookup through the mapping, checked against the same lookup read
    /// with `pread` (the two ways are each other's twin).
    fn looked_up(seg: &mut Segment, hash: u32) -> Vec<(u32, u32)> {
        let mut scratch = Vec::new();
        let mut ways = [false, true].map(|read| {
            seg.read_lookups = read;
            let mut out = Vec::new();
            seg.lookup(hash, &mut scratch, |s, f| out.push((s, f)))
                .unwrap();
            out
        });
        seg.read_lookups = false;
        assert_eq!(
            ways[0], ways[1],
            "hash {hash}: mapped and read lookups differ"
        );
        std::mem::take(&mut ways[0])
    }

    #[test]
    fn lookups_equal_filtering_every_posting() {
        let dir = tempfile::tempdir().unwrap();
        let ts = tracks(7, 9);
        let mut seg = Segment::open(&written(&dir.path().join("a.bin"), &ts)).unwrap();
        let total: usize = ts.iter().map(|t| t.len()).sum();
        assert_eq!(seg.postings(), total as u64);
        let mut per_slot = Vec::new();
        seg.check(&mut per_slot).unwrap();
        assert_eq!(
            per_slot,
            ts.iter().map(|t| t.len() as u64).collect::<Vec<_>>()
        );
        let probes = ts.iter().flatten().map(|l| l.hash).step_by(13);
        for hash in probes.chain([0, 1, 12345, crate::hash::HASH_MASK]) {
            assert_eq!(looked_up(&mut seg, hash), naive(&ts, hash), "hash {hash}");
        }
        let walked: Vec<(u32, u32)> = seg.iter().collect();
        assert_eq!(walked.len(), total);
        assert!(walked.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_walk_that_releases_pages_reads_what_one_that_keeps_them_does() {
        let dir = tempfile::tempdir().unwrap();
        let ts = tracks(5, 40);
        let seg = Segment::open(&written(&dir.path().join("a.bin"), &ts)).unwrap();
        assert!(seg.map.len() > 16 * 4096, "a file of many pages");
        let kept: Vec<(u32, u32)> = seg.iter_releasing(usize::MAX).collect();
        let released: Vec<(u32, u32)> = seg.iter_releasing(4096).collect();
        assert_eq!(kept.len() as u64, seg.postings());
        assert_eq!(released, kept);
        // Lookups after the pages were released read them again.
        let mut scratch = Vec::new();
        for l in ts.iter().flatten().step_by(97) {
            let mut found = false;
            seg.lookup(l.hash, &mut scratch, |_, _| found = true)
                .unwrap();
            assert!(found);
        }
    }

    #[test]
    fn a_merge_equals_writing_the_kept_tracks_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (tracks(1, 5), tracks(2, 4));
        let write_all = |name: &str, ts: &[Vec<Landmark>]| {
            Segment::open(&written(&dir.path().join(name), ts)).unwrap()
        };
        let (sa, sb) = (write_all("a.bin", &a), write_all("b.bin", &b));
        let keep = vec![
            vec![true, false, true, true, false],
            vec![true, true, false, true],
        ];
        let mut merged =
            Segment::open(&merge(&dir.path().join("m.bin"), &[&sa, &sb], &keep).unwrap()).unwrap();
        let kept: Vec<Vec<Landmark>> = a
            .iter()
            .chain(&b)
            .zip(keep.iter().flatten())
            .filter(|(_, &k)| k)
            .map(|(t, _)| t.clone())
            .collect();
        let direct = write_all("d.bin", &kept);
        assert_eq!(merged.slots(), kept.len());
        assert_eq!(
            merged.iter().collect::<Vec<_>>(),
            direct.iter().collect::<Vec<_>>()
        );
        let mut per_slot = Vec::new();
        merged.check(&mut per_slot).unwrap();
        for hash in kept
            .iter()
            .flatten()
            .map(|l| l.hash)
            .step_by(11)
            .chain([12345])
        {
            assert_eq!(
                looked_up(&mut merged, hash),
                naive(&kept, hash),
                "hash {hash}"
            );
        }
    }

    #[test]
    fn damaged_files_are_refused_or_reported_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let ts = tracks(3, 3);
        let path = written(&dir.path().join("a.bin"), &ts);
        let bytes = fs::read(&path).unwrap();
        // Cut short: refused at open.
        let cut = dir.path().join("cut.bin");
        fs::write(&cut, &bytes[..bytes.len() - 9]).unwrap();
        assert!(Segment::open(&cut).is_err());
        // A directory word overwritten: opens, `check` says so, lookups stay in bounds.
        let seg = Segment::open(&path).unwrap();
        let mut bad = bytes.clone();
        let at = seg.dir_at + 4 * 5;
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let hurt = dir.path().join("hurt.bin");
        fs::write(&hurt, &bad).unwrap();
        let mut hurt = Segment::open(&hurt).unwrap();
        assert!(hurt.check(&mut Vec::new()).is_err());
        let mut scratch = Vec::new();
        for read in [false, true] {
            hurt.read_lookups = read;
            for hash in ts.iter().flatten().map(|l| l.hash) {
                // Read lookups may say the block is damaged; never a panic.
                let _ = hurt.lookup(hash, &mut scratch, |_, _| {});
            }
        }
        assert!(hurt.iter().count() as u64 <= hurt.postings());
    }

    /// [`coarse_table`]'s naive twin: a binary search per stretch.
    fn coarse_table_by_search(starts: &[u32]) -> (Vec<u32>, u32) {
        let total = *starts.last().unwrap() as u64;
        let slots = (starts.len() - 1) as u64;
        let stretch = (total / (COARSE_PER_SLOT * slots.max(1))).max(1);
        let shift = 63 - stretch.leading_zeros();
        let coarse = (0..=(total >> shift))
            .map(|i| {
                let g = i << shift;
                (starts.partition_point(|&s| s as u64 <= g).max(1) - 1) as u32
            })
            .collect();
        (coarse, shift)
    }

    #[test]
    fn locate_equals_a_search_of_the_starts() {
        // The coarse table is its naive twin's on many slots of random
        // spans, some empty.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut at = 0u32;
        let many: Vec<u32> = std::iter::once(0)
            .chain((0..5_000).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                at += [0, 1, 3, 40, 9_000][(x % 5) as usize];
                at
            }))
            .collect();
        assert_eq!(coarse_table(&many), coarse_table_by_search(&many));
        for starts in [
            vec![0u32, 1],
            vec![0, 5, 5, 6, 20_000, 20_001, 90_000],
            vec![0, 100_000, 100_003, 100_004, 250_000],
        ] {
            let (coarse, shift) = coarse_table(&starts);
            assert_eq!((coarse.clone(), shift), coarse_table_by_search(&starts));
            let dir = tempfile::tempdir().unwrap();
            let ts: Vec<Vec<Landmark>> = starts
                .windows(2)
                .map(|w| {
                    let span = w[1] - w[0];
                    if span == 0 {
                        Vec::new()
                    } else {
                        vec![Landmark {
                            hash: 9,
                            frame: span - 1,
                        }]
                    }
                })
                .collect();
            let seg = Segment::open(&written(&dir.path().join("a.bin"), &ts)).unwrap();
            // A track with no landmark spans one frame in a file.
            let starts = seg.starts.clone();
            assert_eq!(
                (seg.coarse.clone(), seg.coarse_shift),
                coarse_table(&starts)
            );
            assert!(!coarse.is_empty() && shift < 32);
            let total = *starts.last().unwrap();
            for g in (0..total + 3).step_by(1 + total as usize / 5000) {
                let n = starts.partition_point(|&s| s <= g);
                let naive = n
                    .checked_sub(1)
                    .filter(|&s| s < starts.len() - 1 && g < total)
                    .map(|s| (s as u32, g - starts[s]));
                assert_eq!(seg.locate(g), naive, "gframe {g} of {starts:?}");
            }
        }
    }

    #[test]
    fn field_widths_follow_the_file_size() {
        assert_eq!(dir_bits_for(0), MIN_DIR_BITS);
        assert_eq!(dir_bits_for(600_000), 14);
        assert_eq!(dir_bits_for(u32::MAX as u64), HASH_BITS);
        assert_eq!(frame_bits_for(1), 1);
        assert_eq!(frame_bits_for(2), 1);
        assert_eq!(frame_bits_for(3), 2);
        assert_eq!(frame_bits_for(1 << 20), 20);
        assert_eq!(frame_bits_for(u32::MAX), 32);
    }
}
