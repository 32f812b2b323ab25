//! Delivering alerts: each (alert, destination) is a row, claimed by one replica at a time
//! with a conditional update, posted with a signature, and retried with exponential backoff
//! and jitter on timeouts, connection errors, 429 and 5xx until `ALERTS_RETRY_FOR_SECONDS`
//! have passed. Every attempt is logged on the row. Delivery runs on its own task: it never
//! blocks ingestion or the evaluation.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::{alert_deliveries, alert_destinations};
use rand::Rng;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::signing::{self, DestinationSecrets};
use crate::config::AlertsConfig;
use crate::db::Store;
use crate::error::ServiceError;
use crate::model::DestinationFormat;

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// How long a replica holds a delivery it is sending: past the request timeout, so a replica
/// that died mid-send lets another retry it.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);
const RETRY_CAP: Duration = Duration::from_secs(3600);
const PER_ROUND: u64 = 16;

/// One attempt, as the delivery log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; `None` when no answer came.
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

/// A new delivery of `document` (an alert's JSON) to `destination`, due now.
pub fn pending(
    destination: &alert_destinations::Model,
    rule_id: Option<i64>,
    event: &str,
    document: &Value,
    now: DateTime<Utc>,
) -> alert_deliveries::ActiveModel {
    alert_deliveries::ActiveModel {
        app_id: Set(destination.app_id),
        destination_id: Set(destination.id),
        rule_id: Set(rule_id),
        event: Set(event.to_owned()),
        body: Set(document.to_string()),
        state: Set(PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        claimed_until: Set(None),
        log: Set("[]".to_owned()),
        created_at: Set(now),
        finished_at: Set(None),
        ..Default::default()
    }
}

/// What the receiver gets for `document` in the destination's format.
fn wire_body(format: DestinationFormat, document: &Value) -> Value {
    match format {
        DestinationFormat::Generic => document.clone(),
        // Slack's incoming webhooks take `text` (mrkdwn); the link is Slack's `<url|label>`.
        DestinationFormat::Slack => {
            let summary = document["summary"].as_str().unwrap_or("Rollwatch alert");
            let text = match document["url"].as_str() {
                Some(url) => format!("{summary}\n<{url}|Open in Rollwatch>"),
                None => summary.to_owned(),
            };
            json!({ "text": text })
        }
    }
}

/// The sender: one HTTP client without redirects (a receiver cannot bounce a delivery to
/// another address) and the secrets to sign with.
#[derive(Clone)]
pub struct Deliverer {
    config: AlertsConfig,
    secrets: DestinationSecrets,
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    /// Worth another attempt (timeout, connection, 429, 5xx).
    Retry,
    /// Retrying cannot help (4xx, a refused address, a redirect).
    Refused,
}

impl Deliverer {
    pub fn new(config: AlertsConfig, secrets: DestinationSecrets) -> Self {
        Deliverer { config, secrets }
    }

    /// Sends every delivery that is due and not held by another replica; how many were tried.
    pub async fn round(&self, db: &Store, now: DateTime<Utc>) -> Result<usize, ServiceError> {
        let due = alert_deliveries::Entity::find()
            .filter(alert_deliveries::Column::State.eq(PENDING))
            .filter(alert_deliveries::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(alert_deliveries::Column::ClaimedUntil.is_null())
                    .add(alert_deliveries::Column::ClaimedUntil.lt(now)),
            )
            .order_by_asc(alert_deliveries::Column::NextAttemptAt)
            .limit(PER_ROUND)
            .all(db)
            .await?;
        let mut tried = 0;
        for delivery in due {
            if !self.claim(db, &delivery, now).await? {
                continue;
            }
            tried += 1;
            let destination = alert_destinations::Entity::find_by_id(delivery.destination_id)
                .one(db)
                .await?;
            let (outcome, attempt) = match &destination {
                Some(destination) => self.attempt(destination, &delivery).await,
                None => (
                    Outcome::Refused,
                    failure(Utc::now(), "the destination was deleted", 0),
                ),
            };
            self.record(db, delivery, outcome, attempt).await?;
        }
        Ok(tried)
    }

    /// Holds the delivery for this replica; false when another one got it first.
    async fn claim(
        &self,
        db: &Store,
        delivery: &alert_deliveries::Model,
        now: DateTime<Utc>,
    ) -> Result<bool, ServiceError> {
        let until = now
            + chrono::Duration::from_std(self.config.delivery_timeout + CLAIM_MARGIN)
                .unwrap_or_else(|_| chrono::Duration::minutes(5));
        let txn = db.begin_write().await?;
        let claimed = alert_deliveries::Entity::update_many()
            .col_expr(alert_deliveries::Column::ClaimedUntil, Expr::value(until))
            .filter(alert_deliveries::Column::Id.eq(delivery.id))
            .filter(alert_deliveries::Column::State.eq(PENDING))
            .filter(alert_deliveries::Column::Attempts.eq(delivery.attempts))
            .filter(
                Condition::any()
                    .add(alert_deliveries::Column::ClaimedUntil.is_null())
                    .add(alert_deliveries::Column::ClaimedUntil.lt(now)),
            )
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(claimed == 1)
    }

    async fn attempt(
        &self,
        destination: &alert_destinations::Model,
        delivery: &alert_deliveries::Model,
    ) -> (Outcome, Attempt) {
        let started = Instant::now();
        let at = Utc::now();
        let elapsed =
            |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let document: Value = serde_json::from_str(&delivery.body).unwrap_or(Value::Null);
        let format = DestinationFormat::from_stored(&destination.format)
            .unwrap_or(DestinationFormat::Generic);
        let body = wire_body(format, &document).to_string();
        let client = match self.client_for(&destination.url).await {
            Ok(client) => client,
            Err(refusal) => return (Outcome::Refused, failure(at, &refusal, elapsed(started))),
        };
        let secret = self.secrets.secret(&destination.salt);
        let signature = signing::header(&secret, at.timestamp(), body.as_bytes());
        let sent = client
            .post(&destination.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                reqwest::header::USER_AGENT,
                concat!("Rollwatch/", env!("CARGO_PKG_VERSION")),
            )
            .header(signing::SIGNATURE_HEADER, signature)
            .header("Rollwatch-Event", &delivery.event)
            .header("Rollwatch-Delivery", delivery.id.to_string())
            .body(body)
            .send()
            .await;
        let latency_ms = elapsed(started);
        match sent {
            Ok(answer) => {
                let status = answer.status();
                let outcome = if status.is_success() {
                    Outcome::Delivered
                } else if status.is_server_error() || status.as_u16() == 429 {
                    Outcome::Retry
                } else {
                    Outcome::Refused
                };
                let attempt = Attempt {
                    at,
                    status: Some(status.as_u16()),
                    error: None,
                    latency_ms,
                };
                (outcome, attempt)
            }
            Err(e) => {
                let error = if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    "could not connect".to_owned()
                } else {
                    format!("request failed: {e}")
                };
                (Outcome::Retry, failure(at, &error, latency_ms))
            }
        }
    }

    /// A client bound to the addresses the URL's host resolves to now, each checked against
    /// `ALERTS_ALLOW_PRIVATE_DESTINATIONS`; pinning them means a second lookup cannot lead
    /// the request elsewhere (DNS rebinding).
    async fn client_for(&self, url: &str) -> Result<reqwest::Client, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = parsed.host_str().ok_or("the URL has no host")?.to_owned();
        let port = parsed
            .port_or_known_default()
            .ok_or("the URL has no port")?;
        let lookup_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((lookup_host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        if addresses.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        if !self.config.allow_private_destinations
            && let Some(private) = addresses.iter().find(|a| is_private(a.ip()))
        {
            return Err(format!(
                "{host} resolves to {}, a private address (set ALERTS_ALLOW_PRIVATE_DESTINATIONS=true to allow)",
                private.ip()
            ));
        }
        reqwest::Client::builder()
            .timeout(self.config.delivery_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addresses)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))
    }

    async fn record(
        &self,
        db: &Store,
        delivery: alert_deliveries::Model,
        outcome: Outcome,
        attempt: Attempt,
    ) -> Result<(), ServiceError> {
        let mut log: Vec<Attempt> = serde_json::from_str(&delivery.log).unwrap_or_default();
        log.push(attempt);
        let attempts = delivery.attempts + 1;
        let now = Utc::now();
        let give_up_at = delivery.created_at
            + chrono::Duration::from_std(self.config.retry_for)
                .unwrap_or(chrono::Duration::days(1));
        let next = now + self.backoff(attempts);
        let (state, next_attempt_at, finished_at) = match outcome {
            Outcome::Delivered => (DELIVERED, delivery.next_attempt_at, Some(now)),
            Outcome::Retry if next <= give_up_at => (PENDING, next, None),
            Outcome::Retry | Outcome::Refused => (FAILED, delivery.next_attempt_at, Some(now)),
        };
        let txn = db.begin_write().await?;
        let mut row: alert_deliveries::ActiveModel = delivery.into();
        row.attempts = Set(attempts);
        row.log = Set(serde_json::to_string(&log).unwrap_or_else(|_| "[]".to_owned()));
        row.state = Set(state.to_owned());
        row.next_attempt_at = Set(next_attempt_at);
        row.finished_at = Set(finished_at);
        row.claimed_until = Set(None);
        row.update(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// `retry_first · 2^(attempts − 1)`, capped at an hour, times U(0.5, 1).
    fn backoff(&self, attempts: i32) -> chrono::Duration {
        let exponent = Ord::min(u32::try_from(attempts.saturating_sub(1)).unwrap_or(0), 20);
        let base = self
            .config
            .retry_first
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(RETRY_CAP);
        let jittered = base.mul_f64(rand::rng().random_range(0.5..=1.0));
        chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::hours(1))
    }
}

fn failure(at: DateTime<Utc>, error: &str, latency_ms: u64) -> Attempt {
    Attempt {
        at,
        status: None,
        error: Some(error.to_owned()),
        latency_ms,
    }
}

/// Loopback, private (RFC 1918, unique local), link-local (cloud metadata), unspecified,
/// CGNAT and multicast addresses: nothing a public webhook receiver has.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The app's deliveries to one destination, newest first.
pub async fn log_of(
    db: &impl ConnectionTrait,
    destination_id: i64,
    limit: u64,
) -> Result<Vec<alert_deliveries::Model>, ServiceError> {
    Ok(alert_deliveries::Entity::find()
        .filter(alert_deliveries::Column::DestinationId.eq(destination_id))
        .order_by_desc(alert_deliveries::Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// The attempts of a delivery, oldest first.
pub fn attempts(delivery: &alert_deliveries::Model) -> Vec<Attempt> {
    serde_json::from_str(&delivery.log).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_told_from_public_ones() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn slack_gets_text_with_a_link_and_generic_the_document() {
        let document =
            json!({ "summary": "editor 1.5.0 (stable): FAIL", "url": "https://rw.example/x" });
        assert_eq!(wire_body(DestinationFormat::Generic, &document), document);
        assert_eq!(
            wire_body(DestinationFormat::Slack, &document),
            json!({ "text": "editor 1.5.0 (stable): FAIL\n<https://rw.example/x|Open in Rollwatch>" })
        );
    }
}
