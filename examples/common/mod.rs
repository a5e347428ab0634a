//! What the experiments share: a short evaluation clip, whole, at the
//! fingerprint rate (clips are seconds long; `ostid` itself streams).
use ostid::decode::{decode, Flow, Source};

/// The samples of the clip a manifest entry names (`query`), at 8 kHz.
pub fn clip_samples(entry: &serde_json::Value) -> Vec<f32> {
    let mut samples = Vec::new();
    decode(
        &Source::Path(entry["query"].as_str().expect("a manifest entry").into()),
        8000,
        0.5,
        |s| {
            samples.extend_from_slice(s);
            Flow::Continue
        },
    )
    .expect("an evaluation clip decodes");
    samples
}
