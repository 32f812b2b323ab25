//! Alerts (issue 17): rules and webhook destinations for an app's admins, the delivery log,
//! "send test", and each release's verdict history for its readers. The rules live in
//! `crate::alerts`.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{alert_deliveries, alert_destinations, release_verdicts};

use super::error::GqlResult;
use super::types::{parse_id, parse_ids};
use super::{actor, state};
use crate::alerts::rules::{self, Rule, RuleInput};
use crate::alerts::{self, delivery, destinations};
use crate::gate::evaluate::GateResult;
use crate::model::{AlertKind, DestinationFormat};

const MAX_LOG_ROWS: u64 = 200;

#[derive(SimpleObject)]
pub struct AlertDestination {
    pub id: ID,
    pub name: String,
    /// The URL's origin; its path (a Slack webhook's credential) is never shown again.
    pub url: String,
    pub format: DestinationFormat,
    pub created_at: DateTime<Utc>,
}

impl From<&alert_destinations::Model> for AlertDestination {
    fn from(row: &alert_destinations::Model) -> Self {
        AlertDestination {
            id: ID(row.id.to_string()),
            name: row.name.clone(),
            url: destinations::shown_url(&row.url),
            format: DestinationFormat::from_stored(&row.format)
                .unwrap_or(DestinationFormat::Generic),
            created_at: row.created_at,
        }
    }
}

/// A destination just made, with its signing secret: shown this once.
#[derive(SimpleObject)]
pub struct NewAlertDestination {
    pub destination: AlertDestination,
    /// Verifies `Rollwatch-Signature` (docs/alerts.md).
    pub secret: String,
}

#[derive(SimpleObject)]
pub struct AlertRule {
    pub id: ID,
    pub name: String,
    pub kind: AlertKind,
    /// Null: every channel.
    pub channel: Option<String>,
    pub threshold: Option<i64>,
    pub window_minutes: Option<i32>,
    pub notify_recovery: bool,
    pub cooldown_minutes: i32,
    pub destination_ids: Vec<ID>,
}

impl From<Rule> for AlertRule {
    fn from(rule: Rule) -> Self {
        let new_group = rule.kind == AlertKind::NewGroup;
        AlertRule {
            id: ID(rule.id.to_string()),
            name: rule.name,
            kind: rule.kind,
            channel: rule.channel,
            threshold: new_group.then_some(rule.threshold),
            window_minutes: new_group.then_some(rule.window_minutes),
            notify_recovery: rule.notify_recovery,
            cooldown_minutes: rule.cooldown_minutes,
            destination_ids: rule
                .destination_ids
                .iter()
                .map(|id| ID(id.to_string()))
                .collect(),
        }
    }
}

#[derive(InputObject)]
pub struct AlertRuleInput {
    pub name: String,
    pub kind: AlertKind,
    /// Left out: every channel.
    pub channel: Option<String>,
    /// NEW_GROUP only: the reports a new group must reach.
    pub threshold: Option<i64>,
    /// NEW_GROUP only: within this many minutes of its first report (default 60).
    pub window_minutes: Option<i32>,
    /// GATE_FAIL and CRASH_RATE: also tell when the release recovers.
    #[graphql(default = false)]
    pub notify_recovery: bool,
    /// Minutes before the rule fires again about the same release or group (default 60).
    pub cooldown_minutes: Option<i32>,
    pub destination_ids: Vec<ID>,
}

#[derive(SimpleObject)]
pub struct AlertAttempt {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; null when none came.
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i64,
}

#[derive(SimpleObject)]
pub struct AlertDelivery {
    pub id: ID,
    pub destination_id: ID,
    /// Null for a test.
    pub rule_id: Option<ID>,
    /// `gate.fail`, `gate.recovered`, `crash_rate.over`, `crash_rate.recovered`, `group.new`,
    /// `group.regressed` or `test`.
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: Vec<AlertAttempt>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When a pending delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<&alert_deliveries::Model> for AlertDelivery {
    fn from(row: &alert_deliveries::Model) -> Self {
        AlertDelivery {
            id: ID(row.id.to_string()),
            destination_id: ID(row.destination_id.to_string()),
            rule_id: row.rule_id.map(|id| ID(id.to_string())),
            event: row.event.clone(),
            state: row.state.clone(),
            attempts: delivery::attempts(row)
                .into_iter()
                .map(|a| AlertAttempt {
                    at: a.at,
                    status: a.status.map(i32::from),
                    error: a.error,
                    latency_ms: i64::try_from(a.latency_ms).unwrap_or(i64::MAX),
                })
                .collect(),
            created_at: row.created_at,
            finished_at: row.finished_at,
            next_attempt_at: (row.state == delivery::PENDING).then_some(row.next_attempt_at),
        }
    }
}

/// A change of a release's verdict, as the background evaluation saw it.
#[derive(SimpleObject)]
pub struct VerdictChange {
    pub verdict: String,
    /// Null for the release's first evaluation.
    pub previous: Option<String>,
    pub evaluated_at: DateTime<Utc>,
    /// The whole evaluation at that moment; null if it can no longer be read.
    pub result: Option<GateResult>,
}

impl From<release_verdicts::Model> for VerdictChange {
    fn from(row: release_verdicts::Model) -> Self {
        VerdictChange {
            result: serde_json::from_str(&row.result).ok(),
            verdict: row.verdict,
            previous: row.previous,
            evaluated_at: row.evaluated_at,
        }
    }
}

#[derive(Default)]
pub struct AlertsQuery;

#[Object]
impl AlertsQuery {
    /// The app's webhook destinations (admins of its account only).
    async fn alert_destinations(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
    ) -> GqlResult<Vec<AlertDestination>> {
        let app_id = parse_id(&app_id, "appId")?;
        let rows = destinations::list(&state(ctx).db, actor(ctx)?, app_id).await?;
        Ok(rows.iter().map(AlertDestination::from).collect())
    }

    /// The app's alert rules.
    async fn alert_rules(&self, ctx: &Context<'_>, app_id: ID) -> GqlResult<Vec<AlertRule>> {
        let app_id = parse_id(&app_id, "appId")?;
        let rules = rules::list(&state(ctx).db, actor(ctx)?, app_id).await?;
        Ok(rules.into_iter().map(AlertRule::from).collect())
    }

    /// The newest deliveries to a destination, with every attempt (admins only).
    async fn alert_deliveries(
        &self,
        ctx: &Context<'_>,
        destination_id: ID,
        #[graphql(default = 50)] limit: u64,
    ) -> GqlResult<Vec<AlertDelivery>> {
        let db = &state(ctx).db;
        let destination =
            destinations::managed(db, actor(ctx)?, parse_id(&destination_id, "destinationId")?)
                .await?;
        let rows = delivery::log_of(db, destination.id, limit.min(MAX_LOG_ROWS)).await?;
        Ok(rows.iter().map(AlertDelivery::from).collect())
    }

    /// How the background evaluation's verdict on a release changed, newest first.
    async fn verdict_history(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        version: String,
        channel: String,
        #[graphql(default = 50)] limit: u64,
    ) -> GqlResult<Vec<VerdictChange>> {
        let app_id = parse_id(&app_id, "appId")?;
        let rows = alerts::verdict_history(
            &state(ctx).db,
            actor(ctx)?,
            app_id,
            channel.trim(),
            version.trim(),
            limit.min(MAX_LOG_ROWS),
        )
        .await?;
        Ok(rows.into_iter().map(VerdictChange::from).collect())
    }
}

#[derive(Default)]
pub struct AlertsMutation;

#[Object]
impl AlertsMutation {
    /// A webhook destination of the app; its signing secret is shown this once.
    async fn create_alert_destination(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        name: String,
        url: String,
        #[graphql(default_with = "DestinationFormat::Generic")] format: DestinationFormat,
    ) -> GqlResult<NewAlertDestination> {
        let app_id = parse_id(&app_id, "appId")?;
        let state = state(ctx);
        let (row, secret) = destinations::create(
            &state.db,
            &state.destination_secrets,
            actor(ctx)?,
            app_id,
            &name,
            &url,
            format,
        )
        .await?;
        Ok(NewAlertDestination {
            destination: AlertDestination::from(&row),
            secret,
        })
    }

    async fn delete_alert_destination(&self, ctx: &Context<'_>, id: ID) -> GqlResult<bool> {
        destinations::delete(&state(ctx).db, actor(ctx)?, parse_id(&id, "id")?).await?;
        Ok(true)
    }

    /// Queues a `test` delivery to the destination; the delivery log shows how it went.
    async fn send_test_alert(
        &self,
        ctx: &Context<'_>,
        destination_id: ID,
    ) -> GqlResult<AlertDelivery> {
        let id = parse_id(&destination_id, "destinationId")?;
        let row = alerts::send_test(state(ctx), actor(ctx)?, id).await?;
        Ok(AlertDelivery::from(&row))
    }

    async fn create_alert_rule(
        &self,
        ctx: &Context<'_>,
        app_id: ID,
        rule: AlertRuleInput,
    ) -> GqlResult<AlertRule> {
        let app_id = parse_id(&app_id, "appId")?;
        let input = RuleInput {
            name: rule.name,
            kind: rule.kind,
            channel: rule.channel,
            threshold: rule.threshold,
            window_minutes: rule.window_minutes,
            notify_recovery: rule.notify_recovery,
            cooldown_minutes: rule.cooldown_minutes,
            destination_ids: parse_ids(&rule.destination_ids, "destinationIds")?,
        };
        let created = rules::create(&state(ctx).db, actor(ctx)?, app_id, input).await?;
        Ok(created.into())
    }

    async fn delete_alert_rule(&self, ctx: &Context<'_>, id: ID) -> GqlResult<bool> {
        rules::delete(&state(ctx).db, actor(ctx)?, parse_id(&id, "id")?).await?;
        Ok(true)
    }
}
