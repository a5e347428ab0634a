//! One file per subcommand. Each takes a plain config (built by `cli`) and
//! returns the exit status; `main` turns it into the process exit code.

pub mod index;
pub mod manage;
pub mod matching;
pub mod scan;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};

use crate::output::Format;
use crate::params::{Params, PRESETS};

/// Exit statuses, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything found / indexed.
    Ok = 0,
    /// A query had no match.
    NoMatch = 1,
    /// An error: bad input, a failed file, an unusable index.
    Error = 2,
    /// Interrupted by Ctrl-C (work done so far is kept).
    Interrupted = 130,
}

/// Configuration of `ostid index`.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    pub paths: Vec<PathBuf>,
    pub threads: Option<usize>,
    pub preset: Option<String>,
    pub params_file: Option<PathBuf>,
    pub rebuild: bool,
    pub quiet: bool,
}

/// Configuration of `ostid match`.
#[derive(Debug, Clone)]
pub struct MatchConfig {
    pub clips: Vec<String>,
    pub from_file: Option<PathBuf>,
    pub top: usize,
    pub format: Format,
    pub threads: Option<usize>,
    pub preset: Option<String>,
    /// Overrides `decision.max_chance`.
    pub max_chance: Option<f64>,
    pub quiet: bool,
}

/// Configuration of `ostid scan`.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// A path, or `-` for standard input.
    pub input: String,
    pub format: crate::output::ScanFormat,
    pub svg: Option<PathBuf>,
    /// Overrides `decision.max_chance`.
    pub max_chance: Option<f64>,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    pub quiet: bool,
}

/// The index directory: `--db`/`OSTID_DB` (already merged by the CLI), else
/// the user's data directory.
pub fn db_dir(db: Option<PathBuf>) -> Result<PathBuf> {
    match db {
        Some(p) => Ok(p),
        None => crate::store::default_path().ok_or_else(|| {
            anyhow!("no data directory on this system; pass --db PATH or set OSTID_DB")
        }),
    }
}

/// Set by tests: postings files larger than this many bytes are looked up
/// with `pread` (default [`crate::segment::READ_LOOKUPS_ABOVE`]).
const READ_LOOKUPS_ENV: &str = "OSTID_READ_LOOKUPS_ABOVE";

/// Apply `OSTID_READ_LOOKUPS_ABOVE`, if set, before an index is opened.
pub fn read_lookups_from_env() -> Result<()> {
    if let Ok(v) = std::env::var(READ_LOOKUPS_ENV) {
        let bytes = v
            .parse()
            .map_err(|_| anyhow!("{READ_LOOKUPS_ENV}={v} is not a number of bytes"))?;
        crate::segment::set_read_lookups_above(bytes);
    }
    Ok(())
}

/// A matcher of the index at `db`: from its query view when it has one
/// this build reads (no catalogue opened, no lock held after), else from
/// the catalogue. A damaged view is said on stderr and passed over.
pub fn open_matcher(db: &Path, requested: Option<&Params>) -> Result<crate::matcher::Matcher> {
    use crate::store::{Access, Store, Viewed};
    match Store::open_view(db, requested)? {
        Viewed::View(view, parts) => return Ok(crate::matcher::Matcher::from_view(view, parts)),
        Viewed::None => {}
        Viewed::Damaged(e) => eprintln!(
            "ostid: {e:#}; reading the catalogue instead (`ostid compact` writes the view afresh)"
        ),
    }
    crate::matcher::Matcher::new(Store::open(db, Access::Read, requested)?)
}

/// Parameters asked for with `--preset` or `--params`.
pub fn requested_params(preset: Option<&str>, file: Option<&Path>) -> Result<Option<Params>> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the parameters file {}", f.display()))?;
        let p: Params = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid parameters file", f.display()))?;
        p.validate().map_err(|e| anyhow!("{}: {e}", f.display()))?;
        return Ok(Some(p));
    }
    match preset {
        None => Ok(None),
        Some(name) => match Params::preset(name) {
            Some(p) => Ok(Some(p)),
            None => bail!(
                "unknown preset '{name}'; choose one of: {}",
                PRESETS.join(", ")
            ),
        },
    }
}

/// A rayon pool of `threads` workers (default: all cores).
pub fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        b = b.num_threads(n);
    }
    b.build().context("cannot start worker threads")
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HANDLER: OnceLock<()> = OnceLock::new();

/// Install the Ctrl-C handler (once); afterwards [`interrupted`] reports it.
pub fn watch_interrupt() {
    HANDLER.get_or_init(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                // Second Ctrl-C: give up at once.
                std::process::exit(Status::Interrupted as i32);
            }
        });
    });
}

/// For read-only commands: Ctrl-C ends the process at once with status 130
/// (results already printed stay printed; nothing is left half-written).
pub fn exit_on_interrupt() {
    HANDLER.get_or_init(|| {
        let _ = ctrlc::set_handler(|| std::process::exit(Status::Interrupted as i32));
    });
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
