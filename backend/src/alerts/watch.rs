//! The background evaluation of watched releases: every (app, channel, version) with reports
//! or usage within `ALERTS_WATCH_HOURS` is judged by the same `gate::release_gate` as CI's,
//! each verdict change is recorded, and each rule's condition is followed per subject (a
//! release or a group) so an alert fires when the condition starts to hold, at most once per
//! cool-down, and optionally when it stops.

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::{
    alert_destinations, alert_firings, apps, release_verdicts, report_groups, usage_counts,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr,
};
use serde_json::{Value, json};

use super::delivery;
use super::rules::{self, Rule};
use crate::db::Store;
use crate::error::ServiceError;
use crate::gate::evaluate::{GateResult, Verdict};
use crate::gate::{self, GateQuery};
use crate::model::{AlertKind, Metric};

/// Alerts one rule may raise about one release per evaluation (new or regressed groups); the
/// rest follow at the next ones, so a release full of new groups does not flood a channel.
const MAX_ALERTS_PER_RULE_AND_ROUND: usize = 10;

/// A release under watch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watched {
    pub app_id: i64,
    pub channel: String,
    pub version: String,
}

/// What one evaluation round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    pub releases: usize,
    /// Each release's verdict, for the gate evaluation metrics.
    pub verdicts: Vec<Verdict>,
    pub verdict_changes: usize,
    pub alerts: usize,
}

/// The releases with reports or usage since `since`.
pub async fn watched(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> Result<Vec<Watched>, ServiceError> {
    let reported: Vec<(i64, String, String)> = report_groups::Entity::find()
        .select_only()
        .column(report_groups::Column::AppId)
        .column(report_groups::Column::Channel)
        .column(report_groups::Column::Version)
        .filter(report_groups::Column::LastSeen.gte(since))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let hour = since.timestamp() - since.timestamp().rem_euclid(3600);
    let used: Vec<(i64, String, String)> = usage_counts::Entity::find()
        .select_only()
        .column(usage_counts::Column::AppId)
        .column(usage_counts::Column::Channel)
        .column(usage_counts::Column::Version)
        .filter(usage_counts::Column::Hour.gte(hour))
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let all: BTreeSet<Watched> = reported
        .into_iter()
        .chain(used)
        .map(|(app_id, channel, version)| Watched {
            app_id,
            channel,
            version,
        })
        .collect();
    Ok(all.into_iter().collect())
}

/// What a rule's condition does next on a subject, given what was stored of it.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The condition started to hold: alert (outside the cool-down).
    Fire,
    /// It stopped holding after an alert: tell, if the rule asks to.
    Recover,
    Quiet,
}

/// The state machine of one rule on one subject. `holds`: `Some(true)` the condition holds,
/// `Some(false)` it credibly does not, `None` undecided (nothing changes). The stored state
/// is `(active, last fired)`; the result is the step and the state to store, if any.
pub fn step(
    stored: Option<(bool, DateTime<Utc>)>,
    holds: Option<bool>,
    cooldown: chrono::Duration,
    now: DateTime<Utc>,
) -> (Step, Option<(bool, DateTime<Utc>)>) {
    match (stored, holds) {
        (_, None)
        | (None, Some(false))
        | (Some((true, _)), Some(true))
        | (Some((false, _)), Some(false)) => (Step::Quiet, None),
        (None, Some(true)) => (Step::Fire, Some((true, now))),
        (Some((true, fired)), Some(false)) => (Step::Recover, Some((false, fired))),
        (Some((false, fired)), Some(true)) if now - fired >= cooldown => {
            (Step::Fire, Some((true, now)))
        }
        // Within the cool-down: holding again, silently.
        (Some((false, fired)), Some(true)) => (Step::Quiet, Some((true, fired))),
    }
}

/// An alert to send: what the rule saw, as the receiver reads it.
struct Alert {
    rule_id: i64,
    destination_ids: Vec<i64>,
    event: &'static str,
    document: Value,
}

/// One round: judges every watched release and raises what the app's rules ask for.
pub async fn evaluate(
    db: &Store,
    watch_hours: u32,
    public_url: Option<&reqwest::Url>,
    now: DateTime<Utc>,
) -> Result<Round, ServiceError> {
    let mut round = Round::default();
    let releases = watched(db, now - chrono::Duration::hours(i64::from(watch_hours))).await?;
    let mut rules_of: HashMap<i64, Vec<Rule>> = HashMap::new();
    let mut names: HashMap<i64, String> = HashMap::new();
    for release in releases {
        if let Entry::Vacant(slot) = rules_of.entry(release.app_id) {
            slot.insert(rules::of_app(db, release.app_id).await?);
            let name = apps::Entity::find_by_id(release.app_id)
                .one(db)
                .await?
                .map(|app| app.name)
                .unwrap_or_default();
            names.insert(release.app_id, name);
        }
        let query = GateQuery {
            version: release.version.clone(),
            channel: release.channel.clone(),
            ..Default::default()
        };
        let result = match gate::release_gate(db, release.app_id, &query).await {
            Ok(result) => result,
            // A release whose stored version no longer passes validation is skipped, not fatal.
            Err(ServiceError::Invalid(_)) => continue,
            Err(e) => return Err(e),
        };
        round.releases += 1;
        round.verdicts.push(result.verdict);
        let context = Context {
            release: &release,
            app_name: names.get(&release.app_id).map_or("", String::as_str),
            result: &result,
            public_url,
            now,
        };
        let rules = rules_of.get(&release.app_id).map_or(&[][..], Vec::as_slice);
        let (changed, alerts) = judge(db, &context, rules).await?;
        round.verdict_changes += usize::from(changed);
        round.alerts += alerts;
    }
    Ok(round)
}

struct Context<'a> {
    release: &'a Watched,
    app_name: &'a str,
    result: &'a GateResult,
    public_url: Option<&'a reqwest::Url>,
    now: DateTime<Utc>,
}

impl Context<'_> {
    fn release_subject(&self) -> String {
        format!("release:{}:{}", self.release.channel, self.release.version)
    }

    fn link(&self) -> Option<String> {
        let base = self.public_url?;
        let mut url = base
            .join(&format!("apps/{}/gate", self.release.app_id))
            .ok()?;
        url.query_pairs_mut()
            .append_pair("version", &self.release.version)
            .append_pair("channel", &self.release.channel);
        Some(url.to_string())
    }

    fn document(&self, rule: &Rule, event: &str, summary: String, extra: Value) -> Value {
        let mut document = json!({
            "event": event,
            "summary": summary,
            "app": { "id": self.release.app_id, "name": self.app_name },
            "release": { "version": self.release.version, "channel": self.release.channel },
            "verdict": self.result.verdict.as_str(),
            "reasons": self.result.reasons,
            "metrics": self.result.metrics,
            "baselineVersion": self.result.baseline_version,
            "rule": { "id": rule.id, "name": rule.name, "kind": rule.kind.as_str() },
            "url": self.link(),
            "at": self.now,
        });
        if let (Some(document), Value::Object(extra)) = (document.as_object_mut(), extra) {
            document.extend(extra);
        }
        document
    }

    fn title(&self) -> String {
        format!(
            "{} {} ({})",
            self.app_name, self.release.version, self.release.channel
        )
    }
}

/// The release's verdict change (if any) and its rules' alerts, written in one transaction.
async fn judge(
    db: &Store,
    context: &Context<'_>,
    rules: &[Rule],
) -> Result<(bool, usize), ServiceError> {
    let release = context.release;
    let verdict = context.result.verdict.as_str();
    let last = release_verdicts::Entity::find()
        .filter(release_verdicts::Column::AppId.eq(release.app_id))
        .filter(release_verdicts::Column::Channel.eq(release.channel.as_str()))
        .filter(release_verdicts::Column::Version.eq(release.version.as_str()))
        .order_by_desc(release_verdicts::Column::Id)
        .one(db)
        .await?;
    let previous = last.as_ref().map(|row| row.verdict.clone());
    let changed = previous.as_deref() != Some(verdict);

    let mut alerts = Vec::new();
    let mut states = Vec::new();
    for rule in rules.iter().filter(|r| r.applies_to(&release.channel)) {
        let stored: HashMap<String, (bool, DateTime<Utc>)> = alert_firings::Entity::find()
            .filter(alert_firings::Column::RuleId.eq(rule.id))
            .all(db)
            .await?
            .into_iter()
            .map(|f| (f.subject, (f.active, f.fired_at)))
            .collect();
        let cooldown = chrono::Duration::minutes(i64::from(rule.cooldown_minutes));
        let recovers = matches!(rule.kind, AlertKind::GateFail | AlertKind::CrashRate);
        let mut fired = 0;
        for (subject, holds, fire) in conditions(db, context, rule, previous.as_deref()).await? {
            let before = stored.get(&subject).copied();
            let (next, store) = step(before, holds, cooldown, context.now);
            match next {
                // Left for a later round, state and all, past the per-round cap.
                Step::Fire if fired >= MAX_ALERTS_PER_RULE_AND_ROUND => continue,
                Step::Fire => {
                    fired += 1;
                    alerts.push(fire(true));
                }
                Step::Recover if rule.notify_recovery && recovers => alerts.push(fire(false)),
                Step::Recover | Step::Quiet => {}
            }
            if let Some((active, fired_at)) = store {
                states.push((rule.id, subject, before, active, fired_at));
            }
        }
    }
    if !changed && alerts.is_empty() && states.is_empty() {
        return Ok((false, 0));
    }

    let txn = db.begin_write().await?;
    if changed {
        release_verdicts::ActiveModel {
            app_id: Set(release.app_id),
            channel: Set(release.channel.clone()),
            version: Set(release.version.clone()),
            verdict: Set(verdict.to_owned()),
            previous: Set(previous),
            result: Set(serde_json::to_string(context.result).unwrap_or_default()),
            evaluated_at: Set(context.now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    // Each state moves only from what this round read: if another replica moved it first
    // (a round that ran twice), this round's alerts are its, and nothing here is written.
    for (rule_id, subject, before, active, fired_at) in states {
        let moved = match before {
            Some((was_active, was_fired)) => {
                alert_firings::Entity::update_many()
                    .col_expr(alert_firings::Column::Active, Expr::value(active))
                    .col_expr(alert_firings::Column::FiredAt, Expr::value(fired_at))
                    .filter(alert_firings::Column::RuleId.eq(rule_id))
                    .filter(alert_firings::Column::Subject.eq(subject.as_str()))
                    .filter(alert_firings::Column::Active.eq(was_active))
                    .filter(alert_firings::Column::FiredAt.eq(was_fired))
                    .exec(&txn)
                    .await?
                    .rows_affected
                    == 1
            }
            None => match (alert_firings::ActiveModel {
                rule_id: Set(rule_id),
                subject: Set(subject),
                active: Set(active),
                fired_at: Set(fired_at),
            })
            .insert(&txn)
            .await
            {
                Ok(_) => true,
                Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                    false
                }
                Err(e) => return Err(e.into()),
            },
        };
        if !moved {
            txn.rollback().await?;
            return Ok((false, 0));
        }
    }
    let destinations: HashMap<i64, alert_destinations::Model> = alert_destinations::Entity::find()
        .filter(alert_destinations::Column::AppId.eq(release.app_id))
        .all(&txn)
        .await?
        .into_iter()
        .map(|d| (d.id, d))
        .collect();
    let mut sent = 0;
    for alert in &alerts {
        // A destination deleted since the rule named it is skipped.
        for destination in alert
            .destination_ids
            .iter()
            .filter_map(|id| destinations.get(id))
        {
            delivery::pending(
                destination,
                Some(alert.rule_id),
                alert.event,
                &alert.document,
                context.now,
            )
            .insert(&txn)
            .await?;
        }
        sent += 1;
    }
    txn.commit().await?;
    Ok((changed, sent))
}

type Fire<'a> = Box<dyn Fn(bool) -> Alert + Send + 'a>;

/// Each subject the rule follows on this release: whether its condition holds, and the alert
/// it raises (`true`) or the recovery (`false`).
async fn conditions<'a>(
    db: &Store,
    context: &'a Context<'a>,
    rule: &'a Rule,
    previous: Option<&'a str>,
) -> Result<Vec<(String, Option<bool>, Fire<'a>)>, ServiceError> {
    let result = context.result;
    let alert = move |event: &'static str, summary: String, extra: Value| Alert {
        rule_id: rule.id,
        destination_ids: rule.destination_ids.clone(),
        event,
        document: context.document(rule, event, summary, extra),
    };
    match rule.kind {
        AlertKind::GateFail => {
            let holds = match result.verdict {
                Verdict::Fail => Some(true),
                Verdict::Pass => Some(false),
                Verdict::InsufficientData => None,
            };
            let fire: Fire<'a> = Box::new(move |on| {
                let previous = json!({ "previous": previous });
                if on {
                    let why = result.reasons.first().cloned().unwrap_or_default();
                    alert(
                        "gate.fail",
                        format!("{}: the gate says FAIL — {why}", context.title()),
                        previous,
                    )
                } else {
                    alert(
                        "gate.recovered",
                        format!("{}: the gate says PASS again", context.title()),
                        previous,
                    )
                }
            });
            Ok(vec![(context.release_subject(), holds, fire)])
        }
        AlertKind::CrashRate => {
            let crash = result
                .metrics
                .iter()
                .find(|m| m.metric == Metric::CrashRate);
            let holds = crash.and_then(|m| {
                let max = m.max_rate?;
                match (m.current.lower, m.current.upper) {
                    (Some(lower), _) if lower > max => Some(true),
                    (_, Some(upper)) if upper <= max => Some(false),
                    _ => None,
                }
            });
            let fire: Fire<'a> = Box::new(move |on| {
                let rate = crash
                    .and_then(|m| m.current.rate)
                    .map_or_else(|| "?".to_owned(), gate::percent);
                let limit = crash
                    .and_then(|m| m.max_rate)
                    .map_or_else(|| "?".to_owned(), gate::percent);
                if on {
                    alert(
                        "crash_rate.over",
                        format!(
                            "{}: crash rate {rate} is credibly over the limit of {limit}",
                            context.title()
                        ),
                        json!({}),
                    )
                } else {
                    alert(
                        "crash_rate.recovered",
                        format!(
                            "{}: crash rate {rate} is back within {limit}",
                            context.title()
                        ),
                        json!({}),
                    )
                }
            });
            Ok(vec![(context.release_subject(), holds, fire)])
        }
        AlertKind::NewGroup | AlertKind::Regression => {
            let groups = group_subjects(db, context, rule).await?;
            Ok(groups
                .into_iter()
                .map(|(group, holds)| {
                    let subject = format!("group:{}", group.group_hash);
                    let event = if rule.kind == AlertKind::NewGroup { "group.new" } else { "group.regressed" };
                    let fire: Fire<'a> = Box::new(move |_| {
                        let what = if rule.kind == AlertKind::NewGroup {
                            format!("a new group reached {} reports", group.count)
                        } else {
                            format!("a group absent from {} appeared", result.baseline_version.as_deref().unwrap_or("the baseline"))
                        };
                        alert(
                            event,
                            format!("{}: {what}: {} {:?} on {}/{}", context.title(), group.event_type, group.reason, group.platform, group.arch),
                            json!({ "group": {
                                "hash": group.group_hash, "eventType": group.event_type, "reason": group.reason,
                                "platform": group.platform, "arch": group.arch, "count": group.count,
                                "firstSeen": group.first_seen,
                            }}),
                        )
                    });
                    (subject, holds, fire)
                })
                .collect())
        }
    }
}

/// The release's groups a group rule follows, with whether its condition holds.
async fn group_subjects(
    db: &Store,
    context: &Context<'_>,
    rule: &Rule,
) -> Result<Vec<(report_groups::Model, Option<bool>)>, ServiceError> {
    let release = context.release;
    let of_version = |version: &str| {
        report_groups::Entity::find()
            .filter(report_groups::Column::AppId.eq(release.app_id))
            .filter(report_groups::Column::Channel.eq(release.channel.as_str()))
            .filter(report_groups::Column::Version.eq(version.to_owned()))
            .order_by_asc(report_groups::Column::FirstSeen)
    };
    let groups = of_version(&release.version).all(db).await?;
    let subjects = match rule.kind {
        AlertKind::NewGroup => {
            let window = chrono::Duration::minutes(i64::from(rule.window_minutes));
            groups
                .into_iter()
                .map(|g| {
                    let young = context.now - g.first_seen <= window;
                    let holds = young && g.count >= rule.threshold;
                    // Once past its window a group can never qualify: followed no more.
                    (g, (holds || !young).then_some(holds))
                })
                .filter(|(_, holds)| holds.is_some())
                .collect()
        }
        AlertKind::Regression => {
            let Some(baseline) = context.result.baseline_version.as_deref() else {
                return Ok(Vec::new());
            };
            let known: HashSet<(String, String)> = of_version(baseline)
                .all(db)
                .await?
                .into_iter()
                .map(|g| (g.event_type, g.reason))
                .collect();
            groups
                .into_iter()
                .filter(|g| !known.contains(&(g.event_type.clone(), g.reason.clone())))
                .map(|g| (g, Some(true)))
                .collect()
        }
        AlertKind::GateFail | AlertKind::CrashRate => Vec::new(),
    };
    Ok(subjects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_fires_when_it_starts_to_hold_once_per_cooldown() {
        let t0 = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let hour = chrono::Duration::hours(1);
        let minutes = |m| t0 + chrono::Duration::minutes(m);
        assert_eq!(
            step(None, Some(true), hour, t0),
            (Step::Fire, Some((true, t0)))
        );
        assert_eq!(step(None, Some(false), hour, t0), (Step::Quiet, None));
        assert_eq!(step(None, None, hour, t0), (Step::Quiet, None));
        // Still holding: nothing new.
        assert_eq!(
            step(Some((true, t0)), Some(true), hour, minutes(5)),
            (Step::Quiet, None)
        );
        // Undecided changes nothing.
        assert_eq!(
            step(Some((true, t0)), None, hour, minutes(5)),
            (Step::Quiet, None)
        );
        // Stops holding: a recovery, the last firing kept for the cool-down.
        assert_eq!(
            step(Some((true, t0)), Some(false), hour, minutes(10)),
            (Step::Recover, Some((false, t0)))
        );
        // Flaps back within the cool-down: held again, silently.
        assert_eq!(
            step(Some((false, t0)), Some(true), hour, minutes(20)),
            (Step::Quiet, Some((true, t0)))
        );
        // After the cool-down it fires again.
        assert_eq!(
            step(Some((false, t0)), Some(true), hour, minutes(61)),
            (Step::Fire, Some((true, minutes(61))))
        );
    }
}
