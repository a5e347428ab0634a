//! Experiment: score of the right track as the query warp varies.
//! `warp_sweep DB MANIFEST KIND LENGTH MODE [FAN_OUT]` (MODE: speed, tempo,
//! pitch; MANIFEST: a `manifest-KIND.json` of `benches/eval.py`).
mod common;
use ostid::matcher::Matcher;
use ostid::store::{Access, Store};
use ostid::warp::{self, Warp};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = Store::open(std::path::Path::new(&a[1]), Access::Read, None).unwrap();
    let m = Matcher::new(store).unwrap();
    let mut params = m.params().clone();
    if let Some(f) = a.get(6) {
        params.query_fan_out = f.parse().unwrap();
    }
    let mut spent = 0.0;
    let mut calls = 0;
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&a[2]).unwrap()).unwrap();
    let kind = &a[3];
    let length: u64 = a[4].parse().unwrap();
    let mode = &a[5];
    let factors: Vec<f64> = (-24..=24).map(|i| 1.0 + i as f64 * 0.0025).collect();
    let mut n = 0;
    // A per-kind manifest is a list; the old single manifest had "clips".
    let clips = manifest.get("clips").unwrap_or(&manifest);
    for c in clips.as_array().unwrap() {
        if c["kind"] != *kind || c["length"].as_u64() != Some(length) || c["group"] != "known" {
            continue;
        }
        n += 1;
        if n > 12 {
            break;
        }
        let samples = common::clip_samples(c);
        let truth = c["path"].as_str().unwrap();
        let mut line = String::new();
        for &f in &factors {
            let warp = match mode.as_str() {
                "speed" => Warp { pitch: f, tempo: f },
                "tempo" => Warp {
                    pitch: 1.0,
                    tempo: f,
                },
                _ => Warp {
                    pitch: f,
                    tempo: 1.0,
                },
            };
            let t = std::time::Instant::now();
            let lms = warp::landmarks(&params, &samples, warp);
            let o = m.identify(&lms, 3, 1.0).unwrap();
            spent += t.elapsed().as_secs_f64();
            calls += 1;
            let s = match &o.best {
                Some(b) if b.path == truth => format!("{:>4}", b.score),
                Some(_) => "   X".to_string(),
                None => "   .".to_string(),
            };
            line.push_str(&s);
        }
        println!("{line}");
    }
    let hdr: String = factors
        .iter()
        .map(|f| format!("{:>4}", ((f - 1.0) * 1000.0).round() as i64))
        .collect();
    println!("{hdr}  (per mille)");
    println!("{:.2} ms per warp", spent * 1000.0 / calls as f64);
}
