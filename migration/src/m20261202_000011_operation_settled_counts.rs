//! The settled head of an operation, counted once: every item with `seq` up to
//! `settled_through` is settled (settled items never change again), and the
//! `settled_*` columns hold how many of them ended each way. The monitor then counts
//! only the items after it, about a batch, instead of every item of the operation at
//! every poll (100 ms a poll at 100,000 items). `0`, as every row from before this
//! migration has: nothing folded yet, every item counted as before.

use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261122_000001_initial_schema::{add_column, drop_column};

migration!();

const COLUMNS: [Operations; 6] = [
    Operations::SettledThrough,
    Operations::SettledUpdated,
    Operations::SettledUnchanged,
    Operations::SettledFailed,
    Operations::SettledSkipped,
    Operations::SettledCanceled,
];

async fn up(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for column in COLUMNS {
        add_column(manager, Operations::Table, integer(column).default(0)).await?;
    }
    Ok(())
}

async fn down(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    for column in COLUMNS.into_iter().rev() {
        drop_column(manager, Operations::Table, column).await?;
    }
    Ok(())
}

#[derive(DeriveIden, Clone, Copy)]
enum Operations {
    Table,
    SettledThrough,
    SettledUpdated,
    SettledUnchanged,
    SettledFailed,
    SettledSkipped,
    SettledCanceled,
}
