//! The only writer of stdout: renders what the matcher returned, as a human
//! line or as JSON Lines (from serde structs, never format strings).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::cuesheet::Segment;
use crate::matcher::{Match, Outcome};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// How `ostid scan` prints its cue sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanFormat {
    /// A readable table, once the recording ends.
    Table,
    /// JSON Lines, one segment per line as soon as it is closed.
    Json,
    /// A cue sheet: header row, RFC 4180 quoting, `h:mm:ss.s` times.
    Csv,
    /// An Audacity label track.
    Audacity,
    /// SubRip captions.
    Srt,
    /// WebVTT captions.
    Vtt,
    /// FFmpeg metadata chapters.
    FfMetadata,
    /// A CUE sheet.
    Cue,
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

/// `h:mm:ss.s`, always with hours (cue sheets).
pub fn hms(s: f64) -> String {
    let tenths = (s.max(0.0) * 10.0).round() as u64;
    let (h, rem) = (tenths / 36_000, tenths % 36_000);
    let (m, rem) = (rem / 600, rem % 600);
    format!("{h}:{m:02}:{:02}.{}", rem / 10, rem % 10)
}

/// One segment as a JSON line.
pub fn write_segment_json(out: &mut dyn Write, s: &Segment) -> io::Result<()> {
    serde_json::to_writer(&mut *out, s)?;
    writeln!(out)
}

/// The cue sheet as a table with aligned columns.
pub fn write_segment_table(out: &mut dyn Write, segs: &[Segment]) -> io::Result<()> {
    let rows: Vec<[String; 6]> = segs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut piece = format!("{} — {}", s.title, s.work);
            if s.speed != 1.0 {
                piece.push_str(&format!(" (speed {:.3})", s.speed));
            }
            [
                (i + 1).to_string(),
                hms(s.start_s),
                hms(s.end_s),
                piece,
                format!("{} – {}", clock(s.track_start_s), clock(s.track_end_s)),
                format!("{:.2}", s.confidence),
            ]
        })
        .collect();
    let head = ["#", "in", "out", "piece", "in the track", "confidence"];
    let mut width = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| -> String {
        let mut l = String::new();
        for (k, (c, w)) in cells.iter().zip(width).enumerate() {
            let pad = w - c.chars().count();
            if k == 0 {
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            } else {
                l.push_str("  ");
                l.push_str(c);
                if k < 5 {
                    l.push_str(&" ".repeat(pad));
                }
            }
        }
        l
    };
    writeln!(out, "{}", line(head))?;
    for r in &rows {
        writeln!(out, "{}", line(r.each_ref().map(|c| c.as_str())))?;
    }
    Ok(())
}

/// A CSV field, quoted when it must be (RFC 4180).
fn csv_field(f: &str) -> String {
    if f.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f.to_string()
    }
}

/// The cue sheet as CSV (RFC 4180: CRLF line ends, quoted fields).
pub fn write_segment_csv(out: &mut dyn Write, segs: &[Segment]) -> io::Result<()> {
    write!(
        out,
        "#,in,out,duration,title,work,composer,track in,track out\r\n"
    )?;
    for (i, s) in segs.iter().enumerate() {
        let fields = [
            (i + 1).to_string(),
            hms(s.start_s),
            hms(s.end_s),
            hms(s.end_s - s.start_s),
            s.title.clone(),
            s.work.clone(),
            s.composer.clone().unwrap_or_default(),
            hms(s.track_start_s),
            hms(s.track_end_s),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        write!(out, "{}\r\n", row.join(","))?;
    }
    Ok(())
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
