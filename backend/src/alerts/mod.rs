//! Alerts and rollout actions (issue 17, docs/alerts.md): a background evaluation of every
//! watched release with the gate's own evaluation (`watch`), rules per app (`rules`), webhook
//! destinations with signed bodies (`destinations`, `signing`), and deliveries retried and
//! logged (`delivery`). With several replicas on one database each evaluation round runs on
//! one replica (`crate::lease`) and each delivery is claimed by one.

pub mod delivery;
pub mod destinations;
pub mod rules;
pub mod signing;
pub mod watch;

use std::time::Duration;

use chrono::Utc;
use entity::{alert_deliveries, release_verdicts};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;

use crate::auth::{self, Actor, Permission};
use crate::error::ServiceError;
use crate::state::AppState;
use crate::telemetry::GateCaller;

/// How often due deliveries are looked for.
const DELIVERY_POLL: Duration = Duration::from_secs(1);
const EVALUATION_LEASE: &str = "alerts.evaluate";

/// Queues a `test` delivery to the destination, which the delivery log then shows.
pub async fn send_test(
    state: &AppState,
    actor: &Actor,
    destination_id: i64,
) -> Result<alert_deliveries::Model, ServiceError> {
    let txn = state.db.begin_write().await?;
    let destination = destinations::managed(&txn, actor, destination_id).await?;
    let now = Utc::now();
    let document = json!({
        "event": "test",
        "summary": format!("Rollwatch test alert for destination {:?}", destination.name),
        "app": { "id": destination.app_id },
        "at": now,
    });
    let delivery = delivery::pending(&destination, None, "test", &document, now)
        .insert(&txn)
        .await?;
    txn.commit().await?;
    Ok(delivery)
}

/// The release's verdict changes, newest first, for whoever may read the app.
pub async fn verdict_history(
    db: &impl ConnectionTrait,
    actor: &Actor,
    app_id: i64,
    channel: &str,
    version: &str,
    limit: u64,
) -> Result<Vec<release_verdicts::Model>, ServiceError> {
    let app = auth::authorize_app(db, actor, Permission::Download, app_id).await?;
    Ok(release_verdicts::Entity::find()
        .filter(release_verdicts::Column::AppId.eq(app.id))
        .filter(release_verdicts::Column::Channel.eq(channel))
        .filter(release_verdicts::Column::Version.eq(version))
        .order_by_desc(release_verdicts::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Evaluates the watched releases every `ALERTS_EVALUATE_EVERY_SECONDS`, on one replica per
/// interval.
pub async fn evaluate_forever(state: AppState) {
    let config = &state.config.alerts;
    let mut every = tokio::time::interval(config.evaluate_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = Utc::now();
        match crate::lease::claim(&state.db, EVALUATION_LEASE, config.evaluate_every, now).await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "alert evaluation: cannot claim this round");
                continue;
            }
        }
        match watch::evaluate(
            &state.db,
            config.watch_hours,
            state.config.public_url.as_ref(),
            now,
        )
        .await
        {
            Ok(round) => {
                for verdict in &round.verdicts {
                    state
                        .metrics
                        .gate_evaluated(GateCaller::Alerts, verdict.as_str());
                }
                tracing::debug!(?round, "alert evaluation");
            }
            Err(e) => tracing::warn!(error = %e, "alert evaluation failed"),
        }
    }
}

/// Sends due deliveries, on its own task so a slow receiver holds up nothing else.
pub async fn deliver_forever(state: AppState) {
    let deliverer = delivery::Deliverer::new(
        state.config.alerts.clone(),
        state.destination_secrets.clone(),
    );
    let mut every = tokio::time::interval(DELIVERY_POLL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if let Err(e) = deliverer.round(&state.db, Utc::now()).await {
            tracing::warn!(error = %e, "alert delivery round failed");
        }
    }
}
