//! sea-orm entities: one module per table of DESIGN §4, nothing else.

pub mod accounts;
pub mod alert_deliveries;
pub mod alert_destinations;
pub mod alert_firings;
pub mod alert_rules;
pub mod api_token_apps;
pub mod api_tokens;
pub mod app_access;
pub mod apps;
pub mod audit_log;
pub mod gate_policies;
pub mod idempotency_keys;
pub mod ingest_flushes;
pub mod leases;
pub mod release_verdicts;
pub mod report_blobs;
pub mod report_counts;
pub mod report_groups;
pub mod report_keys;
pub mod throttled_counts;
pub mod usage_counts;
pub mod users;
