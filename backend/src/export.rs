//! Exports of an app's data (issue 18): `GET /api/apps/{app_id}/export/{what}.{csv|json}`
//! with `what` one of `groups` (every report group), `health` (counts per version and channel)
//! and `series` (counts per day), for users and CI tokens through the same permission check
//! as GraphQL (`Authorization: Bearer …`).
//!
//! Groups are streamed: a task reads them a page at a time in key order and hands each page
//! to the response through a channel of a few pages, so a million groups cost the memory of
//! those pages, whatever the client's speed (the channel's bound is the backpressure).

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use entity::report_groups;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::{self, Permission};
use crate::error::ApiError;
use crate::model::{Dimension, Metric};
use crate::rollup::{self, DAY_SECONDS, Slice};
use crate::state::AppState;

/// Groups read per query, and pages buffered between the reader and the response.
const PAGE_ROWS: u64 = 1000;
const PAGES_IN_FLIGHT: usize = 4;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/apps/{app_id}/export/{file}", get(export))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

const GROUP_COLUMNS: [&str; 11] = [
    "group_hash",
    "version",
    "channel",
    "platform",
    "arch",
    "event_type",
    "reason",
    "count",
    "first_seen",
    "last_seen",
    "blob_count",
];

async fn export(
    State(state): State<AppState>,
    Path((app_id, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (what, format) = match file.rsplit_once('.') {
        Some((what, "csv")) => (what, Format::Csv),
        Some((what, "json")) => (what, Format::Json),
        _ => return Err(ApiError::NotFound),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let actor = auth::authenticate(&state.db, &state.sessions, authorization).await?;
    let app_id: i64 = app_id.parse().map_err(|_| ApiError::Forbidden)?;
    let app = auth::authorize_app(&state.db, &actor, Permission::Download, app_id).await?;
    let (body, name) = match what {
        "groups" => (groups(state.clone(), app.id, format), "groups"),
        "health" => (Body::from(health(&state, app.id, format).await?), "health"),
        "series" => (Body::from(series(&state, app.id, format).await?), "series"),
        _ => return Err(ApiError::NotFound),
    };
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::Json => ("application/json", "json"),
    };
    let disposition = format!("attachment; filename=\"{}-{name}.{extension}\"", app.name);
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut line: String = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

fn group_fields(group: &report_groups::Model) -> [String; 11] {
    [
        group.group_hash.clone(),
        group.version.clone(),
        group.channel.clone(),
        group.platform.clone(),
        group.arch.clone(),
        group.event_type.clone(),
        group.reason.clone(),
        group.count.to_string(),
        group.first_seen.to_rfc3339(),
        group.last_seen.to_rfc3339(),
        group.blob_count.to_string(),
    ]
}

fn group_json(group: &report_groups::Model) -> Value {
    json!({
        "group_hash": group.group_hash,
        "version": group.version,
        "channel": group.channel,
        "platform": group.platform,
        "arch": group.arch,
        "event_type": group.event_type,
        "reason": group.reason,
        "count": group.count,
        "first_seen": group.first_seen,
        "last_seen": group.last_seen,
        "blob_count": group.blob_count,
    })
}

/// Every group of the app, streamed a page at a time in `group_hash` order.
fn groups(state: AppState, app_id: i64, format: Format) -> Body {
    let (pages, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(PAGES_IN_FLIGHT);
    tokio::spawn(async move {
        let head = match format {
            Format::Csv => csv_line(&GROUP_COLUMNS.map(str::to_owned)),
            Format::Json => "[".to_owned(),
        };
        if pages.send(Ok(Bytes::from(head))).await.is_err() {
            return;
        }
        let mut after: Option<String> = None;
        let mut first = true;
        loop {
            let mut query = report_groups::Entity::find()
                .filter(report_groups::Column::AppId.eq(app_id))
                .order_by_asc(report_groups::Column::GroupHash)
                .limit(PAGE_ROWS);
            if let Some(after) = &after {
                query = query.filter(report_groups::Column::GroupHash.gt(after.as_str()));
            }
            let rows = match query.all(&state.db).await {
                Ok(rows) => rows,
                Err(e) => {
                    // The status is sent already: a broken-off body is how the client learns.
                    tracing::warn!(error = %e, "export of groups broken off");
                    let _ = pages.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            let Some(last) = rows.last() else { break };
            after = Some(last.group_hash.clone());
            let mut page = String::with_capacity(rows.len() * 160);
            for row in &rows {
                match format {
                    Format::Csv => page.push_str(&csv_line(&group_fields(row))),
                    Format::Json => {
                        if !first {
                            page.push(',');
                        }
                        page.push_str(&group_json(row).to_string());
                    }
                }
                first = false;
            }
            let full = rows.len() as u64 == PAGE_ROWS;
            if pages.send(Ok(Bytes::from(page))).await.is_err() || !full {
                break;
            }
        }
        if format == Format::Json {
            let _ = pages.send(Ok(Bytes::from_static(b"]"))).await;
        }
    });
    Body::new(ChannelBody(receiver))
}

/// A response body fed by a channel of chunks.
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(http_body::Frame::data)))
    }
}

const HEALTH_COLUMNS: [&str; 9] = [
    "version",
    "channel",
    "crashes",
    "update_failures",
    "install_failures",
    "sessions",
    "updates_succeeded",
    "installs_succeeded",
    "crash_rate",
];

/// Counts per version and channel over the app's whole history.
async fn health(state: &AppState, app_id: i64, format: Format) -> Result<String, ApiError> {
    let cells = rollup::cells(
        &state.db,
        app_id,
        &Slice::default(),
        &[Dimension::Version, Dimension::Channel],
    )
    .await?;
    let rows = cells.iter().map(|cell| {
        let c = cell.counts;
        (
            [
                cell.key.version.clone().unwrap_or_default(),
                cell.key.channel.clone().unwrap_or_default(),
            ],
            [
                c.crashes,
                c.update_failed,
                c.install_failed,
                c.sessions,
                c.update_succeeded,
                c.install_succeeded,
            ],
            c.rate(Metric::CrashRate),
        )
    });
    Ok(match format {
        Format::Csv => {
            let mut out = csv_line(&HEALTH_COLUMNS.map(str::to_owned));
            for (names, counts, rate) in rows {
                let mut fields: Vec<String> = names.to_vec();
                fields.extend(counts.iter().map(u64::to_string));
                fields.push(rate.map_or_else(String::new, |r| r.to_string()));
                out.push_str(&csv_line(&fields));
            }
            out
        }
        Format::Json => {
            let rows: Vec<Value> = rows
                .map(|(names, counts, rate)| {
                    let mut row =
                        json!({ "version": names[0], "channel": names[1], "crash_rate": rate });
                    for (column, count) in HEALTH_COLUMNS[2..8].iter().zip(counts) {
                        row[*column] = json!(count);
                    }
                    row
                })
                .collect();
            Value::Array(rows).to_string()
        }
    })
}

/// Counts per day over the app's whole history.
async fn series(state: &AppState, app_id: i64, format: Format) -> Result<String, ApiError> {
    let days = rollup::series(&state.db, app_id, &Slice::default(), DAY_SECONDS).await?;
    let day = |start: i64| {
        chrono::DateTime::from_timestamp(start, 0)
            .map(|at| at.format("%Y-%m-%d").to_string())
            .unwrap_or_default()
    };
    Ok(match format {
        Format::Csv => {
            let mut out = csv_line(&["day", "reports", "crashes", "sessions"].map(str::to_owned));
            for (start, counts) in &days {
                out.push_str(&csv_line(&[
                    day(*start),
                    counts.reports().to_string(),
                    counts.crashes.to_string(),
                    counts.sessions.to_string(),
                ]));
            }
            out
        }
        Format::Json => Value::Array(
            days.iter()
                .map(|(start, counts)| {
                    json!({
                        "day": day(*start),
                        "reports": counts.reports(),
                        "crashes": counts.crashes,
                        "sessions": counts.sessions,
                    })
                })
                .collect(),
        )
        .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("SIGSEGV"), "SIGSEGV");
        assert_eq!(csv_field("a, b"), "\"a, b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            csv_line(&["x".to_owned(), "y\nz".to_owned()]),
            "x,\"y\nz\"\r\n"
        );
    }
}
