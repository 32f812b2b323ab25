//! Admin: invite users, set their role, the apps a member sees, and disable them.

use leptos::prelude::*;

use crate::api::{
    self, CreateUser, Role, SetUserAccess, SetUserDisabled, SetUserRole, Users, create_user,
    set_user_access, set_user_disabled, set_user_role, users,
};
use crate::components::{ChoiceSelect, DataTable, Outcome, OutcomeNotice, act, loaded};
use crate::view_state::Choice;

/// An app a user may be given access to.
#[derive(Clone, Debug, PartialEq)]
pub struct AppChoice {
    pub id: String,
    pub name: String,
}

/// Checkboxes over the account's apps, in a fieldset named by `legend`.
#[component]
pub fn AppCheckboxes(
    #[prop(into)] legend: String,
    #[prop(into)] id_prefix: String,
    apps: Vec<AppChoice>,
    chosen: RwSignal<Vec<String>>,
) -> impl IntoView {
    if apps.is_empty() {
        return view! { <p class="hint">{format!("{legend}: the account has no apps yet.")}</p> }
            .into_any();
    }
    view! {
        <fieldset class="apps">
            <legend>{legend}</legend>
            {apps
                .into_iter()
                .map(|app| {
                    let id = format!("{id_prefix}-{}", app.id);
                    let app_id = app.id.clone();
                    let checked = {
                        let app_id = app_id.clone();
                        move || chosen.read().contains(&app_id)
                    };
                    let change = move |ev| {
                        let on = event_target_checked(&ev);
                        chosen.update(|ids| {
                            ids.retain(|id| *id != app_id);
                            if on {
                                ids.push(app_id.clone());
                            }
                        });
                    };
                    view! {
                        <span class="check">
                            <input type="checkbox" id=id.clone() prop:checked=checked on:change=change />
                            <label for=id>{app.name}</label>
                        </span>
                    }
                })
                .collect_view()}
        </fieldset>
    }
    .into_any()
}

impl Choice for Role {
    const ALL: &'static [Self] = &[Role::Member, Role::Admin];
    fn url_value(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
    fn label(self) -> &'static str {
        match self {
            Role::Admin => "Admin: sees and manages everything",
            Role::Member => "Member: sees the apps chosen for them",
        }
    }
}

#[component]
pub fn AdminUsers() -> impl IntoView {
    let refresh = RwSignal::new(0_u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let list = LocalResource::new(move || {
        refresh.track();
        api::call::<Users>(users::Variables)
    });
    view! {
            <h1>"Users"</h1>
            <OutcomeNotice outcome />
            {loaded(list, move |data| {
                let apps: Vec<AppChoice> = data
                    .apps
                    .into_iter()
                    .map(|app| AppChoice { id: app.id, name: app.name })
                    .collect();
                view! {
                    <Invite apps=apps.clone() refresh outcome />
                    <DataTable caption="Users of your account" headers=&["Email", "Role", "Status", "Apps they see"]>
    {data
                                    .users
                                    .into_iter()
                                    .map(|user| view! { <UserRow user apps=apps.clone() refresh outcome /> })
                                    .collect_view()}
    </DataTable>
                }
            })}
        }
}

#[component]
fn Invite(
    apps: Vec<AppChoice>,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let role = RwSignal::new(Role::Member);
    let chosen = RwSignal::new(Vec::<String>::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let variables = create_user::Variables {
            email: email.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
            role: role.get_untracked(),
            app_ids: Some(chosen.get_untracked()),
        };
        act(
            outcome,
            refresh,
            api::call::<CreateUser>(variables),
            move |_| {
                let invited = email.get_untracked();
                email.set(String::new());
                password.set(String::new());
                chosen.set(Vec::new());
                format!(
                    "Added {invited}. Give them their password; they can change it after signing in."
                )
            },
        );
    };
    view! {
        <form class="stacked" on:submit=submit aria-labelledby="invite-title">
            <h2 id="invite-title">"Add a user"</h2>
            <label for="invite-email">"Email"</label>
            <input id="invite-email" type="email" required autocomplete="off" bind:value=email />
            <label for="invite-password">"Initial password"</label>
            <input id="invite-password" type="password" required minlength="12" autocomplete="new-password" bind:value=password />
            <ChoiceSelect label="Role" id="invite-role" current=Role::Member on_pick=move |picked| role.set(picked) />
            <AppCheckboxes legend="Apps a member sees" id_prefix="invite-app" apps chosen />
            <button type="submit">"Add user"</button>
        </form>
    }
}

#[component]
fn UserRow(
    user: users::UsersUsers,
    apps: Vec<AppChoice>,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
) -> impl IntoView {
    let user_id = user.id.clone();
    let email = user.email.clone();
    let change_role = {
        let (user_id, email) = (user_id.clone(), email.clone());
        move |role: Role| {
            let variables = set_user_role::Variables {
                user_id: user_id.clone(),
                role,
            };
            let email = email.clone();
            act(
                outcome,
                refresh,
                api::call::<SetUserRole>(variables),
                move |_| format!("{email} is now {}.", role.url_value()),
            );
        }
    };
    let disabled = user.disabled;
    let toggle = {
        let (user_id, email) = (user_id.clone(), email.clone());
        move |_| {
            let variables = set_user_disabled::Variables {
                user_id: user_id.clone(),
                disabled: !disabled,
            };
            let email = email.clone();
            act(
                outcome,
                refresh,
                api::call::<SetUserDisabled>(variables),
                move |_| {
                    if disabled {
                        format!("{email} may sign in again.")
                    } else {
                        format!("{email} is disabled and signed out everywhere.")
                    }
                },
            );
        }
    };
    let chosen = RwSignal::new(user.app_ids.clone());
    let save_access = {
        let email = email.clone();
        move |ev: leptos::ev::SubmitEvent| {
            ev.prevent_default();
            let variables = set_user_access::Variables {
                user_id: user_id.clone(),
                app_ids: chosen.get_untracked(),
            };
            let email = email.clone();
            act(
                outcome,
                refresh,
                api::call::<SetUserAccess>(variables),
                move |_| format!("Saved the apps of {email}."),
            )
        }
    };
    let role_id = format!("role-{}", user.id);
    let access = match user.role {
        Role::Admin => view! { "every app (admin)" }.into_any(),
        Role::Member => view! {
            <form class="inline" on:submit=save_access>
                <AppCheckboxes legend=format!("Apps {} sees", user.email) id_prefix=format!("access-{}", user.id) apps chosen />
                <button type="submit">"Save access"</button>
            </form>
        }
        .into_any(),
    };
    view! {
        <tr data-user=user.email.clone()>
            <th scope="row">{user.email.clone()}</th>
            <td>
                <ChoiceSelect label=format!("Role of {}", user.email) id=role_id current=user.role on_pick=change_role />
            </td>
            <td>
                {if disabled { "disabled " } else { "active " }}
                <button type="button" on:click=toggle>{if disabled { "Enable" } else { "Disable" }}</button>
            </td>
            <td>{access}</td>
        </tr>
    }
}
