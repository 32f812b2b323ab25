//! Rollwatch's web app: Leptos, rendered in the browser, talking to `/graphql`.

mod api;
mod app;
mod browser;
mod chart;
mod components;
mod format;
mod health;
mod integrate;
mod matrix;
mod pages;
mod session;
mod view_state;

fn main() {
    leptos::mount::mount_to_body(app::App);
}
