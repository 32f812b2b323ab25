//! Admin: read-only API tokens for CI (DESIGN §8), shown once at creation; revocation.

use leptos::prelude::*;

use crate::api::{
    self, ApiTokens, CreateApiToken, RevokeApiToken, api_tokens, create_api_token, revoke_api_token,
};
use crate::components::{DataTable, Outcome, OutcomeNotice, SecretOnce, act, loaded};
use crate::format;
use crate::pages::admin_users::{AppCheckboxes, AppChoice};

#[component]
pub fn AdminTokens() -> impl IntoView {
    let refresh = RwSignal::new(0_u32);
    let outcome = RwSignal::new(None::<Outcome>);
    let new_token = RwSignal::new(None::<(String, String)>);
    let list = LocalResource::new(move || {
        refresh.track();
        api::call::<ApiTokens>(api_tokens::Variables)
    });
    view! {
            <h1>"API tokens"</h1>
            <p class="hint">
                "Tokens let CI read rollout health and ask for release gates (" <code>"rollwatch gate --token rwt_…"</code>
                "). They can read, never change."
            </p>
            <OutcomeNotice outcome />
            {move || new_token.get().map(|(name, token)| view! { <SecretOnce title=format!("Token {name}") secret=token /> })}
            {loaded(list, move |data| {
                let apps: Vec<AppChoice> = data.apps.into_iter().map(|app| AppChoice { id: app.id, name: app.name }).collect();
                let names = apps.clone();
                let app_names = move |ids: &[String]| {
                    names
                        .iter()
                        .filter(|app| ids.contains(&app.id))
                        .map(|app| app.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let rows = data
                    .api_tokens
                    .into_iter()
                    .map(|token| {
                        let scope = if token.all_apps { "every app".to_owned() } else { app_names(&token.app_ids) };
                        let revoke = {
                            let (id, name) = (token.id.clone(), token.name.clone());
                            move |_| {
                                let variables = revoke_api_token::Variables { id: id.clone() };
                                let name = name.clone();
                                act(outcome, refresh, api::call::<RevokeApiToken>(variables), move |_| format!("Revoked {name}."));
                            }
                        };
                        let status = match &token.revoked_at {
                            Some(at) => view! { {format!("revoked {}", format::time(at))} }.into_any(),
                            None => view! { <button type="button" on:click=revoke>"Revoke"</button> }.into_any(),
                        };
                        view! {
                            <tr data-token=token.name.clone()>
                                <th scope="row">{token.name.clone()}</th>
                                <td><code>{format!("{}…", token.prefix)}</code></td>
                                <td>{scope}</td>
                                <td>{format::time(&token.created_at)}</td>
                                <td>{token.last_used_at.as_deref().map_or_else(|| "never".to_owned(), format::time)}</td>
                                <td>{token.expires_at.as_deref().map_or_else(|| "never".to_owned(), format::time)}</td>
                                <td>{status}</td>
                            </tr>
                        }
                    })
                    .collect_view();
                view! {
                    <CreateToken apps refresh outcome new_token />
                    <DataTable caption="Tokens of your account, revoked ones included" headers=&["Name", "Prefix", "Apps", "Created", "Last used", "Expires", "Status"]>
    {rows}
    </DataTable>
                }
            })}
        }
}

#[component]
fn CreateToken(
    apps: Vec<AppChoice>,
    refresh: RwSignal<u32>,
    outcome: RwSignal<Option<Outcome>>,
    new_token: RwSignal<Option<(String, String)>>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let chosen = RwSignal::new(Vec::<String>::new());
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let token_name = name.get_untracked().trim().to_owned();
        let picked = chosen.get_untracked();
        let variables = create_api_token::Variables {
            name: token_name.clone(),
            // No app picked: the token reads every app of the account.
            app_ids: (!picked.is_empty()).then_some(picked),
        };
        act(
            outcome,
            refresh,
            api::call::<CreateApiToken>(variables),
            move |data| {
                name.set(String::new());
                chosen.set(Vec::new());
                new_token.set(Some((token_name.clone(), data.create_api_token.token)));
                format!("Created {token_name}.")
            },
        );
    };
    view! {
        <form class="stacked" on:submit=submit aria-labelledby="token-title">
            <h2 id="token-title">"New token"</h2>
            <label for="token-name">"Name"</label>
            <input id="token-name" required maxlength="64" placeholder="release pipeline" bind:value=name />
            <AppCheckboxes legend="Apps it may read (none checked: every app)" id_prefix="token-app" apps chosen />
            <button type="submit">"Create token"</button>
        </form>
    }
}
