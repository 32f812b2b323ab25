//! A report group: its dimensions, the reports of its release over time, and its stored
//! details, each downloaded through a presigned URL.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{self, ApiError, GroupPage as GroupQuery, Interval, group_page};
use crate::browser;
use crate::chart::{ReportsChart, bars};
use crate::components::{DataTable, loaded};
use crate::format;
use crate::view_state::{GroupDimensions, event_name};

#[derive(Clone, Debug, PartialEq)]
struct Group {
    data: group_page::ResponseData,
    now: DateTime<Utc>,
}

async fn fetch(
    app_id: String,
    group_hash: String,
    dimensions: GroupDimensions,
) -> Result<Group, ApiError> {
    let variables = group_page::Variables {
        app_id,
        group_hash: group_hash.clone(),
        filter: group_page::ReportFilter {
            group_hash: Some(group_hash),
            version: Some(dimensions.version),
            channel: Some(dimensions.channel),
            platform: Some(dimensions.platform),
            arch: Some(dimensions.arch),
            event_type: dimensions.event,
            since: None,
            until: None,
        },
        interval: Interval::Day,
    };
    let data = api::call::<GroupQuery>(variables).await?;
    Ok(Group {
        data,
        now: browser::now(),
    })
}

#[component]
pub fn GroupPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let app_id = Memo::new(move |_| params.read().get("app").unwrap_or_default());
    let group_hash = Memo::new(move |_| params.read().get("group").unwrap_or_default());
    let dimensions = Memo::new(move |_| GroupDimensions::from_query(|key| query.read().get(key)));
    let group = LocalResource::new(move || fetch(app_id.get(), group_hash.get(), dimensions.get()));
    view! {
        {loaded(group, move |group| {
            view! { <GroupView group app_id=app_id.get_untracked() group_hash=group_hash.get_untracked() /> }
        })}
    }
}

#[component]
fn GroupView(group: Group, app_id: String, group_hash: String) -> impl IntoView {
    let Group { data, now } = group;
    let Some(found) = data
        .report_groups
        .nodes
        .into_iter()
        .find(|g| g.group_hash == group_hash)
    else {
        return view! {
            <h1>"Group not found"</h1>
            <p class="empty">
                "No group of " {data.app.name} " matches this link. "
                <A href=format!("/apps/{app_id}")>"Back to the app"</A>
            </p>
        }
        .into_any();
    };
    let series: Vec<(String, i64)> = data
        .time_series
        .into_iter()
        .map(|p| (p.at, p.reports))
        .collect();
    let start = DateTime::parse_from_rfc3339(&found.first_seen).map_or(now, |t| t.to_utc());
    let release = format!(
        "{} {} on {} / {}, {}",
        found.version,
        found.channel,
        found.platform,
        found.arch,
        event_name(found.event_type)
    );
    view! {
        <p class="crumbs"><A href=format!("/apps/{app_id}")>{data.app.name}</A> " › group"</p>
        <h1>{found.reason.clone()}</h1>
        <dl class="dimensions">
            <dt>"Event"</dt><dd>{event_name(found.event_type)}</dd>
            <dt>"Version"</dt><dd>{found.version.clone()}</dd>
            <dt>"Channel"</dt><dd>{found.channel.clone()}</dd>
            <dt>"Platform"</dt><dd>{found.platform.clone()}</dd>
            <dt>"Architecture"</dt><dd>{found.arch.clone()}</dd>
            <dt>"Reports"</dt><dd class="count">{format::count(found.count)}</dd>
            <dt>"First seen"</dt><dd>{format::time(&found.first_seen)}</dd>
            <dt>"Last seen"</dt><dd>{format::time(&found.last_seen)}</dd>
            <dt>"Group hash"</dt><dd><code>{found.group_hash.clone()}</code></dd>
        </dl>
        <section aria-labelledby="chart-title">
            <h2 id="chart-title">"Reports per day"</h2>
            <p class="hint">{format!("Reports of this group ({release}) since it was first seen.")}</p>
            <ReportsChart bars=bars(&series, start, now, Interval::Day) interval=Interval::Day />
        </section>
        <section aria-labelledby="blobs-title">
            <h2 id="blobs-title">"Stored details"</h2>
            <Blobs blobs=data.group_blobs group_hash />
        </section>
    }
    .into_any()
}

#[component]
fn Blobs(blobs: Vec<group_page::GroupPageGroupBlobs>, group_hash: String) -> impl IntoView {
    if blobs.is_empty() {
        return view! {
            <p class="empty">
                "No details stored for this group. Clients attach them as "
                <code>"details"</code> " (gzip, base64) in a report."
            </p>
        }
        .into_any();
    }
    let expiry = blobs
        .first()
        .map(|blob| format::time(&blob.expires_at))
        .unwrap_or_default();
    let rows = blobs
        .into_iter()
        .map(|blob| {
            let short_hash: String = group_hash.chars().take(12).collect();
            let file_name = format!("{short_hash}-{}.gz", blob.id);
            view! {
                <tr>
                    <td>{format::time(&blob.created_at)}</td>
                    <td class="number">{format::bytes(blob.size_compressed)}</td>
                    <td class="number">{format::bytes(blob.size_decompressed)}</td>
                    <td>
                        <a href=blob.url download=file_name>
                            {format!("Download details from {}", format::time(&blob.created_at))}
                        </a>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable caption=format!("Download links work until {expiry}; reload the page for new ones.") headers=&["Received", "Size (gzip)", "Size", "Download"]>
{rows}
</DataTable>
    }
    .into_any()
}
