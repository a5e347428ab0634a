//! Scale benchmark support (`benches/scale.py`): a simulated library of many
//! hours, made from a real index without decoding anything.
//!
//! `simulate_library SRC DST HOURS` writes a new index at DST holding every
//! track of the index at SRC as it is, then copies of them whose hashes are
//! remapped by a per-copy bijection of the hash space, until DST holds HOURS
//! of audio. A copy has the density and the per-hash spread of real music, so
//! it draws chance votes as real music would, but it is no recording, so no
//! clip is in it. Everything goes through the store's own commit and merge
//! path, as `ostid index` would write it.
use std::path::Path;
use std::time::Instant;

use ostid::hash::{Landmark, HASH_MASK};
use ostid::store::{Access, NewTrack, Store, TrackRecord, SEGMENT_MAX_POSTINGS};

/// Copy `k`'s hash for `h`: an xor and an odd multiplier, both bijections.
fn remap(h: u32, k: u32) -> u32 {
    if k == 0 {
        return h;
    }
    let xor = k.wrapping_mul(0x9E37_79B1) & HASH_MASK;
    let mul = k.wrapping_mul(0x0005_1ED3) | 1;
    (h ^ xor).wrapping_mul(mul) & HASH_MASK
}

fn main() -> anyhow::Result<()> {
    let a: Vec<String> = std::env::args().collect();
    anyhow::ensure!(a.len() == 4, "usage: simulate_library SRC DST HOURS");
    let hours: f64 = a[3].parse()?;
    let src = Store::open(Path::new(&a[1]), Access::Read, None)?;
    let params = src.params().clone();
    let records: Vec<TrackRecord> = src.tracks()?;
    // Every source track's landmarks, from its postings.
    let mut landmarks: std::collections::HashMap<u32, Vec<Landmark>> = Default::default();
    for part in src.parts()? {
        for (hash, gframe) in part.file.iter() {
            let Some((slot, frame)) = part.file.locate(gframe) else {
                continue;
            };
            let Some(&track) = part.tracks.get(slot as usize) else {
                continue;
            };
            landmarks
                .entry(track)
                .or_default()
                .push(Landmark { hash, frame });
        }
    }
    drop(src);
    let started = Instant::now();
    let mut dst = Store::open(Path::new(&a[2]), Access::Write, Some(&params))?;
    let mut pending: Vec<NewTrack> = Vec::new();
    let mut postings = 0;
    let mut audio_s = dst.counters().audio_s;
    'copies: for k in 0u32.. {
        for rec in &records {
            if audio_s >= hours * 3600.0 {
                break 'copies;
            }
            let Some(ls) = landmarks.get(&rec.id) else {
                continue;
            };
            let mut ls: Vec<Landmark> = ls
                .iter()
                .map(|l| Landmark {
                    hash: remap(l.hash, k),
                    frame: l.frame,
                })
                .collect();
            ls.sort_unstable();
            let mut record = rec.clone();
            if k > 0 {
                record.path = format!("/simulated/copy-{k}{}", rec.path);
                record.path_bytes = None;
                record.title = format!("{} (copy {k})", rec.title);
            }
            let path_key = record.path.as_bytes().to_vec();
            audio_s += record.duration_s;
            postings += ls.len();
            pending.push(NewTrack {
                record,
                path_key,
                landmarks: ls,
            });
            if postings >= SEGMENT_MAX_POSTINGS {
                dst.commit(std::mem::take(&mut pending), &[])?;
                dst.tidy()?;
                postings = 0;
            }
            if (audio_s / 3600.0 / 100.0).floor()
                > ((audio_s - rec.duration_s) / 3600.0 / 100.0).floor()
            {
                eprintln!("{:.0} h", audio_s / 3600.0);
            }
        }
    }
    dst.commit(pending, &[])?;
    dst.tidy()?;
    // As `ostid index` ends a run.
    dst.gather_small()?;
    dst.flush()?;
    eprintln!(
        "simulated {:.1} h ({} tracks) in {:.1} s",
        dst.counters().audio_s / 3600.0,
        dst.counters().tracks,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
