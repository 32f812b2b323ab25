//! The audit log: who (a user, a token or the operator's CLI) did what to which target, when.

use chrono::Utc;
use entity::audit_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

/// The actor of operator commands run from a shell.
pub const CLI_ACTOR: &str = "cli";

pub struct Entry {
    pub account_id: i64,
    /// `user:<id>`, `token:<id>` or `cli`.
    pub actor: String,
    pub action: &'static str,
    /// `app`, `user`, `report_key`, `api_token`.
    pub target_type: &'static str,
    pub target_id: Option<i64>,
    /// A short human-readable note; never a secret.
    pub detail: Option<String>,
}

pub async fn record(db: &impl ConnectionTrait, entry: Entry) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        account_id: Set(entry.account_id),
        actor: Set(entry.actor),
        action: Set(entry.action.to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id.map(|id| id.to_string())),
        detail: Set(entry.detail),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
