//! The queues' polled reads go through their partial indexes on both databases, also in
//! the generic plan PostgreSQL caches for a prepared statement after a few runs: a
//! read that misses its index reads the whole table on every poll, and the table only
//! grows (the outbox keeps every event for its retention).

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryTrait, Statement, TransactionTrait, Value,
};
use uplift::webhooks::fanout;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_fan_out_reads_undispatched_events_through_their_partial_index_whatever_the_plan_cache_and_statistics_say()
 {
    let app = spawn_app().await;
    fill_outbox(&app.db, 5000).await;
    for (name, query) in [
        (
            "waiting_probe",
            fanout::waiting_probe().build(backend(&app.db)),
        ),
        (
            "next_undispatched",
            fanout::next_undispatched(250).build(backend(&app.db)),
        ),
    ] {
        let plan = generic_plan(&app.db, query).await;
        assert!(
            plan.contains("ix_webhook_events_undispatched"),
            "{name} does not read the partial index:\n{plan}"
        );
    }
}

fn plan_text(backend: DbBackend, rows: Vec<sea_orm::QueryResult>) -> String {
    let column = match backend {
        DbBackend::Postgres => "QUERY PLAN",
        _ => "detail",
    };
    rows.iter()
        .map(|row| row.try_get::<String>("", column).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn backend(db: &DatabaseConnection) -> DbBackend {
    db.get_database_backend()
}

/// `dispatched` events and a few waiting. On PostgreSQL with the planner's statistics
/// taken while all of them were still waiting (as after a burst of writes, before
/// autovacuum's next look), so that a plan that trusts them expects every row to
/// match; SQLite has none (uplift never analyzes it), as in production.
async fn fill_outbox(db: &DatabaseConnection, dispatched: u32) {
    for (count, prefix) in [(dispatched, "done"), (10, "waiting")] {
        db.execute_unprepared(&format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count}) \
             INSERT INTO webhook_events (id, tenant_id, event_type, ordering_key, actor, created_at, dispatched) \
             SELECT '{prefix}-' || i, 't', 'deployment.upgraded', 'k', 'a', CURRENT_TIMESTAMP, false FROM n"
        ))
        .await
        .unwrap();
    }
    if backend(db) == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE").await.unwrap();
    }
    db.execute_unprepared("UPDATE webhook_events SET dispatched = true WHERE id LIKE 'done-%'")
        .await
        .unwrap();
}

/// The plan the database runs `query` with: on PostgreSQL the generic plan of its
/// prepared form (the one a pooled connection caches), on SQLite its only plan.
async fn generic_plan(db: &DatabaseConnection, query: Statement) -> String {
    let backend = backend(db);
    let values = query.values.map(|v| v.0).unwrap_or_default();
    // One connection: the setting and the prepared statement are per session.
    let txn = db.begin().await.unwrap();
    let explain = match backend {
        DbBackend::Postgres => {
            txn.execute_unprepared("SET LOCAL plan_cache_mode = force_generic_plan")
                .await
                .unwrap();
            txn.execute_unprepared(&format!("PREPARE planned AS {}", query.sql))
                .await
                .unwrap();
            let arguments: Vec<String> = values.iter().map(literal).collect();
            Statement::from_string(
                backend,
                format!("EXPLAIN EXECUTE planned({})", arguments.join(", ")),
            )
        }
        _ => Statement::from_sql_and_values(
            backend,
            format!("EXPLAIN QUERY PLAN {}", query.sql),
            values,
        ),
    };
    plan_text(backend, txn.query_all_raw(explain).await.unwrap())
}

/// A bound value as an SQL literal (the kinds these queries bind).
fn literal(value: &Value) -> String {
    match value {
        Value::Bool(Some(b)) => b.to_string(),
        Value::Int(Some(n)) => n.to_string(),
        Value::BigInt(Some(n)) => n.to_string(),
        Value::Unsigned(Some(n)) => n.to_string(),
        Value::BigUnsigned(Some(n)) => n.to_string(),
        Value::String(Some(s)) => format!("'{}'", s.replace('\'', "''")),
        other => panic!("no literal for {other:?}"),
    }
}
