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
    /// The glance's peaks and pairs, from the same spectrogram
    /// ([`Fingerprinter::query_with_glance`]).
    glance: Option<(PeakPicker, Pairer)>,
}

/// Which look a query landmark is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// The straight look (and every look after it).
    Straight,
    /// The glance ([`crate::params::GlanceParams`]).
    Glance,
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
            glance: None,
        }
    }

    /// A query fingerprinter that also makes the glance's landmarks (its
    /// own peaks of the same spectrogram), when the glance is enabled.
    pub fn query_with_glance(params: &Params) -> Fingerprinter {
        let mut fp = Fingerprinter::new(params, Role::Query);
        let g = &params.glance;
        if g.enabled {
            let peaks = params.with_query_peaks(g.radius_bins, g.radius_frames, g.fan_out);
            let glance = Fingerprinter::new(&peaks, Role::Query);
            fp.glance = Some((glance.picker, glance.pairer));
        }
        fp
    }

    /// [`Fingerprinter::push`], with the glance's landmarks too (to `out`
    /// with [`Look::Glance`]).
    pub fn push_looks(&mut self, samples: &[f32], out: &mut dyn FnMut(Landmark, Look)) {
        let Fingerprinter {
            spectrogram,
            picker,
            pairer,
            glance,
        } = self;
        spectrogram.push(samples, &mut |frame| {
            picker.push(frame, &mut |peak| {
                pairer.push(peak, &mut |l| out(l, Look::Straight))
            });
            if let Some((picker, pairer)) = glance {
                picker.push(frame, &mut |peak| {
                    pairer.push(peak, &mut |l| out(l, Look::Glance))
                });
            }
        });
    }

    /// [`Fingerprinter::finish`], with the glance's landmarks too.
    pub fn finish_looks(&mut self, out: &mut dyn FnMut(Landmark, Look)) {
        let Fingerprinter {
            picker,
            pairer,
            glance,
            ..
        } = self;
        picker.finish(&mut |peak| pairer.push(peak, &mut |l| out(l, Look::Straight)));
        pairer.finish(&mut |l| out(l, Look::Straight));
        if let Some((picker, pairer)) = glance {
            picker.finish(&mut |peak| pairer.push(peak, &mut |l| out(l, Look::Glance)));
            pairer.finish(&mut |l| out(l, Look::Glance));
        }
    }

    /// Landmarks of a whole query in memory: the straight look's and the
    /// glance's (empty when the glance is off).
    pub fn query_looks(params: &Params, samples: &[f32]) -> (Vec<Landmark>, Vec<Landmark>) {
        let mut fp = Fingerprinter::query_with_glance(params);
        let (mut straight, mut glance) = (Vec::new(), Vec::new());
        let mut put = |l: Landmark, look: Look| match look {
            Look::Straight => straight.push(l),
            Look::Glance => glance.push(l),
        };
        fp.push_looks(samples, &mut put);
        fp.finish_looks(&mut put);
        (straight, glance)
    }

    /// Feed samples at the fingerprint rate.
    pub fn push(&mut self, samples: &[f32], out: &mut dyn FnMut(Landmark)) {
        self.push_looks(samples, &mut |l, look| {
            if look == Look::Straight {
                out(l)
            }
        });
    }

    /// End of stream: flush what waits for future frames.
    pub fn finish(&mut self, out: &mut dyn FnMut(Landmark)) {
        self.finish_looks(&mut |l, look| {
            if look == Look::Straight {
                out(l)
            }
        });
    }
}
