//! Progress on stderr with indicatif: hidden when stderr is not a terminal or
//! with `--quiet`, so pipes and logs stay clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar over `total` items, or a hidden one.
pub fn bar(total: u64, quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = format!("{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{msg}} ETA {{eta}}");
    pb.set_style(
        ProgressStyle::with_template(&template)
            .expect("template is static")
            .progress_chars("=> "),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A spinner showing a position in a stream (`msg` is the position), or a
/// hidden one.
pub fn position(quiet: bool, what: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let template = format!("{{spinner}} {what} {{msg}} of audio, {{elapsed}}");
    pb.set_style(ProgressStyle::with_template(&template).expect("template is static"));
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}
