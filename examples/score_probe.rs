//! Experiment: what the decision rule sees of each clip, under query-side
//! settings given in the environment (`QRB`, `QRF`: query peak radius in
//! bins and frames; `FAN`: fan-out; `WARP=speed:1.04` etc.: a warp).
//! `score_probe DB MANIFEST...` (per-kind manifests of `benches/eval.py`)
//! prints one JSON object per clip: the clip's manifest entry and
//! [`ostid::matcher::Features`] (the library's score tail, and the best
//! tracks with their scores, windows, chance rates and tails).
mod common;
use ostid::matcher::Matcher;
use ostid::store::{Access, Store};
use ostid::warp::{self, Change, Warp};

fn env(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = Store::open(std::path::Path::new(&a[1]), Access::Read, None).unwrap();
    let m = Matcher::new(store).unwrap();
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
    let warp = std::env::var("WARP").ok().map_or(Warp::NONE, |w| {
        let (kind, f) = w.split_once(':').expect("WARP=kind:factor");
        let f: f64 = f.parse().expect("a factor");
        match kind {
            "speed" => Change::Speed(f),
            "tempo" => Change::Tempo(f),
            _ => Change::Pitch(f),
        }
        .warp()
    });
    for manifest in &a[2..] {
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        for c in clips.as_array().unwrap() {
            let samples = common::clip_samples(c);
            let lms = warp::landmarks(&params, &samples, warp);
            let f = m.features(&lms, 5, 1.0).unwrap();
            let line = serde_json::json!({"clip": c, "features": f});
            println!("{line}");
        }
    }
}
