//! Experiment: how the right track and the best wrong one score, clip by
//! clip, under query-side settings given in the environment
//! (`QRB`, `QRF`: query peak radius in bins and frames; `FAN`: fan-out).
//! `score_probe DB MANIFEST...` (per-kind manifests of `benches/eval.py`)
//! prints one line per clip: group kind length truth wrong wrong_windows
//! landmarks truth_path truth_offset wrong_offset wrong_path.
use ostid::decode::{decode, Flow, Source};
use ostid::matcher::Matcher;
use ostid::store::{Access, Store};
use ostid::warp::{self, Warp};

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = Store::open(std::path::Path::new(&a[1]), Access::Read, None).unwrap();
    let m = Matcher::new(&store).unwrap();
    drop(store);
    let mut params = m.params().clone();
    if let Some(v) = env("QRB") {
        params.query_radius_bins = v;
    }
    if let Some(v) = env("QRF") {
        params.query_radius_frames = v;
    }
    if let Some(v) = env("FAN") {
        params.query_fan_out = v;
    }
    let frame_s = params.frame_s();
    for manifest in &a[2..] {
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        for c in clips.as_array().unwrap() {
            let mut samples = Vec::new();
            decode(
                &Source::Path(c["query"].as_str().unwrap().into()),
                8000,
                0.5,
                |s| {
                    samples.extend_from_slice(s);
                    Flow::Continue
                },
            )
            .unwrap();
            let lms = warp::landmarks(&params, &samples, Warp::NONE);
            let scores = m.track_scores(&lms).unwrap();
            let truth = c["path"].as_str().unwrap();
            let mut t = 0;
            let mut wrong = (0, 0, String::new(), 0);
            for (path, offset, score, windows) in &scores {
                if path == truth {
                    // Any position: looping music repeats the true one.
                    t = *score;
                } else if wrong.0 == 0 {
                    wrong = (*score, *windows, path.clone(), *offset);
                }
            }
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{:.1}\t{}",
                c["group"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["length"],
                t,
                wrong.0,
                wrong.1,
                lms.len(),
                c["path"].as_str().unwrap(),
                c["offset_s"],
                wrong.3 as f64 * frame_s,
                wrong.2,
            );
        }
    }
}
