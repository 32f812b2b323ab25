//! The ways to send an app's reports (issue 13): the browser script tag, the Rust and Python
//! clients, and a Sentry SDK's DSN, each filled in with this server's address, the app and —
//! where the page knows it — its report key.
//!
//! The key is known only where the server has just shown it once (a new app, a rotated key);
//! it is then kept in memory for the rest of the page's life (`RecentKeys`), never in storage,
//! so the app's empty state can fill it in too. Everywhere else the snippets carry
//! `KEY_PLACEHOLDER` and say where to get the key.

use std::collections::HashMap;

use leptos::prelude::*;

use crate::components::CopyButton;

/// What a snippet shows where the key is not known.
pub const KEY_PLACEHOLDER: &str = "rpk_…";
/// The release the snippets name: the user replaces it with theirs.
const EXAMPLE_VERSION: &str = "1.0.0";
const EXAMPLE_CHANNEL: &str = "stable";

/// Report keys the server showed during this page's life, by app id.
#[derive(Clone, Copy)]
pub struct RecentKeys(RwSignal<HashMap<String, String>>);

impl RecentKeys {
    pub fn provide() {
        provide_context(RecentKeys(RwSignal::new(HashMap::new())));
    }

    /// Taken while a component is built: an event handler or a task has no context to ask.
    pub fn from_context() -> Option<RecentKeys> {
        use_context::<RecentKeys>()
    }

    pub fn remember(self, app_id: &str, key: &str) {
        self.0.update(|keys| {
            keys.insert(app_id.to_owned(), key.to_owned());
        });
    }

    /// A key revoked since it was shown must not be offered any more.
    pub fn forget(self, app_id: &str) {
        self.0.update(|keys| {
            keys.remove(app_id);
        });
    }

    pub fn get_untracked(self, app_id: &str) -> Option<String> {
        self.0.with_untracked(|keys| keys.get(app_id).cloned())
    }
}

/// The server and app the snippets are for.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// `scheme://host[:port]` of this server, as the browser reached it.
    pub origin: String,
    /// The numeric app id (the project id of a Sentry DSN).
    pub app_id: String,
    pub app_name: String,
    pub key: Option<String>,
}

impl Target {
    fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(KEY_PLACEHOLDER)
    }

    /// `<script src=… data-…>` for the page's `<head>`, before the app's own scripts.
    pub fn script_tag(&self) -> String {
        format!(
            "<script src=\"{}/sdk/rollwatch.js\"\n        data-key=\"{}\" data-app=\"{}\"\n        data-version=\"{EXAMPLE_VERSION}\" data-channel=\"{EXAMPLE_CHANNEL}\"></script>",
            attribute(&self.origin),
            attribute(self.key()),
            attribute(&self.app_name),
        )
    }

    /// `Cargo.toml` line and the start of `main`, for `rollwatch-client` (sdk/rust).
    pub fn rust(&self) -> String {
        // The crate speaks plain HTTP only for now (sdk/rust/README.md): say so before a user
        // wonders why an https endpoint never receives anything.
        let https_note = if self.origin.starts_with("https://") {
            "// rollwatch-client sends over http:// only for now: give it a plain-HTTP address.\n"
        } else {
            ""
        };
        format!(
            "{https_note}// Cargo.toml: rollwatch-client = {{ path = \"…/sdk/rust\" }}  (in the Rollwatch repository)\n\
             let client = rollwatch_client::Client::new(rollwatch_client::Config::new(\n    \
             {:?},\n    {:?},\n    {:?}, env!(\"CARGO_PKG_VERSION\"), {EXAMPLE_CHANNEL:?},\n));\n\
             client.install_panic_hook(); // panics become crash reports\n\
             client.session_started();\n\
             // on a failed update: client.update_failed(\"E_DISK_FULL\", Some(&log));",
            self.origin,
            self.key(),
            self.app_name,
        )
    }

    /// `pip install` and the start of the program, for the `rollwatch` package (sdk/python).
    pub fn python(&self) -> String {
        format!(
            "# pip install ./sdk/python  (from the Rollwatch repository)\n\
             import rollwatch\n\n\
             client = rollwatch.Client(\n    \
             {}, {},\n    {}, {EXAMPLE_VERSION:?}, {EXAMPLE_CHANNEL:?},\n)\n\
             client.install_excepthook()  # unhandled exceptions become crash reports\n\
             client.session_started()\n\
             # on a failed update: client.update_failed(\"E_DISK_FULL\", details=log)",
            python_string(&self.origin),
            python_string(self.key()),
            python_string(&self.app_name),
        )
    }

    /// `http(s)://<key>@<host>/<app id>` (DESIGN §5.1), for any Sentry SDK.
    pub fn sentry_dsn(&self) -> String {
        let (scheme, host) = self
            .origin
            .split_once("://")
            .unwrap_or(("https", &self.origin));
        format!("{scheme}://{}@{host}/{}", self.key(), self.app_id)
    }
}

/// Text inside a double-quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
}

/// A Python string literal: JSON's escapes are Python's.
fn python_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The four ways to integrate, each with a copy button.
#[component]
pub fn Integrations(target: Target, where_is_the_key: AnyView) -> impl IntoView {
    let key_note = if target.key.is_some() {
        view! { <p>"The app's report key is filled in below."</p> }.into_any()
    } else {
        view! {
            <p>
                "Replace " <code>{KEY_PLACEHOLDER}</code> " with the app's report key. "
                {where_is_the_key}
            </p>
        }
        .into_any()
    };
    let ways = [
        (
            "web",
            "In a web page",
            "Crashes (uncaught errors and rejected promises) and one session per page load; \
             Rollwatch.updateFailed(reason, details) and the like for the rest.",
            target.script_tag(),
            "script tag",
        ),
        (
            "rust",
            "From Rust",
            "The crate rollwatch-client: a queue on disk, sent in the background.",
            target.rust(),
            "Rust code",
        ),
        (
            "python",
            "From Python",
            "The package rollwatch (standard library only, Python 3.9+).",
            target.python(),
            "Python code",
        ),
        (
            "sentry",
            "From a Sentry SDK",
            "Give any Sentry SDK this DSN: its crashes and sessions are counted here.",
            target.sentry_dsn(),
            "DSN",
        ),
    ];
    view! {
        <section class="integrations" aria-label="Send reports">
            {key_note}
            {ways
                .into_iter()
                .map(|(id, title, about, snippet, what)| {
                    view! {
                        <section class="integration" data-way=id aria-label=title>
                            <h3>{title}</h3>
                            <p>{about}</p>
                            <pre><code>{snippet.clone()}</code></pre>
                            <CopyButton text=snippet what=what />
                        </section>
                    }
                })
                .collect_view()}
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(key: Option<&str>) -> Target {
        Target {
            origin: "https://rw.example:8443".to_owned(),
            app_id: "7".to_owned(),
            app_name: "Bob's \"app\"".to_owned(),
            key: key.map(str::to_owned),
        }
    }

    #[test]
    fn the_dsn_carries_the_key_the_host_and_the_numeric_app_id() {
        assert_eq!(
            target(Some("rpk_ab12")).sentry_dsn(),
            "https://rpk_ab12@rw.example:8443/7"
        );
        assert_eq!(target(None).sentry_dsn(), "https://rpk_…@rw.example:8443/7");
    }

    #[test]
    fn snippets_quote_the_app_name_for_their_language() {
        let t = target(Some("rpk_ab12"));
        let tag = t.script_tag();
        assert!(
            tag.starts_with("<script src=\"https://rw.example:8443/sdk/rollwatch.js\""),
            "{tag}"
        );
        assert!(tag.contains("data-key=\"rpk_ab12\""), "{tag}");
        assert!(tag.contains("data-app=\"Bob's &quot;app&quot;\""), "{tag}");
        assert!(t.rust().contains(r#""Bob's \"app\"""#), "{}", t.rust());
        assert!(t.python().contains(r#""Bob's \"app\"""#), "{}", t.python());
        assert!(t.python().contains("\"rpk_ab12\""), "{}", t.python());
        assert!(
            t.rust()
                .starts_with("// rollwatch-client sends over http:// only")
        );
    }
}
