//! Arbitrary samples (any values: NaN, infinities, huge, denormal) through
//! the spectrogram, peaks and hashes, plain and warped: never a panic, and
//! every landmark's frame lies within the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostid::fingerprint::{Fingerprinter, Role};
use ostid::params::Params;
use ostid::warp::Warp;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let samples: Vec<f32> = rest
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let params = Params::default();
    let warp = Warp {
        pitch: 0.92 + (sel % 17) as f64 * 0.01,
        tempo: 0.92 + (sel / 17 % 17) as f64 * 0.01,
    };
    let role = if sel & 1 == 0 { Role::Index } else { Role::Query };
    let mut fp = Fingerprinter::warped(&params, role, warp);
    let frames = samples.len() as u32 / params.hop_samples as u32 + 2;
    let mut check = |l: ostid::hash::Landmark| assert!(l.frame <= frames * 2, "frame {}", l.frame);
    for c in samples.chunks(777) {
        fp.push(c, &mut check);
    }
    fp.finish(&mut check);
});
