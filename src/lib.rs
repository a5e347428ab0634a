//! ostid identifies soundtrack music offline against your own library.
//!
//! The pipeline, one module per stage, data flowing one way and
//! incrementally: [`decode`] turns a file or a pipe into mono chunks at the
//! fingerprint rate; [`spectrogram`] turns them into power frames;
//! [`peaks`] keeps the local maxima; [`hash`] pairs peaks into landmarks
//! ([`fingerprint`] wires these three). Landmarks go to the [`store`] (a
//! sled catalogue beside [`segment`] files, which find a hash's postings in
//! one read; [`verify`] checks the whole; [`view`] is what queries read of
//! the catalogue) when indexing, or to the
//! [`matcher`], which votes on consistent time offsets ([`votes`] packs
//! and sorts the votes, [`shortlist`] keeps those that can reach a score,
//! [`readcache`] keeps what a thread has read for its later looks) and
//! returns data that [`output`] renders. [`params`] holds every knob in one struct whose
//! digest the index records; [`library`] walks folders and names tracks;
//! [`glance`] names clips heard clearly from few landmarks; [`closelook`]
//! looks again at clips under dialogue or noise; [`warp`]
//! finds clips played faster, slower or transposed; [`cuesheet`] merges the
//! windows of a long recording into cues, which [`timeline`] draws and
//! [`cueformats`] writes for editors and players; [`cmd`]
//! has one file per subcommand; [`cli`] is the only place that knows clap.

pub mod chance;
pub mod cli;
pub mod closelook;
pub mod cmd;
pub mod cueformats;
pub mod cuesheet;
pub mod decode;
pub mod fingerprint;
pub mod glance;
pub mod hash;
pub mod library;
pub mod matcher;
pub mod output;
pub mod params;
pub mod peaks;
pub mod progress;
pub mod readcache;
pub mod segment;
pub mod shortlist;
pub mod spectrogram;
pub mod store;
pub mod timeline;
pub mod verify;
pub mod view;
pub mod votes;
pub mod warp;

use anyhow::Result;

use cli::{Cli, Command};
pub use cmd::Status;

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<Status> {
    let quiet = cli.quiet;
    // Completions and the man page need no index.
    let db = || cmd::db_dir(cli.db.clone());
    match cli.command {
        Command::Index(args) => cmd::index::run(db()?, args.into_config(quiet)),
        Command::Match(args) => cmd::matching::run(db()?, args.into_config(quiet)),
        Command::Scan(args) => cmd::scan::run(db()?, args.into_config(quiet)),
        Command::List(a) => cmd::manage::list(&db()?, a.work.as_deref(), a.json),
        Command::Works(a) => cmd::manage::works(&db()?, a.json),
        Command::Stats(a) => cmd::manage::stats(&db()?, a.json),
        Command::Rm(a) => cmd::manage::rm(&db()?, &a.paths, a.json, quiet),
        Command::Prune(a) => cmd::manage::prune(&db()?, a.dry_run, a.force, a.json, quiet),
        Command::Verify(a) => cmd::manage::verify(&db()?, a.json),
        Command::Compact(a) => cmd::manage::compact(&db()?, a.json, quiet),
        Command::Completions(a) => {
            cli::write_completions(a.shell, &mut std::io::stdout().lock());
            Ok(Status::Ok)
        }
        Command::Man => {
            cli::write_man_page(&mut std::io::stdout().lock())?;
            Ok(Status::Ok)
        }
    }
}
