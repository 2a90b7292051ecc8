//! The queues' polled reads go through their partial indexes on both databases, also in
//! the generic plan PostgreSQL caches for a prepared statement after a few runs: a
//! read that misses its index reads the whole table on every poll, and the table only
//! grows (the outbox keeps every event for its retention).

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryTrait, Statement, TransactionTrait, Value,
};
use uplift::{operations, webhooks::fanout};

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

#[tokio::test]
async fn a_batch_of_a_new_operation_is_read_along_the_primary_key_not_sorted_out_of_every_item() {
    let app = spawn_app().await;
    // Rows the statistics know nothing of (the table not analyzed since they were
    // written), as when a large operation has just been created.
    let new = "00000000-0000-0000-0000-00000000000b";
    insert_operation(&app.db, new, 20_000, "pending").await;

    let txn = app.db.begin().await.unwrap();
    uplift::db::plan_queue_read(&txn).await.unwrap();
    let query = operations::next_pending(new, 500, 500).build(backend(&app.db));
    let plan = explain(&txn, query).await;
    let in_key_order = match backend(&app.db) {
        DbBackend::Postgres => {
            plan.contains("Index Scan using operation_items_pkey") && !plan.contains("Sort")
        }
        _ => plan.contains("(operation_id=? AND seq>?)") && !plan.contains("TEMP B-TREE"),
    };
    assert!(in_key_order, "the batch is not read in key order:\n{plan}");
}

/// An operation with `items` items in `status`, written directly (no worker runs it).
async fn insert_operation(db: &DatabaseConnection, id: &str, items: u32, status: &str) {
    db.execute_unprepared(&format!(
        "INSERT INTO operations (id, tenant_id, folder_id, kind, status, request, created_by, created_at, \
         dry_run, max_concurrency, total, lease_generation, claim_cursor) \
         VALUES ('{id}', 't', 1, 'upgrade', 'Running', '{{}}', 'someone', CURRENT_TIMESTAMP, false, 8, {items}, 0, 0)"
    ))
    .await
    .unwrap();
    db.execute_unprepared(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {items}) \
         INSERT INTO operation_items (operation_id, seq, raw_id, deployment_id, folder_id, status) \
         SELECT '{id}', i, 'd-' || i, 'd-' || i, 1, '{status}' FROM n"
    ))
    .await
    .unwrap();
}

/// The plan of `query` with its values bound (a custom plan on PostgreSQL), inside the
/// caller's transaction and so with its settings.
async fn explain<C: ConnectionTrait>(txn: &C, query: Statement) -> String {
    let backend = txn.get_database_backend();
    let prefix = match backend {
        DbBackend::Postgres => "EXPLAIN",
        _ => "EXPLAIN QUERY PLAN",
    };
    let values = query.values.map(|v| v.0).unwrap_or_default();
    let explain =
        Statement::from_sql_and_values(backend, format!("{prefix} {}", query.sql), values);
    plan_text(backend, txn.query_all_raw(explain).await.unwrap())
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
