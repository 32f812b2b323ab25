//! The release gate of one version on one channel: the verdict CI gets from `rollwatch gate`,
//! with each rate, its confidence bounds, the baseline's, and the reasons.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{
    self, BaselineExposure, GateMetric, GateMetricStatus, GateVerdict, ReleaseGate, release_gate,
};
use crate::components::{DataTable, loaded};
use crate::format;
use crate::health::Tier;
use crate::view_state::Release;

use release_gate::{GateMetricFields, GateRateFields};

fn verdict_view(verdict: GateVerdict) -> (&'static str, Tier) {
    let words = match verdict {
        GateVerdict::Pass => "PASS: may be promoted",
        GateVerdict::Fail => "FAIL: do not promote",
        GateVerdict::InsufficientData => "INSUFFICIENT DATA: wait for more usage",
    };
    (words, Tier::of_verdict(verdict))
}

fn status_view(status: GateMetricStatus) -> (&'static str, Tier) {
    let words = match status {
        GateMetricStatus::Pass => "pass",
        GateMetricStatus::Fail => "fail",
        GateMetricStatus::InsufficientData => "insufficient data",
        GateMetricStatus::NotMeasured => "not measured",
    };
    (words, Tier::of_status(status))
}

fn metric_name(metric: GateMetric) -> &'static str {
    match metric {
        GateMetric::CrashRate => "Crash rate",
        GateMetric::UpdateFailureRate => "Update failure rate",
        GateMetric::InstallFailureRate => "Install failure rate",
    }
}

fn exposure_words(exposure: BaselineExposure) -> &'static str {
    match exposure {
        BaselineExposure::LastWindow => "over its own last window",
        BaselineExposure::SameHours => "over the same hours",
        BaselineExposure::FirstSessions => "over its first sessions, at the same adoption",
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

fn metric_row(m: GateMetricFields) -> impl IntoView {
    let (status, tier) = status_view(m.status);
    let limits = format!(
        "max {}, regression {}, at least {} trials",
        format::rate(m.max_rate),
        format::rate(m.max_regression),
        format::count(m.min_sample)
    );
    view! {
        <tr>
            <th scope="row">{metric_name(m.metric)}</th>
            <td class=tier.class()>{status}</td>
            <td>{rate_text(&m.current)}</td>
            <td>{m.baseline.as_ref().map_or_else(|| "—".to_owned(), rate_text)}</td>
            <td>{format::rate(m.relative_change)}</td>
            <td>{limits}</td>
            <td>{m.test}</td>
        </tr>
    }
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
            let (verdict, tier) = verdict_view(gate.verdict);
            let baseline = gate.baseline_version.clone().map_or_else(
                || "no baseline with enough data".to_owned(),
                |v| format!("baseline {v} {}", exposure_words(gate.baseline_exposure)),
            );
            let confidence = if gate.fail_confidence > gate.confidence {
                format!(
                    "confidence {} (each FAIL claim {}, sharing the budget with the slices)",
                    format::confidence(gate.confidence),
                    format::confidence(gate.fail_confidence)
                )
            } else {
                format!("confidence {}", format::confidence(gate.confidence))
            };
            let throttled = gate.throttled.clone();
            let window = gate.window.as_ref().map(|w| {
                format!("Evaluated {} to {}", format::time(&w.from), format::time(&w.to))
            });
            let rows = gate.metrics.into_iter().map(metric_row).collect_view();
            let slices = (!gate.slices.is_empty()).then(|| {
                let share = gate.slices.first().map(|s| s.confidence);
                let rows = gate
                    .slices
                    .into_iter()
                    .map(|slice| {
                        let (verdict, tier) = status_view(match slice.verdict {
                            GateVerdict::Pass => GateMetricStatus::Pass,
                            GateVerdict::Fail => GateMetricStatus::Fail,
                            GateVerdict::InsufficientData => GateMetricStatus::InsufficientData,
                        });
                        let crash = slice
                            .metrics
                            .iter()
                            .find(|m| m.metric == GateMetric::CrashRate);
                        view! {
                            <tr data-slice=slice.name.clone()>
                                <th scope="row">{slice.name.clone()}</th>
                                <td class=tier.class()>{verdict}</td>
                                <td>{crash.map_or_else(|| "—".to_owned(), |m| rate_text(&m.current))}</td>
                                <td>{crash.and_then(|m| m.baseline.as_ref()).map_or_else(|| "—".to_owned(), rate_text)}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                let caption = format!(
                    "Each platform and architecture, against the baseline's same slice (crashes per session, bounds at {} each, so that all slices together keep the policy's confidence); a slice that credibly fails fails the release",
                    share.map_or_else(String::new, format::confidence)
                );
                view! {
                    <DataTable caption=caption headers=&["Slice", "Verdict", "Rate (bounds), crashes of sessions", "Baseline"]>
                        {rows}
                    </DataTable>
                }
            });
            view! {
                <p class="crumbs">
                    <A href=format!("/apps/{}", app_id.get_untracked())>{data.app.name}</A>
                    " › release gate"
                </p>
                <h1>{format!("Release gate: {version} on {channel}")}</h1>
                <p class=format!("verdict {}", tier.class())>{verdict}</p>
                <p class="hint">
                    {format!("{baseline}; {confidence}. ")}
                    {window}
                </p>
                {(throttled.reports > 0 || throttled.usage > 0).then(|| view! {
                    <p class="notice throttled">
                        {format!(
                            "{} reports and {} usage messages of this app were refused for the rate limit in the window. Any refused report may be a failure of this release, so the upper bounds count them all as failures: the gate passes only if the release would pass even then.",
                            format::count(throttled.reports),
                            format::count(throttled.usage)
                        )}
                    </p>
                })}
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
                {slices}
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
