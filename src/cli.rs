//! Command-line types (clap) and their conversion into plain configs. Nothing
//! outside this file sees clap.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::cmd::{IndexConfig, MatchConfig, ScanConfig};
use crate::output::{Format, ScanFormat};

/// Identify soundtrack music offline against your own OST library.
#[derive(Debug, Parser)]
#[command(name = "ostid", version, about, long_about = None)]
pub struct Cli {
    /// Index directory [default: the user's data directory, ostid/index]
    #[arg(long, global = true, env = "OSTID_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// No progress bar and no summary on stderr (errors are still shown)
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fingerprint audio files and folders into the index
    Index(IndexArgs),
    /// Identify clips: which piece, from which work, and where in it
    #[command(name = "match")]
    Match(MatchArgs),
    /// The cue sheet of a long recording: which pieces play, when, and where in them
    Scan(ScanArgs),
    /// List indexed tracks: work, title, duration, path
    List(ListArgs),
    /// Works with their track counts and hours
    Works(JsonArg),
    /// Size and contents of the index (counters kept, not recounted)
    Stats(JsonArg),
    /// Remove tracks, or every track under folders, from the index
    Rm(RmArgs),
    /// Drop tracks whose files are gone
    Prune(PruneArgs),
    /// Check the index's internal consistency (exit 1 with a report when broken)
    Verify(JsonArg),
    /// Merge the index's postings files into as few as possible, dropping
    /// the postings of removed tracks (`index` merges as it goes; this is
    /// for after `rm` or `prune`)
    Compact(JsonArg),
    /// Shell completions, to stdout (e.g. `ostid completions bash >
    /// ~/.local/share/bash-completion/completions/ostid`)
    Completions(CompletionsArgs),
    /// The manual page in roff, to stdout (e.g. `ostid man >
    /// ~/.local/share/man/man1/ostid.1`)
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Write the completion script for `shell` (from the definition above).
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut Cli::command(), "ostid", out);
}

/// Write the manual page: the command's page, then a section for each
/// subcommand with its synopsis, description and options as subsections.
pub fn write_man_page(out: &mut dyn Write) -> std::io::Result<()> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd.clone()).render(out)?;
    for sub in cmd.get_subcommands() {
        let name = format!("ostid {}", sub.get_name());
        let page = clap_mangen::Man::new(sub.clone().bin_name(name.clone()));
        let mut body = Vec::new();
        page.render_synopsis_section(&mut body)?;
        page.render_description_section(&mut body)?;
        page.render_options_section(&mut body)?;
        writeln!(out, ".SH \"{}\"", name.to_uppercase())?;
        for line in String::from_utf8_lossy(&body).lines() {
            match line.strip_prefix(".SH ") {
                Some(title) => writeln!(out, ".SS {title}")?,
                None => writeln!(out, "{line}")?,
            }
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// JSON Lines
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only works whose name contains this (any case)
    #[arg(long, value_name = "TEXT")]
    pub work: Option<String>,
    /// JSON Lines, one track per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Files or folders (every track under them)
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// JSON Lines, one removed path per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Show what would be dropped, change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Drop them even when every track under an indexed folder is missing
    /// (which usually means an unmounted drive)
    #[arg(long)]
    pub force: bool,
    /// JSON Lines, one removed path per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// A recording (an episode, a film, a stream); `-` reads standard input
    #[arg(value_name = "RECORDING")]
    pub input: String,
    /// How to write the cues [default: table]
    #[arg(long, value_enum, value_name = "FORMAT", conflicts_with_all = ["json", "csv"])]
    pub format: Option<ScanFormatArg>,
    /// JSON Lines, one cue per line as soon as it ends (works live on a
    /// pipe); the same as `--format json`
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// A cue sheet in CSV (header row, RFC 4180, times as h:mm:ss.s); the
    /// same as `--format csv`
    #[arg(long)]
    pub csv: bool,
    /// Also draw the cues on a timeline, as an SVG file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// How sure a window's answer must be (see `ostid match --max-chance`)
    #[arg(long, value_name = "E", value_parser = positive_f64)]
    pub max_chance: Option<f64>,
    /// Worker threads: windows looked up at once [default: all cores]
    #[arg(short = 'j', long)]
    pub threads: Option<usize>,
}

/// `ostid scan --format`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScanFormatArg {
    /// A readable table
    Table,
    /// JSON Lines, one cue per line as soon as it ends
    Json,
    /// CSV (RFC 4180), times as h:mm:ss.s
    Csv,
    /// An Audacity label track (File > Import > Labels)
    Audacity,
    /// SubRip captions, one per cue
    Srt,
    /// WebVTT captions, one per cue
    Vtt,
    /// FFmpeg metadata chapters (`ffmpeg -i IN -i CUES -map_metadata 1 -codec copy OUT`)
    Ffmetadata,
    /// A CUE sheet (INDEX in mm:ss:ff)
    Cue,
}

impl ScanArgs {
    pub fn into_config(self, quiet: bool) -> ScanConfig {
        let format = match self.format {
            Some(ScanFormatArg::Table) => ScanFormat::Table,
            Some(ScanFormatArg::Json) => ScanFormat::Json,
            Some(ScanFormatArg::Csv) => ScanFormat::Csv,
            Some(ScanFormatArg::Audacity) => ScanFormat::Audacity,
            Some(ScanFormatArg::Srt) => ScanFormat::Srt,
            Some(ScanFormatArg::Vtt) => ScanFormat::Vtt,
            Some(ScanFormatArg::Ffmetadata) => ScanFormat::FfMetadata,
            Some(ScanFormatArg::Cue) => ScanFormat::Cue,
            None if self.json => ScanFormat::Json,
            None if self.csv => ScanFormat::Csv,
            None => ScanFormat::Table,
        };
        ScanConfig {
            input: self.input,
            format,
            svg: self.svg,
            max_chance: self.max_chance,
            threads: self.threads,
            quiet,
        }
    }
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Folders or files to index
    #[arg(required = true, value_name = "DIR")]
    pub paths: Vec<PathBuf>,
    /// Worker threads [default: all cores]
    #[arg(short = 'j', long)]
    pub threads: Option<usize>,
    /// Fingerprint preset for a new index (default, dense)
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Fingerprint parameters from a JSON file (see `Params` in the README)
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub params: Option<PathBuf>,
    /// Delete the index and build it again from scratch
    #[arg(long)]
    pub rebuild: bool,
}

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// Audio clips to identify; `-` reads standard input
    #[arg(value_name = "CLIP")]
    pub clips: Vec<String>,
    /// Read more clip paths from this file, one per line (`-` for stdin)
    #[arg(long, value_name = "LIST")]
    pub from_file: Option<PathBuf>,
    /// Show this many candidates (the answer plus runner-ups)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub top: u32,
    /// One JSON object per clip, one per line
    #[arg(long)]
    pub json: bool,
    /// Worker threads for decoding clips [default: all cores]
    #[arg(short = 'j', long)]
    pub threads: Option<usize>,
    /// Fingerprint preset the index must have been built with
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// How sure an answer must be: name a track only when chance alone
    /// would give an answer as strong to fewer than E clips on average
    /// [default: 3e-5]
    #[arg(long, value_name = "E", value_parser = positive_f64)]
    pub max_chance: Option<f64>,
}

fn positive_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("'{s}' is not a positive number (e.g. 1e-5)")),
    }
}

impl IndexArgs {
    pub fn into_config(self, quiet: bool) -> IndexConfig {
        IndexConfig {
            paths: self.paths,
            threads: self.threads,
            preset: self.preset,
            params_file: self.params,
            rebuild: self.rebuild,
            quiet,
        }
    }
}

impl MatchArgs {
    pub fn into_config(self, quiet: bool) -> MatchConfig {
        MatchConfig {
            clips: self.clips,
            from_file: self.from_file,
            top: self.top as usize,
            format: if self.json {
                Format::Json
            } else {
                Format::Human
            },
            threads: self.threads,
            preset: self.preset,
            max_chance: self.max_chance,
            quiet,
        }
    }
}
