//! Arbitrary bytes as an audio stream: decoding, downmixing, resampling and
//! fingerprinting must never panic, whatever the container claims.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ostid::decode::{decode_reader, Flow};
use ostid::fingerprint::{Fingerprinter, Role};
use ostid::params::Params;

fuzz_target!(
    init: {
        // A panic inside a decoder (a dependency's demuxer) is caught and
        // becomes that file's error, as in `ostid` itself; any other panic
        // is a crash.
        std::panic::set_hook(Box::new(|info| {
            if !ostid::decode::in_decoder() {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    },
    |data: &[u8]| {
    let params = Params::default();
    let mut fp = Fingerprinter::new(&params, Role::Index);
    let mut n = 0usize;
    let mut total = 0usize;
    let _ = decode_reader(std::io::Cursor::new(data.to_vec()), params.sample_rate_hz, |chunk| {
        total += chunk.len();
        fp.push(chunk, &mut |_| n += 1);
        // A tiny input must not expand into hours of audio.
        if total > 8000 * 600 {
            Flow::Stop
        } else {
            Flow::Continue
        }
    });
    fp.finish(&mut |_| n += 1);
    }
);
