//! API tests through real HTTP against a real database: SQLite by default, PostgreSQL
//! when `UPLIFT_TEST_POSTGRES_URL` names a server (each test gets its own database).

mod auth;
mod bulk_upgrade;
mod bulk_upgrade_records;
mod catalog;
mod cli_operations;
mod client;
mod concurrency;
mod console;
mod deployed_apps;
mod docs;
mod extensions;
mod fixtures;
mod fleet_view;
mod helpers;
mod idempotency;
mod identity;
mod keyed_checks;
mod limits;
mod metrics;
mod object_access;
mod operation_counters;
mod operation_leases;
mod operations;
mod permissions;
mod query_plans;
mod rainbond;
mod regressions;
mod rollouts;
mod server_process;
mod single_id_calls;
mod token_attacks;
mod token_flood;
mod uipath_compat;
mod uipath_scopes;
mod webhooks;
