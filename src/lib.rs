//! uplift: upgrades deployed apps to their latest published version, in bulk, safely.
//!
//! The HTTP layer (`routes`, `startup`) is thin; the rules live in `access`, `service`
//! and `upgrade`, which know nothing about actix and are driven directly by the CLI and
//! the tests.

pub mod access;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pipeline;
pub mod routes;
pub mod seed;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod upgrade;
