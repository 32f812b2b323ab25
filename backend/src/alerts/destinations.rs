//! Where an app's alerts go: webhook URLs with a signing secret shown once (DESIGN §4's
//! "shown once" rule for secrets), managed by the app's admins.

use chrono::Utc;
use entity::alert_destinations;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};

use super::signing::DestinationSecrets;
use crate::audit::{self, Change};
use crate::auth::{self, Actor, Permission};
use crate::db::Store;
use crate::error::ServiceError;
use crate::model::{self, DestinationFormat};
use crate::secrets;

const MAX_URL_CHARS: usize = 2048;
const MAX_NAME_CHARS: usize = 64;

/// `url` checked: absolute `http` or `https`, with a host, no credentials in it.
fn checked_url(url: &str) -> Result<reqwest::Url, ServiceError> {
    let invalid = |message: &str| ServiceError::invalid("url", message);
    let url = url.trim();
    if url.chars().count() > MAX_URL_CHARS {
        return Err(invalid("url is longer than 2048 characters"));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid(&format!("url is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid(
            "url must be an http:// or https:// URL with a host",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("url must not carry a user name or password"));
    }
    Ok(parsed)
}

/// What the API shows of a destination's URL: its origin. The path of a Slack incoming
/// webhook is its credential, so it is never shown again.
pub fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) if parsed.path() != "/" || parsed.query().is_some() => {
            format!("{}/…", parsed.origin().ascii_serialization())
        }
        Ok(parsed) => parsed.origin().ascii_serialization(),
        Err(_) => "…".to_owned(),
    }
}

/// A new destination of the app and its signing secret, which is shown only now.
pub async fn create(
    db: &Store,
    secrets: &DestinationSecrets,
    actor: &Actor,
    app_id: i64,
    name: &str,
    url: &str,
    format: DestinationFormat,
) -> Result<(alert_destinations::Model, String), ServiceError> {
    let name = model::text("name", name, MAX_NAME_CHARS)?;
    let url = checked_url(url)?;
    let salt = hex::encode(secrets::random_bytes::<16>()?);
    let txn = db.begin_write().await?;
    let app = auth::authorize_app(&txn, actor, Permission::Manage, app_id).await?;
    let destination = alert_destinations::ActiveModel {
        app_id: Set(app.id),
        name: Set(name),
        url: Set(url.to_string()),
        format: Set(format.as_str().to_owned()),
        salt: Set(salt),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        actor,
        Change::new("create_alert_destination", "app", app.id).detail(format!(
            "{} → {}",
            destination.name,
            shown_url(&destination.url)
        )),
    )
    .await?;
    txn.commit().await?;
    let secret = secrets.secret(&destination.salt);
    Ok((destination, secret))
}

/// The app's destinations, oldest first; admins of the app only (their URLs are credentials).
pub async fn list(
    db: &impl ConnectionTrait,
    actor: &Actor,
    app_id: i64,
) -> Result<Vec<alert_destinations::Model>, ServiceError> {
    let app = auth::authorize_app(db, actor, Permission::Manage, app_id).await?;
    Ok(alert_destinations::Entity::find()
        .filter(alert_destinations::Column::AppId.eq(app.id))
        .order_by_asc(alert_destinations::Column::Id)
        .all(db)
        .await?)
}

/// The destination when `actor` may manage its app; any other id is `Forbidden`, so ids of
/// other accounts cannot be probed.
pub async fn managed(
    db: &impl ConnectionTrait,
    actor: &Actor,
    destination_id: i64,
) -> Result<alert_destinations::Model, ServiceError> {
    let destination = alert_destinations::Entity::find_by_id(destination_id)
        .one(db)
        .await?
        .ok_or(ServiceError::Forbidden)?;
    auth::authorize_app(db, actor, Permission::Manage, destination.app_id).await?;
    Ok(destination)
}

/// Deletes the destination with its deliveries; rules that named it no longer send there.
pub async fn delete(db: &Store, actor: &Actor, destination_id: i64) -> Result<(), ServiceError> {
    let txn = db.begin_write().await?;
    let destination = managed(&txn, actor, destination_id).await?;
    alert_destinations::Entity::delete_by_id(destination.id)
        .exec(&txn)
        .await?;
    audit::record(
        &txn,
        actor,
        Change::new("delete_alert_destination", "app", destination.app_id)
            .detail(destination.name.clone()),
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_and_no_credentials_are_destinations() {
        assert!(checked_url("https://hooks.example.com/rollwatch").is_ok());
        assert!(checked_url(" http://10.0.0.5:9000/hook ").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://user:pass@example.com/",
            "file:///etc/passwd",
        ] {
            let err = checked_url(bad).expect_err(bad);
            assert!(
                matches!(&err, ServiceError::Invalid(e) if e.field == "url"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_shown_url_keeps_its_origin_and_hides_its_path() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(shown_url("http://10.0.0.5:9000/"), "http://10.0.0.5:9000");
    }
}
