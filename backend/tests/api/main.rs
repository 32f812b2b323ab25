//! The backend's integration tests, one module per area, linked into a single test binary
//! (zero2prod's layout): one link of the server instead of one per file.
//!
//! clippy.toml allows `unwrap` in `#[test]` functions only; the async bodies that
//! `on_both_databases!` runs and the harness in `common` are plain functions, so `unwrap` is
//! allowed here, once, for every module.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

mod alerts;
mod bench_endpoint;
mod blobs;
mod cli;
mod concurrent_writes;
mod exactly_once;
mod export;
mod gate;
mod gate_simulation;
mod gate_slices;
mod graphql;
mod graphql_blobs;
mod group_commit;
mod harness;
mod hostile;
mod ingest;
mod metrics;
mod postgres_outage;
mod replicas;
mod rollup;
mod schema;
mod sdk_script;
mod sentry_envelopes;
mod sentry_sdk;
mod services;
mod shared_limits;
mod tokens_cli;
mod zip_bomb;
