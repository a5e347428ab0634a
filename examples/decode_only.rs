//! Decode-only (and decode + fingerprint) throughput over a folder: the
//! baseline the index-throughput gate is measured against.
//! `cargo run --release --example decode_only -- THREADS PATH...`
use std::time::Instant;

use ostid::decode::{decode, Flow, Source};
use ostid::fingerprint::{Fingerprinter, Role};
use ostid::params::Params;
use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: usize = args
        .get(1)
        .and_then(|t| t.parse().ok())
        .expect("usage: decode_only THREADS PATH...");
    let paths: Vec<std::path::PathBuf> = args[2..].iter().map(Into::into).collect();
    let mut files: Vec<_> = ostid::library::walk(&paths).files;
    // The same schedule as `ostid index`: longest first, one at a time.
    files.sort_by_key(|f| std::cmp::Reverse(f.size));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let params = Params::default();
    for fingerprint in [false, true] {
        let t = Instant::now();
        let (audio_s, landmarks): (f64, usize) = pool.install(|| {
            files
                .iter()
                .par_bridge()
                .map(|f| {
                    let mut fp = Fingerprinter::new(&params, Role::Index);
                    let mut n = 0usize;
                    let r = decode(
                        &Source::Path(f.path.clone()),
                        params.sample_rate_hz,
                        1.0,
                        |c| {
                            if fingerprint {
                                fp.push(c, &mut |_| n += 1);
                            }
                            Flow::Continue
                        },
                    );
                    (r.map(|r| r.duration_s).unwrap_or(0.0), n)
                })
                .reduce(|| (0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        });
        let el = t.elapsed().as_secs_f64();
        println!(
            "{}: {} files, {:.2} h audio in {:.2} s = {:.0}x real time{}",
            if fingerprint {
                "decode+fingerprint"
            } else {
                "decode only"
            },
            files.len(),
            audio_s / 3600.0,
            el,
            audio_s / el,
            if fingerprint {
                format!(", {:.0} landmarks/s of audio", landmarks as f64 / audio_s)
            } else {
                String::new()
            }
        );
    }
}
