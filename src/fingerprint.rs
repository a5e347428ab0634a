//! The one place that wires the stages: samples -> spectrogram frames ->
//! peaks -> landmarks, incrementally. Index and query differ only in peak
//! neighbourhood and fan-out, both taken from [`Params`].

use crate::hash::{Landmark, Pairer};
use crate::params::Params;
use crate::peaks::PeakPicker;
use crate::spectrogram::SpectrogramBuilder;
use crate::warp::Warp;

/// Whether landmarks are made for storing or for looking up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Index,
    Query,
}

/// Streaming fingerprinter for one input.
pub struct Fingerprinter {
    spectrogram: SpectrogramBuilder,
    picker: PeakPicker,
    pairer: Pairer,
}

impl Fingerprinter {
    pub fn new(params: &Params, role: Role) -> Fingerprinter {
        Fingerprinter::warped(params, role, Warp::NONE)
    }

    /// Landmarks of a warped clip on the original's grid (see [`Warp`]).
    pub fn warped(params: &Params, role: Role, warp: Warp) -> Fingerprinter {
        let (rb, rt, fan_out) = match role {
            Role::Index => (
                params.index_radius_bins,
                params.index_radius_frames,
                params.index_fan_out,
            ),
            Role::Query => (
                params.query_radius_bins,
                params.query_radius_frames,
                params.query_fan_out,
            ),
        };
        Fingerprinter {
            spectrogram: SpectrogramBuilder::warped(params, warp),
            picker: PeakPicker::new(rb, rt, params.peak_floor_power(), params.first_bin()),
            pairer: Pairer::new(
                fan_out,
                params.min_dt_frames,
                params.max_dt_frames,
                params.max_df_bins,
            ),
        }
    }

    /// Feed samples at the fingerprint rate.
    pub fn push(&mut self, samples: &[f32], out: &mut dyn FnMut(Landmark)) {
        let Fingerprinter {
            spectrogram,
            picker,
            pairer,
        } = self;
        spectrogram.push(samples, &mut |frame| {
            picker.push(frame, &mut |peak| pairer.push(peak, out));
        });
    }

    /// End of stream: flush what waits for future frames.
    pub fn finish(&mut self, out: &mut dyn FnMut(Landmark)) {
        let Fingerprinter { picker, pairer, .. } = self;
        picker.finish(&mut |peak| pairer.push(peak, out));
        pairer.finish(out);
    }
}
