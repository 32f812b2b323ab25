//! The verdict: a release's counts (and its baseline's) judged against a policy. Pure, so the
//! simulation tests can run it many thousands of times.
//!
//! Each metric is judged alone, then the release: FAIL when any metric fails, else
//! INSUFFICIENT_DATA when any metric lacks data, else PASS. A metric
//! - lacks data when it has fewer sessions (attempts) than the policy's minimum — thin data
//!   never passes and never fails;
//! - fails when a limit is exceeded *credibly*: the rate's one-sided Wilson lower bound is above
//!   `maxRate`, or the Farrington–Manning test rejects "rate ≤ (1 + maxRegression) × baseline"
//!   at the policy's confidence;
//! - lacks data, too, when an observed value is beyond a limit but not credibly so: more data
//!   will tell, luck must not;
//! - passes otherwise.

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::percent;
use super::policy::{GatePolicy, MetricPolicy};
use super::stats::{one_sided_z, rate_ratio_test, wilson_bounds};
use crate::model::{Counts, Metric, Sample};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "GateVerdict")]
pub enum Verdict {
    Pass,
    Fail,
    InsufficientData,
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
}

/// A version with only sessions and crashes, windowless: the fixture of the gate's tests.
#[cfg(test)]
pub(crate) fn measured(version: &str, sessions: u64, crashes: u64) -> Measured {
    Measured {
        version: version.to_owned(),
        window: None,
        counts: Counts {
            sessions,
            crashes,
            ..Counts::default()
        },
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Baseline {
    pub measured: Measured,
    /// Asked for by the caller rather than chosen: a comparison it cannot make is then
    /// INSUFFICIENT_DATA instead of a note.
    pub requested: bool,
}

/// A rate with its one-sided Wilson bounds at the policy's confidence.
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
    fn of(sample: Sample, z: f64) -> RateEstimate {
        let bounds = wilson_bounds(sample, z);
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
    /// Of the regression test, when it ran.
    pub p_value: Option<f64>,
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
    let z = one_sided_z(policy.confidence);
    let mut reasons = Vec::new();
    let metrics: Vec<MetricResult> = Metric::ALL
        .into_iter()
        .map(|metric| {
            let (result, notable) = MetricJudge {
                metric,
                limits: policy.metric(metric),
                confidence: policy.confidence,
                z,
            }
            .judge(&release.counts, baseline);
            reasons.extend(notable);
            result
        })
        .collect();

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

/// How one check of a limit came out.
enum Check {
    Within,
    /// Beyond the limit, but not credibly.
    Unsure,
    Exceeded,
}

struct MetricJudge<'a> {
    metric: Metric,
    limits: &'a MetricPolicy,
    confidence: f64,
    z: f64,
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
            current: RateEstimate::of(current, self.z),
            baseline: baseline_sample.map(|sample| RateEstimate::of(sample, self.z)),
            relative_change: None,
            max_rate: limits.max_rate,
            max_regression: limits.max_regression,
            min_sample: limits.min_sample,
            test: "none".to_owned(),
            p_value: None,
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
                "Wilson score lower bound (one-sided, {}) against the {} limit",
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
                    "Farrington–Manning score test (one-sided, {}) of rate ≤ {:.2} × baseline",
                    percent(self.confidence),
                    1.0 + max_regression
                ));
                let (check, reason, p_value, change) =
                    self.check_regression(current, baseline_sample, version, max_regression);
                reasons.add(&check, reason);
                checks.push(check);
                result.p_value = p_value;
                result.relative_change = change;
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

    fn check_rate(&self, current: Sample, max_rate: f64) -> (Check, String) {
        let name = self.metric.label();
        let (rate, (lower, _)) = match (current.rate(), wilson_bounds(current, self.z)) {
            (Some(rate), Some(bounds)) => (rate, bounds),
            _ => return (Check::Unsure, format!("{name}: no rate to check")),
        };
        let (confidence, rate_text, limit) =
            (percent(self.confidence), percent(rate), percent(max_rate));
        if lower > max_rate {
            (
                Check::Exceeded,
                format!(
                    "{name} {rate_text} is above the {limit} limit: with {confidence} confidence it is at least {}",
                    percent(lower)
                ),
            )
        } else if rate > max_rate {
            (
                Check::Unsure,
                format!(
                    "{name} {rate_text} is above the {limit} limit, but not credibly at {confidence} confidence (it may be as low as {}); more data is needed",
                    percent(lower)
                ),
            )
        } else {
            (
                Check::Within,
                format!("{name} {rate_text} is within the {limit} limit"),
            )
        }
    }

    fn check_regression(
        &self,
        current: Sample,
        baseline: Sample,
        version: &str,
        max_regression: f64,
    ) -> (Check, String, Option<f64>, Option<f64>) {
        let name = self.metric.label();
        let allowed = format!("+{:.0}%", max_regression * 100.0);
        let confidence = percent(self.confidence);
        let (Some(rate), Some(baseline_rate)) = (current.rate(), baseline.rate()) else {
            return (
                Check::Unsure,
                format!("{name}: no rate to compare"),
                None,
                None,
            );
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
        let beyond = change.is_none_or(|change| change > max_regression) && rate > 0.0;
        let outcome = rate_ratio_test(current, baseline, 1.0 + max_regression);
        let p_value = outcome.map(|o| o.p_value);
        let (check, reason) = match outcome {
            Some(outcome) if outcome.z > self.z => (
                Check::Exceeded,
                format!(
                    "{comparison}: a rise beyond the {allowed} allowed is credible at {confidence} confidence (p = {:.2e})",
                    outcome.p_value
                ),
            ),
            _ if beyond => {
                let p = p_value.map_or(String::new(), |p| format!(" (p = {p:.2})"));
                (
                    Check::Unsure,
                    format!(
                        "{comparison}, beyond the {allowed} allowed, but not credibly at {confidence} confidence{p}; more data is needed"
                    ),
                )
            }
            _ => (
                Check::Within,
                format!("{comparison}, within the {allowed} allowed"),
            ),
        };
        (check, reason, p_value, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn previous(sessions: u64, crashes: u64) -> Baseline {
        Baseline {
            measured: measured("1.4.0", sessions, crashes),
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
            &measured("1.5.0", 20_000, 200),
            Some(&previous(20_000, 210)),
        );
        assert_eq!(result.verdict, Verdict::Pass, "{result:#?}");
        let crash = crash(&result);
        assert_eq!(crash.status, MetricStatus::Pass);
        assert_eq!(crash.current.rate, Some(0.01));
        let (lower, upper) = (crash.current.lower.unwrap(), crash.current.upper.unwrap());
        assert!(lower < 0.01 && 0.01 < upper);
        assert!(crash.relative_change.unwrap() < 0.0);
        assert!(crash.test.contains("Farrington"), "{}", crash.test);
        assert_eq!(result.baseline_version.as_deref(), Some("1.4.0"));
        // Nothing was sent for updates or installs, and the default does not require them.
        assert_eq!(result.metrics[1].status, MetricStatus::NotMeasured);
        assert_eq!(result.metrics[2].status, MetricStatus::NotMeasured);
    }

    #[test]
    fn a_doubled_crash_rate_fails_as_a_regression() {
        let result = evaluate(
            &GatePolicy::default(),
            &measured("1.5.0", 20_000, 300),
            Some(&previous(20_000, 150)),
        );
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(crash(&result).p_value.unwrap() < 0.001);
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
        let result = evaluate(&GatePolicy::default(), &measured("1.5.0", 5000, 200), None);
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(
            result
                .reasons
                .iter()
                .any(|r| r.contains("regressions were not checked"))
        );
    }

    #[test]
    fn a_rate_just_above_the_limit_asks_for_more_data() {
        // 2.2 % observed against a 2 % limit on 2000 sessions is well within chance.
        let result = evaluate(&GatePolicy::default(), &measured("1.5.0", 2000, 44), None);
        assert_eq!(result.verdict, Verdict::InsufficientData);
        assert!(result.reasons.iter().any(|r| r.contains("not credibly")));
    }

    #[test]
    fn thin_or_missing_data_is_never_a_pass() {
        let policy = GatePolicy::default();
        let thin = evaluate(
            &policy,
            &measured("1.5.0", 999, 0),
            Some(&previous(20_000, 200)),
        );
        assert_eq!(thin.verdict, Verdict::InsufficientData);
        assert!(
            thin.reasons[0].contains("only 999 sessions"),
            "{:?}",
            thin.reasons
        );
        let none = evaluate(&policy, &measured("1.5.0", 0, 0), None);
        assert_eq!(none.verdict, Verdict::InsufficientData);
        // Crashes without any session counts: the denominator is missing, not zero risk.
        let crashes_only = evaluate(&policy, &measured("1.5.0", 0, 40), None);
        assert_eq!(crashes_only.verdict, Verdict::InsufficientData);
        // Nothing required and nothing reported: still not a pass.
        let mut lax = policy;
        lax.crash_rate.required = false;
        let nothing = evaluate(&lax, &measured("1.5.0", 0, 0), None);
        assert_eq!(nothing.verdict, Verdict::InsufficientData);
    }

    #[test]
    fn more_crashes_than_sessions_count_as_every_session_crashing() {
        let result = evaluate(&GatePolicy::default(), &measured("1.5.0", 1000, 5000), None);
        assert_eq!(crash(&result).current.rate, Some(1.0));
        assert_eq!(result.verdict, Verdict::Fail);
    }

    #[test]
    fn a_requested_baseline_without_enough_data_is_insufficient() {
        let policy = GatePolicy::default();
        let release = measured("1.5.0", 20_000, 200);
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
        let mut release = measured("1.5.0", 20_000, 100);
        release.counts.update_failed = 30;
        release.counts.update_succeeded = 270;
        let result = evaluate(&GatePolicy::default(), &release, None);
        let updates = &result.metrics[1];
        assert_eq!(updates.metric, Metric::UpdateFailureRate);
        assert_eq!((updates.current.events, updates.current.trials), (30, 300));
        // 10 % failing, credibly above the 5 % limit.
        assert_eq!(updates.status, MetricStatus::Fail);
        assert_eq!(result.verdict, Verdict::Fail);
    }
}
