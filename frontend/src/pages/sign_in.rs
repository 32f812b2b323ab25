//! Sign-in: email and password for a session token.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{self, ApiError, Login, Role, login};
use crate::components::ErrorNotice;
use crate::session::{self, EndReason, REASON_PARAM, Session};
use crate::view_state::Choice;

#[component]
pub fn SignIn() -> impl IntoView {
    let query = use_query_map();
    let reason = move || {
        query
            .read()
            .get(REASON_PARAM)
            .as_deref()
            .and_then(EndReason::from_url_value)
            .map(|reason| view! { <p class="notice" role="status">{reason.label()}</p> })
    };
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let failure = RwSignal::new(None::<ApiError>);
    let busy = RwSignal::new(false);
    let navigate = use_navigate();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        busy.set(true);
        failure.set(None);
        let navigate = navigate.clone();
        let variables = login::Variables {
            email: email.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        spawn_local(async move {
            let answer = api::call::<Login>(variables).await;
            busy.set(false);
            match answer {
                Ok(data) => {
                    session::start(&Session {
                        token: data.login.token,
                        expires_at: data.login.expires_at,
                        email: data.login.user.email,
                        is_admin: data.login.user.role == Role::Admin,
                    });
                    navigate("/", Default::default());
                }
                Err(error) => failure.set(Some(error)),
            }
        });
    };
    view! {
        <main class="sign-in">
            <h1>"Sign in to Rollwatch"</h1>
            {reason}
            <form on:submit=submit>
                <label for="email">"Email"</label>
                <input id="email" type="email" autocomplete="username" required bind:value=email />
                <label for="password">"Password"</label>
                <input
                    id="password"
                    type="password"
                    autocomplete="current-password"
                    required
                    bind:value=password
                />
                <button type="submit" disabled=move || busy.get()>
                    {move || if busy.get() { "Signing in…" } else { "Sign in" }}
                </button>
            </form>
            {move || failure.get().map(|error| view! { <ErrorNotice error /> })}
            <p class="hint">
                "First start? The admin's email and password were printed once by "
                <code>"rollwatch serve"</code> "."
            </p>
        </main>
    }
}
