//! The verdict: a release's counts (and its baseline's) judged against a policy. Pure, so the
//! simulation tests can run it many thousands of times.
//!
//! Each metric is judged alone, then the release: FAIL when any metric fails, else
//! INSUFFICIENT_DATA when any metric lacks data, else PASS. Every check is a claim backed by a
//! time-uniform confidence sequence (stats.rs) at the policy's confidence, so the verdict stays
//! right however often CI asks. A metric
//! - lacks data when it has fewer sessions (attempts) than the policy's minimum;
//! - fails when a limit is *credibly* exceeded: the whole sequence for the rate lies above
//!   `maxRate`, or the whole sequence for its ratio to the baseline above 1 + `maxRegression`;
//! - passes only when every limit is credibly met: the sequences lie wholly within them, so a
//!   PASS on thin data cannot happen;
//! - lacks data otherwise, with a reason estimating the exposure that would decide it.

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::percent;
use super::policy::{GatePolicy, MetricPolicy};
use super::stats::{Mixture, RatioBounds, confidence_sequence, ratio_sequence};
use crate::model::{Counts, Metric, Sample};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "GateVerdict")]
pub enum Verdict {
    Pass,
    Fail,
    InsufficientData,
}

impl Verdict {
    /// As the API and alerts spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "GateMetricStatus")]
pub enum MetricStatus {
    Pass,
    Fail,
    InsufficientData,
    /// Nothing reported for a metric the policy does not require.
    NotMeasured,
}

/// The hours evaluated: `from` inclusive, `to` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, SimpleObject)]
#[graphql(name = "GateWindow")]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A version's counts over its window (`None` when it has no data at all).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    pub version: String,
    pub window: Option<Window>,
    pub counts: Counts,
    /// Reports and usage were split alike (`rollup::Cell::sliced_alike`); when not, no rate
    /// of the slice is judged.
    pub sliced_alike: bool,
}

impl Measured {
    /// A version with only sessions and crashes, windowless, sliced alike: what the gate's
    /// tests and simulations judge.
    pub fn of_crashes(version: &str, sessions: u64, crashes: u64) -> Measured {
        Measured {
            version: version.to_owned(),
            window: None,
            counts: Counts {
                sessions,
                crashes,
                ..Counts::default()
            },
            sliced_alike: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub measured: Measured,
    /// Asked for by the caller rather than chosen: a comparison it cannot make is then
    /// INSUFFICIENT_DATA instead of a note.
    pub requested: bool,
}

/// A rate with its time-uniform bounds at the policy's confidence: the true rate lies between
/// `lower` and `upper` at every look at once, with that confidence.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
#[graphql(name = "GateRate")]
pub struct RateEstimate {
    pub events: u64,
    pub trials: u64,
    pub rate: Option<f64>,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl RateEstimate {
    fn of(sample: Sample, mixture: Mixture, alpha: f64) -> RateEstimate {
        let bounds = confidence_sequence(sample, mixture, alpha);
        RateEstimate {
            events: sample.events,
            trials: sample.trials,
            rate: sample.rate(),
            lower: bounds.map(|(lower, _)| lower),
            upper: bounds.map(|(_, upper)| upper),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
#[graphql(name = "GateMetricResult")]
pub struct MetricResult {
    pub metric: Metric,
    pub status: MetricStatus,
    pub current: RateEstimate,
    pub baseline: Option<RateEstimate>,
    /// current / baseline − 1 (0.35 = +35 %); null without a baseline rate above zero.
    pub relative_change: Option<f64>,
    pub max_rate: Option<f64>,
    pub max_regression: Option<f64>,
    pub min_sample: u64,
    /// The tests applied, in words.
    pub test: String,
    /// Time-uniform bounds on current / baseline rate at the policy's confidence, when the
    /// regression was checked; `ratioUpper` is null while the baseline's rate may be zero.
    pub ratio_lower: Option<f64>,
    pub ratio_upper: Option<f64>,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    pub verdict: Verdict,
    pub metrics: Vec<MetricResult>,
    /// Why: every metric that did not pass, and what could not be checked.
    pub reasons: Vec<String>,
    pub baseline_version: Option<String>,
    pub confidence: f64,
    pub window: Option<Window>,
    pub baseline_window: Option<Window>,
}

pub fn evaluate(
    policy: &GatePolicy,
    release: &Measured,
    baseline: Option<&Baseline>,
) -> GateResult {
    let mut reasons = Vec::new();
    let metrics: Vec<MetricResult> = Metric::ALL
        .into_iter()
        .map(|metric| {
            let limits = policy.metric(metric);
            let (result, notable) = MetricJudge {
                metric,
                limits,
                confidence: policy.confidence,
                alpha: 1.0 - policy.confidence,
                mixture: Mixture::centred_on(limits.max_rate.unwrap_or(UNLIMITED_MIXTURE_MEAN)),
            }
            .judge(&release.counts, baseline);
            reasons.extend(notable);
            result
        })
        .collect();

    let mut metrics = metrics;
    let sliced_alike = release.sliced_alike && baseline.is_none_or(|b| b.measured.sliced_alike);
    if !sliced_alike {
        // Left-out `unknown` counts may belong to the slice: neither verdict is a claim.
        for metric in &mut metrics {
            if matches!(metric.status, MetricStatus::Pass | MetricStatus::Fail) {
                metric.status = MetricStatus::InsufficientData;
            }
        }
        reasons.insert(
            0,
            "some reports or sessions of this release do not say their platform or architecture (a Sentry SDK's sessions carry none), so its rates on one platform or architecture cannot be judged; ask for the whole release".to_owned(),
        );
    }
    let statuses = || metrics.iter().map(|m| m.status);
    let verdict = if statuses().any(|s| s == MetricStatus::Fail) {
        Verdict::Fail
    } else if statuses().any(|s| s == MetricStatus::InsufficientData) {
        Verdict::InsufficientData
    } else if statuses().all(|s| s == MetricStatus::NotMeasured) {
        reasons.push("nothing was measured for this release".to_owned());
        Verdict::InsufficientData
    } else {
        reasons.insert(
            0,
            "every measured metric is within the policy's limits".to_owned(),
        );
        Verdict::Pass
    };
    let regressions_gated = Metric::ALL
        .iter()
        .any(|&m| policy.metric(m).max_regression.is_some());
    if baseline.is_none() && regressions_gated {
        reasons.push(format!(
            "no earlier version on this channel has {} sessions to compare with; regressions were not checked",
            policy.crash_rate.min_sample
        ));
    }
    GateResult {
        verdict,
        metrics,
        reasons,
        baseline_version: baseline.map(|b| b.measured.version.clone()),
        confidence: policy.confidence,
        window: release.window,
        baseline_window: baseline.and_then(|b| b.measured.window),
    }
}

/// A metric's reasons: all are shown with the metric; the notable ones — anything but a limit
/// that was met — also explain the release's verdict.
#[derive(Default)]
struct Reasons {
    all: Vec<String>,
    notable: Vec<String>,
}

impl Reasons {
    fn notable(&mut self, reason: String) {
        self.notable.push(reason.clone());
        self.all.push(reason);
    }

    fn met(&mut self, reason: String) {
        self.all.push(reason);
    }

    fn add(&mut self, check: &Check, reason: String) {
        match check {
            Check::Within => self.met(reason),
            Check::Unsure | Check::Exceeded => self.notable(reason),
        }
    }
}

impl MetricResult {
    fn with(mut self, reasons: Reasons) -> (MetricResult, Vec<String>) {
        self.reasons = reasons.all;
        (self, reasons.notable)
    }
}

/// Where the mixture of a metric without `maxRate` is centred: a typical crash rate.
const UNLIMITED_MIXTURE_MEAN: f64 = 0.01;

/// How far `exposure_needed` looks: a million times the data seen is "never" in practice.
const MAX_EXPOSURE_FACTOR: f64 = 1e6;

/// How one check of a limit came out.
enum Check {
    /// Credibly within the limit.
    Within,
    /// Neither credibly within nor credibly beyond.
    Unsure,
    /// Credibly beyond the limit.
    Exceeded,
}

impl Check {
    fn of(credibly_beyond: bool, credibly_within: bool) -> Check {
        match (credibly_beyond, credibly_within) {
            (true, _) => Check::Exceeded,
            (false, true) => Check::Within,
            (false, false) => Check::Unsure,
        }
    }

    /// A rate's bounds `(lower, upper)` against its limit.
    fn of_rate((lower, upper): (f64, f64), max_rate: f64) -> Check {
        Check::of(lower > max_rate, upper <= max_rate)
    }

    fn decided(&self) -> bool {
        !matches!(self, Check::Unsure)
    }
}

/// Roughly how many more trials, at the rate observed so far, would make `check` decide:
/// the counts are scaled up until it does. `None` when no amount of such data would.
fn exposure_needed(sample: Sample, check: impl Fn(Sample) -> Check) -> Option<u64> {
    let scaled = |factor: f64| {
        Sample::new(
            (sample.events as f64 * factor).round() as u64,
            (sample.trials as f64 * factor).round() as u64,
        )
    };
    let mut factor = 2.0;
    while !check(scaled(factor)).decided() {
        factor *= 2.0;
        if factor > MAX_EXPOSURE_FACTOR {
            return None;
        }
    }
    let (mut low, mut high) = (factor / 2.0, factor);
    for _ in 0..8 {
        let middle = 0.5 * (low + high);
        if check(scaled(middle)).decided() {
            high = middle;
        } else {
            low = middle;
        }
    }
    Some(scaled(high).trials.saturating_sub(sample.trials))
}

struct MetricJudge<'a> {
    metric: Metric,
    limits: &'a MetricPolicy,
    confidence: f64,
    alpha: f64,
    mixture: Mixture,
}

impl MetricJudge<'_> {
    /// The metric's result, and its notable reasons.
    fn judge(&self, release: &Counts, baseline: Option<&Baseline>) -> (MetricResult, Vec<String>) {
        let (metric, limits) = (self.metric, self.limits);
        let mut reasons = Reasons::default();
        let current = self.consistent(release.sample(metric), "", &mut reasons);
        let baseline_sample = baseline.map(|b| {
            let sample = b.measured.counts.sample(metric);
            let whose = format!(" in {}", b.measured.version);
            self.consistent(sample, &whose, &mut reasons)
        });
        let mut result = MetricResult {
            metric,
            status: MetricStatus::Pass,
            current: RateEstimate::of(current, self.mixture, self.alpha),
            baseline: baseline_sample
                .map(|sample| RateEstimate::of(sample, self.mixture, self.alpha)),
            relative_change: None,
            max_rate: limits.max_rate,
            max_regression: limits.max_regression,
            min_sample: limits.min_sample,
            test: "none".to_owned(),
            ratio_lower: None,
            ratio_upper: None,
            reasons: Vec::new(),
        };
        let name = metric.label();
        let trials = metric.trials();
        if current.trials == 0 {
            let dropped = release.sample(metric).events;
            result.status = if dropped > 0 || limits.required {
                MetricStatus::InsufficientData
            } else {
                MetricStatus::NotMeasured
            };
            reasons.notable(format!("{name}: no {trials} were reported in the window"));
            return result.with(reasons);
        }
        if current.trials < limits.min_sample {
            result.status = MetricStatus::InsufficientData;
            reasons.notable(format!(
                "{name}: only {} {trials} in the window; the policy needs {}",
                current.trials, limits.min_sample
            ));
            return result.with(reasons);
        }

        let mut checks = Vec::new();
        let mut tests = Vec::new();
        if let Some(max_rate) = limits.max_rate {
            tests.push(format!(
                "time-uniform confidence sequence for the rate ({}) against the {} limit",
                percent(self.confidence),
                percent(max_rate)
            ));
            let (check, reason) = self.check_rate(current, max_rate);
            reasons.add(&check, reason);
            checks.push(check);
        }
        if let (Some(max_regression), Some(baseline), Some(baseline_sample)) =
            (limits.max_regression, baseline, baseline_sample)
        {
            let version = &baseline.measured.version;
            if baseline_sample.trials < limits.min_sample {
                let note = format!(
                    "{name}: the baseline {version} has only {} {trials}; the policy needs {} to compare",
                    baseline_sample.trials, limits.min_sample
                );
                reasons.notable(note);
                if baseline.requested {
                    checks.push(Check::Unsure);
                }
            } else {
                tests.push(format!(
                    "time-uniform confidence sequence for the rate ratio ({}) against {:.2} × baseline",
                    percent(self.confidence),
                    1.0 + max_regression
                ));
                let regression =
                    self.check_regression(current, baseline_sample, version, max_regression);
                reasons.add(&regression.check, regression.reason);
                checks.push(regression.check);
                result.ratio_lower = regression.ratio_lower;
                result.ratio_upper = regression.ratio_upper;
                result.relative_change = regression.change;
            }
        }
        if !tests.is_empty() {
            result.test = tests.join("; ");
        }
        result.status = if checks.iter().any(|c| matches!(c, Check::Exceeded)) {
            MetricStatus::Fail
        } else if checks.iter().any(|c| matches!(c, Check::Unsure)) {
            MetricStatus::InsufficientData
        } else {
            MetricStatus::Pass
        };
        result.with(reasons)
    }

    /// The sample with crashes capped at sessions: more crashes than sessions means session
    /// counts went missing, and the rate can then be no better than every session crashing.
    fn consistent(&self, sample: Sample, whose: &str, reasons: &mut Reasons) -> Sample {
        if sample.events <= sample.trials || sample.trials == 0 {
            return sample;
        }
        reasons.notable(format!(
            "{}: {} events but only {} {}{whose}; counted as every one failing",
            self.metric.label(),
            sample.events,
            sample.trials,
            self.metric.trials()
        ));
        Sample::new(sample.trials, sample.trials)
    }

    fn rate_check(&self, sample: Sample, max_rate: f64) -> Check {
        confidence_sequence(sample, self.mixture, self.alpha)
            .map_or(Check::Unsure, |bounds| Check::of_rate(bounds, max_rate))
    }

    fn check_rate(&self, current: Sample, max_rate: f64) -> (Check, String) {
        let name = self.metric.label();
        let (Some(rate), Some((lower, upper))) = (
            current.rate(),
            confidence_sequence(current, self.mixture, self.alpha),
        ) else {
            return (Check::Unsure, format!("{name}: no rate to check"));
        };
        let (confidence, rate_text, limit) =
            (percent(self.confidence), percent(rate), percent(max_rate));
        let bounds = format!("{}–{}", percent(lower), percent(upper));
        match Check::of_rate((lower, upper), max_rate) {
            Check::Exceeded => (
                Check::Exceeded,
                format!(
                    "{name} {rate_text} is above the {limit} limit: with {confidence} confidence it is at least {}",
                    percent(lower)
                ),
            ),
            Check::Within => (
                Check::Within,
                format!(
                    "{name} {rate_text} is within the {limit} limit: with {confidence} confidence it is at most {}",
                    percent(upper)
                ),
            ),
            Check::Unsure => {
                let needed = exposure_needed(current, |more| self.rate_check(more, max_rate));
                (
                    Check::Unsure,
                    format!(
                        "{name} {rate_text} may be on either side of the {limit} limit ({bounds} at {confidence} confidence); {}",
                        self.more_data(needed)
                    ),
                )
            }
        }
    }

    /// How much more data would decide, in words.
    fn more_data(&self, needed: Option<u64>) -> String {
        let trials = self.metric.trials();
        match needed {
            Some(needed) => {
                format!("about {needed} more {trials} at the rate seen so far would decide it")
            }
            None => format!(
                "at the rate seen so far no feasible number of {trials} would decide it: the rate sits on the limit"
            ),
        }
    }

    fn regression_check(
        &self,
        current: Sample,
        baseline: Sample,
        allowed_ratio: f64,
    ) -> (Check, Option<RatioBounds>) {
        match ratio_sequence(current, baseline, self.mixture, self.alpha) {
            Some(bounds) => (
                Check::of(bounds.lower > allowed_ratio, bounds.upper <= allowed_ratio),
                Some(bounds),
            ),
            None => (Check::Unsure, None),
        }
    }

    fn check_regression(
        &self,
        current: Sample,
        baseline: Sample,
        version: &str,
        max_regression: f64,
    ) -> Regression {
        let name = self.metric.label();
        let allowed = format!("+{:.0}%", max_regression * 100.0);
        let allowed_ratio = 1.0 + max_regression;
        let confidence = percent(self.confidence);
        let (Some(rate), Some(baseline_rate)) = (current.rate(), baseline.rate()) else {
            return Regression {
                check: Check::Unsure,
                reason: format!("{name}: no rate to compare"),
                ratio_lower: None,
                ratio_upper: None,
                change: None,
            };
        };
        let change = (baseline_rate > 0.0).then(|| rate / baseline_rate - 1.0);
        let comparison = match change {
            Some(change) => format!(
                "{name} {} is {:+.0}% against {} in {version}",
                percent(rate),
                change * 100.0,
                percent(baseline_rate)
            ),
            None => format!("{name} {} where {version} had none", percent(rate)),
        };
        let (check, bounds) = self.regression_check(current, baseline, allowed_ratio);
        let ratio_lower = bounds.map(|b| b.lower);
        let ratio_upper = bounds.map(|b| b.upper).filter(|upper| upper.is_finite());
        let lower_change = format!("{:+.0}%", (ratio_lower.unwrap_or(0.0) - 1.0) * 100.0);
        let upper_change = ratio_upper.map_or("unbounded".to_owned(), |upper| {
            format!("{:+.0}%", (upper - 1.0) * 100.0)
        });
        let reason = match check {
            Check::Exceeded => format!(
                "{comparison}: a rise beyond the {allowed} allowed is credible at {confidence} confidence (at least {lower_change})"
            ),
            Check::Within => format!(
                "{comparison}, within the {allowed} allowed at {confidence} confidence (at most {upper_change})"
            ),
            Check::Unsure => {
                let needed = exposure_needed(current, |more| {
                    self.regression_check(more, baseline, allowed_ratio).0
                });
                let decide = match needed {
                    Some(_) => self.more_data(needed),
                    None => format!(
                        "the baseline {version} alone is too uncertain to decide it, however many more {} the release gets",
                        self.metric.trials()
                    ),
                };
                format!(
                    "{comparison}: the change may be on either side of the {allowed} allowed ({lower_change} to {upper_change} at {confidence} confidence); {decide}"
                )
            }
        };
        Regression {
            check,
            reason,
            ratio_lower,
            ratio_upper,
            change,
        }
    }
}

/// The outcome of the regression check, with what the result shows of it.
struct Regression {
    check: Check,
    reason: String,
    ratio_lower: Option<f64>,
    ratio_upper: Option<f64>,
    change: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previous(sessions: u64, crashes: u64) -> Baseline {
        Baseline {
            measured: Measured::of_crashes("1.4.0", sessions, crashes),
            requested: false,
        }
    }

    fn crash(result: &GateResult) -> &MetricResult {
        &result.metrics[0]
    }

    #[test]
    fn a_healthy_release_passes_with_its_numbers() {
        let policy = GatePolicy::default();
        let result = evaluate(
            &policy,
            &Measured::of_crashes("1.5.0", 500_000, 2450),
            Some(&previous(2_000_000, 10_000)),
        );
        assert_eq!(result.verdict, Verdict::Pass, "{result:#?}");
        let crash = crash(&result);
        assert_eq!(crash.status, MetricStatus::Pass);
        assert_eq!(crash.current.rate, Some(0.0049));
        let (lower, upper) = (crash.current.lower.unwrap(), crash.current.upper.unwrap());
        assert!(lower < 0.0049 && 0.0049 < upper);
        assert!(crash.relative_change.unwrap() < 0.0);
        assert!(crash.ratio_upper.unwrap() <= 1.2, "{crash:?}");
        assert!(crash.test.contains("rate ratio"), "{}", crash.test);
        assert_eq!(result.baseline_version.as_deref(), Some("1.4.0"));
        // Nothing was sent for updates or installs, and the default does not require them.
        assert_eq!(result.metrics[1].status, MetricStatus::NotMeasured);
        assert_eq!(result.metrics[2].status, MetricStatus::NotMeasured);
    }

    #[test]
    fn a_slice_whose_counts_were_not_sliced_alike_is_never_judged() {
        let mut release = Measured::of_crashes("1.5.0", 500_000, 50_000);
        let failing = evaluate(&GatePolicy::default(), &release, None);
        assert_eq!(failing.verdict, Verdict::Fail);
        release.sliced_alike = false;
        let result = evaluate(&GatePolicy::default(), &release, None);
        assert_eq!(result.verdict, Verdict::InsufficientData);
        assert!(
            result.reasons[0].contains("platform or architecture"),
            "{:?}",
            result.reasons
        );
    }

    #[test]
    fn a_doubled_crash_rate_fails_as_a_regression() {
        let result = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 100_000, 1500),
            Some(&previous(100_000, 750)),
        );
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(crash(&result).ratio_lower.unwrap() > 1.2);
        assert!(
            result
                .reasons
                .iter()
                .any(|r| r.contains("+100%") && r.contains("credible")),
            "{:?}",
            result.reasons
        );
    }

    #[test]
    fn a_rate_credibly_above_the_limit_fails_without_a_baseline() {
        let result = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 5000, 200),
            None,
        );
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(
            result
                .reasons
                .iter()
                .any(|r| r.contains("regressions were not checked"))
        );
    }

    #[test]
    fn a_rate_near_the_limit_asks_for_more_data_and_says_how_much() {
        // 2.2 % observed against a 2 % limit on 2000 sessions is well within chance.
        let result = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 2000, 44),
            None,
        );
        assert_eq!(result.verdict, Verdict::InsufficientData);
        assert!(
            result
                .reasons
                .iter()
                .any(|r| r.contains("either side") && r.contains("more sessions")),
            "{:?}",
            result.reasons
        );
        // 1.5 % on 2000 sessions is below the limit, but not yet credibly: no PASS.
        let below = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 2000, 30),
            None,
        );
        assert_eq!(below.verdict, Verdict::InsufficientData, "{below:#?}");
    }

    #[test]
    fn thin_or_missing_data_is_never_a_pass() {
        let policy = GatePolicy::default();
        let thin = evaluate(
            &policy,
            &Measured::of_crashes("1.5.0", 999, 0),
            Some(&previous(20_000, 200)),
        );
        assert_eq!(thin.verdict, Verdict::InsufficientData);
        assert!(
            thin.reasons[0].contains("only 999 sessions"),
            "{:?}",
            thin.reasons
        );
        let none = evaluate(&policy, &Measured::of_crashes("1.5.0", 0, 0), None);
        assert_eq!(none.verdict, Verdict::InsufficientData);
        // Crashes without any session counts: the denominator is missing, not zero risk.
        let crashes_only = evaluate(&policy, &Measured::of_crashes("1.5.0", 0, 40), None);
        assert_eq!(crashes_only.verdict, Verdict::InsufficientData);
        // Nothing required and nothing reported: still not a pass.
        let mut lax = policy;
        lax.crash_rate.required = false;
        let nothing = evaluate(&lax, &Measured::of_crashes("1.5.0", 0, 0), None);
        assert_eq!(nothing.verdict, Verdict::InsufficientData);
    }

    #[test]
    fn more_crashes_than_sessions_count_as_every_session_crashing() {
        let result = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 1000, 5000),
            None,
        );
        assert_eq!(crash(&result).current.rate, Some(1.0));
        assert_eq!(result.verdict, Verdict::Fail);
    }

    #[test]
    fn a_requested_baseline_without_enough_data_is_insufficient() {
        let policy = GatePolicy::default();
        let release = Measured::of_crashes("1.5.0", 20_000, 200);
        let mut thin = previous(100, 1);
        let automatic = evaluate(&policy, &release, Some(&thin));
        assert_eq!(automatic.verdict, Verdict::Pass);
        thin.requested = true;
        let requested = evaluate(&policy, &release, Some(&thin));
        assert_eq!(requested.verdict, Verdict::InsufficientData);
        assert!(
            requested
                .reasons
                .iter()
                .any(|r| r.contains("the baseline 1.4.0 has only 100"))
        );
    }

    #[test]
    fn update_failures_use_attempts_as_the_denominator() {
        let mut release = Measured::of_crashes("1.5.0", 20_000, 100);
        release.counts.update_failed = 100;
        release.counts.update_succeeded = 900;
        let result = evaluate(&GatePolicy::default(), &release, None);
        let updates = &result.metrics[1];
        assert_eq!(updates.metric, Metric::UpdateFailureRate);
        assert_eq!(
            (updates.current.events, updates.current.trials),
            (100, 1000)
        );
        // 10 % failing, credibly above the 5 % limit.
        assert_eq!(updates.status, MetricStatus::Fail);
        assert_eq!(result.verdict, Verdict::Fail);
    }
}
