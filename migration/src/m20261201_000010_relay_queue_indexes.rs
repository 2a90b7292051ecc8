//! The relay's queue indexes hold only the deliveries still open, so a claim's cost
//! stays flat however many delivered rows the outbox keeps.
//!
//! Before: the claim's window (the oldest due pending deliveries, in event order) was
//! read through the index of every delivery's `event_seq`, walking past each delivered
//! one first, and the ordering check (an earlier delivery of the same key still open
//! for the endpoint) walked the key's whole history. At 130,000 delivered and 30,000
//! pending one claim took 17.6 ms on PostgreSQL (130,000 rows read and dropped), and
//! the relay slowed down as the outbox grew; with these indexes, 1.0 ms.

use sea_orm_migration::prelude::*;

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    // The window, in event order.
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS ix_webhook_deliveries_pending \
         ON webhook_deliveries (event_seq) WHERE status = 'pending'",
    )
    .await?;
    // The ordering check; written exactly as the claim's predicate so that both
    // PostgreSQL and SQLite see it implies the index's.
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS ix_webhook_deliveries_open \
         ON webhook_deliveries (endpoint_id, ordering_key, event_seq) \
         WHERE status IN ('pending', 'sending')",
    )
    .await?;
    // Superseded by the partial index above: it was used by the ordering check only.
    db.execute_unprepared("DROP INDEX IF EXISTS ix_webhook_deliveries_order")
        .await?;
    Ok(())
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS ix_webhook_deliveries_order \
         ON webhook_deliveries (endpoint_id, ordering_key, event_seq)",
    )
    .await?;
    db.execute_unprepared("DROP INDEX IF EXISTS ix_webhook_deliveries_open")
        .await?;
    db.execute_unprepared("DROP INDEX IF EXISTS ix_webhook_deliveries_pending")
        .await?;
    Ok(())
}
