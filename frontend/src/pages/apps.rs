//! The apps the user may read, each with its last 24 hours against the gate policy.

use chrono::Duration;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::{self, AppSummary, Apps, app_summary, apps};
use crate::browser;
use crate::components::{DataTable, loaded};
use crate::format;
use crate::health::Tier;
use crate::session::Session;

#[component]
pub fn AppsPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let list = LocalResource::new(|| api::call::<Apps>(apps::Variables));
    view! {
            <h1>"Apps"</h1>
            {loaded(list, move |data| {
                if data.apps.is_empty() {
                    return view! { <NoApps is_admin=session.is_admin /> }.into_any();
                }
                view! {
                    <DataTable caption="Reports in the last 24 hours and status against the gate policy" headers=&["App", "Reports (24 h)", "Sessions (24 h)", "Status"]>
    {data.apps.into_iter().map(|app| view! { <AppRow app /> }).collect_view()}
    </DataTable>
                }
                .into_any()
            })}
        }
}

#[component]
fn NoApps(is_admin: bool) -> impl IntoView {
    if is_admin {
        view! {
            <section class="empty">
                <h2>"No apps yet"</h2>
                <p>
                    "Create an app to get its report key, then send its first report. "
                    <A href="/admin/apps">"Create your first app"</A>
                </p>
            </section>
        }
        .into_any()
    } else {
        view! {
            <section class="empty">
                <h2>"No apps shared with you"</h2>
                <p>"Ask an admin of your account to give you access to an app."</p>
            </section>
        }
        .into_any()
    }
}

#[component]
fn AppRow(app: apps::AppsApps) -> impl IntoView {
    let app_id = app.id.clone();
    let summary = LocalResource::new(move || {
        let variables = app_summary::Variables {
            app_id: app_id.clone(),
            since: (browser::now() - Duration::hours(24)).to_rfc3339(),
        };
        api::call::<AppSummary>(variables)
    });
    let status = loaded(summary, move |data| {
        let total = data.rollout_health.first().cloned();
        let (reports, sessions, tier) = total.map_or((0, 0, Tier::Unknown), |cell| {
            (cell.reports, cell.sessions, Tier::of_verdict(cell.verdict))
        });
        view! {
            <td>{format::count(reports)}</td>
            <td>{format::count(sessions)}</td>
            <td class=tier.class()>{tier.label()}</td>
        }
    });
    let disabled = (!app.reports_enabled).then_some(" (reports off)");
    view! {
        <tr>
            <th scope="row">
                <A href=format!("/apps/{}", app.id)>{app.name}</A>
                {disabled}
            </th>
            {status}
        </tr>
    }
}
