//! A recording's cues in the formats other tools read: an Audacity label
//! track, SubRip and WebVTT captions, FFmpeg metadata chapters and a CUE
//! sheet. Each writer renders finished [`Segment`]s and nothing else.

use std::io::{self, Write};

use crate::cuesheet::Segment;
use crate::output::clock;

/// One caption or label: "Title — Work (track 1:23.0-2:10.5)".
fn label(s: &Segment) -> String {
    let mut l = format!(
        "{} — {} (track {}-{})",
        s.title,
        s.work,
        clock(s.track_start_s),
        clock(s.track_end_s)
    );
    if s.speed != 1.0 {
        l.push_str(&format!(", speed {:.3}", s.speed));
    }
    // A caption or label is one line.
    l.replace(['\r', '\n'], " ")
}

/// Milliseconds, never negative.
fn ms(s: f64) -> u64 {
    (s.max(0.0) * 1000.0).round() as u64
}

/// `hh:mm:ss` then `sep` and milliseconds (SubRip: `,`; WebVTT: `.`).
fn timestamp(s: f64, sep: char) -> String {
    let t = ms(s);
    let (h, m, sec, milli) = (t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000);
    format!("{h:02}:{m:02}:{sec:02}{sep}{milli:03}")
}

/// Audacity labels (File > Import > Labels): start and end in seconds and
/// the label, tab-separated, one per line.
pub fn write_audacity(out: &mut dyn Write, segs: &[Segment]) -> io::Result<()> {
    for s in segs {
        writeln!(
            out,
            "{:.6}\t{:.6}\t{}",
            s.start_s.max(0.0),
            s.end_s.max(0.0),
            label(s).replace('\t', " ")
        )?;
    }
    Ok(())
}

/// SubRip (`.srt`): numbered captions, `hh:mm:ss,mmm --> hh:mm:ss,mmm`.
pub fn write_srt(out: &mut dyn Write, segs: &[Segment]) -> io::Result<()> {
    for (i, s) in segs.iter().enumerate() {
        write!(
            out,
            "{}\r\n{} --> {}\r\n{}\r\n\r\n",
            i + 1,
            timestamp(s.start_s, ','),
            timestamp(s.end_s, ','),
            label(s)
        )?;
    }
    Ok(())
}

/// WebVTT (`.vtt`): a header, then one cue per segment. A cue's text may
/// not hold `-->`, and `&` and `<` are escaped.
pub fn write_vtt(out: &mut dyn Write, segs: &[Segment]) -> io::Result<()> {
    writeln!(out, "WEBVTT")?;
    for (i, s) in segs.iter().enumerate() {
        let text = label(s)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace("-->", "->");
        write!(
            out,
            "\n{}\n{} --> {}\n{}\n",
            i + 1,
            timestamp(s.start_s, '.'),
            timestamp(s.end_s, '.'),
            text
        )?;
    }
    Ok(())
}

/// A value of an FFmpeg metadata file: `=`, `;`, `#`, `\` and line ends
/// escaped with a backslash.
fn ffmeta_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '=' | ';' | '#' | '\\' | '\n') {
            out.push('\\');
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// FFmpeg metadata (`;FFMETADATA1`): one chapter per segment, in
/// milliseconds. `ffmpeg -i ep.mkv -i cues.txt -map_metadata 1 -codec copy
/// out.mkv` adds them as chapters.
pub fn write_ffmetadata(out: &mut dyn Write, segs: &[Segment]) -> io::Result<()> {
    writeln!(out, ";FFMETADATA1")?;
    for s in segs {
        writeln!(out, "\n[CHAPTER]\nTIMEBASE=1/1000")?;
        writeln!(out, "START={}", ms(s.start_s))?;
        writeln!(out, "END={}", ms(s.end_s).max(ms(s.start_s)))?;
        writeln!(out, "title={}", ffmeta_value(&label(s)))?;
    }
    Ok(())
}

/// `mm:ss:ff` of a CUE sheet: minutes, seconds and frames of 1/75 s.
fn cue_time(s: f64) -> String {
    let frames = (s.max(0.0) * 75.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}",
        frames / (75 * 60),
        frames / 75 % 60,
        frames % 75
    )
}

/// A quoted CUE string (CUE sheets have no escape for `"`).
fn cue_string(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "'").replace(['\r', '\n'], " "))
}

/// A CUE sheet of the recording `file`: one track per segment, `INDEX 01`
/// where it starts. A CUE track runs to the next one, so a stretch of a
/// second or more between two segments (unknown music, silence) is the
/// next track's pregap (`INDEX 00`), and what follows the last segment is
/// part of it.
pub fn write_cue(out: &mut dyn Write, segs: &[Segment], file: &str) -> io::Result<()> {
    let lower = file.to_ascii_lowercase();
    let kind = if lower.ends_with(".mp3") {
        "MP3"
    } else if lower.ends_with(".aif") || lower.ends_with(".aiff") {
        "AIFF"
    } else {
        "WAVE"
    };
    writeln!(out, "FILE {} {kind}", cue_string(file))?;
    let mut last_end = 0.0;
    let mut last_index = -1.0;
    for (i, s) in segs.iter().enumerate() {
        writeln!(out, "  TRACK {:02} AUDIO", i + 1)?;
        writeln!(out, "    TITLE {}", cue_string(&s.title))?;
        let performer = s.composer.as_deref().unwrap_or(&s.work);
        writeln!(out, "    PERFORMER {}", cue_string(performer))?;
        // Indexes must ascend: overlapping cues (a cross-fade) start at
        // the earlier one's index at the soonest.
        let start = s.start_s.max(0.0).max(last_index);
        if start >= last_end + 1.0 {
            writeln!(out, "    INDEX 00 {}", cue_time(last_end.max(last_index)))?;
        }
        writeln!(out, "    INDEX 01 {}", cue_time(start))?;
        last_index = start + 1.0 / 75.0;
        last_end = s.end_s;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_s: f64, end_s: f64, title: &str) -> Segment {
        Segment {
            start_s,
            end_s,
            title: title.into(),
            work: "Skyward Saga".into(),
            composer: None,
            path: "/music/x.flac".into(),
            track_start_s: 3.0,
            track_end_s: 3.0 + end_s - start_s,
            confidence: 0.99,
            speed: 1.0,
        }
    }

    #[test]
    fn timestamps_and_cue_times() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3723.4567, '.'), "01:02:03.457");
        assert_eq!(timestamp(-1.0, '.'), "00:00:00.000");
        assert_eq!(cue_time(0.0), "00:00:00");
        assert_eq!(cue_time(61.5), "01:01:38");
        assert_eq!(cue_time(3600.0), "60:00:00");
    }

    #[test]
    fn ffmetadata_values_are_escaped() {
        assert_eq!(ffmeta_value("a=b;c#d\\e\nf"), "a\\=b\\;c\\#d\\\\e\\\nf");
    }

    #[test]
    fn a_cue_sheet_marks_gaps_as_pregaps() {
        let segs = [
            seg(5.0, 60.0, "Main \"Theme\""),
            seg(58.0, 90.0, "Storm"),
            seg(100.0, 130.0, "Coda"),
        ];
        let mut out = Vec::new();
        write_cue(&mut out, &segs, "ep03.mkv").unwrap();
        let text = String::from_utf8(out).unwrap();
        let want = "FILE \"ep03.mkv\" WAVE\n\
                    \x20 TRACK 01 AUDIO\n    TITLE \"Main 'Theme'\"\n    PERFORMER \"Skyward Saga\"\n    INDEX 00 00:00:00\n    INDEX 01 00:05:00\n\
                    \x20 TRACK 02 AUDIO\n    TITLE \"Storm\"\n    PERFORMER \"Skyward Saga\"\n    INDEX 01 00:58:00\n\
                    \x20 TRACK 03 AUDIO\n    TITLE \"Coda\"\n    PERFORMER \"Skyward Saga\"\n    INDEX 00 01:30:00\n    INDEX 01 01:40:00\n";
        assert_eq!(text, want);
    }
}
