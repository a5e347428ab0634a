//! The only writer of stdout: renders what the matcher returned, as a human
//! line or as JSON Lines (from serde structs, never format strings).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::matcher::{Match, Outcome};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// One line of `ostid match --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchLine {
    pub query: String,
    #[serde(rename = "match")]
    pub best: Option<Match>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alternatives: Option<Vec<Match>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What happened to one query.
pub struct ClipResult {
    pub query: String,
    pub outcome: Result<Outcome, String>,
    pub decode_ms: f64,
    pub match_ms: f64,
}

/// `m:ss.s` (or `h:mm:ss.s`).
pub fn clock(s: f64) -> String {
    let tenths = (s.max(0.0) * 10.0).round() as u64;
    let (h, rem) = (tenths / 36_000, tenths % 36_000);
    let (m, rem) = (rem / 600, rem % 600);
    let (sec, t) = (rem / 10, rem % 10);
    if h > 0 {
        format!("{h}:{m:02}:{sec:02}.{t}")
    } else {
        format!("{m}:{sec:02}.{t}")
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn describe(m: &Match) -> String {
    let mut s = format!("{} — {}, at {}", m.title, m.work, clock(m.offset_s));
    let others: Vec<String> = m
        .offsets_s
        .iter()
        .filter(|&&o| (o - m.offset_s).abs() > 0.05)
        .map(|&o| clock(o))
        .collect();
    if !others.is_empty() {
        s.push_str(&format!(" (also at {})", others.join(", ")));
    }
    if m.speed != 1.0 {
        s.push_str(&format!(", speed {:.3}", m.speed));
    }
    if m.tempo != 1.0 {
        s.push_str(&format!(", tempo {:.3}", m.tempo));
    }
    if m.pitch_semitones != 0.0 {
        s.push_str(&format!(", pitch {:+.2} semitones", m.pitch_semitones));
    }
    s.push_str(&format!(
        "  [score {}, confidence {:.2}]",
        m.score, m.confidence
    ));
    s
}

/// Write one result. Errors in human mode go to stderr (they are not results).
pub fn write_result(
    out: &mut dyn Write,
    r: &ClipResult,
    format: Format,
    prefix: bool,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let line = match &r.outcome {
                Ok(o) => MatchLine {
                    query: r.query.clone(),
                    best: o.best.clone(),
                    alternatives: Some(o.alternatives.clone()),
                    decode_ms: Some(round2(r.decode_ms)),
                    match_ms: Some(round2(r.match_ms)),
                    error: None,
                },
                Err(e) => MatchLine {
                    query: r.query.clone(),
                    best: None,
                    alternatives: None,
                    decode_ms: None,
                    match_ms: None,
                    error: Some(e.clone()),
                },
            };
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)
        }
        Format::Human => {
            let lead = if prefix {
                format!("{}: ", r.query)
            } else {
                String::new()
            };
            match &r.outcome {
                Ok(o) => {
                    match &o.best {
                        Some(m) => writeln!(out, "{lead}{}", describe(m))?,
                        None => writeln!(out, "{lead}no match")?,
                    }
                    for alt in &o.alternatives {
                        writeln!(out, "    or: {}", describe(alt))?;
                    }
                    Ok(())
                }
                Err(e) => {
                    eprintln!("ostid: {}: {e}", r.query);
                    Ok(())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats() {
        assert_eq!(clock(0.0), "0:00.0");
        assert_eq!(clock(83.44), "1:23.4");
        assert_eq!(clock(3725.0), "1:02:05.0");
        assert_eq!(clock(-3.0), "0:00.0");
    }
}
