//! Gate policies: what a release must show to pass, per app and optionally per channel.
//! Every app has the documented default (docs/gating.md) until an admin sets its own.

use async_graphql::{Enum, SimpleObject};
use chrono::Utc;
use entity::gate_policies;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};
use serde::{Deserialize, Serialize};

use crate::audit::{self, Change};
use crate::auth::{self, Actor, Permission};
use crate::db::Store;
use crate::error::ServiceError;
use crate::model::{self, Metric};

/// The limits of one metric. A limit left out is not checked.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
#[graphql(name = "GateMetricPolicy")]
pub struct MetricPolicy {
    /// Highest acceptable rate (0.02 = 2 %), failed only when exceeded credibly.
    pub max_rate: Option<f64>,
    /// Highest acceptable rise over the baseline, relative (0.2 = +20 %), failed only when
    /// exceeded credibly.
    pub max_regression: Option<f64>,
    /// Fewer sessions (or attempts) than this is INSUFFICIENT_DATA, never a verdict.
    pub min_sample: u64,
    /// When true a release that reports nothing for the metric is INSUFFICIENT_DATA; when
    /// false the metric is simply not measured (an app that never sends install counts).
    pub required: bool,
}

/// Which hours of the baseline a release is compared with (docs/gating.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BaselineExposure {
    /// The baseline's own last `windowHours` with data: its mature life.
    #[default]
    LastWindow,
    /// The same calendar hours as the release's window: both versions under the same
    /// traffic, on the same days of the week.
    SameHours,
    /// The baseline's first hours, from its first data until it had as many sessions as the
    /// release has now (at least `minSample`): both at the same adoption, as Mozilla's
    /// Mission Control compares versions. Early adopters crash differently from everyone.
    FirstSessions,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, SimpleObject)]
#[serde(rename_all = "camelCase")]
pub struct GatePolicy {
    /// Confidence a FAIL must reach (0.95: a release as good as its limits fails at most 5 %
    /// of the time).
    pub confidence: f64,
    /// How many hours of a version's most recent data are evaluated.
    pub window_hours: u32,
    pub crash_rate: MetricPolicy,
    pub update_failure_rate: MetricPolicy,
    pub install_failure_rate: MetricPolicy,
    /// Which hours of the baseline are compared with the release's window.
    #[serde(default)]
    pub baseline_exposure: BaselineExposure,
}

pub const CONFIDENCE_RANGE: std::ops::RangeInclusive<f64> = 0.8..=0.999;
pub const MAX_WINDOW_HOURS: u32 = 90 * 24;
pub const MAX_REGRESSION_LIMIT: f64 = 10.0;
pub const MAX_MIN_SAMPLE: u64 = 1_000_000_000;

impl Default for GatePolicy {
    /// The default of every app; docs/gating.md explains each number.
    fn default() -> Self {
        let attempts = MetricPolicy {
            max_rate: Some(0.05),
            max_regression: Some(0.2),
            min_sample: 200,
            required: false,
        };
        GatePolicy {
            confidence: 0.95,
            window_hours: 7 * 24,
            crash_rate: MetricPolicy {
                max_rate: Some(0.02),
                max_regression: Some(0.2),
                min_sample: 1000,
                required: true,
            },
            update_failure_rate: attempts,
            install_failure_rate: attempts,
            baseline_exposure: BaselineExposure::LastWindow,
        }
    }
}

impl GatePolicy {
    pub fn metric(&self, metric: Metric) -> &MetricPolicy {
        match metric {
            Metric::CrashRate => &self.crash_rate,
            Metric::UpdateFailureRate => &self.update_failure_rate,
            Metric::InstallFailureRate => &self.install_failure_rate,
        }
    }

    pub fn validate(&self) -> Result<(), ServiceError> {
        let invalid = |field: &'static str, message: String| ServiceError::invalid(field, message);
        if !CONFIDENCE_RANGE.contains(&self.confidence) {
            return Err(invalid(
                "confidence",
                format!(
                    "confidence must be between {} and {}",
                    CONFIDENCE_RANGE.start(),
                    CONFIDENCE_RANGE.end()
                ),
            ));
        }
        if !(1..=MAX_WINDOW_HOURS).contains(&self.window_hours) {
            return Err(invalid(
                "windowHours",
                format!("windowHours must be between 1 and {MAX_WINDOW_HOURS}"),
            ));
        }
        for metric in Metric::ALL {
            let limits = self.metric(metric);
            let name = metric.label();
            if limits
                .max_rate
                .is_some_and(|rate| !(rate > 0.0 && rate <= 1.0))
            {
                return Err(invalid(
                    "maxRate",
                    format!("the {name} maxRate must be above 0 and at most 1"),
                ));
            }
            if limits
                .max_regression
                .is_some_and(|rise| !(rise > 0.0 && rise <= MAX_REGRESSION_LIMIT))
            {
                return Err(invalid(
                    "maxRegression",
                    format!(
                        "the {name} maxRegression must be above 0 and at most {MAX_REGRESSION_LIMIT} (relative: 0.2 is +20 %)"
                    ),
                ));
            }
            if !(1..=MAX_MIN_SAMPLE).contains(&limits.min_sample) {
                return Err(invalid(
                    "minSample",
                    format!("the {name} minSample must be between 1 and {MAX_MIN_SAMPLE}"),
                ));
            }
        }
        Ok(())
    }
}

/// The channel column of the app-wide row.
const ALL_CHANNELS: &str = "";

/// The policy in force for `channel` of the app (for every channel when `None`): the
/// channel's own, else the app's, else the default.
pub async fn effective(
    db: &impl ConnectionTrait,
    app_id: i64,
    channel: Option<&str>,
) -> Result<GatePolicy, ServiceError> {
    let rows = gate_policies::Entity::find()
        .filter(gate_policies::Column::AppId.eq(app_id))
        .filter(
            gate_policies::Column::Channel.is_in([ALL_CHANNELS, channel.unwrap_or(ALL_CHANNELS)]),
        )
        .all(db)
        .await?;
    let channel_row = rows.iter().find(|row| row.channel != ALL_CHANNELS);
    let app_row = rows.iter().find(|row| row.channel == ALL_CHANNELS);
    match channel_row.or(app_row) {
        Some(row) => parse(&row.policy),
        None => Ok(GatePolicy::default()),
    }
}

fn parse(stored: &str) -> Result<GatePolicy, ServiceError> {
    serde_json::from_str(stored)
        .map_err(|e| DbErr::Json(format!("a stored gate policy is unreadable: {e}")).into())
}

/// Sets the gate policy of the app (`channel` `None`) or of one channel, which then
/// overrides the app's: `change` turns the policy in force into the new one. Admins of the
/// app's account (or the operator) only; recorded in the audit log.
pub async fn set(
    db: &Store,
    actor: &Actor,
    app_id: i64,
    channel: Option<&str>,
    change: impl FnOnce(GatePolicy) -> GatePolicy,
) -> Result<GatePolicy, ServiceError> {
    let txn = db.begin_write().await?;
    let app = auth::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
    let channel = channel.map(|c| model::channel("channel", c)).transpose()?;
    let updated = change(effective(&txn, app.id, channel.as_deref()).await?);
    let stored = save(&txn, app.id, channel.as_deref(), &updated, &actor.label()).await?;
    let scope = channel.map_or_else(|| "all channels".to_owned(), |c| format!("channel {c:?}"));
    audit::record(
        &txn,
        actor,
        Change::new("set_gate_policy", "app", app.id).detail(format!("{scope}: {stored}")),
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

/// Stores `policy` for the app (`channel` `None`) or one channel, replacing the one it had;
/// returns the policy as stored.
async fn save(
    db: &impl ConnectionTrait,
    app_id: i64,
    channel: Option<&str>,
    policy: &GatePolicy,
    updated_by: &str,
) -> Result<String, ServiceError> {
    policy.validate()?;
    let document = serde_json::to_string(policy)
        .map_err(|e| DbErr::Json(format!("cannot encode a gate policy: {e}")))?;
    gate_policies::Entity::insert(gate_policies::ActiveModel {
        app_id: Set(app_id),
        channel: Set(channel.unwrap_or(ALL_CHANNELS).to_owned()),
        policy: Set(document.clone()),
        updated_by: Set(updated_by.to_owned()),
        updated_at: Set(Utc::now()),
        ..Default::default()
    })
    .on_conflict(
        OnConflict::columns([gate_policies::Column::AppId, gate_policies::Column::Channel])
            .update_columns([
                gate_policies::Column::Policy,
                gate_policies::Column::UpdatedBy,
                gate_policies::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_valid_and_round_trips() {
        let policy = GatePolicy::default();
        policy.validate().unwrap();
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(parse(&json).unwrap(), policy);
    }

    #[test]
    fn a_policy_stored_before_baseline_exposure_existed_reads_with_the_default() {
        let mut stored: serde_json::Value = serde_json::to_value(GatePolicy::default()).unwrap();
        stored.as_object_mut().unwrap().remove("baselineExposure");
        let policy = parse(&stored.to_string()).unwrap();
        assert_eq!(policy.baseline_exposure, BaselineExposure::LastWindow);
    }

    #[test]
    fn out_of_range_settings_are_refused_with_their_field() {
        type Spoil = fn(&mut GatePolicy);
        let cases: [(&str, Spoil); 5] = [
            ("confidence", |p| p.confidence = 0.5),
            ("windowHours", |p| p.window_hours = 0),
            ("maxRate", |p| p.crash_rate.max_rate = Some(1.5)),
            ("maxRegression", |p| {
                p.update_failure_rate.max_regression = Some(-0.1)
            }),
            ("minSample", |p| p.install_failure_rate.min_sample = 0),
        ];
        for (field, spoil) in cases {
            let mut policy = GatePolicy::default();
            spoil(&mut policy);
            let err = policy.validate().expect_err(field);
            assert!(
                matches!(&err, ServiceError::Invalid(e) if e.field == field),
                "{field}: {err:?}"
            );
        }
    }
}
