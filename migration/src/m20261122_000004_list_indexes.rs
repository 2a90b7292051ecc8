//! Indexes for the list call at size: each `orderBy` field has a (folder, field, id)
//! index, so a page is read in order and stops after `top` rows; on PostgreSQL,
//! trigram indexes let `searchText` (`lower(column) LIKE '%text%'`) find its matches
//! without reading every deployment of the folder.

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

migration!();

/// (name, columns after folder_id): the order-by fields, with the id that makes the
/// order total (the list call always adds it last).
const ORDERED: [(&str, &str); 4] = [
    ("ix_deployments_folder_title_id", "title, id"),
    ("ix_deployments_folder_version_id", "version, id"),
    ("ix_deployments_folder_routing_name_id", "routing_name, id"),
    ("ix_deployments_folder_id_id", "id"),
];

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for (name, columns) in ORDERED {
        db.execute_unprepared(&format!(
            "CREATE INDEX IF NOT EXISTS {name} ON deployments (folder_id, {columns})"
        ))
        .await?;
    }
    // Superseded by the (folder_id, title, id) index above.
    db.execute_unprepared("DROP INDEX IF EXISTS ix_deployments_folder_title")
        .await?;
    if manager.get_database_backend() == DbBackend::Postgres {
        // pg_trgm ships with PostgreSQL and is a trusted extension (a database
        // owner may create it). Where it still cannot be created, search works
        // without the index, by reading the folder's rows.
        db.execute_unprepared(
            r#"
DO $$
BEGIN
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%); searchText will not be indexed', SQLERRM;
END;
IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    CREATE INDEX IF NOT EXISTS ix_deployments_title_trgm
        ON deployments USING gin (lower(title) gin_trgm_ops);
    CREATE INDEX IF NOT EXISTS ix_deployments_routing_name_trgm
        ON deployments USING gin (lower(routing_name) gin_trgm_ops);
END IF;
END
$$"#,
        )
        .await?;
    }
    Ok(())
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared("DROP INDEX IF EXISTS ix_deployments_title_trgm")
        .await?;
    db.execute_unprepared("DROP INDEX IF EXISTS ix_deployments_routing_name_trgm")
        .await?;
    db.execute_unprepared(
        "CREATE INDEX IF NOT EXISTS ix_deployments_folder_title ON deployments (folder_id, title)",
    )
    .await?;
    for (name, _) in ORDERED {
        db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
            .await?;
    }
    Ok(())
}
