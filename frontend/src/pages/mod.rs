//! One module per page.

pub mod admin_apps;
pub mod admin_tokens;
pub mod admin_users;
pub mod alerts;
pub mod apps;
pub mod audit_log;
pub mod gate;
pub mod group;
pub mod rollout;
pub mod sign_in;
