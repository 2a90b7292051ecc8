//! uplift: upgrades deployed apps to their latest published version, in bulk, safely.
//!
//! Layers, top to bottom (an arrow never points up; `../shared/tools/layers` checks):
//! `http` (everything actix) → `service`, `upgrade`, `access`, `idempotency` (the
//! domain: plain types in, plain results and `error::Error` out) → `auth`, `metrics`,
//! `db`, `config` → `entity`. `app` names the shared state; the command line lives in
//! the binary (`src/cli/`).

pub mod access;
pub mod address;
pub mod api_paths;
pub mod app;
pub mod auth;
pub mod background;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod metrics;
pub mod operations;
pub mod outbox;
pub mod rollouts;
pub mod seed;
pub mod service;
pub mod telemetry;
pub mod throttle;
pub mod upgrade;
pub mod webhooks;
