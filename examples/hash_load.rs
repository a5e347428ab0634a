//! Experiment: how a query's postings spread over its hashes.
//! `hash_load DB MANIFEST...` prints, over the clips' straight landmarks,
//! the share of distinct hashes and of postings above multiples of the
//! mean postings per looked-up hash.
mod common;
use ostid::store::{Access, Store};
use ostid::warp::{self, Warp};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = Store::open(std::path::Path::new(&a[1]), Access::Read, None).unwrap();
    let params = store.params().clone();
    let parts = store.parts().unwrap();
    let mut counts: Vec<u64> = Vec::new();
    let mut weighted: Vec<u64> = Vec::new(); // postings x anchors using the hash
    let mut scratch = Vec::new();
    for manifest in &a[2..] {
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        for c in clips.as_array().unwrap().iter().take(20) {
            let samples = common::clip_samples(c);
            let mut lms = warp::landmarks(&params, &samples, Warp::NONE);
            lms.sort_by_key(|l| l.hash);
            for run in lms.chunk_by(|x, y| x.hash == y.hash) {
                let mut n = 0u64;
                for p in &parts {
                    p.file
                        .lookup(run[0].hash, &mut scratch, |_, _| n += 1)
                        .unwrap();
                }
                counts.push(n);
                weighted.push(n * run.len() as u64);
            }
        }
    }
    let total: u64 = weighted.iter().sum();
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    println!(
        "distinct hashes {} mean postings {:.1} votes {}",
        counts.len(),
        mean,
        total
    );
    for k in [1.0, 2.0, 4.0, 8.0, 16.0] {
        let cap = (mean * k) as u64;
        let (mut h, mut v, mut vcap) = (0, 0u64, 0u64);
        for (i, &n) in counts.iter().enumerate() {
            if n > cap {
                h += 1;
                v += weighted[i];
                vcap += weighted[i] / n * cap;
            }
        }
        println!(
            "above {k}x mean ({cap}): {:.1} % of hashes, {:.1} % of votes; capping them keeps {:.1} % of votes",
            100.0 * h as f64 / counts.len() as f64,
            100.0 * v as f64 / total as f64,
            100.0 * (total - v + vcap) as f64 / total as f64
        );
    }
}
