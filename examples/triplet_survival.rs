//! Experiment: what a third peak in the hash would cost in robustness.
//! `triplet_survival DB MANIFEST...` (known clips of unwarped kinds, from
//! `benches/eval.py`) fingerprints each clip's true track as the index
//! does and the clip as a query does, aligns them at the clip's true
//! offset, and counts the track's anchor peaks with at least one landmark
//! the clip also has (the true votes of today's pair hashes: votes count
//! once per anchor) and with at least two (what a hash of an anchor and two
//! of its targets would keep). Prints a line per kind and length: clips,
//! median anchors of each, and the share of clips with at least 11 (the
//! decision rule's floor) of each, and the clips' mean landmarks (each a
//! lookup). `INDEX_FAN_OUT=N` fingerprints tracks at
//! another fan-out; `QUERY_FAN_OUT`, `QRB` and `QRF` change the query's
//! fan-out and peak radius (bins, frames).
mod common;
use std::collections::HashMap;

use ostid::decode::{decode, Flow, Source};
use ostid::fingerprint::{Fingerprinter, Role};
use ostid::hash::{self, Landmark};
use ostid::store::{Access, Store};
use ostid::warp::{self, Warp};

fn track_landmarks(params: &ostid::params::Params, path: &str) -> Vec<Landmark> {
    let mut fp = Fingerprinter::new(params, Role::Index);
    let mut out = Vec::new();
    decode(
        &Source::Path(path.into()),
        params.sample_rate_hz,
        0.5,
        |s| {
            fp.push(s, &mut |l| out.push(l));
            Flow::Continue
        },
    )
    .expect("an evaluation track decodes");
    fp.finish(&mut |l| out.push(l));
    out
}

fn median(v: &mut [u32]) -> u32 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = Store::open(std::path::Path::new(&a[1]), Access::Read, None).unwrap();
    let mut params = store.params().clone();
    drop(store);
    // INDEX_FAN_OUT=N: the track's landmarks at another index fan-out (a
    // triplet index of fan-out N stores N (N - 1) / 2 hashes an anchor).
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(n) = env("INDEX_FAN_OUT") {
        params.index_fan_out = n;
    }
    // QUERY_FAN_OUT, QRB, QRF: the query's fan-out and peak radius (bins, frames).
    let index_params = params.clone();
    if let Some(n) = env("QUERY_FAN_OUT") {
        params.query_fan_out = n;
    }
    if let Some(n) = env("QRB") {
        params.query_radius_bins = n;
    }
    if let Some(n) = env("QRF") {
        params.query_radius_frames = n;
    }
    let mut tracks: HashMap<String, HashMap<u32, Vec<u32>>> = HashMap::new();
    // (kind, length) -> per clip (anchors >= 1 match, anchors >= 2 matches, landmarks)
    type Clip = (u32, u32, usize);
    let mut cells: std::collections::BTreeMap<(String, u64), Vec<Clip>> = Default::default();
    for manifest in &a[2..] {
        let clips: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        for c in clips.as_array().unwrap() {
            let path = c["path"].as_str().unwrap().to_string();
            let index = tracks.entry(path.clone()).or_insert_with(|| {
                let mut by_hash: HashMap<u32, Vec<u32>> = HashMap::new();
                for l in track_landmarks(&index_params, &path) {
                    by_hash.entry(l.hash).or_default().push(l.frame);
                }
                by_hash
            });
            let offset = (c["offset_s"].as_f64().unwrap() / params.frame_s()).round() as i64;
            let samples = common::clip_samples(c);
            let query = warp::landmarks(&params, &samples, Warp::NONE);
            // Matched index landmarks, by index anchor (frame, bin).
            let mut matched: HashMap<(u32, u16), Vec<u32>> = HashMap::new();
            for q in &query {
                let Some(frames) = index.get(&q.hash) else {
                    continue;
                };
                for &fi in frames {
                    if (fi as i64 - (q.frame as i64 + offset)).abs() <= 1 {
                        let (f1, _, _) = hash::unpack(hash::unmix(q.hash));
                        let e = matched.entry((fi, f1)).or_default();
                        if !e.contains(&q.hash) {
                            e.push(q.hash);
                        }
                    }
                }
            }
            let one = matched.len() as u32;
            let two = matched.values().filter(|m| m.len() >= 2).count() as u32;
            let key = (
                c["kind"].as_str().unwrap().to_string(),
                c["length"].as_u64().unwrap(),
            );
            cells.entry(key).or_default().push((one, two, query.len()));
        }
    }
    for ((kind, length), v) in cells {
        let mut ones: Vec<u32> = v.iter().map(|x| x.0).collect();
        let mut twos: Vec<u32> = v.iter().map(|x| x.1).collect();
        let share =
            |xs: &[u32]| 100.0 * xs.iter().filter(|&&x| x >= 11).count() as f64 / xs.len() as f64;
        let (s1, s2) = (share(&ones), share(&twos));
        let landmarks = v.iter().map(|x| x.2).sum::<usize>() / v.len().max(1);
        println!(
            "{kind} {length} s: {} clips, {landmarks} landmarks; anchors matched, median: pairs {} / triplets {}; clips with >= 11: pairs {s1:.0} % / triplets {s2:.0} %",
            v.len(),
            median(&mut ones),
            median(&mut twos),
        );
    }
}
