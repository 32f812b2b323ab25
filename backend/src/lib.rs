//! Rollwatch: a self-hosted rollout-health service (see DESIGN.md).

pub mod accounts;
pub mod apps;
pub mod audit;
pub mod auth;
pub mod beacon;
pub mod blobs;
pub mod config;
pub mod cors;
pub mod db;
pub mod downloads;
pub mod error;
pub mod gate;
pub mod graphql;
pub mod ingest;
pub mod keys;
pub mod listen;
pub mod model;
pub mod ratelimit;
pub mod retention;
pub mod rollup;
pub mod sdk_script;
pub mod secrets;
pub mod server;
pub mod state;
pub mod users;
pub mod web;
