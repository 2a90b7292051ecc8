//! Room on each page of `operation_items` for both updates of every item it holds.
//!
//! An item's row is updated twice: the claim marks a whole batch `running` in one
//! transaction, then each item's own transaction records its outcome. Neither update
//! changes an indexed column, so PostgreSQL can write the new version beside the old
//! one on the same page (a HOT update: no index entry, no other page touched), but
//! only while the page has room. The claim's versions cannot be pruned before the
//! claim commits, so a page needs room for a second copy of all its rows at once; at
//! `fillfactor` 70 it had room for less than half of them, and about 30 % of the
//! updates went to other pages, with an index entry each, scattering the next
//! operation's rows among older ones and slowing each operation after it. At 40
//! (18 rows a page), both updates stay on the page. New pages follow the setting;
//! pages already written keep theirs.
//!
//! SQLite has no such setting (and updates in place).

use sea_orm_migration::{prelude::*, sea_orm::DbBackend};

migration!();

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    set_fillfactor(manager, 40).await
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    set_fillfactor(manager, 70).await
}

async fn set_fillfactor(manager: &SchemaManager<'_>, percent: u8) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "ALTER TABLE operation_items SET (fillfactor = {percent})"
            ))
            .await?;
    }
    Ok(())
}
