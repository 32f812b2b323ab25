//! The release gate of one version on one channel: the verdict CI gets from `rollwatch gate`,
//! with each rate, its confidence bounds, the baseline's, and the reasons.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{self, ReleaseGate, release_gate};
use crate::components::{DataTable, loaded};
use crate::format;
use crate::health::Tier;
use crate::view_state::Release;

use release_gate::{GateMetric, GateMetricStatus, GateRateFields, GateVerdict};

fn verdict_view(verdict: &GateVerdict) -> (&'static str, Tier) {
    match verdict {
        GateVerdict::PASS => ("PASS: may be promoted", Tier::Good),
        GateVerdict::FAIL => ("FAIL: do not promote", Tier::Bad),
        GateVerdict::INSUFFICIENT_DATA => ("INSUFFICIENT DATA: wait for more usage", Tier::Warn),
        GateVerdict::Other(_) => ("unknown verdict", Tier::Unknown),
    }
}

fn status_view(status: &GateMetricStatus) -> (&'static str, Tier) {
    match status {
        GateMetricStatus::PASS => ("pass", Tier::Good),
        GateMetricStatus::FAIL => ("fail", Tier::Bad),
        GateMetricStatus::INSUFFICIENT_DATA => ("insufficient data", Tier::Warn),
        GateMetricStatus::NOT_MEASURED => ("not measured", Tier::Unknown),
        GateMetricStatus::Other(_) => ("unknown", Tier::Unknown),
    }
}

fn metric_name(metric: &GateMetric) -> &'static str {
    match metric {
        GateMetric::CRASH_RATE => "Crash rate",
        GateMetric::UPDATE_FAILURE_RATE => "Update failure rate",
        GateMetric::INSTALL_FAILURE_RATE => "Install failure rate",
        GateMetric::Other(_) => "Other metric",
    }
}

/// "1.2 % (0.9 % – 1.6 %), 12 of 1 000".
fn rate_text(rate: &GateRateFields) -> String {
    format!(
        "{} ({} – {}), {} of {}",
        format::rate(rate.rate),
        format::rate(rate.lower),
        format::rate(rate.upper),
        format::count(rate.events),
        format::count(rate.trials)
    )
}

#[component]
pub fn GatePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let app_id = Memo::new(move |_| params.read().get("app").unwrap_or_default());
    let release = Memo::new(move |_| Release::from_query(|key| query.read().get(key)));
    let gate = LocalResource::new(move || {
        let Release { version, channel } = release.get();
        api::call::<ReleaseGate>(release_gate::Variables {
            app_id: app_id.get(),
            version,
            channel,
        })
    });
    view! {
        {loaded(gate, move |data| {
            let Release { version, channel } = release.get_untracked();
            let gate = data.release_gate;
            let (verdict, tier) = verdict_view(&gate.verdict);
            let baseline = gate.baseline_version.clone().map_or_else(
                || "no baseline with enough data".to_owned(),
                |v| format!("baseline {v}"),
            );
            let window = gate.window.as_ref().map(|w| {
                format!("Evaluated {} to {}", format::time(&w.from), format::time(&w.to))
            });
            let rows = gate
                .metrics
                .into_iter()
                .map(|m| {
                    let (status, tier) = status_view(&m.status);
                    let limits = format!(
                        "max {}, regression {}, at least {} trials",
                        format::rate(m.max_rate),
                        format::rate(m.max_regression),
                        format::count(m.min_sample)
                    );
                    view! {
                        <tr>
                            <th scope="row">{metric_name(&m.metric)}</th>
                            <td class=tier.class()>{status}</td>
                            <td>{rate_text(&m.current)}</td>
                            <td>{m.baseline.as_ref().map_or_else(|| "—".to_owned(), rate_text)}</td>
                            <td>{format::rate(m.relative_change)}</td>
                            <td>{limits}</td>
                            <td>{m.test}</td>
                        </tr>
                    }
                })
                .collect_view();
            view! {
                <p class="crumbs">
                    <A href=format!("/apps/{}", app_id.get_untracked())>{data.app.name}</A>
                    " › release gate"
                </p>
                <h1>{format!("Release gate: {version} on {channel}")}</h1>
                <p class=format!("verdict {}", tier.class())>{verdict}</p>
                <p class="hint">
                    {format!("{baseline}; confidence {}. ", format::rate(Some(gate.confidence)))}
                    {window}
                </p>
                {(!gate.reasons.is_empty())
                    .then(|| {
                        view! {
                            <ul class="reasons">
                                {gate.reasons.into_iter().map(|r| view! { <li>{r}</li> }).collect_view()}
                            </ul>
                        }
                    })}
                <DataTable
                    caption="Each rate with its confidence bounds, against the baseline and the policy"
                    headers=&["Metric", "Status", "Rate (bounds), events of trials", "Baseline", "Change", "Limits", "Test"]
                >
                    {rows}
                </DataTable>
                <VerdictHistory changes=data.verdict_history />
                <p class="hint">
                    "CI asks the same question with " <code>"rollwatch gate"</code>
                    " and an API token (see docs/gating.md)."
                </p>
            }
        })}
    }
}

/// How the background evaluation's verdict on this release changed (docs/alerts.md).
#[component]
fn VerdictHistory(changes: Vec<release_gate::ReleaseGateVerdictHistory>) -> impl IntoView {
    if changes.is_empty() {
        return view! {
            <p class="hint">"No background evaluation of this release yet (releases with recent reports are evaluated every few minutes)."</p>
        }
        .into_any();
    }
    let rows = changes
        .into_iter()
        .map(|c| {
            view! {
                <tr>
                    <td>{format::time(&c.evaluated_at)}</td>
                    <td>{c.previous.clone().unwrap_or_else(|| "—".to_owned())}</td>
                    <td>{c.verdict.clone()}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable caption="Verdict history, newest first" headers=&["When", "From", "To"]>
            {rows}
        </DataTable>
    }
    .into_any()
}
