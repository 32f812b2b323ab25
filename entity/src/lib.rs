//! sea-orm entities: one module per table of DESIGN §4, nothing else.

pub mod accounts;
pub mod api_token_apps;
pub mod api_tokens;
pub mod app_access;
pub mod apps;
pub mod audit_log;
pub mod gate_policies;
pub mod idempotency_keys;
pub mod ingest_flushes;
pub mod report_blobs;
pub mod report_counts;
pub mod report_groups;
pub mod report_keys;
pub mod usage_counts;
pub mod users;
