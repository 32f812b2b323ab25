//! Routes and the signed-in layout.

use leptos::prelude::*;
use leptos_router::components::{A, Outlet, ParentRoute, Redirect, Route, Router, Routes};
use leptos_router::path;

use crate::integrate::RecentKeys;
use crate::pages::{
    admin_apps::AdminApps, admin_tokens::AdminTokens, admin_users::AdminUsers, alerts::AlertsPage,
    apps::AppsPage, audit_log::AuditLogPage, gate::GatePage, group::GroupPage,
    rollout::RolloutPage, sign_in::SignIn,
};
use crate::session::{self, EndReason, Session, Stored};

#[component]
pub fn App() -> impl IntoView {
    view! {
        <Router>
            <Routes fallback=|| view! { <main><h1>"Page not found"</h1><A href="/">"Back to your apps"</A></main> }>
                <Route path=path!("/sign-in") view=SignIn />
                <ParentRoute path=path!("") view=SignedIn>
                    <Route path=path!("") view=AppsPage />
                    <Route path=path!("apps/:app") view=RolloutPage />
                    <Route path=path!("apps/:app/groups/:group") view=GroupPage />
                    <Route path=path!("apps/:app/gate") view=GatePage />
                    <Route path=path!("apps/:app/alerts") view=AlertsPage />
                    <Route path=path!("admin/apps") view=AdminApps />
                    <Route path=path!("admin/users") view=AdminUsers />
                    <Route path=path!("admin/tokens") view=AdminTokens />
                    <Route path=path!("admin/audit") view=AuditLogPage />
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// Every page but sign-in: needs a live session, which pages find in the context.
#[component]
fn SignedIn() -> impl IntoView {
    match session::current() {
        Stored::Active(session) => {
            provide_context(session.clone());
            RecentKeys::provide();
            view! {
                <Header session />
                <main>
                    <Outlet />
                </main>
            }
            .into_any()
        }
        Stored::Expired => view! { <Redirect path=EndReason::Expired.sign_in_path() /> }.into_any(),
        Stored::None => view! { <Redirect path="/sign-in" /> }.into_any(),
    }
}

#[component]
fn Header(session: Session) -> impl IntoView {
    let admin_links = session.is_admin.then(|| {
        view! {
            <A href="/admin/apps">"Manage apps"</A>
            <A href="/admin/users">"Users"</A>
            <A href="/admin/tokens">"API tokens"</A>
            <A href="/admin/audit">"Audit log"</A>
        }
    });
    view! {
        <header class="top">
            <A href="/" attr:class="brand">"Rollwatch"</A>
            <nav aria-label="Main">
                <A href="/">"Apps"</A>
                {admin_links}
            </nav>
            <div class="who">
                <span>{session.email}</span>
                <button type="button" on:click=|_| session::end(EndReason::SignedOut)>
                    "Sign out"
                </button>
            </div>
        </header>
    }
}
