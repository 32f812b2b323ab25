//! Pieces every page uses: loading, error and empty states, secrets shown once, choices.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::ApiError;
use crate::browser;
use crate::view_state::Choice;

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="loading" role="status" aria-live="polite">"Loading…"</p> }
}

#[component]
pub fn ErrorNotice(error: ApiError) -> impl IntoView {
    let text = if error.is_forbidden() {
        "This app does not exist or is not shared with you.".to_owned()
    } else {
        error.to_string()
    };
    view! { <p class="notice error" role="alert">{text}</p> }
}

/// What a call returned, as a view: loading until it answers, then `render` or the error.
pub fn loaded<T, V>(
    resource: LocalResource<Result<T, ApiError>>,
    render: impl Fn(T) -> V + Send + Sync + 'static,
) -> impl IntoView
where
    T: Clone + Send + Sync + 'static,
    V: IntoView + 'static,
{
    move || match resource.get() {
        None => view! { <Loading /> }.into_any(),
        Some(Ok(data)) => render(data).into_any(),
        Some(Err(error)) => view! { <ErrorNotice error /> }.into_any(),
    }
}

/// The outcome of the last action on a page: a confirmation or the server's refusal.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Done(String),
    Failed(ApiError),
}

#[component]
pub fn OutcomeNotice(outcome: RwSignal<Option<Outcome>>) -> impl IntoView {
    move || {
        outcome.get().map(|outcome| match outcome {
            Outcome::Done(text) => {
                view! { <p class="notice done" role="status">{text}</p> }.into_any()
            }
            Outcome::Failed(error) => view! { <ErrorNotice error /> }.into_any(),
        })
    }
}

/// Runs a mutation, reports its outcome, and bumps `refresh` so lists reload.
pub fn act<T: 'static>(
    outcome: RwSignal<Option<Outcome>>,
    refresh: RwSignal<u32>,
    call: impl std::future::Future<Output = Result<T, ApiError>> + 'static,
    done: impl FnOnce(T) -> String + 'static,
) {
    spawn_local(async move {
        let result = call.await;
        outcome.set(Some(match result {
            Ok(value) => Outcome::Done(done(value)),
            Err(error) => Outcome::Failed(error),
        }));
        refresh.update(|n| *n += 1);
    });
}

#[component]
pub fn CopyButton(text: String, #[prop(into)] what: String) -> impl IntoView {
    let status = RwSignal::new(String::new());
    let copy = move |_| {
        let text = text.clone();
        spawn_local(async move {
            let copied = browser::copy(&text).await;
            status.set(if copied {
                "Copied.".to_owned()
            } else {
                "The browser refused; select the text and copy it.".to_owned()
            });
        });
    };
    view! {
        <button type="button" on:click=copy>{format!("Copy {what}")}</button>
        <span class="copy-status" role="status" aria-live="polite">{move || status.get()}</span>
    }
}

/// A key or token the server shows once: on screen with a copy button and a warning.
#[component]
pub fn SecretOnce(
    #[prop(into)] title: String,
    secret: String,
    /// What Rollwatch keeps of it, when not its hash.
    #[prop(optional)]
    kept: Option<&'static str>,
) -> impl IntoView {
    let label = title.clone();
    let kept = kept.unwrap_or("Rollwatch keeps only its hash");
    view! {
        <section class="secret" aria-label=label>
            <h3>{title}</h3>
            <p>{format!("Shown this once; {kept}. Copy it now.")}</p>
            <code class="secret-value">{secret.clone()}</code>
            <CopyButton text=secret what="to clipboard" />
        </section>
    }
}

/// A labelled `<select>` over a `Choice`; `on_pick` gets the chosen value.
#[component]
pub fn ChoiceSelect<C: Choice>(
    #[prop(into)] label: String,
    #[prop(into)] id: String,
    current: C,
    on_pick: impl Fn(C) + 'static,
) -> impl IntoView {
    let change = move |ev| {
        if let Some(choice) = C::from_url_value(&event_target_value(&ev)) {
            on_pick(choice);
        }
    };
    view! {
        <span class="field">
        <label for=id.clone()>{label}</label>
        <select id=id on:change=change>
            {C::ALL
                .iter()
                .map(|choice| {
                    view! {
                        <option value=choice.url_value() selected=*choice == current>
                            {choice.label()}
                        </option>
                    }
                })
                .collect_view()}
        </select>
        </span>
    }
}

/// A table in a box that scrolls sideways on narrow screens, with its caption and headings.
#[component]
pub fn DataTable(
    #[prop(into)] caption: String,
    headers: &'static [&'static str],
    #[prop(optional)] class: &'static str,
    children: Children,
) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class=class>
                <caption>{caption}</caption>
                <thead>
                    <tr>
                        {headers.iter().map(|header| view! { <th scope="col">{*header}</th> }).collect_view()}
                    </tr>
                </thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}
