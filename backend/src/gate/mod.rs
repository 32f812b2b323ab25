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

use sea_orm::ConnectionTrait;

use crate::error::ServiceError;
use crate::model::{self, Arch, FieldError, Platform};
use data::Selection;
use evaluate::{Baseline, GateResult};
use policy::GatePolicy;

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

/// The verdict on a release of the app, under the policy in force for its channel.
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
    let baseline = match &query.baseline {
        Some(version) => Some(Baseline {
            measured: data::measure(db, selection, version, policy.window_hours).await?,
            requested: true,
        }),
        None => previous_with_enough_data(db, selection, &query.version, &policy).await?,
    };
    Ok(evaluate::evaluate(&policy, &release, baseline.as_ref()))
}

/// The closest earlier version with at least the policy's minimum of sessions in its window.
async fn previous_with_enough_data(
    db: &impl ConnectionTrait,
    selection: Selection<'_>,
    version: &str,
    policy: &GatePolicy,
) -> Result<Option<Baseline>, ServiceError> {
    let seen = data::versions_seen(db, selection).await?;
    for candidate in baseline::earlier_versions(version, &seen)
        .into_iter()
        .take(MAX_BASELINE_CANDIDATES)
    {
        let measured = data::measure(db, selection, candidate, policy.window_hours).await?;
        if measured.counts.sessions >= policy.crash_rate.min_sample {
            return Ok(Some(Baseline {
                measured,
                requested: false,
            }));
        }
    }
    Ok(None)
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
