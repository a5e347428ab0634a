//! Generates the committed test fixtures: synthesized music (piano, strings,
//! bass, drums playing seeded melodies), encoded into several formats, plus
//! degraded query clips whose names carry the truth, an unknown clip and
//! damaged files.
//!
//! `cargo run --release --example make_fixtures` (needs ffmpeg for the
//! encodes; the output is committed, so tests never need ffmpeg).
//!
//! Query names: `<title>@<offset_s>_<degradation>.<ext>`; a looping track's
//! clip lists every position: `<title>@<o1>+<o2>+<o3>_loop.wav`.

use std::f32::consts::PI;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

const RATE: u32 = 44_100;

fn midi_hz(n: i32) -> f32 {
    440.0 * 2f32.powf((n - 69) as f32 / 12.0)
}

/// Add one note of an instrument into `buf` (mono, RATE).
fn note(
    buf: &mut [f32],
    start_s: f32,
    dur_s: f32,
    midi: i32,
    instrument: u8,
    gain: f32,
    rng: &mut Rng,
) {
    let f = midi_hz(midi);
    let start = (start_s * RATE as f32) as usize;
    let len = ((dur_s + 0.3) * RATE as f32) as usize;
    let phase0 = rng.f32() * 2.0 * PI;
    for i in 0..len {
        let idx = start + i;
        if idx >= buf.len() {
            break;
        }
        let t = i as f32 / RATE as f32;
        let release = if t > dur_s {
            (-(t - dur_s) * 20.0).exp()
        } else {
            1.0
        };
        let s = match instrument {
            // piano: bright attack, decaying harmonics
            0 => {
                let env = (t * 400.0).min(1.0) * (-t * 3.0).exp();
                (1..=6)
                    .map(|h| {
                        (2.0 * PI * f * h as f32 * t + phase0).sin() * (-t * h as f32).exp()
                            / h as f32
                    })
                    .sum::<f32>()
                    * env
            }
            // strings: slow attack, vibrato
            1 => {
                let env = (t * 6.0).min(1.0);
                let vib = 1.0 + 0.004 * (2.0 * PI * 5.5 * t).sin();
                (1..=4)
                    .map(|h| {
                        (2.0 * PI * f * vib * h as f32 * t + phase0 * h as f32).sin() * 0.6
                            / h as f32
                    })
                    .sum::<f32>()
                    * env
            }
            // bass
            2 => {
                let env = (t * 200.0).min(1.0) * (-t * 1.5).exp();
                ((2.0 * PI * f * t).sin() + 0.4 * (4.0 * PI * f * t).sin()) * env
            }
            // kick + hat (midi ignored): pitch sweep and a noise tick
            _ => {
                let kick =
                    (2.0 * PI * (50.0 + 90.0 * (-t * 30.0).exp()) * t).sin() * (-t * 12.0).exp();
                let hat = (rng.f32() * 2.0 - 1.0) * (-t * 60.0).exp() * 0.3;
                kick + hat
            }
        };
        buf[idx] += s * gain * release;
    }
}

/// A piece: a seeded progression with melody, pads, bass and drums.
fn compose(seed: u64, seconds: f32) -> Vec<f32> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut buf = vec![0.0f32; (seconds * RATE as f32) as usize];
    let bpm = 84.0 + (rng.next() % 50) as f32;
    let beat = 60.0 / bpm;
    let root = 45 + (rng.next() % 12) as i32;
    let scale = [0, 2, 3, 5, 7, 8, 10, 12, 14, 15];
    let chords = [[0, 3, 7], [5, 8, 12], [7, 10, 14], [3, 7, 10], [8, 12, 15]];
    let mut t = 0.0;
    let mut bar = 0;
    while t < seconds {
        let chord = rng.pick(&chords);
        // pad: one chord per bar
        for &c in &chord {
            note(&mut buf, t, beat * 4.0, root + 12 + c, 1, 0.12, &mut rng);
        }
        note(
            &mut buf,
            t,
            beat * 2.0,
            root - 12 + chord[0],
            2,
            0.35,
            &mut rng,
        );
        note(
            &mut buf,
            t + beat * 2.0,
            beat * 2.0,
            root - 12 + chord[1],
            2,
            0.3,
            &mut rng,
        );
        // melody: eighths and quarters
        let mut b = 0.0;
        while b < 4.0 {
            let len = if rng.f32() < 0.5 { 0.5 } else { 1.0 };
            if rng.f32() < 0.85 {
                let n = root + 24 + rng.pick(&scale);
                note(
                    &mut buf,
                    t + b * beat,
                    len * beat * 0.9,
                    n,
                    0,
                    0.25,
                    &mut rng,
                );
            }
            b += len;
        }
        // drums on beats 1 and 3, hats between
        for k in 0..4 {
            if k % 2 == 0 || bar % 2 == 1 {
                note(&mut buf, t + k as f32 * beat, 0.2, 0, 3, 0.3, &mut rng);
            }
        }
        t += beat * 4.0;
        bar += 1;
    }
    normalize(&mut buf, 0.7);
    buf
}

fn normalize(buf: &mut [f32], peak: f32) {
    let m = buf.iter().fold(0.0f32, |a, &x| a.max(x.abs())).max(1e-9);
    for x in buf.iter_mut() {
        *x *= peak / m;
    }
}

fn write_wav(path: &Path, samples: &[f32], rate: u32) {
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    let data_len = (samples.len() * 2) as u32;
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for &s in samples {
        out.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    fs::write(path, out).expect("write wav");
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg must be installed to regenerate fixtures");
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// Simple linear-interpolation resampler (only for making degraded clips).
fn resample(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    let n = (x.len() as u64 * to as u64 / from as u64) as usize;
    (0..n)
        .map(|i| {
            let pos = i as f64 * from as f64 / to as f64;
            let k = pos as usize;
            let frac = (pos - k as f64) as f32;
            let a = x[k.min(x.len() - 1)];
            let b = x[(k + 1).min(x.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

fn clip(x: &[f32], start_s: f64, len_s: f64) -> Vec<f32> {
    let a = (start_s * RATE as f64).round() as usize;
    let b = (a + (len_s * RATE as f64) as usize).min(x.len());
    x[a..b].to_vec()
}

struct Track {
    rel: &'static str,
    title: &'static str,
    seed: u64,
    seconds: f32,
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let tmp = root.join("tmp");
    for d in ["library", "queries", "damaged", "tmp"] {
        let _ = fs::remove_dir_all(root.join(d));
        fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let tracks = [
        Track {
            rel: "Skyward Saga/sky1.flac",
            title: "Main Theme",
            seed: 1,
            seconds: 20.0,
        },
        Track {
            rel: "Skyward Saga/sky2.mp3",
            title: "Storm Front",
            seed: 2,
            seconds: 20.0,
        },
        Track {
            rel: "Ember Road/01 - Opening.wav",
            title: "Opening",
            seed: 3,
            seconds: 15.0,
        },
        Track {
            rel: "Ember Road/02. Night Market.ogg",
            title: "Night Market",
            seed: 4,
            seconds: 20.0,
        },
        Track {
            rel: "Ember Road/03_Last Stand.opus",
            title: "Last Stand",
            seed: 5,
            seconds: 20.0,
        },
        Track {
            rel: "Hollow Crown/Disc 1/01 - Prelude.m4a",
            title: "Prelude",
            seed: 6,
            seconds: 15.0,
        },
        Track {
            rel: "Hollow Crown/Disc 2/01 - Coda.flac",
            title: "Coda",
            seed: 7,
            seconds: 15.0,
        },
    ];
    let mut audio = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        let pcm = if t.title == "Last Stand" {
            // A loop: one 5 s phrase played four times.
            let phrase = compose(t.seed, 5.0);
            phrase.repeat(4)
        } else {
            compose(t.seed, t.seconds)
        };
        let dst = root.join("library").join(t.rel);
        fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        let wav = tmp.join(format!("t{i}.wav"));
        write_wav(&wav, &pcm, RATE);
        let w = wav.to_str().expect("utf8");
        let d = dst.to_str().expect("utf8");
        match dst.extension().and_then(|e| e.to_str()).expect("ext") {
            "flac" if t.title == "Main Theme" => ffmpeg(&[
                "-i",
                w,
                "-ar",
                "22050",
                "-ac",
                "1",
                "-metadata",
                "title=Main Theme",
                "-metadata",
                "album=Skyward Saga",
                "-metadata",
                "artist=Ada Composer",
                "-metadata",
                "track=1/2",
                d,
            ]),
            "flac" => ffmpeg(&["-i", w, "-ar", "22050", "-ac", "1", d]),
            "mp3" => ffmpeg(&[
                "-i",
                w,
                "-ac",
                "2",
                "-b:a",
                "96k",
                "-id3v2_version",
                "3",
                "-metadata",
                "title=Storm Front",
                "-metadata",
                "album=Skyward Saga",
                "-metadata",
                "composer=Ada Composer",
                "-metadata",
                "track=2/2",
                d,
            ]),
            "wav" => write_wav(&dst, &resample(&pcm, RATE, 16_000), 16_000),
            "ogg" => ffmpeg(&["-i", w, "-ac", "2", "-c:a", "libvorbis", "-q:a", "2", d]),
            "opus" => ffmpeg(&["-i", w, "-ac", "2", "-c:a", "libopus", "-b:a", "48k", d]),
            "m4a" => ffmpeg(&["-i", w, "-ac", "2", "-c:a", "aac", "-b:a", "80k", d]),
            other => panic!("no encoder for {other}"),
        }
        audio.push(pcm);
    }

    let q = root.join("queries");
    let len = 8.0;
    // Clean, at 16 kHz.
    write_wav(
        &q.join("Main Theme@4.000_clean.wav"),
        &resample(&clip(&audio[0], 4.0, len), RATE, 16_000),
        16_000,
    );
    // Resampled to another rate.
    write_wav(
        &q.join("Storm Front@7.250_resampled-11025.wav"),
        &resample(&clip(&audio[1], 7.25, len), RATE, 11_025),
        11_025,
    );
    // Lossy: MP3 at 64 kbit/s.
    let tmpq = tmp.join("nm.wav");
    write_wav(&tmpq, &clip(&audio[3], 3.5, len), RATE);
    ffmpeg(&[
        "-i",
        tmpq.to_str().expect("utf8"),
        "-b:a",
        "64k",
        q.join("Night Market@3.500_mp3-64k.mp3")
            .to_str()
            .expect("utf8"),
    ]);
    // Noise at 10 dB SNR and 12 dB quieter.
    let mut noisy = clip(&audio[2], 6.0, len);
    let power = noisy.iter().map(|x| x * x).sum::<f32>() / noisy.len() as f32;
    let mut rng = Rng(77);
    let noise_amp = (power / 10.0).sqrt() * 3f32.sqrt();
    for x in noisy.iter_mut() {
        *x = (*x + (rng.f32() * 2.0 - 1.0) * noise_amp) * 0.25;
    }
    write_wav(
        &q.join("Opening@6.000_noise-gain.wav"),
        &resample(&noisy, RATE, 22_050),
        22_050,
    );
    // Starting between two hops of the fingerprint (32 ms).
    write_wav(
        &q.join("Prelude@5.017_between-hops.wav"),
        &resample(&clip(&audio[5], 5.017, len), RATE, 16_000),
        16_000,
    );
    // Coda, clean.
    write_wav(
        &q.join("Coda@2.500_clean.wav"),
        &resample(&clip(&audio[6], 2.5, 6.0), RATE, 16_000),
        16_000,
    );
    // The loop: a 4 s clip from 1.0 s occurs at 1, 6, 11 (and 16 only partly).
    write_wav(
        &q.join("Last Stand@1.000+6.000+11.000_loop.wav"),
        &resample(&clip(&audio[4], 1.0, 4.0), RATE, 16_000),
        16_000,
    );
    // Played faster (PAL-style speed-up: tempo and pitch together),
    // re-timed (tempo alone) and transposed (pitch alone, +1 semitone), with
    // ffmpeg's filters; the name holds the change.
    let warped = [
        (
            1usize,
            3.0,
            "Storm Front@3.000_speed-1.043.wav",
            "asetrate=45996,aresample=16000",
        ),
        (
            0,
            5.0,
            "Main Theme@5.000_tempo-0.950.wav",
            "atempo=0.95,aresample=16000",
        ),
        (
            3,
            2.0,
            "Night Market@2.000_pitch+1.wav",
            "asetrate=46722,aresample=44100,atempo=0.943874,aresample=16000",
        ),
    ];
    for (i, (track, start, name, filter)) in warped.into_iter().enumerate() {
        let src = tmp.join(format!("warp{i}.wav"));
        write_wav(&src, &clip(&audio[track], start, 9.0), RATE);
        ffmpeg(&[
            "-i",
            src.to_str().expect("utf8"),
            "-af",
            filter,
            "-ac",
            "1",
            "-c:a",
            "pcm_s16le",
            "-fflags",
            "+bitexact",
            q.join(name).to_str().expect("utf8"),
        ]);
    }
    // Unknown music with the same instruments.
    write_wav(
        &q.join("unknown_same-instruments.wav"),
        &resample(&compose(99, len as f32), RATE, 16_000),
        16_000,
    );

    // Damaged files.
    let dmg = root.join("damaged");
    fs::write(
        dmg.join("not-audio.mp3"),
        "This is a text file with an audio extension.\n".repeat(40),
    )
    .expect("write");
    let full = fs::read(root.join("library/Hollow Crown/Disc 2/01 - Coda.flac")).expect("read");
    fs::write(dmg.join("truncated.flac"), &full[..full.len() / 2]).expect("write");
    fs::write(dmg.join("empty.ogg"), b"").expect("write");

    // A codec symphonia lacks: AC-3 in Matroska, as in film rips.
    let unsupported = root.join("unsupported");
    fs::create_dir_all(&unsupported).expect("mkdir");
    let ac3 = unsupported.join("ac3-in-matroska.mka");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1",
        "-ac",
        "2",
        "-c:a",
        "ac3",
        "-b:a",
        "64k",
        "-fflags",
        "+bitexact",
        ac3.to_str().expect("utf-8 path"),
    ]);
    let _ = fs::remove_dir_all(&tmp);
    println!("fixtures written to {}", root.display());
}
