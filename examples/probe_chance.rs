//! Experiment: what the warp search's first pass sees of each clip, to set
//! `warp.refine_max_chance` on the evaluation's tuning half.
//! `probe_chance DB MANIFEST...` (per-kind manifests of `benches/eval.py`)
//! prints one JSON object per clip: its manifest entry, the straight look's
//! score, whether the search runs at all, and the probe (score, chance,
//! change) of every grid point, best score first.
mod common;
use ostid::matcher::Matcher;
use ostid::store::{Access, Store};
use ostid::warp;
use rayon::prelude::*;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = Store::open(std::path::Path::new(&a[1]), Access::Read, None).unwrap();
    let m = Matcher::new(store).unwrap();
    let params = m.params().clone();
    let probe_params = ostid::params::Params {
        query_fan_out: params.warp.probe_fan_out,
        ..params.clone()
    };
    let looks = warp::looks(&params);
    for manifest in &a[2..] {
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        let lines: Vec<String> = clips
            .as_array()
            .unwrap()
            .par_iter()
            .map(|c| {
                let samples = common::clip_samples(c);
                let lms = warp::landmarks(&params, &samples, warp::Warp::NONE);
                let straight = m.identify(&lms, 1, 1.0).unwrap();
                let score = straight.best.as_ref().map_or(0, |b| b.score);
                let searched = score < params.warp.skip_votes;
                let mut probes = Vec::new();
                if searched {
                    for change in warp::grid(&params) {
                        let l = warp::landmarks(&probe_params, &samples, change.warp());
                        let p = m.probe(&l, looks).unwrap();
                        probes.push((p.score, p.chance, format!("{change:?}")));
                    }
                    probes.sort_by_key(|p| std::cmp::Reverse(p.0));
                }
                serde_json::json!({"clip": c, "straight": score, "searched": searched,
                                   "probes": probes})
                .to_string()
            })
            .collect();
        for l in lines {
            println!("{l}");
        }
    }
}
