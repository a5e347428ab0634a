//! Fingerprint parameters: one struct, its defaults and presets, and a digest
//! the index records so that a query is always fingerprinted the way the
//! library was. Matching thresholds live here too, since they are tuned
//! against the density these parameters produce.

use serde::{Deserialize, Serialize};

/// Everything that shapes a fingerprint. Stored in the index as JSON; the
/// digest of that JSON must match for an index to be reused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Name of the preset these values came from (informational).
    pub preset: String,
    /// Rate the audio is resampled to before analysis, Hz. Default 8000.
    pub sample_rate_hz: u32,
    /// FFT window length, samples. Default 1024 (128 ms).
    pub fft_size: usize,
    /// Hop between spectrogram frames, samples. Default 256 (32 ms).
    pub hop_samples: usize,
    /// Lowest frequency analysed, Hz. Default 100.
    pub min_freq_hz: f32,
    /// Highest frequency analysed, Hz. Default 3800.
    pub max_freq_hz: f32,
    /// Peaks quieter than this, dB relative to a full-scale sine, are ignored.
    /// Default -90 (quiet ambient passages still have peaks; digital silence does not).
    pub peak_floor_db: f32,
    /// A stored peak is the maximum of +-this many bins... Default 12.
    pub index_radius_bins: usize,
    /// ...and +-this many frames. Default 10.
    pub index_radius_frames: usize,
    /// A query peak is the maximum of a smaller neighbourhood, so that every
    /// stored peak that survives damage is found again. Default 6.
    pub query_radius_bins: usize,
    /// Default 5.
    pub query_radius_frames: usize,
    /// Smallest time gap between the two peaks of a landmark, frames. Default 1.
    pub min_dt_frames: u32,
    /// Largest time gap, frames (at most 63: 6 bits). Default 48 (1.5 s).
    pub max_dt_frames: u32,
    /// Largest frequency gap, bins (at most 127: 8 bits signed). Default 96.
    pub max_df_bins: u32,
    /// Landmarks stored per anchor peak (its nearest targets in time). Default 5.
    pub index_fan_out: usize,
    /// Landmarks made per anchor peak of a query. Default 24.
    pub query_fan_out: usize,
    /// The vote count threshold of indexes made before the chance rule
    /// (`decision`); read and ignored.
    #[serde(default, skip_serializing)]
    pub min_votes: Option<u32>,
    /// Width of the query time windows that votes are spread over, frames. Default 31 (~1 s).
    pub vote_window_frames: u32,
    /// Distinct windows the votes must cover: chance agreements (one shared
    /// chord) cluster in time, a real match runs through the clip. Default 3.
    pub min_windows: u32,
    /// The first look at a clip, with few landmarks per peak, that names
    /// clips heard clearly at a fraction of a full look's cost (query side
    /// only: changing it never needs a rebuild).
    #[serde(default)]
    pub glance: GlanceParams,
    /// The search for clips played faster, slower or transposed (query side
    /// only: changing it never needs a rebuild).
    #[serde(default)]
    pub warp: WarpParams,
    /// The second look at a clip the first could not name (query side
    /// only: changing it never needs a rebuild).
    #[serde(default)]
    pub close_look: CloseLookParams,
    /// When an answer is named, and how sure it is (query side only).
    #[serde(default)]
    pub decision: DecisionParams,
}

/// The decision rule (see `chance`): a track is named when the expected
/// number of chance answers at least as strong, for this query, is at most
/// `max_chance`. Fitted on the evaluation's tuning half (README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionParams {
    /// Expected chance answers per clip an answer may have at most.
    /// Default 3e-5: chosen on the tuning half, where the strongest of
    /// 2,160 unknown clips came to 1.9e-4 (README).
    pub max_chance: f64,
    /// Fewest votes any answer needs, whatever the odds (a floor against
    /// what the chance model cannot see: pieces made with one synthesizer
    /// share exact timbres). Default 11.
    pub min_votes: u32,
    /// How many times more chance votes vary than Poisson's (quasi-Poisson:
    /// repeated figures in music pile them up). Default 1.5, chosen on the
    /// tuning half.
    pub dispersion: f64,
    /// Confidence: the chance figure at which half the answers are right...
    /// Default 0.1, fitted on the tuning half (`benches/tune.py`).
    pub confidence_half_chance: f64,
    /// ...and how steeply confidence falls with it. Default 0.3, fitted.
    pub confidence_slope: f64,
}

impl Default for DecisionParams {
    fn default() -> DecisionParams {
        DecisionParams {
            max_chance: 3e-5,
            min_votes: 11,
            dispersion: 1.5,
            confidence_half_chance: 0.1,
            confidence_slope: 0.3,
        }
    }
}

/// The glance (`glance`): the first look at a clip, at query peaks from the
/// index's own neighbourhoods, with few targets per peak. A damaged clip
/// keeps fewer of those peaks, but most it keeps are the stored ones: a
/// sixth of the straight look's landmarks hold most of its true votes
/// (clean 10 s: 2,800 landmarks and 183 true anchors against 17,000 and
/// 196; pink noise 0 dB: 3,300 and 49 against 21,000 and 62), so chance
/// gives far fewer votes and each is cheap. Named by the decision rule as
/// any look; a clip it cannot name is looked at in full as before.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GlanceParams {
    /// Glance first at all. Default true.
    pub enabled: bool,
    /// A glance peak is the maximum of +-this many bins... Default 12
    /// (`index_radius_bins`' default).
    pub radius_bins: usize,
    /// ...and +-this many frames. Default 10.
    pub radius_frames: usize,
    /// Landmarks per anchor peak (its nearest targets). Default 16.
    /// Chosen on the tuning half (5.68 h, 4,110 clips; radius 10 x 8 /
    /// 12 x 10 / 16 x 12 and 16 / 24 targets, tried as a look before the
    /// old glance, within one clip of each other).
    pub fan_out: usize,
}

impl Default for GlanceParams {
    fn default() -> GlanceParams {
        GlanceParams {
            enabled: true,
            radius_bins: 12,
            radius_frames: 10,
            fan_out: 16,
        }
    }
}

/// The glance settings as an index records them. Indexes made before the
/// glance looked at peaks of its own recorded only `enabled`, `fan_out`
/// (4, of the straight look's peaks), `max_chance` and `recount_fan_out`:
/// those take today's glance (`enabled` kept).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedGlance {
    enabled: Option<bool>,
    radius_bins: Option<usize>,
    radius_frames: Option<usize>,
    fan_out: Option<usize>,
    #[serde(rename = "max_chance")]
    _max_chance: Option<f64>,
    #[serde(rename = "recount_fan_out")]
    _recount_fan_out: Option<usize>,
}

impl<'de> Deserialize<'de> for GlanceParams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GlanceParams, D::Error> {
        let r = RecordedGlance::deserialize(d)?;
        let default = GlanceParams::default();
        let enabled = r.enabled.unwrap_or(default.enabled);
        Ok(match (r.radius_bins, r.radius_frames) {
            (None, None) => GlanceParams { enabled, ..default },
            (bins, frames) => GlanceParams {
                enabled,
                radius_bins: bins.unwrap_or(default.radius_bins),
                radius_frames: frames.unwrap_or(default.radius_frames),
                fan_out: r.fan_out.unwrap_or(default.fan_out),
            },
        })
    }
}

/// How `match` and `scan` look again at a clip the first look could not
/// name: query peaks from smaller neighbourhoods, so that music peaks next
/// to louder speech or noise are kept. More peaks mean more chance votes,
/// hence a threshold of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloseLookParams {
    /// Look again at all. Default true.
    pub enabled: bool,
    /// A query peak is the maximum of +-this many bins... Default 3.
    pub radius_bins: usize,
    /// ...and +-this many frames. Default 3.
    pub radius_frames: usize,
    /// Landmarks made per anchor peak in the full look: its smaller
    /// neighbourhoods make more peaks, which take the nearest targets'
    /// places. Default 24 (the query's). 72 was chosen on the tuning half
    /// at 5.68 h (dialogue 3/5/10 s 26/43/49 -> 31/45/50 of 50, no unknown
    /// clip named) and raised the reporting half's dialogue 38/74/91 ->
    /// 46/80/94 %, but at 41 h named 3 of its 2,160 unknown clips (24: 1),
    /// two of them as one slowed copy at 13-14 votes: to be chosen again on
    /// the tuning half at both sizes. Query side.
    pub fan_out: usize,
    /// The look is first probed with few landmarks per peak (as the warp
    /// search's first pass) and taken in full only when the probe's
    /// expected chance answers are at most this. Default 300 (tuning half:
    /// the close look's right answers had probes of at most 99, a 10 s
    /// clip; 24 % of unknown clips' probes are above 300). Query side.
    pub probe_max_chance: f64,
    /// The vote threshold of indexes made before the chance rule; read and ignored.
    #[serde(skip_serializing)]
    pub min_votes: Option<u32>,
}

impl Default for CloseLookParams {
    fn default() -> CloseLookParams {
        CloseLookParams {
            enabled: true,
            radius_bins: 3,
            radius_frames: 3,
            fan_out: 24,
            probe_max_chance: 300.0,
            min_votes: None,
        }
    }
}

/// How `match` looks for a clip whose speed, tempo or pitch was changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarpParams {
    /// Search at all. Default true.
    pub enabled: bool,
    /// Largest speed change looked for (tempo and pitch together), as a
    /// fraction. Default 0.08.
    pub max_speed: f64,
    /// Largest tempo change alone. Default 0.08.
    pub max_tempo: f64,
    /// Largest pitch change alone, semitones. Default 1.0.
    pub max_pitch_semitones: f64,
    /// Grid step of the first pass for changes of frequency (speed, pitch),
    /// as a fraction. Hashes hold exact bins, so this must be fine. Default
    /// 0.0075. The pitch line takes the nearest fraction of a semitone that
    /// divides `max_pitch_semitones` (1/8 semitone, 0.72 %, by default).
    pub freq_step: f64,
    /// Grid step for tempo alone (frame gaps tolerate more). Default 0.02.
    pub tempo_step: f64,
    /// The search pairs peaks found as the index finds them, as the glance
    /// does: a peak is the maximum of +-this many bins... Default 12.
    /// (The straight look's +-6 x +-5 made 6 times the landmarks for a
    /// few more true votes; tuning half, 5.68 h: speed +4 % 10 s clips
    /// 34.4 -> 15.2 ms median, unknown ones 45.8 -> 25.2 ms, 6 more of
    /// 1,200 warped clips named right; README.) Query side.
    pub radius_bins: usize,
    /// ...and +-this many frames. Default 10. Query side.
    pub radius_frames: usize,
    /// Landmarks per anchor peak of the search's full queries (where the
    /// finer probes point). Default 16. Query side.
    pub fan_out: usize,
    /// Landmarks per anchor peak in the first pass (a cheap probe of every
    /// grid point), for a 10 s clip (more for shorter ones). Default 4
    /// (3 was chosen on the tuning half, -1 and -2 known clips at 5.68
    /// and 41 h, and lost 4 and 3 points of pitch -1 semitone and speed -8
    /// % 3 s clips on the reporting half: README). Query side.
    pub probe_fan_out: usize,
    /// Landmarks per anchor peak of a scout probe, for a 10 s clip (more
    /// for shorter ones): the first pass probes every grid point at this
    /// fan-out, then probes the best `scout_keep` points again at
    /// `probe_fan_out` and goes on with those. 0 (or `probe_fan_out` and
    /// above): no scouts, every point at `probe_fan_out`. Default 2
    /// (tuning half, 5.68 h: the same answer for all 4,110 clips; the
    /// first pass of an unknown 10 s clip at 1,000 h 160 -> 113 ms on one
    /// thread; README). A scout's chance is what can end the first pass
    /// (`stop_max_chance`). Query side.
    pub scout_fan_out: usize,
    /// Scouted points probed again at `probe_fan_out`. Default 8. Query side.
    pub scout_keep: usize,
    /// Landmarks per anchor peak of the finer probes around the best
    /// first-pass points (and of the close look's probe), for a 10 s clip.
    /// Default 4.
    pub refine_fan_out: usize,
    /// First-pass candidates refined with full queries. Default 2.
    pub refine: usize,
    /// Nothing is refined when the first pass's likeliest point (its
    /// expected chance answers, per look of the clip) is above this: the
    /// search ends there. Default 1e4 (tuning half, 5.68 h: the 987 right
    /// warped answers had first passes of at most 796; 1,200 of 2,160
    /// unknown clips are above 1e4). Query side.
    pub refine_max_chance: f64,
    /// A first-pass point whose chance is at most this ends the first pass
    /// (after the points up to one grid step further out). Default 1e-6. Query side.
    pub stop_max_chance: f64,
    /// A refined point is queried in full only when its best finer probe's
    /// expected chance answers are at most this. Default 10 (tuning half:
    /// the warped right answers had probes of at most 1.2; 92 % of unknown
    /// clips' refined points are above 10). Query side.
    pub full_max_chance: f64,
    /// A clip matched unwarped with at least this many votes is not searched. Default 22.
    pub skip_votes: u32,
    /// ...unless its offset drifts through the clip by at least this much
    /// (frames per frame: a tempo change), then it is re-timed. Default 0.01.
    pub min_drift: f64,
    /// The vote threshold of indexes made before the chance rule (every
    /// warp tried is now one more look for it); read and ignored.
    #[serde(skip_serializing)]
    pub min_votes: Option<u32>,
}

impl Default for WarpParams {
    fn default() -> WarpParams {
        WarpParams {
            enabled: true,
            max_speed: 0.08,
            max_tempo: 0.08,
            max_pitch_semitones: 1.0,
            freq_step: 0.0075,
            tempo_step: 0.02,
            radius_bins: 12,
            radius_frames: 10,
            fan_out: 16,
            probe_fan_out: 4,
            scout_fan_out: 2,
            scout_keep: 8,
            refine_fan_out: 4,
            refine: 2,
            refine_max_chance: 1e4,
            stop_max_chance: 1e-6,
            full_max_chance: 10.0,
            skip_votes: 22,
            min_drift: 0.01,
            min_votes: None,
        }
    }
}

/// Names accepted by `--preset`.
pub const PRESETS: &[&str] = &["default", "dense"];

impl Default for Params {
    fn default() -> Params {
        Params {
            preset: "default".into(),
            sample_rate_hz: 8000,
            fft_size: 1024,
            hop_samples: 256,
            min_freq_hz: 100.0,
            max_freq_hz: 3800.0,
            peak_floor_db: -90.0,
            index_radius_bins: 12,
            index_radius_frames: 10,
            query_radius_bins: 6,
            query_radius_frames: 5,
            min_dt_frames: 1,
            max_dt_frames: 48,
            max_df_bins: 96,
            index_fan_out: 5,
            query_fan_out: 24,
            min_votes: None,
            vote_window_frames: 31,
            min_windows: 3,
            glance: GlanceParams::default(),
            warp: WarpParams::default(),
            close_look: CloseLookParams::default(),
            decision: DecisionParams::default(),
        }
    }
}

impl Params {
    /// The parameters of a named preset.
    pub fn preset(name: &str) -> Option<Params> {
        match name {
            "default" => Some(Params::default()),
            // More stored peaks: larger index, more robust to heavy damage.
            "dense" => Some(Params {
                preset: "dense".into(),
                index_radius_bins: 9,
                index_radius_frames: 8,
                index_fan_out: 6,
                ..Params::default()
            }),
            _ => None,
        }
    }

    /// These parameters with the query's peaks found in +-`radius_bins` x
    /// +-`radius_frames` neighbourhoods and paired with `fan_out` targets
    /// each (the glance's, the warp search's and the close look's own).
    pub fn with_query_peaks(
        &self,
        radius_bins: usize,
        radius_frames: usize,
        fan_out: usize,
    ) -> Params {
        Params {
            query_radius_bins: radius_bins,
            query_radius_frames: radius_frames,
            query_fan_out: fan_out,
            ..self.clone()
        }
    }

    /// Seconds per spectrogram frame.
    pub fn frame_s(&self) -> f64 {
        self.hop_samples as f64 / self.sample_rate_hz as f64
    }

    /// The peak floor as power relative to a full-scale sine.
    pub fn peak_floor_power(&self) -> f32 {
        10f32.powf(self.peak_floor_db / 10.0)
    }

    /// Width of one FFT bin, Hz.
    pub fn bin_hz(&self) -> f32 {
        self.sample_rate_hz as f32 / self.fft_size as f32
    }

    /// First FFT bin analysed.
    pub fn first_bin(&self) -> usize {
        (self.min_freq_hz / self.bin_hz()).ceil() as usize
    }

    /// One past the last FFT bin analysed (never above Nyquist, nor above
    /// what 9 bits of frequency can hold).
    pub fn end_bin(&self) -> usize {
        let nyquist = self.fft_size / 2;
        ((self.max_freq_hz / self.bin_hz()).floor() as usize + 1)
            .min(nyquist)
            .min(1 << crate::hash::FREQ_BITS)
    }

    /// Checks that the values fit the hash layout and make sense.
    pub fn validate(&self) -> Result<(), String> {
        if !self.fft_size.is_power_of_two() || self.fft_size < 64 {
            return Err("fft_size must be a power of two >= 64".into());
        }
        if self.hop_samples == 0 || self.hop_samples > self.fft_size {
            return Err("hop_samples must be in 1..=fft_size".into());
        }
        if self.first_bin() + 1 >= self.end_bin() {
            return Err("min_freq_hz..max_freq_hz covers no FFT bins".into());
        }
        if self.max_dt_frames >= (1 << crate::hash::DT_BITS) || self.min_dt_frames == 0 {
            return Err(format!(
                "min_dt_frames must be >= 1 and max_dt_frames < {}",
                1 << crate::hash::DT_BITS
            ));
        }
        if self.max_df_bins > crate::hash::MAX_DF {
            return Err(format!("max_df_bins must be <= {}", crate::hash::MAX_DF));
        }
        if self.vote_window_frames == 0 {
            return Err("vote_window_frames must be >= 1".into());
        }
        if self.index_fan_out == 0
            || self.query_fan_out == 0
            || self.warp.probe_fan_out == 0
            || self.warp.refine_fan_out == 0
            || self.warp.fan_out == 0
            || self.glance.fan_out == 0
        {
            return Err("fan-outs must be >= 1".into());
        }
        let w = &self.warp;
        if w.scout_fan_out > 0 && w.scout_keep == 0 {
            return Err("warp: scout_keep must be >= 1 when scouting".into());
        }
        if !(0.0..0.5).contains(&w.max_speed)
            || !(0.0..0.5).contains(&w.max_tempo)
            || !(0.0..=6.0).contains(&w.max_pitch_semitones)
            || w.freq_step <= 0.0
            || w.tempo_step <= 0.0
        {
            return Err(
                "warp: ranges must be in [0, 0.5) (pitch 0..=6 semitones), steps > 0".into(),
            );
        }
        for (name, bound) in [
            ("stop_max_chance", w.stop_max_chance),
            ("refine_max_chance", w.refine_max_chance),
            ("full_max_chance", w.full_max_chance),
        ] {
            if bound.is_nan() || bound < 0.0 {
                return Err(format!("warp: {name} must be >= 0"));
            }
        }
        if self.warp.radius_bins == 0 || self.warp.radius_frames == 0 {
            return Err("warp: a radius must be >= 1".into());
        }
        if self.glance.radius_bins == 0 || self.glance.radius_frames == 0 {
            return Err("glance: a radius must be >= 1".into());
        }
        let c = &self.close_look;
        if c.probe_max_chance.is_nan() || c.probe_max_chance < 0.0 {
            return Err("close_look: probe_max_chance must be >= 0".into());
        }
        if c.radius_bins == 0 && c.radius_frames == 0 {
            return Err("close_look: a radius must be >= 1".into());
        }
        let d = &self.decision;
        if !(d.max_chance > 0.0
            && d.confidence_half_chance > 0.0
            && d.confidence_slope > 0.0
            && d.dispersion >= 1.0)
        {
            return Err("decision: max_chance, confidence_half_chance and confidence_slope must be > 0, dispersion >= 1".into());
        }
        Ok(())
    }

    /// A stable 64-bit digest (FNV-1a over the JSON form) of what shapes
    /// the stored fingerprints: the query-side searches are left out.
    pub fn digest(&self) -> u64 {
        let stored = Params {
            glance: GlanceParams::default(),
            warp: WarpParams::default(),
            close_look: CloseLookParams::default(),
            decision: DecisionParams::default(),
            ..self.clone()
        };
        let json = serde_json::to_string(&stored).expect("params serialize");
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in json.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_distinct() {
        let mut digests = Vec::new();
        for name in PRESETS {
            let p = Params::preset(name).unwrap();
            p.validate().unwrap();
            digests.push(p.digest());
        }
        digests.dedup();
        assert_eq!(digests.len(), PRESETS.len());
        assert_eq!(Params::default().digest(), Params::default().digest());
    }

    #[test]
    fn query_side_searches_leave_the_digest_alone() {
        let mut p = Params::default();
        p.warp.max_speed = 0.04;
        p.glance.fan_out = 6;
        p.close_look.enabled = false;
        p.close_look.radius_bins = 2;
        p.decision.max_chance = 0.5;
        assert_eq!(p.digest(), Params::default().digest());
        p.query_radius_bins = 5;
        assert_ne!(p.digest(), Params::default().digest());
    }

    #[test]
    fn an_index_of_the_old_glance_takes_todays() {
        let old = r#"{"enabled":true,"fan_out":4,"max_chance":1e-6,"recount_fan_out":8}"#;
        let g: GlanceParams = serde_json::from_str(old).unwrap();
        assert_eq!(g, GlanceParams::default());
        let off: GlanceParams = serde_json::from_str(r#"{"enabled":false,"fan_out":4}"#).unwrap();
        assert_eq!(
            off,
            GlanceParams {
                enabled: false,
                ..GlanceParams::default()
            }
        );
        let now = GlanceParams {
            fan_out: 9,
            radius_frames: 7,
            ..GlanceParams::default()
        };
        let text = serde_json::to_string(&now).unwrap();
        assert_eq!(serde_json::from_str::<GlanceParams>(&text).unwrap(), now);
        assert!(serde_json::from_str::<GlanceParams>(r#"{"fan_outs":4}"#).is_err());
    }

    #[test]
    fn bins_cover_the_band() {
        let p = Params::default();
        assert_eq!(p.first_bin(), 13);
        assert!(p.end_bin() <= 512);
        assert!((p.frame_s() - 0.032).abs() < 1e-9);
    }
}
