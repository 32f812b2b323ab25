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

use super::policy::{BaselineExposure, GatePolicy, MetricPolicy};
use super::stats::{Mixture, RatioBounds, confidence_sequence, ratio_sequence};
use super::{confidence_text, percent};
use crate::model::{Arch, Counts, Metric, Platform, Sample};
use crate::throttled::Throttled;

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

/// A rate with its time-uniform bounds: the true rate lies above `lower` at every look at
/// once with the FAIL side's confidence, and below `upper` with the PASS side's (counting
/// throttled reports as failures for the release's `upper`).
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
    fn of(sample: Sample, bounds: Option<(f64, f64)>) -> RateEstimate {
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
    /// Why: every metric that did not pass, every slice that failed, and what could not be
    /// checked.
    pub reasons: Vec<String>,
    pub baseline_version: Option<String>,
    /// The policy's confidence: the chance of ever passing a release beyond the policy, and
    /// of ever failing one within it (slices included), is at most 1 − confidence.
    pub confidence: f64,
    /// The confidence each of the release's own FAIL claims holds at: the policy's, or
    /// higher when its slices share the error budget.
    pub fail_confidence: f64,
    pub window: Option<Window>,
    pub baseline_window: Option<Window>,
    /// How the baseline's window was chosen.
    #[serde(default)]
    pub baseline_exposure: BaselineExposure,
    /// Every platform, arch and platform × arch slice of the release with data, judged
    /// against the baseline's same slice; empty when the query named a slice.
    #[serde(default)]
    pub slices: Vec<SliceResult>,
    /// Requests of the app refused for the rate limit in the release's window: each report
    /// may be a failure of this release, so a PASS counts them all as failures.
    #[serde(default)]
    pub throttled: Throttled,
}

/// One platform, arch or platform × arch slice of a release, judged on its own data: a slice
/// that credibly fails fails the release; otherwise it only informs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
#[graphql(name = "GateSlice")]
pub struct SliceResult {
    pub platform: Option<String>,
    pub arch: Option<String>,
    /// `linux/aarch64`, `linux` or `aarch64`.
    pub name: String,
    pub verdict: Verdict,
    /// The confidence its claims hold at: its share of the policy's error budget.
    pub confidence: f64,
    pub metrics: Vec<MetricResult>,
}

/// The share of the policy's error budget (1 − confidence) each side of a judgement may
/// spend: `pass` bounds the chance of ever passing what is beyond the policy, `fail` the
/// chance of ever failing what is within it. Both are one side of a time-uniform sequence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Budget {
    pub pass: f64,
    pub fail: f64,
}

/// Platforms and archs a slice can have: all but `unknown`, which is never a slice.
const SLICE_PLATFORMS: usize = Platform::ALL.len() - 1;
const SLICE_ARCHS: usize = Arch::ALL.len() - 1;

/// Every slice a whole-release query could judge: each platform, each arch and each pair.
/// The budget is split over all of them, counted before any data arrives, so the split cannot
/// depend on the data and holds however many slices appear as the rollout grows.
pub const POSSIBLE_SLICES: usize = SLICE_PLATFORMS + SLICE_ARCHS + SLICE_PLATFORMS * SLICE_ARCHS;

impl Budget {
    /// A judgement alone: the whole budget on each side.
    pub fn alone(confidence: f64) -> Budget {
        let alpha = 1.0 - confidence;
        Budget {
            pass: alpha,
            fail: alpha,
        }
    }

    /// A whole release judged with its slices: its own FAIL spends half the budget and its
    /// slices' FAILs share the other half (Bonferroni). Slices never pass a release, so its
    /// PASS keeps the whole budget.
    pub fn release(confidence: f64) -> Budget {
        let alpha = 1.0 - confidence;
        Budget {
            pass: alpha,
            fail: alpha / 2.0,
        }
    }

    /// One slice of a release judged with its slices.
    pub fn slice(confidence: f64) -> Budget {
        let alpha = (1.0 - confidence) / 2.0 / POSSIBLE_SLICES as f64;
        Budget {
            pass: alpha,
            fail: alpha,
        }
    }
}

/// A platform and/or arch: the key of a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SliceKey {
    pub platform: Option<Platform>,
    pub arch: Option<Arch>,
}

impl std::fmt::Display for SliceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.platform, self.arch) {
            (Some(platform), Some(arch)) => write!(f, "{platform}/{arch}"),
            (Some(platform), None) => write!(f, "{platform}"),
            (None, Some(arch)) => write!(f, "{arch}"),
            (None, None) => write!(f, "all platforms"),
        }
    }
}

/// A slice's counts, and its baseline's over the baseline's window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEvidence {
    pub key: SliceKey,
    pub release: Measured,
    pub baseline: Option<Baseline>,
}

/// Everything a verdict is drawn from.
#[derive(Clone, Debug)]
pub struct Evidence<'a> {
    pub release: &'a Measured,
    pub baseline: Option<&'a Baseline>,
    pub baseline_exposure: BaselineExposure,
    pub throttled: Throttled,
    /// `Some` for a whole-release query: its slices are judged too and share the error
    /// budget with it. `None` when the query named a slice, which is then judged alone.
    pub slices: Option<&'a [SliceEvidence]>,
}

/// The verdict on one release or slice judged alone, with nothing throttled: what the gate's
/// tests and simulations call.
pub fn evaluate(
    policy: &GatePolicy,
    release: &Measured,
    baseline: Option<&Baseline>,
) -> GateResult {
    evaluate_with(
        policy,
        &Evidence {
            release,
            baseline,
            baseline_exposure: BaselineExposure::default(),
            throttled: Throttled::default(),
            slices: None,
        },
    )
}

pub fn evaluate_with(policy: &GatePolicy, evidence: &Evidence<'_>) -> GateResult {
    let release = evidence.release;
    let baseline = evidence.baseline;
    let budget = match evidence.slices {
        Some(_) => Budget::release(policy.confidence),
        None => Budget::alone(policy.confidence),
    };
    let judge = |measured: &Measured, baseline: Option<&Baseline>, budget, explain| {
        judge_unit(
            policy,
            measured,
            baseline,
            Judgement {
                budget,
                throttled: evidence.throttled.reports,
                explain,
            },
        )
    };
    let whole = judge(release, baseline, budget, true);
    let mut reasons = whole.reasons;
    let slice_budget = Budget::slice(policy.confidence);
    let slices: Vec<SliceResult> = evidence
        .slices
        .unwrap_or_default()
        .iter()
        .map(|slice| {
            let unit = judge(&slice.release, slice.baseline.as_ref(), slice_budget, false);
            if unit.verdict == Verdict::Fail {
                reasons.extend(
                    unit.failing
                        .iter()
                        .map(|reason| format!("on {}: {reason}", slice.key)),
                );
            }
            SliceResult {
                platform: slice.key.platform.map(|p| p.as_str().to_owned()),
                arch: slice.key.arch.map(|a| a.as_str().to_owned()),
                name: slice.key.to_string(),
                verdict: unit.verdict,
                confidence: 1.0 - slice_budget.fail,
                metrics: unit.metrics,
            }
        })
        .collect();
    let failing_slices = slices.iter().filter(|s| s.verdict == Verdict::Fail).count();
    let verdict = if failing_slices > 0 {
        Verdict::Fail
    } else {
        whole.verdict
    };
    match verdict {
        Verdict::Pass => {
            reasons.insert(
                0,
                "every measured metric is within the policy's limits".to_owned(),
            );
            if !slices.is_empty() {
                reasons.insert(
                    1,
                    format!(
                        "none of its {} platform and architecture slices is credibly worse",
                        slices.len()
                    ),
                );
            }
        }
        Verdict::Fail if whole.verdict == Verdict::Pass => reasons.insert(
            0,
            format!(
                "the release as a whole is within the policy, but {failing_slices} of its slices credibly fail"
            ),
        ),
        _ => {}
    }
    if evidence.throttled.reports > 0 {
        reasons.push(format!(
            "{} reports of the app were refused for the rate limit in the window; any of them may be a failure of this release, so a PASS counts them all as failures",
            evidence.throttled.reports
        ));
    }
    if evidence.throttled.usage > 0 {
        reasons.push(format!(
            "{} usage messages of the app were refused for the rate limit in the window, so the rates may be overstated",
            evidence.throttled.usage
        ));
    }
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
        metrics: whole.metrics,
        reasons,
        baseline_version: baseline.map(|b| b.measured.version.clone()),
        confidence: policy.confidence,
        fail_confidence: 1.0 - budget.fail,
        window: release.window,
        baseline_window: baseline.and_then(|b| b.measured.window),
        baseline_exposure: evidence.baseline_exposure,
        slices,
        throttled: evidence.throttled,
    }
}

/// How one release or slice is judged.
#[derive(Clone, Copy, Debug)]
struct Judgement {
    budget: Budget,
    /// Reports refused in the window: counted as failures for a PASS.
    throttled: u64,
    /// Estimate the exposure that would decide an undecided check (costly: slices skip it).
    explain: bool,
}

/// One release or slice judged on its own.
struct Unit {
    verdict: Verdict,
    metrics: Vec<MetricResult>,
    /// Its notable reasons (those of the release's verdict).
    reasons: Vec<String>,
    /// The reasons of its failing checks alone.
    failing: Vec<String>,
}

fn judge_unit(
    policy: &GatePolicy,
    release: &Measured,
    baseline: Option<&Baseline>,
    judgement: Judgement,
) -> Unit {
    let mut reasons = Vec::new();
    let mut failing = Vec::new();
    let mut metrics: Vec<MetricResult> = Metric::ALL
        .into_iter()
        .map(|metric| {
            let limits = policy.metric(metric);
            let (result, notable) = MetricJudge {
                metric,
                limits,
                judgement,
                mixture: Mixture::centred_on(limits.max_rate.unwrap_or(UNLIMITED_MIXTURE_MEAN)),
            }
            .judge(&release.counts, baseline);
            if result.status == MetricStatus::Fail {
                failing.extend(notable.iter().cloned());
            }
            reasons.extend(notable);
            result
        })
        .collect();
    let sliced_alike = release.sliced_alike && baseline.is_none_or(|b| b.measured.sliced_alike);
    if !sliced_alike {
        // Left-out `unknown` counts may belong to the slice: neither verdict is a claim.
        for metric in &mut metrics {
            if matches!(metric.status, MetricStatus::Pass | MetricStatus::Fail) {
                metric.status = MetricStatus::InsufficientData;
            }
        }
        failing.clear();
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
        Verdict::Pass
    };
    Unit {
        verdict,
        metrics,
        reasons,
        failing,
    }
}

/// The gate's judgement of a matrix cell: its counts against the policy's absolute limits
/// (no baseline), with the same sequences, floors and statuses as the gate.
pub fn judge_cell(
    policy: &GatePolicy,
    counts: Counts,
    sliced_alike: bool,
) -> (Verdict, Vec<MetricResult>) {
    let measured = Measured {
        version: String::new(),
        window: None,
        counts,
        sliced_alike,
    };
    let unit = judge_unit(
        policy,
        &measured,
        None,
        Judgement {
            budget: Budget::alone(policy.confidence),
            throttled: 0,
            explain: false,
        },
    );
    (unit.verdict, unit.metrics)
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
    judgement: Judgement,
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
            current: RateEstimate::of(current, self.rate_bounds(current, true)),
            baseline: baseline_sample
                .map(|sample| RateEstimate::of(sample, self.rate_bounds(sample, false))),
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
                self.confidences(),
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
                    self.confidences(),
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

    /// The sample a PASS must hold for: every throttled report counted as a failure too
    /// (and, for attempts, as an attempt).
    fn pessimistic(&self, sample: Sample) -> Sample {
        let throttled = self.judgement.throttled;
        let trials = match self.metric {
            Metric::CrashRate => sample.trials,
            Metric::UpdateFailureRate | Metric::InstallFailureRate => {
                sample.trials.saturating_add(throttled)
            }
        };
        Sample::new(sample.events.saturating_add(throttled).min(trials), trials)
    }

    /// `(lower, upper)`: the lower bound at the FAIL side's error, the upper at the PASS
    /// side's, of the pessimistic sample when `release` (the baseline is never throttled).
    fn rate_bounds(&self, sample: Sample, release: bool) -> Option<(f64, f64)> {
        let Budget { pass, fail } = self.judgement.budget;
        let for_pass = if release {
            self.pessimistic(sample)
        } else {
            sample
        };
        let (lower, upper) = confidence_sequence(sample, self.mixture, fail)?;
        if for_pass == sample && pass == fail {
            return Some((lower, upper));
        }
        let (_, upper) = confidence_sequence(for_pass, self.mixture, pass)?;
        Some((lower, upper))
    }

    fn rate_check(&self, sample: Sample, max_rate: f64) -> Check {
        self.rate_bounds(sample, true)
            .map_or(Check::Unsure, |bounds| Check::of_rate(bounds, max_rate))
    }

    /// The confidences of the two sides, in words: `95%`, or `97.5% to fail, 95% to pass`.
    fn confidences(&self) -> String {
        let Budget { pass, fail } = self.judgement.budget;
        if pass == fail {
            confidence_text(1.0 - fail)
        } else {
            format!(
                "{} to fail, {} to pass",
                confidence_text(1.0 - fail),
                confidence_text(1.0 - pass)
            )
        }
    }

    /// The exposure that would decide an undecided check, when the judgement explains.
    fn needed(&self, sample: Sample, check: impl Fn(Sample) -> Check) -> String {
        if !self.judgement.explain {
            return "more data would decide it".to_owned();
        }
        self.more_data(exposure_needed(sample, check))
    }

    /// How throttling weighs on a PASS, in words (empty when nothing was throttled).
    fn throttling_note(&self) -> String {
        match self.judgement.throttled {
            0 => String::new(),
            n => format!(", counting the {n} throttled reports as failures of this release"),
        }
    }

    fn check_rate(&self, current: Sample, max_rate: f64) -> (Check, String) {
        let name = self.metric.label();
        let (Some(rate), Some((lower, upper))) = (current.rate(), self.rate_bounds(current, true))
        else {
            return (Check::Unsure, format!("{name}: no rate to check"));
        };
        let Budget { pass, fail } = self.judgement.budget;
        let (rate_text, limit) = (percent(rate), percent(max_rate));
        let bounds = format!("{}–{}", percent(lower), percent(upper));
        match Check::of_rate((lower, upper), max_rate) {
            Check::Exceeded => (
                Check::Exceeded,
                format!(
                    "{name} {rate_text} is above the {limit} limit: with {} confidence it is at least {}",
                    confidence_text(1.0 - fail),
                    percent(lower)
                ),
            ),
            Check::Within => (
                Check::Within,
                format!(
                    "{name} {rate_text} is within the {limit} limit: with {} confidence it is at most {}{}",
                    confidence_text(1.0 - pass),
                    percent(upper),
                    self.throttling_note()
                ),
            ),
            Check::Unsure => {
                let decide = self.needed(current, |more| self.rate_check(more, max_rate));
                (
                    Check::Unsure,
                    format!(
                        "{name} {rate_text} may be on either side of the {limit} limit ({bounds} at {}{}); {decide}",
                        self.confidences(),
                        self.throttling_note()
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
        let Budget { pass, fail } = self.judgement.budget;
        let lower = ratio_sequence(current, baseline, self.mixture, fail);
        let upper = ratio_sequence(self.pessimistic(current), baseline, self.mixture, pass);
        match (lower, upper) {
            (Some(lower), Some(upper)) => {
                let bounds = RatioBounds {
                    lower: lower.lower,
                    upper: upper.upper,
                };
                (
                    Check::of(bounds.lower > allowed_ratio, bounds.upper <= allowed_ratio),
                    Some(bounds),
                )
            }
            _ => (Check::Unsure, None),
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
        let Budget { pass, fail } = self.judgement.budget;
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
                "{comparison}: a rise beyond the {allowed} allowed is credible at {} confidence (at least {lower_change})",
                confidence_text(1.0 - fail)
            ),
            Check::Within => format!(
                "{comparison}, within the {allowed} allowed at {} confidence (at most {upper_change}{})",
                confidence_text(1.0 - pass),
                self.throttling_note()
            ),
            Check::Unsure => {
                let check = |more| self.regression_check(more, baseline, allowed_ratio).0;
                let decide = if !self.judgement.explain {
                    self.needed(current, check)
                } else {
                    match exposure_needed(current, check) {
                        needed @ Some(_) => self.more_data(needed),
                        None => format!(
                            "the baseline {version} alone is too uncertain to decide it, however many more {} the release gets",
                            self.metric.trials()
                        ),
                    }
                };
                format!(
                    "{comparison}: the change may be on either side of the {allowed} allowed ({lower_change} to {upper_change} at {}{}); {decide}",
                    self.confidences(),
                    self.throttling_note()
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

    fn slice(platform: Platform, arch: Arch, sessions: u64, crashes: u64) -> SliceEvidence {
        SliceEvidence {
            key: SliceKey {
                platform: Some(platform),
                arch: Some(arch),
            },
            release: Measured::of_crashes("1.5.0", sessions, crashes),
            baseline: None,
        }
    }

    fn whole<'a>(
        release: &'a Measured,
        slices: &'a [SliceEvidence],
        throttled: Throttled,
    ) -> Evidence<'a> {
        Evidence {
            release,
            baseline: None,
            baseline_exposure: BaselineExposure::LastWindow,
            throttled,
            slices: Some(slices),
        }
    }

    #[test]
    fn a_release_fine_overall_fails_on_a_broken_slice_and_names_it() {
        let policy = GatePolicy::default();
        let slices = [
            slice(Platform::Windows, Arch::X86_64, 100_000, 300),
            slice(Platform::Linux, Arch::Aarch64, 5000, 250),
        ];
        let release = Measured::of_crashes("1.5.0", 105_000, 550);
        let result = evaluate_with(&policy, &whole(&release, &slices, Throttled::default()));
        assert_eq!(result.metrics[0].status, MetricStatus::Pass, "{result:#?}");
        assert_eq!(result.verdict, Verdict::Fail, "{result:#?}");
        assert!(
            result.reasons[0].contains("1 of its slices credibly fail"),
            "{:?}",
            result.reasons
        );
        assert!(
            result
                .reasons
                .iter()
                .any(|r| r.starts_with("on linux/aarch64: crash rate 5.00% is above")),
            "{:?}",
            result.reasons
        );
        let broken = &result.slices[1];
        assert_eq!(
            (broken.name.as_str(), broken.verdict),
            ("linux/aarch64", Verdict::Fail)
        );
        assert_eq!(result.slices[0].verdict, Verdict::Pass);
        // Slices share half the budget: each claim holds at far more than 95 %.
        assert!(broken.confidence > 0.999, "{}", broken.confidence);
        assert_eq!(result.fail_confidence, 0.975);
        // Without the broken slice the same release passes, and says its slices were judged.
        let fine = evaluate_with(
            &policy,
            &whole(&release, &slices[..1], Throttled::default()),
        );
        assert_eq!(fine.verdict, Verdict::Pass, "{fine:#?}");
        assert!(
            fine.reasons[1].contains("none of its 1 platform"),
            "{:?}",
            fine.reasons
        );
    }

    #[test]
    fn a_slice_barely_over_the_limit_does_not_fail_on_the_release_budget() {
        // 2.4 % on 20 000 sessions fails alone at 95 % (credibly above 2 %), but not at a
        // slice's share of the budget: more slices must not mean more false FAILs.
        let alone = evaluate(
            &GatePolicy::default(),
            &Measured::of_crashes("1.5.0", 20_000, 480),
            None,
        );
        assert_eq!(alone.verdict, Verdict::Fail, "{alone:#?}");
        let release = Measured::of_crashes("1.5.0", 200_000, 1000);
        let slices = [slice(Platform::Linux, Arch::X86_64, 20_000, 480)];
        let shared = evaluate_with(
            &GatePolicy::default(),
            &whole(&release, &slices, Throttled::default()),
        );
        assert_eq!(
            shared.slices[0].verdict,
            Verdict::InsufficientData,
            "{shared:#?}"
        );
        assert_eq!(shared.verdict, Verdict::Pass, "{shared:#?}");
    }

    #[test]
    fn throttled_reports_count_as_failures_for_a_pass_and_never_for_a_fail() {
        let policy = GatePolicy::default();
        let release = Measured::of_crashes("1.5.0", 100_000, 200);
        let calm = evaluate_with(&policy, &whole(&release, &[], Throttled::default()));
        assert_eq!(calm.verdict, Verdict::Pass, "{calm:#?}");
        let storm = Throttled {
            reports: 3000,
            usage: 0,
        };
        let throttled = evaluate_with(&policy, &whole(&release, &[], storm));
        assert_eq!(
            throttled.verdict,
            Verdict::InsufficientData,
            "{throttled:#?}"
        );
        let crash = &throttled.metrics[0];
        // The upper bound counts the 3000 refused reports as crashes; the lower does not.
        assert!(crash.current.upper.unwrap() > 0.03, "{crash:?}");
        assert!(crash.current.lower.unwrap() < 0.002, "{crash:?}");
        assert!(
            throttled
                .reasons
                .iter()
                .any(|r| r.contains("3000 reports of the app were refused")),
            "{:?}",
            throttled.reasons
        );
        // A few refusals against plenty of headroom still pass, and the reason says so.
        let few = evaluate_with(
            &policy,
            &whole(
                &release,
                &[],
                Throttled {
                    reports: 10,
                    usage: 2,
                },
            ),
        );
        assert_eq!(few.verdict, Verdict::Pass, "{few:#?}");
        assert!(
            few.metrics[0].reasons[0].contains("counting the 10 throttled reports"),
            "{:?}",
            few.metrics[0].reasons
        );
        assert!(few.reasons.iter().any(|r| r.contains("2 usage messages")));
    }

    #[test]
    fn cells_are_judged_like_the_gate_not_by_their_point_estimate() {
        let policy = GatePolicy::default();
        // 16 crashes in 300 sessions: 5.3 %, but under the policy's 1000 sessions.
        let thin = Counts {
            sessions: 300,
            crashes: 16,
            ..Counts::default()
        };
        let (verdict, metrics) = judge_cell(&policy, thin, true);
        assert_eq!(verdict, Verdict::InsufficientData);
        assert_eq!(metrics[0].status, MetricStatus::InsufficientData);
        let broken = Counts {
            sessions: 20_000,
            crashes: 1000,
            ..Counts::default()
        };
        let (verdict, metrics) = judge_cell(&policy, broken, true);
        assert_eq!(verdict, Verdict::Fail);
        assert!(metrics[0].current.lower.unwrap() > 0.02);
        assert_eq!(
            judge_cell(&policy, broken, false).0,
            Verdict::InsufficientData
        );
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
