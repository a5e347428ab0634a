//! Mono samples in, power spectrogram frames out, incrementally.
//!
//! Frame `i` covers samples `[i * hop, i * hop + fft_size)` of the stream, so
//! a frame index times the hop is an exact position. Values are power
//! relative to a full-scale sine (1.0 = 0 dB), for the bins
//! `first_bin..end_bin` only: linear, because peak picking only compares
//! values and a logarithm per bin cost ~2 % of indexing. The FFT is planned
//! once per thread and reused.

use std::cell::RefCell;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use crate::params::Params;
use crate::warp::Warp;

thread_local! {
    static PLANNER: RefCell<RealFftPlanner<f32>> = RefCell::new(RealFftPlanner::new());
}

/// Turns a stream of samples into spectrogram frames.
pub struct SpectrogramBuilder {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    /// Samples between frame starts (fractional when warped).
    hop: f64,
    first_bin: usize,
    avail_end: usize,
    /// Samples not yet consumed by a frame; `consumed` were dropped before them.
    pending: Vec<f32>,
    consumed: usize,
    /// Frames emitted so far.
    frames: u64,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    frame: Vec<f32>,
    /// Multiplies |X|^2 so that a full-scale sine peaks at 1.0.
    scale: f32,
}

impl SpectrogramBuilder {
    pub fn new(params: &Params) -> SpectrogramBuilder {
        SpectrogramBuilder::warped(params, Warp::NONE)
    }

    /// A spectrogram of a clip warped by `warp`, on the original's grid
    /// (an FFT of `fft_size / pitch` samples every `hop / tempo` samples).
    pub fn warped(params: &Params, warp: Warp) -> SpectrogramBuilder {
        // An even FFT length keeps realfft on its fast path.
        let n = ((params.fft_size as f64 / warp.pitch / 2.0).round() as usize * 2).max(2);
        let fft = PLANNER.with(|p| p.borrow_mut().plan_fft_forward(n));
        let window: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
            .collect();
        let gain = window.iter().sum::<f32>() / 2.0;
        let end_bin = params.end_bin();
        SpectrogramBuilder {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            window,
            hop: params.hop_samples as f64 / warp.tempo,
            first_bin: params.first_bin(),
            // Bins the original has but this FFT lacks (pitched-up clips
            // lost them above Nyquist) stay silent.
            avail_end: end_bin.min(n / 2 + 1),
            pending: Vec::with_capacity(n * 4),
            consumed: 0,
            frames: 0,
            frame: vec![0.0; end_bin - params.first_bin()],
            scale: 1.0 / (gain * gain),
        }
    }

    /// Feed samples; `on_frame` gets every frame completed by them, in order.
    pub fn push(&mut self, samples: &[f32], on_frame: &mut dyn FnMut(&[f32])) {
        self.pending.extend_from_slice(samples);
        let n = self.window.len();
        loop {
            let start = (self.frames as f64 * self.hop).round() as usize - self.consumed;
            if self.pending.len() < start + n {
                break;
            }
            for ((dst, &s), &w) in self
                .input
                .iter_mut()
                .zip(&self.pending[start..start + n])
                .zip(&self.window)
            {
                *dst = s * w;
            }
            self.fft
                .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
                .expect("buffers come from the plan itself");
            let avail = self.avail_end - self.first_bin;
            for (dst, c) in self.frame[..avail]
                .iter_mut()
                .zip(&self.spectrum[self.first_bin..self.avail_end])
            {
                // NaN or infinite samples (a broken decoder's output) would
                // make every bin a peak: they count as silence.
                let p = c.norm_sqr() * self.scale;
                *dst = if p.is_finite() { p } else { 0.0 };
            }
            on_frame(&self.frame);
            self.frames += 1;
        }
        let next = (self.frames as f64 * self.hop).round() as usize - self.consumed;
        let drop = next.min(self.pending.len());
        self.pending.drain(..drop);
        self.consumed += drop;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(samples: &[f32], params: &Params, piece: usize) -> Vec<Vec<f32>> {
        let mut b = SpectrogramBuilder::new(params);
        let mut out = Vec::new();
        for c in samples.chunks(piece) {
            b.push(c, &mut |f| out.push(f.to_vec()));
        }
        out
    }

    #[test]
    fn a_sine_peaks_at_its_bin_at_full_scale() {
        let p = Params::default();
        let f_hz = 1000.0; // exactly bin 128 at 8 kHz / 1024
        let s: Vec<f32> = (0..8000)
            .map(|i| (2.0 * std::f32::consts::PI * f_hz * i as f32 / 8000.0).sin())
            .collect();
        let frames = frames_of(&s, &p, 777);
        assert_eq!(frames.len(), (8000 - 1024) / 256 + 1);
        for f in &frames {
            let (argmax, &max) = f
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            assert_eq!(argmax + p.first_bin(), 128);
            let db = 10.0 * max.log10();
            assert!(db.abs() < 0.5, "full-scale sine should be ~0 dB, got {db}");
        }
    }

    #[test]
    fn nan_and_infinite_samples_are_silence() {
        let p = Params::default();
        let mut s: Vec<f32> = vec![f32::NAN; 4000];
        s.extend(std::iter::repeat_n(f32::INFINITY, 4000));
        for f in frames_of(&s, &p, 500) {
            assert!(f.iter().all(|&v| v == 0.0));
        }
    }

    #[test]
    fn chunking_does_not_change_frames() {
        let p = Params::default();
        let s: Vec<f32> = (0..20_000)
            .map(|i| ((i * 31) % 97) as f32 / 97.0 - 0.5)
            .collect();
        let a = frames_of(&s, &p, 100);
        let b = frames_of(&s, &p, 20_000);
        assert_eq!(a, b);
    }
}
