//! The bulk upgrade engine: every distinct deployment id is upgraded to the latest
//! published version of its app in its own transaction, at most N at once, and the
//! outcomes come back in request order. No actix types: the routes, the CLI and the
//! tests drive it directly.

mod engine;
mod item;
mod outcome;
mod placeholders;
mod postgres;
mod sqlite;

pub use engine::{BulkUpgrade, Item, Target, distinct, upgrade, upgrade_single_where_granted};
pub(crate) use item::preview;
pub use item::{ItemError, ItemResult, Moved};
pub use outcome::{Failure, FailureCode, Outcome, Updated};
pub use placeholders::with_params;
pub use postgres::UPGRADE_ITEM as POSTGRES_UPGRADE_ITEM_SQL;
pub(crate) use postgres::locked_deployment_and_target_sql;
pub use postgres::{
    FolderGrant, UPGRADE_ITEM_WHERE_GRANTED as POSTGRES_UPGRADE_ITEM_WHERE_GRANTED_SQL,
};
pub use sqlite::UPGRADE_ITEM as SQLITE_UPGRADE_ITEM_SQL;
pub(crate) use sqlite::apply as apply_in_write_transaction;
