//! The statistics behind the gate: time-uniform confidence sequences, which stay valid however
//! often the gate is asked.
//!
//! For one rate the gate uses the beta-binomial mixture martingale (Howard, Ramdas, McAuliffe
//! & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021, §3):
//! for a candidate rate p the mixture likelihood ratio
//! `M(p) = B(a + x, b + n − x) / (B(a, b) · pˣ (1 − p)ⁿ⁻ˣ)` is a nonnegative martingale with mean
//! one when p is the true rate, so by Ville's inequality it ever reaches 1/α with probability at
//! most α. The rates with `M(p) < 1/α` therefore cover the true rate at every number of trials
//! at once, with probability at least 1 − α — asking again never spends more error budget.
//!
//! For the ratio of two rates the gate combines the two sequences, each at α/2: if both cover
//! their rates, the ratio lies between `lower₁ / upper₀` and `upper₁ / lower₀`. This works from
//! cumulative counts alone (the roll-up keeps no history of looks), whereas the conditional
//! binomial of Lindon & Malek needs the exposure ratio at each event.

use crate::model::Sample;

/// ln Γ(x) for x > 0, by the Lanczos approximation (g = 7, nine coefficients; relative error
/// below 1e-13 over the range the gate uses).
pub fn ln_gamma(x: f64) -> f64 {
    const COEFFICIENTS: [f64; 9] = [
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
        // Reflection: Γ(x) Γ(1 − x) = π / sin(πx); the gate's arguments are positive, so the
        // sine is too.
        return std::f64::consts::PI.ln()
            - (std::f64::consts::PI * x).sin().ln()
            - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let series = COEFFICIENTS[1..]
        .iter()
        .enumerate()
        .fold(COEFFICIENTS[0], |sum, (i, c)| {
            sum + c / (x + i as f64 + 1.0)
        });
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b).
pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The mixing distribution Beta(1, (1 − m) / m): mean `m`, most weight on rates below about 3m.
/// Its density is highest at zero, so rates far below `m` (the usual, healthy case) are
/// bounded tightly too.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mixture {
    a: f64,
    b: f64,
}

impl Mixture {
    /// Centred on `mean`, a rate in (0, 1) fixed before the data is seen (the policy's limit).
    pub fn centred_on(mean: f64) -> Mixture {
        let mean = mean.clamp(1e-9, 0.5);
        Mixture {
            a: 1.0,
            b: (1.0 - mean) / mean,
        }
    }
}

/// Time-uniform bounds `(lower, upper)` on a binomial rate: with probability at least
/// 1 − `alpha` the true rate lies between them at every sample size at once. `None` without
/// trials; `events` must not exceed `trials`.
pub fn confidence_sequence(sample: Sample, mixture: Mixture, alpha: f64) -> Option<(f64, f64)> {
    let rate = sample.rate()?;
    let (x, n) = (sample.events as f64, sample.trials as f64);
    let threshold = (1.0 / alpha).ln();
    let ln_mixed = ln_beta(mixture.a + x, mixture.b + n - x) - ln_beta(mixture.a, mixture.b);
    // ln M(p); convex in p with its minimum at the observed rate, where it is below the
    // threshold (the mixture never beats the best fitting rate), so each side has one root.
    let ln_ratio = |p: f64| {
        let ln_likelihood = if x > 0.0 { x * p.ln() } else { 0.0 }
            + if n > x { (n - x) * (-p).ln_1p() } else { 0.0 };
        ln_mixed - ln_likelihood
    };
    let outside = |p: f64| ln_ratio(p) >= threshold;
    let lower = if rate > 0.0 && outside(f64::MIN_POSITIVE) {
        boundary(f64::MIN_POSITIVE, rate, outside)
    } else {
        0.0
    };
    let upper = if rate < 1.0 && outside(1.0 - f64::EPSILON) {
        boundary(1.0 - f64::EPSILON, rate, outside)
    } else {
        1.0
    };
    Some((lower, upper))
}

/// Bisection between a rate `out` outside the sequence and a rate `inside` it; returns the
/// edge, rounded outwards (towards `out`) so the bounds never claim more than they have.
fn boundary(mut out: f64, mut inside: f64, outside: impl Fn(f64) -> bool) -> f64 {
    // Geometric steps near zero resolve the tiny lower bounds of rare events.
    for _ in 0..80 {
        let middle = if out > 0.0 && inside > 0.0 && out < 0.5 && inside < 0.5 {
            (out * inside).sqrt()
        } else {
            0.5 * (out + inside)
        };
        if outside(middle) {
            out = middle;
        } else {
            inside = middle;
        }
        if (out - inside).abs() <= 1e-12 * inside.abs().max(1e-300) {
            break;
        }
    }
    out
}

/// Time-uniform bounds on `rate(current) / rate(baseline)` with total error `alpha`, from the
/// two rates' sequences at `alpha / 2` each: `(lower, upper)`, the upper infinite while the
/// baseline's rate may still be zero. `None` when either side has no trials.
pub fn ratio_sequence(
    current: Sample,
    baseline: Sample,
    mixture: Mixture,
    alpha: f64,
) -> Option<RatioBounds> {
    let (current_lower, current_upper) = confidence_sequence(current, mixture, alpha / 2.0)?;
    let (baseline_lower, baseline_upper) = confidence_sequence(baseline, mixture, alpha / 2.0)?;
    Some(RatioBounds {
        lower: current_lower / baseline_upper,
        upper: if baseline_lower > 0.0 {
            current_upper / baseline_lower
        } else {
            f64::INFINITY
        },
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatioBounds {
    pub lower: f64,
    pub upper: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1.0)
    }

    #[test]
    fn log_gamma_matches_known_values() {
        // Γ(1) = Γ(2) = 1, Γ(1/2) = √π, Γ(10) = 9! = 362880, Γ(0.1) = 9.513507698668732.
        assert!(close(ln_gamma(1.0), 0.0, 1e-13));
        assert!(close(ln_gamma(2.0), 0.0, 1e-13));
        assert!(close(ln_gamma(0.5), 0.5 * std::f64::consts::PI.ln(), 1e-13));
        assert!(close(ln_gamma(10.0), 362_880f64.ln(), 1e-13));
        assert!(close(ln_gamma(0.1), 9.513_507_698_668_732f64.ln(), 1e-12));
        // Stirling's series at 1e6: (x − ½) ln x − x + ½ ln 2π + 1/(12x).
        let x = 1e6f64;
        let stirling =
            (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x);
        assert!(close(ln_gamma(x), stirling, 1e-13));
    }

    #[test]
    fn log_beta_matches_known_values() {
        // B(1, b) = 1/b; B(2, 3) = 1/12; B(½, ½) = π.
        assert!(close(ln_beta(1.0, 99.0), (1.0f64 / 99.0).ln(), 1e-12));
        assert!(close(ln_beta(2.0, 3.0), (1.0f64 / 12.0).ln(), 1e-12));
        assert!(close(ln_beta(0.5, 0.5), std::f64::consts::PI.ln(), 1e-12));
    }

    #[test]
    fn the_sequence_contains_the_observed_rate_and_narrows_with_data() {
        let mixture = Mixture::centred_on(0.02);
        let (lower, upper) = confidence_sequence(Sample::new(20, 1000), mixture, 0.05).unwrap();
        assert!(lower < 0.02 && 0.02 < upper, "{lower} {upper}");
        let (more_lower, more_upper) =
            confidence_sequence(Sample::new(2000, 100_000), mixture, 0.05).unwrap();
        assert!(lower < more_lower && more_upper < upper);
        // At each bound the mixture ratio sits on the threshold 1/α.
        let sample = Sample::new(20, 1000);
        for bound in [lower, upper] {
            let ln_ratio = ln_beta(1.0 + 20.0, 49.0 + 980.0)
                - ln_beta(1.0, 49.0)
                - 20.0 * bound.ln()
                - 980.0 * (1.0 - bound).ln();
            assert!(
                close(ln_ratio, 20f64.ln(), 1e-6),
                "{ln_ratio} for {sample:?}"
            );
        }
        assert_eq!(confidence_sequence(Sample::new(0, 0), mixture, 0.05), None);
    }

    #[test]
    fn the_sequence_is_wider_than_a_fixed_sample_interval() {
        // Validity at every look costs width: wider than the 95 % Wilson interval of 200/20000
        // (0.871 %–1.148 %), but less than twice as wide.
        let (lower, upper) =
            confidence_sequence(Sample::new(200, 20_000), Mixture::centred_on(0.02), 0.05).unwrap();
        assert!(lower < 0.008_71 && upper > 0.011_48, "{lower} {upper}");
        assert!(
            upper - lower < 2.0 * (0.011_48 - 0.008_71),
            "{lower} {upper}"
        );
    }

    #[test]
    fn no_events_bound_the_rate_from_above_only() {
        let (lower, upper) =
            confidence_sequence(Sample::new(0, 10), Mixture::centred_on(0.02), 0.05).unwrap();
        assert_eq!(lower, 0.0);
        assert!(upper > 0.2 && upper < 1.0, "{upper}");
        let (_, all) =
            confidence_sequence(Sample::new(10, 10), Mixture::centred_on(0.02), 0.05).unwrap();
        assert_eq!(all, 1.0);
    }

    #[test]
    fn the_ratio_bounds_bracket_the_observed_ratio() {
        let mixture = Mixture::centred_on(0.02);
        let baseline = Sample::new(200, 20_000);
        let doubled = ratio_sequence(Sample::new(400, 20_000), baseline, mixture, 0.05).unwrap();
        assert!(doubled.lower > 1.2 && doubled.lower < 2.0 && doubled.upper > 2.0);
        let equal = ratio_sequence(baseline, baseline, mixture, 0.05).unwrap();
        assert!(
            equal.lower < 1.0 && equal.upper > 1.0 && equal.upper < 2.0,
            "{equal:?}"
        );
        let no_baseline_events =
            ratio_sequence(Sample::new(5, 5000), Sample::new(0, 5000), mixture, 0.05).unwrap();
        assert_eq!(no_baseline_events.upper, f64::INFINITY);
        assert_eq!(
            ratio_sequence(Sample::new(1, 10), Sample::new(0, 0), mixture, 0.05),
            None
        );
    }
}
