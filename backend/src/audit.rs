//! The audit log: who (a user, a token or the operator's shell) did what to which target, when.
//! Each audited operation writes its row in the transaction of the change it records.

use chrono::Utc;
use entity::audit_log;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};

use crate::auth::Actor;

/// What was done, to what.
pub struct Change {
    pub action: &'static str,
    /// `app`, `user`, `report_key`, `api_token`, `account`.
    pub target_type: &'static str,
    pub target_id: i64,
    /// A short human-readable note; never a secret.
    pub detail: Option<String>,
}

impl Change {
    pub fn new(action: &'static str, target_type: &'static str, target_id: i64) -> Self {
        Change {
            action,
            target_type,
            target_id,
            detail: None,
        }
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Records that `actor` made `change` in its account.
pub async fn record(db: &impl ConnectionTrait, actor: &Actor, change: Change) -> Result<(), DbErr> {
    audit_log::ActiveModel {
        account_id: Set(actor.account_id()),
        actor: Set(actor.label()),
        action: Set(change.action.to_owned()),
        target_type: Set(change.target_type.to_owned()),
        target_id: Set(Some(change.target_id.to_string())),
        detail: Set(change.detail),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
