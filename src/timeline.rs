//! Segments in, an SVG timeline out: the recording as a time axis, one
//! coloured bar per cue labelled with its title, overlapping cues (cross-
//! fades) on separate lanes, one colour per track.

use std::fmt::Write;

use crate::cuesheet::Segment;
use crate::output::clock;

const WIDTH: f64 = 1200.0;
const MARGIN: f64 = 20.0;
const LANE_H: f64 = 34.0;
const TOP: f64 = 44.0;

/// Colours that stay apart on white, picked per track.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#8cd17d",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick step (seconds) giving about eight ticks over `duration_s`.
fn tick_step(duration_s: f64) -> f64 {
    let steps = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
    ];
    steps
        .into_iter()
        .find(|s| duration_s / s <= 10.0)
        .unwrap_or(7200.0)
}

/// Lane of each segment: the first lane whose last cue has ended.
fn lanes(segs: &[Segment]) -> Vec<usize> {
    let mut ends: Vec<f64> = Vec::new();
    segs.iter()
        .map(|s| match ends.iter().position(|&e| e <= s.start_s) {
            Some(l) => {
                ends[l] = s.end_s;
                l
            }
            None => {
                ends.push(s.end_s);
                ends.len() - 1
            }
        })
        .collect()
}

/// The timeline of a recording of `duration_s` seconds; `segs` sorted by start.
pub fn svg(segs: &[Segment], duration_s: f64, title: &str) -> String {
    let duration_s = duration_s.max(1.0);
    let lane = lanes(segs);
    let n_lanes = lane.iter().max().map_or(1, |m| m + 1);
    let height = TOP + n_lanes as f64 * LANE_H + 40.0;
    let x = |t: f64| MARGIN + (t / duration_s).clamp(0.0, 1.0) * (WIDTH - 2.0 * MARGIN);
    let mut colours: Vec<&str> = Vec::new();
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r##"<text x="{MARGIN}" y="22" font-size="15" fill="#222">{} — {} cues in {}</text>"##,
        escape(title),
        segs.len(),
        clock(duration_s)
    );
    // The recording and its time axis.
    let axis_y = TOP + n_lanes as f64 * LANE_H + 6.0;
    let _ = writeln!(
        s,
        r##"<rect x="{MARGIN}" y="{TOP}" width="{}" height="{}" fill="#f3f3f3"/>"##,
        WIDTH - 2.0 * MARGIN,
        n_lanes as f64 * LANE_H
    );
    let step = tick_step(duration_s);
    let mut t = 0.0;
    while t <= duration_s + 1e-9 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#ccc"/><text x="{0:.1}" y="{2:.1}" font-size="11" fill="#555" text-anchor="middle">{3}</text>"##,
            x(t),
            axis_y,
            axis_y + 14.0,
            clock(t)
        );
        t += step;
    }
    // One bar per cue, clipped label inside.
    for (i, (seg, &l)) in segs.iter().zip(&lane).enumerate() {
        let k = match colours.iter().position(|p| *p == seg.path) {
            Some(k) => k,
            None => {
                colours.push(&seg.path);
                colours.len() - 1
            }
        };
        let (x0, x1) = (x(seg.start_s), x(seg.end_s));
        let y = TOP + l as f64 * LANE_H + 3.0;
        let w = (x1 - x0).max(1.0);
        let _ = writeln!(
            s,
            r#"<g class="cue"><title>{title} — {work}, {a}–{b} (track {ta}–{tb})</title><clipPath id="c{i}"><rect x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}"/></clipPath><rect class="bar" x="{x0:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="3" fill="{fill}"/><text class="label" x="{tx:.1}" y="{ty:.1}" font-size="12" fill="white" clip-path="url(#c{i})">{title}</text></g>"#,
            title = escape(&seg.title),
            work = escape(&seg.work),
            a = clock(seg.start_s),
            b = clock(seg.end_s),
            ta = clock(seg.track_start_s),
            tb = clock(seg.track_end_s),
            h = LANE_H - 6.0,
            fill = PALETTE[k % PALETTE.len()],
            tx = x0 + 4.0,
            ty = y + (LANE_H - 6.0) / 2.0 + 4.0,
        );
    }
    s.push_str("</svg>\n");
    s
}
