//! Alerts of one app (docs/alerts.md): webhook destinations with their secret shown once,
//! "send test" and the delivery log; rules that say when to alert and where.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::{
    self, AlertDeliveries, AppAlerts, CreateAlertDestination, CreateAlertRule,
    DeleteAlertDestination, DeleteAlertRule, SendTestAlert, alert_deliveries, app_alerts,
    create_alert_destination, create_alert_rule, delete_alert_destination, delete_alert_rule,
    send_test_alert,
};
use crate::components::{DataTable, Outcome, OutcomeNotice, SecretOnce, act, loaded};
use crate::format;

use app_alerts::{AlertKind, AppAlertsAlertDestinations, AppAlertsAlertRules};

const KINDS: [(&str, &str); 4] = [
    ("GATE_FAIL", "The gate says FAIL"),
    ("CRASH_RATE", "Crash rate over the policy's limit"),
    (
        "NEW_GROUP",
        "A new group reaches N reports within M minutes",
    ),
    ("REGRESSION", "A group absent from the baseline appears"),
];

fn kind_label(kind: &AlertKind) -> &'static str {
    let name = match kind {
        AlertKind::GATE_FAIL => "GATE_FAIL",
        AlertKind::CRASH_RATE => "CRASH_RATE",
        AlertKind::NEW_GROUP => "NEW_GROUP",
        AlertKind::REGRESSION => "REGRESSION",
        AlertKind::Other(_) => "",
    };
    KINDS
        .iter()
        .find(|(value, _)| *value == name)
        .map_or("Other", |(_, label)| label)
}

fn rule_kind(value: &str) -> create_alert_rule::AlertKind {
    match value {
        "CRASH_RATE" => create_alert_rule::AlertKind::CRASH_RATE,
        "NEW_GROUP" => create_alert_rule::AlertKind::NEW_GROUP,
        "REGRESSION" => create_alert_rule::AlertKind::REGRESSION,
        _ => create_alert_rule::AlertKind::GATE_FAIL,
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let params = use_params_map();
    let app_id = Memo::new(move |_| params.read().get("app").unwrap_or_default());
    let refresh = RwSignal::new(0_u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let new_secret = RwSignal::new(None::<(String, String)>);
    let shown_log = RwSignal::new(None::<(String, String)>);
    let page = LocalResource::new(move || {
        refresh.track();
        api::call::<AppAlerts>(app_alerts::Variables {
            app_id: app_id.get(),
        })
    });
    view! {
        {loaded(page, move |data| {
            let app = app_id.get_untracked();
            let destinations = data.alert_destinations.clone();
            let names: Vec<(String, String)> =
                destinations.iter().map(|d| (d.id.clone(), d.name.clone())).collect();
            view! {
                <p class="crumbs">
                    <A href=format!("/apps/{app}")>{data.app.name.clone()}</A>
                    " › alerts"
                </p>
                <h1>"Alerts"</h1>
                <p class="hint">
                    "Every release with recent reports is evaluated in the background with the release gate's own evaluation; rules post to webhooks (signed) or Slack when one goes bad. See docs/alerts.md."
                </p>
                <OutcomeNotice outcome />
                {move || new_secret.get().map(|(name, secret)| view! {
                    <SecretOnce
                        title=format!("Signing secret of {name}")
                        secret
                        kept="Rollwatch stores none of it (it is derived from the server secret)"
                    />
                })}
                <section aria-labelledby="destinations-title">
                    <h2 id="destinations-title">"Destinations"</h2>
                    <DestinationTable destinations refresh outcome shown_log />
                    <NewDestination app_id=app.clone() refresh outcome new_secret />
                </section>
                {move || shown_log.get().map(|(id, name)| view! { <DeliveryLog destination_id=id name /> })}
                <section aria-labelledby="rules-title">
                    <h2 id="rules-title">"Rules"</h2>
                    <RuleTable rules=data.alert_rules.clone() names=names.clone() refresh outcome />
                    <NewRule app_id=app.clone() destinations=names refresh outcome />
                </section>
            }
        })}
    }
}

#[component]
fn DestinationTable(
    destinations: Vec<AppAlertsAlertDestinations>,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
    shown_log: RwSignal<Option<(String, String)>>,
) -> impl IntoView {
    if destinations.is_empty() {
        return view! { <p class="empty">"No destination yet: add a webhook below."</p> }
            .into_any();
    }
    let rows = destinations
        .into_iter()
        .map(|d| {
            let test = {
                let (id, name) = (d.id.clone(), d.name.clone());
                move |_| {
                    let variables = send_test_alert::Variables { destination_id: id.clone() };
                    let name = name.clone();
                    shown_log.set(Some((id.clone(), name.clone())));
                    act(outcome, refresh, api::call::<SendTestAlert>(variables), move |_| {
                        format!("A test alert to {name} is on its way; its delivery shows in the log.")
                    });
                }
            };
            let log = {
                let (id, name) = (d.id.clone(), d.name.clone());
                move |_| shown_log.set(Some((id.clone(), name.clone())))
            };
            let remove = {
                let (id, name) = (d.id.clone(), d.name.clone());
                move |_| {
                    let variables = delete_alert_destination::Variables { id: id.clone() };
                    let name = name.clone();
                    act(outcome, refresh, api::call::<DeleteAlertDestination>(variables), move |_| {
                        format!("Deleted {name}.")
                    });
                }
            };
            let format = match d.format {
                app_alerts::DestinationFormat::SLACK => "Slack",
                _ => "JSON",
            };
            view! {
                <tr data-destination=d.name.clone()>
                    <th scope="row">{d.name.clone()}</th>
                    <td><code>{d.url.clone()}</code></td>
                    <td>{format}</td>
                    <td>{format::time(&d.created_at)}</td>
                    <td>
                        <button type="button" on:click=test>"Send test"</button>
                        <button type="button" on:click=log>"Delivery log"</button>
                        <button type="button" on:click=remove>"Delete"</button>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable caption="Where alerts go" headers=&["Name", "URL", "Format", "Created", ""]>
            {rows}
        </DataTable>
    }
    .into_any()
}

#[component]
fn NewDestination(
    app_id: String,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
    new_secret: RwSignal<Option<(String, String)>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let url = RwSignal::new(String::new());
    let slack = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let destination = name.get_untracked().trim().to_owned();
        let variables = create_alert_destination::Variables {
            app_id: app_id.clone(),
            name: destination.clone(),
            url: url.get_untracked().trim().to_owned(),
            format: if slack.get_untracked() {
                create_alert_destination::DestinationFormat::SLACK
            } else {
                create_alert_destination::DestinationFormat::GENERIC
            },
        };
        act(
            outcome,
            refresh,
            api::call::<CreateAlertDestination>(variables),
            move |data| {
                name.set(String::new());
                url.set(String::new());
                new_secret.set(Some((
                    destination.clone(),
                    data.create_alert_destination.secret,
                )));
                format!("Added {destination}.")
            },
        );
    };
    view! {
        <form class="stacked" on:submit=submit aria-labelledby="destination-title">
            <h3 id="destination-title">"New destination"</h3>
            <label for="destination-name">"Name"</label>
            <input id="destination-name" required maxlength="64" placeholder="release channel" bind:value=name />
            <label for="destination-url">"Webhook URL"</label>
            <input id="destination-url" type="url" required placeholder="https://hooks.example.com/rollwatch" bind:value=url />
            <label class="check">
                <input type="checkbox" bind:checked=slack />
                " Slack incoming webhook (text message instead of JSON)"
            </label>
            <button type="submit">"Add destination"</button>
        </form>
    }
}

#[component]
fn DeliveryLog(destination_id: String, name: String) -> impl IntoView {
    let reload = RwSignal::new(0_u32);
    let id = destination_id.clone();
    let log = LocalResource::new(move || {
        reload.track();
        api::call::<AlertDeliveries>(alert_deliveries::Variables {
            destination_id: id.clone(),
        })
    });
    let title = format!("Delivery log of {name}");
    let label = title.clone();
    view! {
        <section aria-label=label>
            <h2>{title}</h2>
            <button type="button" on:click=move |_| reload.update(|n| *n += 1)>"Refresh log"</button>
            {loaded(log, move |data| {
                if data.alert_deliveries.is_empty() {
                    return view! { <p class="empty">"Nothing sent yet."</p> }.into_any();
                }
                let rows = data
                    .alert_deliveries
                    .into_iter()
                    .map(|d| {
                        let attempts = d
                            .attempts
                            .iter()
                            .map(|a| match (&a.status, &a.error) {
                                (Some(status), _) => format!("{status} in {} ms", a.latency_ms),
                                (None, Some(error)) => error.clone(),
                                (None, None) => "?".to_owned(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ");
                        let next = d.next_attempt_at.as_deref().map(format::time).unwrap_or_default();
                        view! {
                            <tr data-delivery=d.id.clone()>
                                <td>{format::time(&d.created_at)}</td>
                                <td>{d.event.clone()}</td>
                                <td class="delivery-state">{d.state.clone()}</td>
                                <td>{format!("{} ({attempts})", d.attempts.len())}</td>
                                <td>{next}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <DataTable caption="The newest deliveries, with each attempt" headers=&["Queued", "Event", "State", "Attempts", "Next attempt"]>
                        {rows}
                    </DataTable>
                }
                .into_any()
            })}
        </section>
    }
}

#[component]
fn RuleTable(
    rules: Vec<AppAlertsAlertRules>,
    names: Vec<(String, String)>,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
) -> impl IntoView {
    if rules.is_empty() {
        return view! { <p class="empty">"No rule yet."</p> }.into_any();
    }
    let rows = rules
        .into_iter()
        .map(|rule| {
            let remove = {
                let (id, name) = (rule.id.clone(), rule.name.clone());
                move |_| {
                    let variables = delete_alert_rule::Variables { id: id.clone() };
                    let name = name.clone();
                    act(outcome, refresh, api::call::<DeleteAlertRule>(variables), move |_| format!("Deleted {name}."))
                }
            };
            let when = match (rule.threshold, rule.window_minutes) {
                (Some(n), Some(m)) => format!("{}: {n} reports within {m} min", kind_label(&rule.kind)),
                _ => kind_label(&rule.kind).to_owned(),
            };
            let to = names
                .iter()
                .filter(|(id, _)| rule.destination_ids.contains(id))
                .map(|(_, name)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            view! {
                <tr data-rule=rule.name.clone()>
                    <th scope="row">{rule.name.clone()}</th>
                    <td>{when}</td>
                    <td>{rule.channel.clone().unwrap_or_else(|| "every channel".to_owned())}</td>
                    <td>{format!("{} min{}", rule.cooldown_minutes, if rule.notify_recovery { ", tells recovery" } else { "" })}</td>
                    <td>{to}</td>
                    <td><button type="button" on:click=remove>"Delete"</button></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable caption="When alerts fire" headers=&["Name", "When", "Channel", "Cool-down", "Destinations", ""]>
            {rows}
        </DataTable>
    }
    .into_any()
}

#[component]
fn NewRule(
    app_id: String,
    destinations: Vec<(String, String)>,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new("GATE_FAIL".to_owned());
    let channel = RwSignal::new(String::new());
    let threshold = RwSignal::new("10".to_owned());
    let window = RwSignal::new("60".to_owned());
    let cooldown = RwSignal::new("60".to_owned());
    let recovery = RwSignal::new(false);
    let chosen = RwSignal::new(Vec::<String>::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let rule_name = name.get_untracked().trim().to_owned();
        let kind_value = kind.get_untracked();
        let new_group = kind_value == "NEW_GROUP";
        let channel_value = channel.get_untracked().trim().to_owned();
        let number = |signal: RwSignal<String>| signal.get_untracked().trim().parse::<i64>().ok();
        let rule = create_alert_rule::AlertRuleInput {
            name: rule_name.clone(),
            kind: rule_kind(&kind_value),
            channel: (!channel_value.is_empty()).then_some(channel_value),
            threshold: if new_group { number(threshold) } else { None },
            window_minutes: if new_group { number(window) } else { None },
            notify_recovery: recovery.get_untracked(),
            cooldown_minutes: number(cooldown),
            destination_ids: chosen.get_untracked(),
        };
        let variables = create_alert_rule::Variables {
            app_id: app_id.clone(),
            rule,
        };
        act(
            outcome,
            refresh,
            api::call::<CreateAlertRule>(variables),
            move |_| {
                name.set(String::new());
                format!("Added the rule {rule_name}.")
            },
        );
    };
    let boxes = destinations
        .into_iter()
        .map(|(id, label)| {
            let checked_id = id.clone();
            let toggle = move |ev| {
                let on = event_target_checked(&ev);
                chosen.update(|ids| {
                    ids.retain(|x| x != &id);
                    if on {
                        ids.push(id.clone());
                    }
                });
            };
            view! {
                <label class="check">
                    <input type="checkbox" on:change=toggle prop:checked=move || chosen.read().contains(&checked_id) />
                    {format!(" {label}")}
                </label>
            }
        })
        .collect_view();
    view! {
        <form class="stacked" on:submit=submit aria-labelledby="rule-title">
            <h3 id="rule-title">"New rule"</h3>
            <label for="rule-name">"Name"</label>
            <input id="rule-name" required maxlength="64" placeholder="stable goes bad" bind:value=name />
            <label for="rule-kind">"Alert when"</label>
            <select id="rule-kind" on:change=move |ev| kind.set(event_target_value(&ev))>
                {KINDS.iter().map(|(value, label)| view! { <option value=*value>{*label}</option> }).collect_view()}
            </select>
            <label for="rule-channel">"Channel (empty: every channel)"</label>
            <input id="rule-channel" maxlength="32" bind:value=channel />
            <Show when=move || kind.get() == "NEW_GROUP">
                <label for="rule-threshold">"Reports (N)"</label>
                <input id="rule-threshold" type="number" min="1" bind:value=threshold />
                <label for="rule-window">"Within minutes (M)"</label>
                <input id="rule-window" type="number" min="1" bind:value=window />
            </Show>
            <label for="rule-cooldown">"Cool-down (minutes)"</label>
            <input id="rule-cooldown" type="number" min="0" bind:value=cooldown />
            <label class="check">
                <input type="checkbox" bind:checked=recovery />
                " Also tell when the release recovers"
            </label>
            <fieldset>
                <legend>"Send to"</legend>
                {boxes}
            </fieldset>
            <button type="submit">"Add rule"</button>
        </form>
    }
}
