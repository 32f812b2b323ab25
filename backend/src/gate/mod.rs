//! Release gating (DESIGN §8): may this version of an app be promoted on this channel?
//!
//! `release_gate` reads the policy in force, measures the release and picks its baseline, then
//! `evaluate` decides. docs/gating.md describes the policy and the statistics for users.

pub mod baseline;
pub mod client;
pub mod data;
pub mod evaluate;
pub mod policy;
pub mod stats;

use std::collections::HashMap;

use sea_orm::ConnectionTrait;

use crate::error::ServiceError;
use crate::model::{self, Arch, FieldError, Platform};
use crate::rollup::Cell;
use crate::throttled::{self, Throttled};
use baseline::VersionSeen;
use data::Selection;
use evaluate::{
    Baseline, Evidence, GateResult, Measured, MetricResult, SliceEvidence, Verdict, Window,
};
use policy::{BaselineExposure, GatePolicy};

/// Earlier versions tried, closest first, before giving up on a baseline.
const MAX_BASELINE_CANDIDATES: usize = 10;

/// What a gate is asked about.
#[derive(Clone, Debug, Default)]
pub struct GateQuery {
    pub version: String,
    pub channel: String,
    pub platform: Option<String>,
    pub arch: Option<String>,
    /// Compare with this version instead of the previous one with enough data.
    pub baseline: Option<String>,
}

impl GateQuery {
    /// Trimmed and lower-cased as ingestion stores them, so a query finds what was sent.
    fn normalised(&self) -> Result<Selector, FieldError> {
        let platform = self.platform.as_deref();
        let arch = self.arch.as_deref();
        Ok(Selector {
            version: model::version("version", &self.version)?,
            channel: model::channel("channel", &self.channel)?,
            platform: platform
                .map(|p| Platform::parse("platform", p))
                .transpose()?,
            arch: arch.map(|a| Arch::parse("arch", a)).transpose()?,
            baseline: self
                .baseline
                .as_deref()
                .map(|baseline| model::version("baseline", baseline))
                .transpose()?,
        })
    }
}

/// A checked `GateQuery`.
#[derive(Clone, Debug)]
struct Selector {
    version: String,
    channel: String,
    platform: Option<Platform>,
    arch: Option<Arch>,
    baseline: Option<String>,
}

/// The verdict on a release of the app, under the policy in force for its channel. A query
/// for the whole release judges its platform and arch slices too.
pub async fn release_gate(
    db: &impl ConnectionTrait,
    app_id: i64,
    query: &GateQuery,
) -> Result<GateResult, ServiceError> {
    let query = query.normalised()?;
    let policy = policy::effective(db, app_id, Some(&query.channel)).await?;
    let selection = Selection {
        app_id,
        channel: &query.channel,
        platform: query.platform,
        arch: query.arch,
    };
    let release = data::measure(db, selection, &query.version, policy.window_hours).await?;
    let seen = data::versions_seen(db, selection).await?;
    let compared = Comparison {
        selection,
        policy: &policy,
        release: &release,
        seen: &seen,
    };
    let baseline = match &query.baseline {
        Some(version) => Some(Baseline {
            measured: compared.baseline(db, version).await?,
            requested: true,
        }),
        None => {
            compared
                .previous_with_enough_data(db, &query.version)
                .await?
        }
    };
    let whole_release = query.platform.is_none() && query.arch.is_none();
    let slices = match release.window {
        Some(window) if whole_release => {
            Some(sliced(db, selection, &release, baseline.as_ref(), window).await?)
        }
        _ => whole_release.then(Vec::new),
    };
    let throttled = match release.window {
        Some(window) => {
            throttled::refused_in(db, app_id, window.from.timestamp(), window.to.timestamp())
                .await?
        }
        None => Throttled::default(),
    };
    Ok(evaluate::evaluate_with(
        &policy,
        &Evidence {
            release: &release,
            baseline: baseline.as_ref(),
            baseline_exposure: policy.baseline_exposure,
            throttled,
            slices: slices.as_deref(),
        },
    ))
}

/// Each slice of the release with data, beside the baseline's same slice over its window.
async fn sliced(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    release: &Measured,
    baseline: Option<&Baseline>,
    window: Window,
) -> Result<Vec<SliceEvidence>, ServiceError> {
    let mut baseline_slices = match baseline.and_then(|b| b.measured.window.map(|w| (b, w))) {
        Some((baseline, window)) => {
            data::slices(db, selection, &baseline.measured.version, window).await?
        }
        None => Default::default(),
    };
    Ok(data::slices(db, selection, &release.version, window)
        .await?
        .into_iter()
        .map(|(key, measured)| SliceEvidence {
            key,
            release: measured,
            baseline: baseline.map(|b| Baseline {
                measured: baseline_slices.remove(&key).unwrap_or_else(|| Measured {
                    window: b.measured.window,
                    ..Measured::of_crashes(&b.measured.version, 0, 0)
                }),
                requested: b.requested,
            }),
        })
        .collect())
}

/// The gate's judgement of each matrix cell (`evaluate::judge_cell`), under the policy in
/// force for the cell's channel (the app's when cells are not split by channel).
pub async fn judge_cells(
    db: &impl ConnectionTrait,
    app_id: i64,
    cells: &[Cell],
) -> Result<Vec<(Verdict, Vec<MetricResult>)>, ServiceError> {
    let mut policies: HashMap<Option<&str>, GatePolicy> = HashMap::new();
    let mut judged = Vec::with_capacity(cells.len());
    for cell in cells {
        let channel = cell.key.channel.as_deref();
        let policy = match policies.get(&channel) {
            Some(policy) => *policy,
            None => {
                let policy = policy::effective(db, app_id, channel).await?;
                policies.insert(channel, policy);
                policy
            }
        };
        judged.push(evaluate::judge_cell(
            &policy,
            cell.counts,
            cell.sliced_alike,
        ));
    }
    Ok(judged)
}

/// What a baseline is compared for: the release, under the policy, on the selection.
struct Comparison<'a> {
    selection: Selection<'a>,
    policy: &'a GatePolicy,
    release: &'a Measured,
    seen: &'a [VersionSeen],
}

impl Comparison<'_> {
    /// `version`'s counts over the hours the policy compares with the release.
    async fn baseline(
        &self,
        db: &impl ConnectionTrait,
        version: &str,
    ) -> Result<Measured, ServiceError> {
        let window = match self.policy.baseline_exposure {
            BaselineExposure::LastWindow => {
                data::last_window(db, self.selection, version, self.policy.window_hours).await?
            }
            BaselineExposure::SameHours => self.release.window,
            BaselineExposure::FirstSessions => {
                match self.seen.iter().find(|seen| seen.version == version) {
                    Some(seen) => {
                        let sessions = self
                            .release
                            .counts
                            .sessions
                            .max(self.policy.crash_rate.min_sample);
                        data::first_sessions_window(
                            db,
                            self.selection,
                            version,
                            seen.first_hour,
                            sessions,
                        )
                        .await?
                    }
                    None => None,
                }
            }
        };
        Ok(data::measure_in(db, self.selection, version, window).await?)
    }

    /// The closest earlier version with at least the policy's minimum of sessions in the
    /// hours compared.
    async fn previous_with_enough_data(
        &self,
        db: &impl ConnectionTrait,
        version: &str,
    ) -> Result<Option<Baseline>, ServiceError> {
        for candidate in baseline::earlier_versions(version, self.seen)
            .into_iter()
            .take(MAX_BASELINE_CANDIDATES)
        {
            let measured = self.baseline(db, candidate).await?;
            if measured.counts.sessions >= self.policy.crash_rate.min_sample {
                return Ok(Some(Baseline {
                    measured,
                    requested: false,
                }));
            }
        }
        Ok(None)
    }
}

/// A confidence as a percentage with the decimals that show what is left of certainty:
/// `95%`, `97.5%`, `99.96%`.
pub fn confidence_text(confidence: f64) -> String {
    let pct = confidence * 100.0;
    // Two significant digits of the error left: 95 (5), 97.5 (2.5), 99.96 (0.04).
    let error = (100.0 - pct).max(1e-4);
    let decimals = ((-error.log10()).ceil().max(0.0) as usize + 1).min(4);
    let text = format!("{pct:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}%")
}

/// A rate as a percentage with three significant digits for small values: `1.25%`, `0.0420%`.
pub fn percent(rate: f64) -> String {
    let pct = rate * 100.0;
    if pct == 0.0 {
        return "0%".to_owned();
    }
    if pct >= 10.0 {
        // 95.0% reads better as 95%.
        return format!("{}%", format!("{pct:.1}").trim_end_matches(".0"));
    }
    let decimals = if pct >= 1.0 {
        2
    } else {
        ((-pct.log10()).floor() as usize + 3).min(8)
    };
    format!("{pct:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_keep_three_significant_digits_when_small() {
        assert_eq!(percent(0.95), "95%");
        assert_eq!(percent(0.125), "12.5%");
        assert_eq!(percent(0.02), "2.00%");
        assert_eq!(percent(0.0042), "0.420%");
        assert_eq!(percent(0.000_42), "0.0420%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn confidences_never_read_as_certainty() {
        assert_eq!(confidence_text(0.95), "95%");
        assert_eq!(confidence_text(0.975), "97.5%");
        assert_eq!(confidence_text(1.0 - 0.05 / 126.0), "99.96%");
    }

    #[test]
    fn queries_are_normalised_like_ingested_reports() {
        let query = GateQuery {
            version: " 1.5.0 ".to_owned(),
            channel: "beta".to_owned(),
            platform: Some(" Windows".to_owned()),
            arch: Some("X86_64".to_owned()),
            baseline: None,
        };
        let selector = query.normalised().unwrap();
        assert_eq!(selector.version, "1.5.0");
        assert_eq!(selector.platform, Some(Platform::Windows));
        assert_eq!(selector.arch, Some(Arch::X86_64));
        let bad = GateQuery {
            platform: Some("beos".to_owned()),
            ..query
        };
        assert!(matches!(bad.normalised(), Err(e) if e.field == "platform"));
    }
}
