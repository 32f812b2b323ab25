//! Alert rules: what makes an app's alerts fire and where they go, managed by its admins.

use chrono::Utc;
use entity::{alert_destinations, alert_rules};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use crate::audit::{self, Change};
use crate::auth::{self, Actor, Permission};
use crate::db::Store;
use crate::error::ServiceError;
use crate::model::{self, AlertKind};

const MAX_NAME_CHARS: usize = 64;
/// A week: longer windows and cool-downs are better served by the gate's own history.
const MAX_MINUTES: i32 = 7 * 24 * 60;
pub const DEFAULT_COOLDOWN_MINUTES: i32 = 60;
pub const DEFAULT_WINDOW_MINUTES: i32 = 60;

/// A rule as an admin asks for it; what is left out takes the documented default.
#[derive(Clone, Debug)]
pub struct RuleInput {
    pub name: String,
    pub kind: AlertKind,
    /// `None`: every channel.
    pub channel: Option<String>,
    /// `NewGroup`: the reports a new group must reach.
    pub threshold: Option<i64>,
    /// `NewGroup`: within this many minutes of its first report.
    pub window_minutes: Option<i32>,
    pub notify_recovery: bool,
    pub cooldown_minutes: Option<i32>,
    pub destination_ids: Vec<i64>,
}

/// A stored rule, read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub app_id: i64,
    pub name: String,
    pub kind: AlertKind,
    pub channel: Option<String>,
    pub threshold: i64,
    pub window_minutes: i32,
    pub notify_recovery: bool,
    pub cooldown_minutes: i32,
    pub destination_ids: Vec<i64>,
}

impl Rule {
    pub fn from_row(row: alert_rules::Model) -> Result<Rule, ServiceError> {
        let unreadable = |what: &str| {
            ServiceError::Database(sea_orm::DbErr::Json(format!(
                "alert rule {}: unreadable {what}",
                row.id
            )))
        };
        let kind = AlertKind::from_stored(&row.kind).ok_or_else(|| unreadable("kind"))?;
        let destination_ids: Vec<i64> =
            serde_json::from_str(&row.destination_ids).map_err(|_| unreadable("destinations"))?;
        Ok(Rule {
            id: row.id,
            app_id: row.app_id,
            name: row.name,
            kind,
            channel: (!row.channel.is_empty()).then_some(row.channel),
            threshold: row.threshold,
            window_minutes: row.window_minutes,
            notify_recovery: row.notify_recovery,
            cooldown_minutes: row.cooldown_minutes,
            destination_ids,
        })
    }

    pub fn applies_to(&self, channel: &str) -> bool {
        self.channel.as_deref().is_none_or(|c| c == channel)
    }
}

fn minutes(field: &str, value: Option<i32>, default: i32, min: i32) -> Result<i32, ServiceError> {
    let value = value.unwrap_or(default);
    if !(min..=MAX_MINUTES).contains(&value) {
        return Err(ServiceError::invalid(
            field,
            format!("{field} must be between {min} and {MAX_MINUTES}"),
        ));
    }
    Ok(value)
}

/// Creates a rule of the app; every destination must be the app's own.
pub async fn create(
    db: &Store,
    actor: &Actor,
    app_id: i64,
    input: RuleInput,
) -> Result<Rule, ServiceError> {
    let name = model::text("name", &input.name, MAX_NAME_CHARS)?;
    let channel = input
        .channel
        .as_deref()
        .map(|c| model::channel("channel", c))
        .transpose()?;
    let new_group = input.kind == AlertKind::NewGroup;
    let threshold = match (new_group, input.threshold) {
        (true, Some(n)) if (1..=1_000_000_000).contains(&n) => n,
        (true, Some(_)) => {
            return Err(ServiceError::invalid(
                "threshold",
                "threshold must be between 1 and 1000000000",
            ));
        }
        (true, None) => {
            return Err(ServiceError::invalid(
                "threshold",
                "a new_group rule needs a threshold (reports)",
            ));
        }
        (false, _) => 0,
    };
    let window_minutes = match new_group {
        true => minutes(
            "windowMinutes",
            input.window_minutes,
            DEFAULT_WINDOW_MINUTES,
            1,
        )?,
        false => 0,
    };
    let cooldown_minutes = minutes(
        "cooldownMinutes",
        input.cooldown_minutes,
        DEFAULT_COOLDOWN_MINUTES,
        0,
    )?;
    let mut destination_ids = input.destination_ids.clone();
    destination_ids.sort_unstable();
    destination_ids.dedup();
    if destination_ids.is_empty() {
        return Err(ServiceError::invalid(
            "destinationIds",
            "a rule needs at least one destination",
        ));
    }
    let txn = db.begin_write().await?;
    let app = auth::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
    let owned = alert_destinations::Entity::find()
        .filter(alert_destinations::Column::AppId.eq(app.id))
        .filter(alert_destinations::Column::Id.is_in(destination_ids.iter().copied()))
        .all(&txn)
        .await?;
    if owned.len() != destination_ids.len() {
        // Another app's destination reads as one that does not exist.
        return Err(ServiceError::invalid(
            "destinationIds",
            "every destination must be one of this app's",
        ));
    }
    let row = alert_rules::ActiveModel {
        app_id: Set(app.id),
        name: Set(name),
        kind: Set(input.kind.as_str().to_owned()),
        channel: Set(channel.unwrap_or_default()),
        threshold: Set(threshold),
        window_minutes: Set(window_minutes),
        notify_recovery: Set(input.notify_recovery),
        cooldown_minutes: Set(cooldown_minutes),
        destination_ids: Set(serde_json::to_string(&destination_ids).unwrap_or_default()),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Change::new("create_alert_rule", "app", app.id)
            .detail(format!("{} ({})", row.name, row.kind)),
    )
    .await?;
    txn.commit().await?;
    Rule::from_row(row)
}

/// The app's rules, oldest first; readers of the app may see them.
pub async fn list(
    db: &impl ConnectionTrait,
    actor: &Actor,
    app_id: i64,
) -> Result<Vec<Rule>, ServiceError> {
    let app = auth::authorize_app(db, actor, Permission::Download, app_id).await?;
    of_app(db, app.id).await
}

pub async fn of_app(db: &impl ConnectionTrait, app_id: i64) -> Result<Vec<Rule>, ServiceError> {
    alert_rules::Entity::find()
        .filter(alert_rules::Column::AppId.eq(app_id))
        .order_by_asc(alert_rules::Column::Id)
        .all(db)
        .await?
        .into_iter()
        .map(Rule::from_row)
        .collect()
}

pub async fn delete(db: &Store, actor: &Actor, rule_id: i64) -> Result<(), ServiceError> {
    let txn = db.begin_write().await?;
    let rule = alert_rules::Entity::find_by_id(rule_id)
        .one(&txn)
        .await?
        .ok_or(ServiceError::Forbidden)?;
    auth::authorize_app(&txn, actor, Permission::Manage, rule.app_id).await?;
    alert_rules::Entity::delete_by_id(rule.id)
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        actor,
        Change::new("delete_alert_rule", "app", rule.app_id).detail(rule.name),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}
