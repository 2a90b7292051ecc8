//! Connecting, migrating, starting write transactions, and telling lock conflicts from
//! other database errors, for both supported backends.

use std::{
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, RuntimeErr,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
    sqlx::{
        self,
        sqlite::{SqliteJournalMode, SqliteSynchronous},
    },
};

use crate::config::Settings;

/// Opens the pool, creating the SQLite file (and its folder) when needed.
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let url = settings.database_url();
    if let Some(path) = sqlite_file_path(&url)
        && let Some(dir) = Path::new(&path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the database folder {}", dir.display()))?;
    }
    let lock_timeout = Duration::from_millis(settings.lock_timeout_ms);
    // At least the operation lease, and well above any lock wait.
    let idle_transaction_timeout = Duration::from_secs(settings.operation_lease_seconds)
        .max(lock_timeout * 5)
        .max(Duration::from_secs(3));
    let mut options = ConnectOptions::new(url.clone());
    options
        .max_connections(settings.db_max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // By default every checkout pings the connection first: a second round trip
        // for each statement (docs/benchmarks.md). A connection idle for a second may have been dropped by the server or a
        // proxy (a database restart), so those are still pinged; busy ones are not.
        .test_before_acquire_if_idle_for(Duration::from_secs(1))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |o| {
            // WAL lets readers run beside the single writer; the busy timeout is how
            // long a write transaction queues for the write lock.
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(lock_timeout)
                .foreign_keys(true)
        })
        .map_sqlx_postgres_opts(move |o| {
            // Bounded lock wait for every statement: a row held by another transaction
            // fails that item as a conflict instead of stalling the bulk call.
            // A transaction left idle that long (its process paused mid-transaction,
            // SIGSTOP or a VM freeze) is ended by the server, so the rows it locked (an
            // operation it was claiming) do not stay locked until it wakes; uplift's
            // own transactions never wait idle for more than a moment.
            o.options([
                ("lock_timeout", format!("{}ms", lock_timeout.as_millis())),
                (
                    "idle_in_transaction_session_timeout",
                    format!("{}s", idle_transaction_timeout.as_secs()),
                ),
            ])
        });
    let db = Database::connect(options)
        .await
        .with_context(|| format!("connecting to {}", redact_url(&url)))?;
    Ok(db)
}

/// Applies pending migrations. On PostgreSQL they run in one transaction holding an
/// advisory lock, so replicas starting together on an empty database take turns.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7117961222)")
            .await?;
        Migrator::up(&txn, None)
            .await
            .context("running database migrations")?;
        txn.commit()
            .await
            .context("committing database migrations")?;
        Ok(())
    } else {
        Migrator::up(db, None)
            .await
            .context("running database migrations")
    }
}

pub async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = connect(settings).await?;
    migrate(&db).await?;
    Ok(db)
}

/// Starts a transaction that will write. On SQLite it takes the write lock up front
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes can fail
/// with a busy-snapshot error that no busy timeout resolves.
pub async fn begin_write<C>(db: &C) -> Result<C::Transaction, DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    if db.get_database_backend() == DbBackend::Sqlite {
        waiting_for_sqlite_write_lock(db.begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        }))
        .await
    } else {
        db.begin().await
    }
}

/// Write transactions of this process waiting for SQLite's write lock. SQLite's busy
/// handler is not fair: a writer that commits and begins again at once (an operation's
/// worker, item after item) would keep a waiting one out until its busy timeout.
static SQLITE_WRITERS_WAITING: AtomicUsize = AtomicUsize::new(0);

/// Runs `begin`, a `BEGIN IMMEDIATE` on SQLite, counted among the writers waiting for
/// the write lock until it returns (see [`yield_to_waiting_writers`]).
pub async fn waiting_for_sqlite_write_lock<F: Future>(begin: F) -> F::Output {
    /// Uncounts the writer however the wait ends, also when its request is dropped
    /// mid-wait (a client gone): a count left behind would hold every yielding writer
    /// back for its longest wait from then on.
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            SQLITE_WRITERS_WAITING.fetch_sub(1, Ordering::SeqCst);
        }
    }
    SQLITE_WRITERS_WAITING.fetch_add(1, Ordering::SeqCst);
    let _waiting = Waiting;
    begin.await
}

/// Lets the write transactions waiting for SQLite's lock go first (for at most
/// `longest`): called by a writer about to begin its next transaction of a long run.
pub async fn yield_to_waiting_writers(longest: Duration) {
    let deadline = tokio::time::Instant::now() + longest;
    while SQLITE_WRITERS_WAITING.load(Ordering::SeqCst) > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sent on PostgreSQL inside a transaction before it reads a queue (the relay's due
/// deliveries, an operation's next batch): read the index in its order from where the
/// queue starts and stop at the limit. A queue's statistics are stale by nature (it
/// fills and drains between two analyses, and a new operation's items are in none),
/// and so is a plan cached while the table was small; both led the planner to a
/// bitmap scan of every row left, sorted for the first few (1.2 s a relay claim at
/// 41,000 pending, 45–120 ms a batch of a 100,000-item operation, against 2 and 0.2
/// ms read in order). So the read is planned at each run with its own values, and
/// never as a bitmap scan. (Turning sorts off as well made other statements of the
/// relay's claim slow.) One simple-protocol query, one round trip.
pub const QUEUE_READ_PLAN: &str =
    "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL enable_bitmapscan = off";

/// `QUEUE_READ_PLAN` on PostgreSQL; nothing on SQLite (its planner has no statistics
/// here and reads these queues by their index already).
pub async fn plan_queue_read<C: ConnectionTrait>(txn: &C) -> Result<(), DbErr> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_unprepared(QUEUE_READ_PLAN).await?;
    }
    Ok(())
}

/// True when the error means "someone else holds the row or the database right now":
/// PostgreSQL lock timeout, serialization failure or deadlock; SQLite busy or locked.
pub fn is_lock_conflict(err: &DbErr) -> bool {
    let Some(sqlx_err) = sqlx_error(err) else {
        return false;
    };
    match sqlx_err {
        sqlx::Error::Database(db_err) => {
            let code = db_err.code();
            matches!(
                code.as_deref(),
                // PostgreSQL: lock_not_available, serialization_failure, deadlock_detected
                Some("55P03" | "40001" | "40P01")
                // SQLite: BUSY, LOCKED, BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT
                | Some("5" | "6" | "261" | "517" | "773")
            )
        }
        _ => false,
    }
}

/// True when the database could not be reached at all, or ended the session under the
/// query (as opposed to refusing the query): nothing of the transaction committed, so
/// the caller may retry.
pub fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        _ => match sqlx_error(err) {
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Some(sqlx::Error::Database(db_err)) => {
                session_ended(db_err.code().as_deref().unwrap_or_default())
            }
            _ => false,
        },
    }
}

/// PostgreSQL codes of a session the server ended: a shutdown or restart (57P01
/// admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now), the
/// idle-in-transaction timeout uplift sets (25P03; a process paused inside a
/// transaction meets it when it resumes), and the connection exceptions (class 08).
fn session_ended(code: &str) -> bool {
    matches!(code, "57P01" | "57P02" | "57P03" | "25P03") || code.starts_with("08")
}

/// True when a unique constraint refused the write.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

fn sqlx_error(err: &DbErr) -> Option<&sqlx::Error> {
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

/// The file behind an `sqlite:` URL, or `None` for other databases and in-memory ones.
pub fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

/// The URL without its password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_session_ended_by_the_server_is_unavailable_and_a_refused_query_is_not() {
        for code in ["57P01", "57P02", "57P03", "25P03", "08006", "08003"] {
            assert!(super::session_ended(code), "{code}");
        }
        // lock timeout, unique violation, syntax error, SQLite busy: the query was refused.
        for code in ["55P03", "23505", "42601", "5", ""] {
            assert!(!super::session_ended(code), "{code}");
        }
    }
    use super::*;

    #[test]
    fn sqlite_file_path_strips_scheme_and_query() {
        assert_eq!(
            sqlite_file_path("sqlite://./data/uplift.db?mode=rwc").as_deref(),
            Some("./data/uplift.db")
        );
        assert_eq!(
            sqlite_file_path("sqlite:/tmp/x.db").as_deref(),
            Some("/tmp/x.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(sqlite_file_path("postgres://localhost/db"), None);
    }

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/uplift"),
            "postgres://app:***@db:5432/uplift"
        );
        assert_eq!(redact_url("postgres://db/uplift"), "postgres://db/uplift");
    }
}
