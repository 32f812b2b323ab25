//! An app's rollout health: versions × channels with rates against the gate policy, a
//! breakdown by platform or architecture, reports over time, and the top groups.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::api::{self, ApiError, Dimension, RolloutPage as RolloutQuery, rollout_page};
use crate::browser;
use crate::chart::{ReportsChart, bars};
use crate::components::{ChoiceSelect, CopyButton, DataTable, loaded};
use crate::format;
use crate::health::{Limits, limits_of};
use crate::integrate::{Integrations, RecentKeys, Target};
use crate::matrix::{Matrix, Metric, Tally};
use crate::session::Session;
use crate::view_state::{Breakdown, GroupDimensions, HealthView, Release, event_name};

/// One answer of the page's query, with the range it covers.
#[derive(Clone, Debug, PartialEq)]
struct Rollout {
    data: rollout_page::ResponseData,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

async fn fetch(app_id: String, view: HealthView) -> Result<Rollout, ApiError> {
    let end = browser::now();
    let start = view.range.since(end);
    let mut group_by = vec![Dimension::Version, Dimension::Channel];
    match view.breakdown {
        Breakdown::None => {}
        Breakdown::Platform => group_by.push(Dimension::Platform),
        Breakdown::Arch => group_by.push(Dimension::Arch),
    }
    let variables = rollout_page::Variables {
        app_id,
        group_by,
        filter: rollout_page::ReportFilter {
            group_hash: None,
            event_type: view.event,
            since: Some(start.to_rfc3339()),
            version: None,
            channel: None,
            platform: None,
            arch: None,
            until: None,
        },
        interval: view.range.interval(),
        since: start.to_rfc3339(),
    };
    let data = api::call::<RolloutQuery>(variables).await?;
    Ok(Rollout { data, start, end })
}

#[component]
pub fn RolloutPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let app_id = Memo::new(move |_| params.read().get("app").unwrap_or_default());
    let view_state = Memo::new(move |_| HealthView::from_query(|key| query.read().get(key)));
    let rollout = LocalResource::new(move || fetch(app_id.get(), view_state.get()));

    let navigate = use_navigate();
    let show = move |next: HealthView| {
        navigate(
            &format!("/apps/{}{}", app_id.get_untracked(), next.query_string()),
            Default::default(),
        );
    };
    let current = view_state.get_untracked();
    let (pick_range, pick_event, pick_breakdown) = (show.clone(), show.clone(), show);
    view! {
        <form class="filters" aria-label="Filters" on:submit=|ev| ev.prevent_default()>
            <ChoiceSelect
                label="Time range"
                id="range"
                current=current.range
                on_pick=move |range| pick_range(HealthView { range, ..view_state.get_untracked() })
            />
            <ChoiceSelect
                label="Events"
                id="event"
                current=current.event
                on_pick=move |event| pick_event(HealthView { event, ..view_state.get_untracked() })
            />
            <ChoiceSelect
                label="Breakdown"
                id="breakdown"
                current=current.breakdown
                on_pick=move |breakdown| {
                    pick_breakdown(HealthView { breakdown, ..view_state.get_untracked() })
                }
            />
        </form>
        {loaded(rollout, move |rollout| view! { <RolloutView rollout view=view_state.get_untracked() /> })}
    }
}

#[component]
fn RolloutView(rollout: Rollout, view: HealthView) -> impl IntoView {
    let Rollout { data, start, end } = rollout;
    let app = data.app;
    let metric = Metric::for_event(view.event);
    let matrix = Matrix::build(&data.totals, &data.rollout_health, view.breakdown, metric);
    let throttled = data
        .throttled
        .iter()
        .fold((0, 0), |(reports, usage), hour| {
            (reports + hour.reports, usage + hour.usage)
        });
    let never_reported = data.all_time.total_count == 0;
    let limits = limits_of!(data.gate_policy);
    let series: Vec<(String, i64)> = data
        .time_series
        .into_iter()
        .map(|p| (p.at, p.reports))
        .collect();
    let interval = view.range.interval();
    let body = if never_reported && matrix.is_empty() {
        view! { <NoReportsYet app_id=app.id.clone() app_name=app.name.clone() /> }.into_any()
    } else {
        view! {
            <section aria-labelledby="matrix-title">
                <h2 id="matrix-title">"Releases"</h2>
                {if matrix.is_empty() {
                    view! {
                        <p class="empty">
                            "Nothing in this range for these events. Choose a longer time range or all events."
                        </p>
                    }
                    .into_any()
                } else {
                    view! { <MatrixTable matrix limits app_id=app.id.clone() /> }.into_any()
                }}
            </section>
            <section aria-labelledby="chart-title">
                <h2 id="chart-title">"Reports over time"</h2>
                <ReportsChart bars=bars(&series, start, end, interval) interval />
            </section>
            <section aria-labelledby="groups-title">
                <h2 id="groups-title">"Top groups"</h2>
                <TopGroups app_id=app.id.clone() groups=data.top_groups.nodes />
            </section>
            <Exports app_id=app.id.clone() />
        }
        .into_any()
    };
    let alerts = format!("/apps/{}/alerts", app.id);
    view! {
        <h1>{app.name.clone()}</h1>
        <p class="page-links"><A href=alerts>"Alerts"</A></p>
        {(!app.reports_enabled)
            .then(|| view! { <p class="notice">"Reports are switched off for this app: new reports are refused."</p> })}
        {(throttled != (0, 0)).then(|| view! { <ThrottledNotice reports=throttled.0 usage=throttled.1 /> })}
        {body}
    }
}

/// Reports refused for the rate limit are missing from the rates shown (docs/gating.md).
#[component]
fn ThrottledNotice(reports: i64, usage: i64) -> impl IntoView {
    view! {
        <p class="notice throttled">
            {format!(
                "{} reports and {} usage messages were refused for the rate limit in this range: the rates below may be missing them. The release gate counts refused reports as possible failures, so it will not pass a release on them.",
                format::count(reports),
                format::count(usage)
            )}
        </p>
    }
}

#[component]
fn MatrixTable(matrix: Matrix, limits: Limits, app_id: String) -> impl IntoView {
    let metric = matrix.metric;
    let caption = format!(
        "Reports, {} and {} by version (newest first) and channel; coloured by the release gate's judgement of the rate against the app's limit ({}): over it, within it, or undecided on the data so far",
        metric.usage_label(),
        metric.label(),
        format::rate(metric.limit(&limits)),
    );
    let tally_view = |tally: &Tally| {
        let tier = tally.tier();
        let bounds = match tally.bounds {
            (Some(lower), Some(upper)) => format!(
                "{} to {}",
                format::rate(Some(lower)),
                format::rate(Some(upper))
            ),
            _ => String::new(),
        };
        view! {
            <span class="reports">{format!("{} reports", format::count(tally.reports))}</span>
            <span class="usage">{format!("{} {}", format::count(tally.usage), metric.usage_label())}</span>
            <span class="rate" title=bounds.clone()>{format::rate(tally.rate())}</span>
            {(!bounds.is_empty()).then(|| view! { <span class="bounds">{format!("({bounds})")}</span> })}
            <span class=format!("tier-label {}", tier.class())>{tier.label()}</span>
        }
    };
    let rows = matrix
        .versions
        .iter()
        .map(|version| {
            let cells = matrix
                .channels
                .iter()
                .map(|channel| match matrix.cell(version, channel) {
                    None => view! { <td class="none" data-version=version.clone() data-channel=channel.clone()>"—"</td> }.into_any(),
                    Some(cell) => {
                        let tier = cell.total.tier();
                        let parts = (!cell.parts.is_empty()).then(|| {
                            view! {
                                <ul class="parts">
                                    {cell
                                        .parts
                                        .iter()
                                        .map(|(part, tally)| {
                                            view! {
                                                <li data-part=part.clone()>
                                                    <span class="part">{part.clone()}</span>
                                                    {tally_view(tally)}
                                                </li>
                                            }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                        });
                        view! {
                            <td class=format!("cell {}", tier.class()) data-version=version.clone() data-channel=channel.clone()>
                                <div class="total">{tally_view(&cell.total)}</div>
                                {parts}
                                <GateLink app_id=app_id.clone() version=version.clone() channel=channel.clone() />
                            </td>
                        }
                        .into_any()
                    }
                })
                .collect_view();
            view! {
                <tr>
                    <th scope="row">{version.clone()}</th>
                    {cells}
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="matrix">
                <caption>{caption}</caption>
                <thead>
                    <tr>
                        <th scope="col">"Version"</th>
                        {matrix.channels.iter().map(|c| view! { <th scope="col">{c.clone()}</th> }).collect_view()}
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

#[component]
fn GateLink(app_id: String, version: String, channel: String) -> impl IntoView {
    let label = format!("Release gate of {version} on {channel}");
    let href = format!(
        "/apps/{app_id}/gate{}",
        Release { version, channel }.query_string()
    );
    view! {
        <A href=href attr:class="gate-link" attr:aria-label=label>
            "Release gate"
        </A>
    }
}

/// Download buttons for the app's exports (CSV and JSON), fetched with the session's token.
#[component]
fn Exports(app_id: String) -> impl IntoView {
    let failure = RwSignal::new(None::<String>);
    let button = move |label: &'static str, file: &'static str| {
        let path = format!("/api/apps/{app_id}/export/{file}");
        let on_click = move |_| {
            let path = path.clone();
            leptos::task::spawn_local(async move {
                match api::download(&path).await {
                    Ok((bytes, content_type)) => {
                        if !browser::save(file, &content_type, &bytes) {
                            failure.set(Some("The browser refused the download.".to_owned()));
                        } else {
                            failure.set(None);
                        }
                    }
                    Err(e) => failure.set(Some(e.to_string())),
                }
            });
        };
        view! { <button type="button" data-export=file on:click=on_click>{label}</button> }
    };
    view! {
        <section class="exports" aria-labelledby="exports-title">
            <h2 id="exports-title">"Download"</h2>
            <p class="actions">
                {button("Groups (CSV)", "groups.csv")}
                {button("Groups (JSON)", "groups.json")}
                {button("Releases (CSV)", "health.csv")}
                {button("Reports per day (CSV)", "series.csv")}
            </p>
            {move || failure.get().map(|why| view! { <p class="error">{why}</p> })}
        </section>
    }
}

#[component]
fn TopGroups(app_id: String, groups: Vec<rollout_page::GroupFields>) -> impl IntoView {
    if groups.is_empty() {
        return view! { <p class="empty">"No report groups in this range."</p> }.into_any();
    }
    let rows = groups
        .into_iter()
        .map(|group| {
            let dimensions = GroupDimensions {
                version: group.version.clone(),
                channel: group.channel.clone(),
                platform: group.platform.clone(),
                arch: group.arch.clone(),
                event: group.event_type,
            };
            let href = format!(
                "/apps/{app_id}/groups/{}{}",
                group.group_hash,
                dimensions.query_string()
            );
            view! {
                <tr>
                    <th scope="row"><A href=href>{group.reason}</A></th>
                    <td>{event_name(group.event_type)}</td>
                    <td>{group.version}</td>
                    <td>{group.channel}</td>
                    <td>{format!("{} / {}", group.platform, group.arch)}</td>
                    <td class="number">{format::count(group.count)}</td>
                    <td>{format::time(&group.first_seen)}</td>
                    <td>{format::time(&group.last_seen)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable caption="The groups with the most reports in this view" headers=&["Reason", "Event", "Version", "Channel", "Platform / arch", "Reports", "First seen", "Last seen"] class="groups">
{rows}
</DataTable>
    }
    .into_any()
}

/// The empty state of an app that never reported: the ways to send its first report, filled
/// in with this server's address, the app, and its key when this page was shown it; then the
/// exact curl commands.
#[component]
fn NoReportsYet(app_id: String, app_name: String) -> impl IntoView {
    let session = expect_context::<Session>();
    let origin = browser::origin();
    let key = RecentKeys::from_context().and_then(|keys| keys.get_untracked(&app_id));
    let report = curl_command(&origin, "/reports/ingest", &report_body(&app_name));
    let usage = curl_command(&origin, "/reports/usage", &usage_body(&app_name));
    let is_admin = session.is_admin;
    let where_is_the_key = move || {
        if is_admin {
            view! {
                "It was shown once when the app was created; if it is lost, issue a new one under "
                <A href="/admin/apps">"Manage apps"</A> "."
            }
            .into_any()
        } else {
            view! { "An admin of your account has it, or can issue a new one." }.into_any()
        }
    };
    let target = Target {
        origin,
        app_id,
        app_name,
        key,
    };
    view! {
        <section class="empty">
            <h2>"No reports yet"</h2>
            <p>"Send this app's first report in one of these ways."</p>
            <Integrations target where_is_the_key=where_is_the_key() />
            <section class="integration" data-way="curl" aria-label="From a shell">
                <h3>"From a shell"</h3>
                <p>
                    "With the app's report key in " <code>"ROLLWATCH_KEY"</code> ". "
                    {where_is_the_key()}
                </p>
                <pre><code>{report.clone()}</code></pre>
                <CopyButton text=report what="command" />
                <p>"Rates need usage counts too: send how many sessions a release had."</p>
                <pre><code>{usage.clone()}</code></pre>
                <CopyButton text=usage what="command" />
            </section>
        </section>
    }
}

fn report_body(app_name: &str) -> String {
    serde_json::json!({
        "application": { "name": app_name, "version": "1.0.0", "channel": "stable" },
        "system": { "platform": "linux", "arch": "x86_64", "os_version": "6.1" },
        "event": { "type": "crash", "reason": "SIGSEGV" },
    })
    .to_string()
}

fn usage_body(app_name: &str) -> String {
    serde_json::json!({
        "application": { "name": app_name, "version": "1.0.0", "channel": "stable" },
        "system": { "platform": "linux", "arch": "x86_64", "os_version": "6.1" },
        "kind": "session",
        "count": 100,
    })
    .to_string()
}

/// A copy-pasteable POST of `body` to `origin` + `path` with the key from `$ROLLWATCH_KEY`.
fn curl_command(origin: &str, path: &str, body: &str) -> String {
    // In single quotes the shell takes everything literally but the quote itself.
    let quoted = body.replace('\'', r"'\''");
    format!(
        "curl -sS {origin}{path} \\\n  -H \"Authorization: Bearer $ROLLWATCH_KEY\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{quoted}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_curl_command_names_the_real_endpoint_and_survives_quotes() {
        let command = curl_command(
            "http://127.0.0.1:8080",
            "/reports/ingest",
            &report_body("Bob's app"),
        );
        assert!(
            command.starts_with("curl -sS http://127.0.0.1:8080/reports/ingest \\\n"),
            "{command}"
        );
        assert!(command.contains("Bearer $ROLLWATCH_KEY"), "{command}");
        assert!(command.contains(r#""name":"Bob'\''s app""#), "{command}");
        let body: serde_json::Value = serde_json::from_str(&report_body("editor")).expect("json");
        assert_eq!(body["event"]["type"], "crash");
        let usage: serde_json::Value = serde_json::from_str(&usage_body("editor")).expect("json");
        assert_eq!(usage["kind"], "session");
    }
}
