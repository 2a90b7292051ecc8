//! API tests through real HTTP against a real database: SQLite by default, PostgreSQL
//! when `UPLIFT_TEST_POSTGRES_URL` names a server (each test gets its own database).

mod auth;
mod bulk_upgrade;
mod concurrency;
mod helpers;
mod permissions;
