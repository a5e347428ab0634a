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
//! Real music is not Poisson (repeated figures pile chance votes up), so
//! the threshold and the confidence curve are fitted on the evaluation's
//! tuning half and checked on its reporting half (README).

use crate::params::DecisionParams;

/// A score counts the votes of an offset and its two neighbours.
pub const SMOOTHING_FRAMES: f64 = 3.0;

/// Chance votes expected on one (smoothed) offset of a track of `frames`
/// possible offsets that drew `postings` postings from the query.
pub fn rate(postings: u64, frames: f64) -> f64 {
    SMOOTHING_FRAMES * postings as f64 / frames.max(SMOOTHING_FRAMES)
}

/// Expected number of chance answers with at least `score` votes over
/// `positions` offsets at `rate` chance votes each.
pub fn expected(rate: f64, score: u32, positions: f64) -> f64 {
    positions * poisson_tail(rate, score)
}

/// `P(X >= k)` for `X ~ Poisson(lambda)`.
pub fn poisson_tail(lambda: f64, k: u32) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if lambda <= 0.0 {
        return 0.0;
    }
    let k_f = k as f64;
    if lambda >= k_f {
        // The bulk is above k: one minus the (short) lower sum.
        let mut term = (-lambda).exp();
        let mut below = 0.0;
        for i in 0..k {
            below += term;
            term *= lambda / (i + 1) as f64;
        }
        return (1.0 - below).clamp(0.0, 1.0);
    }
    // Sum the upper tail from its first (largest) term, in logs.
    let log_first = -lambda + k_f * lambda.ln() - ln_factorial(k);
    let (mut sum, mut term) = (1.0, 1.0);
    let mut i = k_f;
    while term > 1e-17 * sum {
        i += 1.0;
        term *= lambda / i;
        sum += term;
    }
    (log_first + sum.ln()).exp().min(1.0)
}

/// `ln(n!)`: exact sums for small n, Stirling's series beyond.
fn ln_factorial(n: u32) -> f64 {
    if n < 32 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64 + 1.0;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x * x)
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
                let (fast, slow) = (poisson_tail(lambda, k), naive_tail(lambda, k));
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
        let t = poisson_tail(0.5, 20);
        assert!(t > first && t < first * 1.03, "{t} vs {first}");
        assert!(poisson_tail(0.0, 3) == 0.0 && poisson_tail(3.0, 0) == 1.0);
        // Monotone in k and in lambda.
        for k in 1..60 {
            assert!(poisson_tail(1.0, k + 1) <= poisson_tail(1.0, k));
            assert!(poisson_tail(1.1, k) >= poisson_tail(1.0, k));
        }
    }

    #[test]
    fn ln_factorial_is_continuous_where_stirling_takes_over() {
        let exact = |n: u32| (2..=n).map(|i| (i as f64).ln()).sum::<f64>();
        for n in [32, 33, 50, 200, 1000] {
            assert!((ln_factorial(n) - exact(n)).abs() < 1e-9 * exact(n));
        }
    }

    #[test]
    fn more_chance_means_less_confidence() {
        let d = DecisionParams::default();
        let mut prev = 2.0;
        for e in [1e-12, 1e-6, 1e-3, d.max_chance, 0.1, 1.0, 10.0] {
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
                .find(|&s| expected(rate, s, positions) <= 1e-3)
                .expect("some score passes")
        };
        assert!(votes_needed(0.5, 1e5) > votes_needed(0.05, 1e5));
        assert!(votes_needed(0.5, 1e7) > votes_needed(0.5, 1e5));
        assert_eq!(round(0.000123456), 0.000123);
        assert_eq!(round(1234.5), 1230.0);
    }
}
