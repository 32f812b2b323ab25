//! The statistics behind the gate: Wilson score bounds for one rate, and the
//! Farrington–Manning score test for the ratio of two rates. Both are score methods, which
//! keep their stated error rates far better than the textbook Wald formulas when events are
//! rare — and crashes per session are rare.

use crate::model::Sample;
use statrs::distribution::{ContinuousCDF, Normal};

/// The standard normal quantile of a one-sided test at `confidence` (1.645 at 95%).
pub fn one_sided_z(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(confidence)
}

/// Wilson score bounds `(lower, upper)`, each one-sided at the confidence that gives `z`:
/// the true rate is above `lower` with that confidence, and below `upper` likewise.
/// `None` without trials; `events` must not exceed `trials`.
pub fn wilson_bounds(sample: Sample, z: f64) -> Option<(f64, f64)> {
    let p = sample.rate()?;
    let n = sample.trials as f64;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half_width = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some((
        (centre - half_width).max(0.0),
        (centre + half_width).min(1.0),
    ))
}

/// The outcome of a one-sided test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestOutcome {
    pub z: f64,
    /// The chance of a statistic at least this large were the null hypothesis true.
    pub p_value: f64,
}

/// Farrington–Manning score test (1990) of H0: p_current ≤ ratio × p_baseline against
/// H1: p_current > ratio × p_baseline, one-sided. Rejecting H0 at confidence c means a rise of
/// more than `ratio − 1` is credible at c. The variance is taken at the maximum-likelihood
/// rates constrained to H0, which keeps the test sound when a side has few or no events.
///
/// `None` when a side has no trials or neither side has an event (nothing to test).
pub fn rate_ratio_test(current: Sample, baseline: Sample, ratio: f64) -> Option<TestOutcome> {
    let p1 = current.rate()?;
    let p0 = baseline.rate()?;
    let (n1, n0) = (current.trials as f64, baseline.trials as f64);
    let (x1, x0) = (current.events as f64, baseline.events as f64);
    // The baseline rate p̃0 maximising the likelihood under p1 = ratio·p0 is the smaller root
    // of a·p̃0² + b·p̃0 + c = 0; 2c / (−b + √disc) is that root without cancellation.
    let a = (n1 + n0) * ratio;
    let b = -(n1 * ratio + x1 + n0 + x0 * ratio);
    let c = x1 + x0;
    let discriminant = (b * b - 4.0 * a * c).max(0.0);
    let denominator = -b + discriminant.sqrt();
    if c == 0.0 || denominator <= 0.0 {
        return None;
    }
    let q0 = 2.0 * c / denominator;
    let q1 = ratio * q0;
    let variance = q1 * (1.0 - q1) / n1 + ratio * ratio * q0 * (1.0 - q0) / n0;
    if variance <= 0.0 {
        return None;
    }
    let z = (p1 - ratio * p0) / variance.sqrt();
    Some(TestOutcome {
        z,
        p_value: Normal::standard().sf(z),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn the_quantile_matches_the_tables() {
        assert!(close(one_sided_z(0.95), 1.644_854, 1e-5));
        assert!(close(one_sided_z(0.975), 1.959_964, 1e-5));
        assert!(close(one_sided_z(0.99), 2.326_348, 1e-5));
    }

    #[test]
    fn wilson_bounds_match_published_values() {
        // Newcombe (1998), table I: 81/263 → 0.2553–0.3662 at 95 % two-sided (z = 1.96).
        let (lower, upper) = wilson_bounds(Sample::new(81, 263), 1.959_964).unwrap();
        assert!(close(lower, 0.2553, 5e-5) && close(upper, 0.3662, 5e-5));
        // 0/10 → 0–0.2775, where the Wald interval would collapse to a point.
        let (lower, upper) = wilson_bounds(Sample::new(0, 10), 1.959_964).unwrap();
        assert!(close(lower, 0.0, 1e-12) && close(upper, 0.2775, 5e-5));
        assert_eq!(wilson_bounds(Sample::new(0, 0), 1.96), None);
    }

    #[test]
    fn the_ratio_test_is_centred_on_its_margin() {
        let baseline = Sample::new(100, 10_000);
        // Exactly at the margin: the statistic is zero and the p-value one half.
        let at_margin = rate_ratio_test(Sample::new(120, 10_000), baseline, 1.2).unwrap();
        assert!(close(at_margin.z, 0.0, 1e-9) && close(at_margin.p_value, 0.5, 1e-9));
        // Twice the baseline rate, 200 vs 100 events: far beyond a 20 % rise.
        let doubled = rate_ratio_test(Sample::new(200, 10_000), baseline, 1.2).unwrap();
        assert!(doubled.z > 4.0 && doubled.p_value < 1e-4, "{doubled:?}");
        // Equal rates are well inside the margin.
        let equal = rate_ratio_test(baseline, baseline, 1.2).unwrap();
        assert!(equal.z < -1.0, "{equal:?}");
    }

    #[test]
    fn the_ratio_test_matches_the_hand_computed_statistic() {
        // 30/1000 vs 10/1000 under H0 p1 = p0: the constrained rates are the pooled 2 %,
        // so z = (0.03 − 0.01) / √(2 · 0.02 · 0.98 / 1000) = 3.1944.
        let outcome = rate_ratio_test(Sample::new(30, 1000), Sample::new(10, 1000), 1.0).unwrap();
        assert!(close(outcome.z, 3.1944, 1e-4), "{outcome:?}");
    }

    #[test]
    fn the_ratio_test_copes_with_a_baseline_without_events() {
        let outcome = rate_ratio_test(Sample::new(12, 5000), Sample::new(0, 5000), 1.2).unwrap();
        assert!(outcome.z > 2.0, "{outcome:?}");
        assert_eq!(
            rate_ratio_test(Sample::new(0, 5000), Sample::new(0, 5000), 1.2),
            None
        );
        assert_eq!(
            rate_ratio_test(Sample::new(1, 10), Sample::new(0, 0), 1.2),
            None
        );
    }
}
