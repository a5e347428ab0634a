//! What chance alone gives a query: the decision rule and the confidence of
//! an answer.
//!
//! A query landmark whose hash has `n` postings in a track of `T` offsets
//! puts a chance vote on a given offset of that track with probability
//! about `n / T`; a score is smoothed over [`SMOOTHING_FRAMES`] offsets. So
//! the chance votes on one offset of track `t` are about Poisson with mean
//! `rate = SMOOTHING_FRAMES * P_t / T_t`, where `P_t` is every posting of
//! `t` the query's hashes drew. A dense track, a long clip (more
//! landmarks) or many postings per hash all raise `rate`, and with it the
//! votes an answer needs. The tail `P(votes >= score)`, multiplied by the
//! number of offsets in the whole library and by the looks taken at the
//! clip (each warp of the warp search is one more), is the expected number
//! of chance answers at least that strong: [`expected`]. A track is named
//! when that is at most `decision.max_chance` (Bonferroni over offsets,
//! tracks and looks: the rate of named unknown clips stays below it).
//!
//! Real music is not Poisson: repeated figures pile chance votes up, more
//! so in longer clips. Votes are taken as quasi-Poisson, varying
//! `decision.dispersion` times as much; that, the threshold and the
//! confidence curve are fitted on the evaluation's tuning half and checked
//! on its reporting half (README).

use crate::params::DecisionParams;

/// A score counts the votes of an offset and its two neighbours.
pub const SMOOTHING_FRAMES: f64 = 3.0;

/// Chance votes expected on one (smoothed) offset of a track of `frames`
/// possible offsets that drew `postings` postings from the query.
pub fn rate(postings: u64, frames: f64) -> f64 {
    SMOOTHING_FRAMES * postings as f64 / frames.max(SMOOTHING_FRAMES)
}

/// Expected number of chance answers with at least `score` votes over
/// `positions` offsets at `rate` chance votes each, when votes vary
/// `dispersion` times as much as Poisson's (quasi-Poisson: votes and rate
/// are scaled down by it).
pub fn expected(rate: f64, score: u32, positions: f64, dispersion: f64) -> f64 {
    positions * poisson_tail(rate / dispersion, score as f64 / dispersion)
}

/// `P(X >= k)` for `X ~ Poisson(lambda)`, continued to real `k` as the
/// regularized lower incomplete gamma function `P(k, lambda)`:
/// `e^-lambda lambda^k sum_j lambda^j / Gamma(k + j + 1)`.
pub fn poisson_tail(lambda: f64, k: f64) -> f64 {
    if k <= 0.0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    let log_first = -lambda + k * lambda.ln() - ln_gamma(k + 1.0);
    let (mut sum, mut term) = (1.0f64, 1.0f64);
    let mut i = k;
    // Terms rise while k + j < lambda, then fall geometrically.
    for _ in 0..1_000_000 {
        i += 1.0;
        term *= lambda / i;
        sum += term;
        if term <= 1e-17 * sum && i > lambda {
            break;
        }
    }
    (log_first + sum.ln()).exp().min(1.0)
}

/// `ln Gamma(x)` for `x > 0` (Lanczos, g = 7, 9 terms; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Probability that a named answer is right, from its expected chance
/// answers: `1 / (1 + (chance / half)^slope)`, with `half` (the chance at
/// which half the answers are right) and `slope` fitted on the tuning half.
pub fn confidence(chance: f64, d: &DecisionParams) -> f64 {
    if !chance.is_finite() {
        return 0.0;
    }
    let c = 1.0 / (1.0 + (chance / d.confidence_half_chance).powf(d.confidence_slope));
    (c * 1000.0).round() / 1000.0
}

/// Three significant digits are all a chance figure means.
pub fn round(chance: f64) -> f64 {
    if chance <= 0.0 || !chance.is_finite() {
        return chance;
    }
    format!("{chance:.2e}").parse().unwrap_or(chance)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The naive twin: the tail as one minus the sum of every term below k.
    fn naive_tail(lambda: f64, k: u32) -> f64 {
        let mut term = (-lambda).exp();
        let mut below = 0.0;
        for i in 0..k {
            below += term;
            term *= lambda / (i + 1) as f64;
        }
        1.0 - below
    }

    #[test]
    fn poisson_tail_equals_its_naive_twin_where_that_is_exact() {
        for &lambda in &[0.01, 0.3, 1.0, 2.5, 7.0, 20.0] {
            for k in 0..40 {
                let (fast, slow) = (poisson_tail(lambda, k as f64), naive_tail(lambda, k));
                // The naive sum loses everything below ~1e-15 to rounding.
                if slow > 1e-9 {
                    assert!(
                        (fast - slow).abs() <= 1e-9 * slow.max(1e-3),
                        "lambda {lambda} k {k}: {fast} vs {slow}"
                    );
                }
            }
        }
    }

    #[test]
    fn poisson_tail_is_right_far_out() {
        // P(X >= 20) for lambda 0.5: first term e^-0.5 0.5^20 / 20! dominates.
        let first = (-0.5f64).exp() * 0.5f64.powi(20) / (1..=20).map(|i| i as f64).product::<f64>();
        let t = poisson_tail(0.5, 20.0);
        assert!(t > first && t < first * 1.03, "{t} vs {first}");
        assert!(poisson_tail(0.0, 3.0) == 0.0 && poisson_tail(3.0, 0.0) == 1.0);
        // Monotone in k (real k too) and in lambda.
        for k in 1..120 {
            let k = k as f64 / 2.0;
            assert!(poisson_tail(1.0, k + 0.5) <= poisson_tail(1.0, k));
            assert!(poisson_tail(1.1, k) >= poisson_tail(1.0, k));
        }
    }

    #[test]
    fn ln_gamma_equals_log_factorials() {
        let exact = |n: u32| (2..=n).map(|i| (i as f64).ln()).sum::<f64>();
        for n in [0, 1, 2, 5, 31, 32, 50, 200, 1000] {
            let e = exact(n);
            assert!(
                (ln_gamma(n as f64 + 1.0) - e).abs() < 1e-10 * e.max(1.0),
                "{n}"
            );
        }
        // Gamma(1/2) = sqrt(pi).
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    #[test]
    fn more_chance_means_less_confidence() {
        let d = DecisionParams::default();
        let mut prev = 2.0;
        let mut figures = [1e-12, 1e-6, 1e-3, d.max_chance, 0.1, 1.0, 10.0];
        figures.sort_by(f64::total_cmp);
        for e in figures {
            let c = confidence(e, &d);
            assert!((0.0..=1.0).contains(&c) && c <= prev, "{e}: {c}");
            prev = c;
        }
        assert_eq!(confidence(f64::INFINITY, &d), 0.0);
        assert!((confidence(d.confidence_half_chance, &d) - 0.5).abs() < 1e-3);
    }

    #[test]
    fn a_denser_track_or_a_bigger_library_needs_more_votes() {
        let votes_needed = |rate: f64, positions: f64| {
            (1..200)
                .find(|&s| expected(rate, s, positions, 1.5) <= 1e-3)
                .expect("some score passes")
        };
        assert!(votes_needed(0.5, 1e5) > votes_needed(0.05, 1e5));
        assert!(votes_needed(0.5, 1e7) > votes_needed(0.5, 1e5));
        assert_eq!(round(0.000123456), 0.000123);
        assert_eq!(round(1234.5), 1230.0);
    }
}
