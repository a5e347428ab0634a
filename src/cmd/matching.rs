//! `ostid match`: identify clips against the index. Clips are decoded,
//! fingerprinted and looked up in parallel (the matcher is shared), and
//! printed in argument order as soon as each batch is done.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;

use super::{exit_on_interrupt, pool, requested_params, MatchConfig, Status};
use crate::closelook;
use crate::decode::{self, DecodeError, Flow, Source};
use crate::fingerprint::{Fingerprinter, Look, Role};
use crate::glance;
use crate::hash::Landmark;
use crate::matcher::{Matcher, Outcome};
use crate::output::{self, ClipResult};
use crate::params::Params;
use crate::warp;

/// Clips decoded in parallel before their results are printed.
const BATCH: usize = 64;
/// Up to this many clip files, `match` keeps the index open while it
/// answers (reading only the named tracks' records); more, and it reads
/// every record first and releases the index for other processes.
const HOLD_INDEX_UP_TO: usize = BATCH;

/// A query shorter than this cannot be identified.
const MIN_QUERY_S: f64 = 0.25;

/// A clip longer than this is identified from its start (memory stays
/// bounded whatever comes down a pipe); `ostid scan` reads any length.
const MAX_QUERY_S: usize = 600;

/// Audio kept per clip for the warp search (the first minute).
const MAX_WARP_SAMPLES_S: usize = 60;

struct Prepared {
    landmarks: Vec<Landmark>,
    /// The glance's landmarks (empty when it is off).
    glance: Vec<Landmark>,
    /// The clip at the fingerprint rate, up to [`MAX_WARP_SAMPLES_S`].
    samples: Vec<f32>,
    decode_ms: f64,
    fingerprint_ms: f64,
}

/// Decode and fingerprint one query (with the glance's landmarks when
/// `glance`: one answer is wanted).
fn prepare(query: &str, params: &Params, glance: bool) -> Result<Prepared, String> {
    let started = Instant::now();
    let mut fp = if glance {
        Fingerprinter::query_with_glance(params)
    } else {
        Fingerprinter::new(params, Role::Query)
    };
    let (mut landmarks, mut glance) = (Vec::new(), Vec::new());
    let mut put = |l: Landmark, look: Look| match look {
        Look::Straight => landmarks.push(l),
        Look::Glance => glance.push(l),
    };
    let mut samples = Vec::new();
    let keep = MAX_WARP_SAMPLES_S * params.sample_rate_hz as usize;
    let limit = MAX_QUERY_S * params.sample_rate_hz as usize;
    let mut seen = 0usize;
    let mut fp_time = 0.0;
    let decoded = decode::decode(
        &Source::from_arg(query),
        params.sample_rate_hz,
        MIN_QUERY_S,
        |chunk| {
            let t = Instant::now();
            let chunk = &chunk[..chunk.len().min(limit - seen)];
            seen += chunk.len();
            fp.push_looks(chunk, &mut put);
            let room = keep.saturating_sub(samples.len());
            samples.extend_from_slice(&chunk[..chunk.len().min(room)]);
            fp_time += t.elapsed().as_secs_f64();
            if seen >= limit {
                Flow::Stop
            } else {
                Flow::Continue
            }
        },
    );
    match decoded {
        Ok(_) => {}
        Err(DecodeError::Interrupted) if seen >= limit => eprintln!(
            "ostid: {query}: longer than {}; identified from its start (`ostid scan` reads a recording of any length)",
            output::clock(MAX_QUERY_S as f64)
        ),
        Err(e) => return Err(e.to_string()),
    }
    let t = Instant::now();
    fp.finish_looks(&mut put);
    fp_time += t.elapsed().as_secs_f64();
    let total = started.elapsed().as_secs_f64();
    Ok(Prepared {
        landmarks,
        glance,
        samples,
        decode_ms: (total - fp_time) * 1000.0,
        fingerprint_ms: fp_time * 1000.0,
    })
}

/// Decode, fingerprint and identify one clip.
fn identify_clip(matcher: &Matcher, query: &str, params: &Params, top: usize) -> ClipResult {
    match prepare(query, params, top == 1) {
        Err(e) => ClipResult {
            query: query.to_string(),
            outcome: Err(e),
            decode_ms: 0.0,
            match_ms: 0.0,
        },
        Ok(p) => {
            let t = Instant::now();
            let outcome = look(matcher, &p, top).map_err(|e| format!("{e:#}"));
            ClipResult {
                query: query.to_string(),
                outcome,
                decode_ms: p.decode_ms,
                match_ms: p.fingerprint_ms + t.elapsed().as_secs_f64() * 1000.0,
            }
        }
    }
}

/// A glance, then the straight look, then for a clip it cannot name the
/// warp search, then the close look. The warp search goes first: a
/// transposed clip has many smeared peaks, and the close look at it
/// unwarped can gather enough chance votes for another track (measured:
/// pitch -1 10 s 97 % -> 90 % with the close look first).
fn look(matcher: &Matcher, p: &Prepared, top: usize) -> Result<Outcome> {
    if let Some(o) = glance::identify(matcher, &p.glance, top)? {
        // Named at a glance: a tempo change still shows as drift, and is
        // re-timed as after a straight look.
        return warp::identify(matcher, &p.samples, o, top);
    }
    if matcher.spreads_looks() {
        return look_beside(matcher, p, top);
    }
    let straight = matcher.identify(&p.landmarks, top, 1.0)?;
    if straight.best.is_some() {
        return warp::identify(matcher, &p.samples, straight, top);
    }
    let o = warp::identify(matcher, &p.samples, straight, top)?;
    if o.best.is_some() {
        return Ok(o);
    }
    Ok(closelook::identify(matcher, &p.samples, top)?.unwrap_or(o))
}

/// [`look`] past the glance with every thread busy from the start: the
/// warp search and the close look are taken beside the straight look, in
/// case it cannot name the clip on its own, and given up as soon as it
/// does (the search when the straight look is strong enough to skip it,
/// the close look when the straight look names anything). The answer is
/// the one the looks taken in turn give.
fn look_beside(matcher: &Matcher, p: &Prepared, top: usize) -> Result<Outcome> {
    let skip_votes = matcher.params().warp.skip_votes;
    let score = |o: &Outcome| o.best.as_ref().map_or(0, |m| m.score);
    let (named, sure) = (AtomicBool::new(false), AtomicBool::new(false));
    let (straight, (search, close)) = rayon::join(
        || {
            let straight = matcher.identify(&p.landmarks, top, 1.0);
            if straight.as_ref().map_or(true, |o| o.best.is_some()) {
                named.store(true, Ordering::Relaxed);
            }
            if straight.as_ref().map_or(true, |o| score(o) >= skip_votes) {
                sure.store(true, Ordering::Relaxed);
            }
            straight
        },
        || {
            rayon::join(
                || warp::search(matcher, &p.samples, top, &sure),
                || closelook::identify_unless(matcher, &p.samples, top, &named),
            )
        },
    );
    let straight = straight?;
    if score(&straight) >= skip_votes {
        // Strong as it is: the search was given up, and the warp step only
        // re-times the clip, as in turn.
        return warp::identify(matcher, &p.samples, straight, top);
    }
    let o = warp::preferred(straight, search?);
    if o.best.is_some() {
        return Ok(o);
    }
    Ok(close?.unwrap_or(o))
}

fn read_list(path: &PathBuf) -> Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(io::BufReader::new(io::stdin()))
    } else {
        Box::new(io::BufReader::new(std::fs::File::open(path).with_context(
            || format!("cannot read the clip list {}", path.display()),
        )?))
    };
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.with_context(|| format!("cannot read the clip list {}", path.display()))?;
        let line = line.trim_end_matches('\r');
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

pub fn run(db: PathBuf, cfg: MatchConfig) -> Result<Status> {
    exit_on_interrupt();
    let mut queries = cfg.clips.clone();
    if let Some(list) = &cfg.from_file {
        queries.extend(read_list(list)?);
    }
    if queries.is_empty() {
        bail!("no clips given; pass audio files, `-` for standard input, or --from-file LIST");
    }
    let stdin_uses = queries.iter().filter(|q| *q == "-").count()
        + usize::from(cfg.from_file.as_ref().is_some_and(|f| f.as_os_str() == "-"));
    if stdin_uses > 1 {
        bail!("standard input (`-`) can be read only once per run");
    }
    let requested = requested_params(cfg.preset.as_deref(), None)?;
    super::read_lookups_from_env()?;
    let mut matcher = super::open_matcher(&db, requested.as_ref())?;
    // A few clip files are answered at once, reading the records of the
    // tracks named (at 10,000 h, reading all of them took longer than a
    // clip); a long list or a pipe reads them all and frees the index.
    if queries.len() > HOLD_INDEX_UP_TO || stdin_uses > 0 {
        matcher.release()?;
    }
    if let Some(e) = cfg.max_chance {
        matcher.set_max_chance(e);
    }
    let pool = pool(cfg.threads)?;
    // Fewer clips than threads: each clip's looks use the idle ones.
    matcher.set_spread_looks(queries.len() < pool.current_num_threads());
    let matcher = matcher;
    let params = matcher.params().clone();
    let prefix = queries.len() > 1;

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let (mut errors, mut misses) = (0usize, 0usize);
    for batch in queries.chunks(BATCH) {
        let results: Vec<ClipResult> = pool.install(|| {
            batch
                .par_iter()
                .map(|query| identify_clip(&matcher, query, &params, cfg.top))
                .collect()
        });
        for result in results {
            match &result.outcome {
                Err(_) => errors += 1,
                Ok(o) if o.best.is_none() => misses += 1,
                Ok(_) => {}
            }
            output::write_result(&mut out, &result, cfg.format, prefix)?;
        }
        out.flush()?;
    }
    if !cfg.quiet && queries.len() > 1 {
        let found = queries.len() - errors - misses;
        eprintln!(
            "{} clips: {found} matched, {misses} no match, {errors} errors",
            queries.len()
        );
    }
    Ok(if errors > 0 {
        Status::Error
    } else if misses > 0 {
        Status::NoMatch
    } else {
        Status::Ok
    })
}
