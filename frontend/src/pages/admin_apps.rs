//! Admin: create, rename, switch reports on and off, rotate and revoke report keys.

use leptos::prelude::*;

use crate::api::{
    self, Apps, CreateApp, RevokeReportKey, RotateReportKey, UpdateApp, apps, create_app,
    revoke_report_key, rotate_report_key, update_app,
};
use crate::browser;
use crate::components::{DataTable, Outcome, OutcomeNotice, SecretOnce, act, loaded};
use crate::format;
use crate::integrate::{Integrations, RecentKeys, Target};

/// A report key to show once, with what it belongs to.
#[derive(Clone, Debug, PartialEq)]
struct NewKey {
    app_id: String,
    app_name: String,
    key: String,
}

#[component]
pub fn AdminApps() -> impl IntoView {
    let refresh = RwSignal::new(0_u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let new_key = RwSignal::new(None::<NewKey>);
    let recent = RecentKeys::from_context();
    let list = LocalResource::new(move || {
        refresh.track();
        api::call::<Apps>(apps::Variables)
    });
    let name = RwSignal::new(String::new());
    let create = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let variables = create_app::Variables {
            name: name.get_untracked().trim().to_owned(),
        };
        act(
            outcome,
            refresh,
            api::call::<CreateApp>(variables),
            move |data| {
                name.set(String::new());
                let created = data.create_app;
                if let Some(first_key) = created.new_report_key {
                    if let Some(recent) = recent {
                        recent.remember(&created.id, &first_key.key);
                    }
                    new_key.set(Some(NewKey {
                        app_id: created.id.clone(),
                        app_name: created.name.clone(),
                        key: first_key.key,
                    }));
                }
                format!("Created {}.", created.name)
            },
        );
    };
    let context = AppActions {
        refresh,
        outcome,
        new_key,
        recent,
    };
    view! {
            <h1>"Manage apps"</h1>
            <form class="inline" on:submit=create>
                <label for="new-app-name">"New app name"</label>
                <input id="new-app-name" required maxlength="64" bind:value=name />
                <button type="submit">"Create app"</button>
            </form>
            <OutcomeNotice outcome />
            {move || {
                new_key
                    .get()
                    .map(|NewKey { app_id, app_name, key }| {
                        let target = Target {
                            origin: browser::origin(),
                            app_id,
                            app_name: app_name.clone(),
                            key: Some(key.clone()),
                        };
                        view! {
                            <SecretOnce title=format!("Report key of {app_name}") secret=key />
                            <h2>{format!("Send the reports of {app_name}")}</h2>
                            <Integrations target where_is_the_key=().into_any() />
                        }
                    })
            }}
            {loaded(list, move |data| {
                if data.apps.is_empty() {
                    return view! { <p class="empty">"No apps yet: name your first one above."</p> }.into_any();
                }
                view! {
                    <DataTable caption="Apps of your account" headers=&["Name", "Reports", "Report key", "Key actions"]>
    {data.apps.into_iter().map(|app| view! { <AppRow app actions=context /> }).collect_view()}
    </DataTable>
                }
                .into_any()
            })}
        }
}

/// What a row's actions report to.
#[derive(Clone, Copy)]
struct AppActions {
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
    new_key: RwSignal<Option<NewKey>>,
    recent: Option<RecentKeys>,
}

#[component]
fn AppRow(app: apps::AppsApps, actions: AppActions) -> impl IntoView {
    let AppActions {
        refresh,
        outcome,
        new_key,
        recent,
    } = actions;
    let id = app.id.clone();
    let name = RwSignal::new(app.name.clone());
    let rename = {
        let id = id.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let variables = update_app::Variables {
                id: id.clone(),
                name: Some(name.get_untracked().trim().to_owned()),
                reports_enabled: None,
            };
            act(
                outcome,
                refresh,
                api::call::<UpdateApp>(variables),
                move |_| format!("Renamed to {}.", name.get_untracked().trim()),
            );
        }
    };
    let enabled = app.reports_enabled;
    let toggle = {
        let id = id.clone();
        let app_name = app.name.clone();
        move |_| {
            let variables = update_app::Variables {
                id: id.clone(),
                name: None,
                reports_enabled: Some(!enabled),
            };
            let app_name = app_name.clone();
            act(
                outcome,
                refresh,
                api::call::<UpdateApp>(variables),
                move |_| {
                    let now = if enabled { "off" } else { "on" };
                    format!("Reports of {app_name} are {now}.")
                },
            );
        }
    };
    let rotate = {
        let id = id.clone();
        let app_name = app.name.clone();
        move |_| {
            let variables = rotate_report_key::Variables { app_id: id.clone() };
            let app_name = app_name.clone();
            let app_id = id.clone();
            act(
                outcome,
                refresh,
                api::call::<RotateReportKey>(variables),
                move |data| {
                    if let Some(recent) = recent {
                        recent.remember(&app_id, &data.rotate_report_key.key);
                    }
                    new_key.set(Some(NewKey {
                        app_id: app_id.clone(),
                        app_name: app_name.clone(),
                        key: data.rotate_report_key.key,
                    }));
                    format!("New key for {app_name}; the old one is revoked.")
                },
            );
        }
    };
    let revoke = {
        let app_name = app.name.clone();
        move |_| {
            let variables = revoke_report_key::Variables { app_id: id.clone() };
            let app_name = app_name.clone();
            let app_id = id.clone();
            act(
                outcome,
                refresh,
                api::call::<RevokeReportKey>(variables),
                move |_| {
                    if let Some(recent) = recent {
                        recent.forget(&app_id);
                    }
                    new_key.update(|shown| {
                        if shown.as_ref().is_some_and(|shown| shown.app_id == app_id) {
                            *shown = None;
                        }
                    });
                    format!(
                        "The key of {app_name} is revoked: its reports are refused from now on."
                    )
                },
            );
        }
    };
    let name_field = format!("app-name-{}", app.id);
    let key = app.report_key.as_ref().map_or_else(
        || "none (revoked)".to_owned(),
        |key| format!("{}… since {}", key.prefix, format::time(&key.created_at)),
    );
    let has_key = app.report_key.is_some();
    view! {
        <tr data-app=app.name.clone()>
            <th scope="row">
                <form class="inline" on:submit=rename>
                    <label for=name_field.clone() class="visually-hidden">{format!("Name of {}", app.name)}</label>
                    <input id=name_field required maxlength="64" bind:value=name />
                    <button type="submit">"Rename"</button>
                </form>
            </th>
            <td>
                {if enabled { "on " } else { "off " }}
                <button type="button" on:click=toggle>{if enabled { "Switch off" } else { "Switch on" }}</button>
            </td>
            <td><code>{key}</code></td>
            <td>
                <button type="button" on:click=rotate>{if has_key { "Rotate key" } else { "Issue key" }}</button>
                {has_key.then(|| view! { <button type="button" on:click=revoke>"Revoke key"</button> })}
            </td>
        </tr>
    }
}
