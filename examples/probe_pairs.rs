//! Experiment: the warp search with a spectrogram per warp
//! (`warp::landmarks`, the naive twin) against peaks found once and moved
//! (`warp::Pairs`), on clips of the evaluation's tuning half.
//!
//! `probe_pairs DB MANIFEST...` prints one JSON object per clip: the best
//! first-pass probe of each way (score, change) and the time each pass took.
//! `probe_pairs --best FACTOR DB MANIFEST...` (speed-changed clips) prints,
//! for each way, the full query with the least chance over a sweep of
//! speeds within 0.3 % of FACTOR: (chance, distinct query frames, votes).
mod common;
use std::time::Instant;

use ostid::hash::Landmark;
use ostid::matcher::Matcher;
use ostid::params::Params;
use ostid::store::{Access, Store};
use ostid::warp::{self, Change};

fn main() {
    let mut a: Vec<String> = std::env::args().skip(1).collect();
    let best_around: Option<f64> = if a.first().map(String::as_str) == Some("--best") {
        let f = a[1].parse().expect("--best FACTOR");
        a.drain(..2);
        Some(f)
    } else {
        None
    };
    let store = Store::open(std::path::Path::new(&a[0]), Access::Read, None).unwrap();
    let m = Matcher::new(store).unwrap();
    let params = m.params().clone();
    let probe_params = Params {
        query_fan_out: params.warp.probe_fan_out,
        ..params.clone()
    };
    let looks = warp::looks(&params);
    for manifest in &a[1..] {
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        for c in clips.as_array().unwrap() {
            let samples = common::clip_samples(c);
            if let Some(truth) = best_around {
                let pairs = warp::Pairs::new(&params, &samples, params.query_fan_out);
                let judge = |l: &[Landmark]| {
                    let f = m.features(l, 1, looks).unwrap();
                    f.tracks.first().map_or((f64::INFINITY, 0, 0), |t| {
                        (t.chance, t.distinct_frames, t.score)
                    })
                };
                let least = |v: Vec<(f64, u32, u32)>| {
                    v.into_iter().min_by(|x, y| x.0.total_cmp(&y.0)).unwrap()
                };
                let speeds: Vec<Change> = (-10..=10)
                    .map(|k| Change::Speed(truth + k as f64 * 0.0003))
                    .collect();
                let old = least(
                    speeds
                        .iter()
                        .map(|ch| judge(&warp::landmarks(&params, &samples, ch.warp())))
                        .collect(),
                );
                let new = least(
                    speeds
                        .iter()
                        .map(|ch| judge(&pairs.landmarks(ch.warp())))
                        .collect(),
                );
                println!(
                    "{}",
                    serde_json::json!({"query": c["query"], "spectrogram": old, "moved": new})
                );
                continue;
            }
            let best = |v: Vec<(u32, String)>| v.into_iter().max_by_key(|p| p.0).unwrap();
            let t = Instant::now();
            let old: Vec<(u32, String)> = warp::grid(&params)
                .into_iter()
                .map(|ch| {
                    let l = warp::landmarks(&probe_params, &samples, ch.warp());
                    (m.probe(&l, looks).unwrap().score, format!("{ch:?}"))
                })
                .collect();
            let old_ms = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            let pairs = warp::Pairs::new(&params, &samples, params.warp.probe_fan_out);
            let new: Vec<(u32, String)> = warp::grid(&params)
                .into_iter()
                .map(|ch| {
                    let l = pairs.landmarks(ch.warp());
                    (m.probe(&l, looks).unwrap().score, format!("{ch:?}"))
                })
                .collect();
            let new_ms = t.elapsed().as_secs_f64() * 1e3;
            println!(
                "{}",
                serde_json::json!({"query": c["query"], "spectrogram": best(old), "moved": best(new),
                                   "spectrogram_ms": old_ms, "moved_ms": new_ms})
            );
        }
    }
}
