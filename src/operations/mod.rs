//! Durable bulk operations: a bulk upgrade as a database record that any replica's
//! workers carry out, that can be watched, cancelled, and resumed after a crash.
//!
//! ```text
//! create.rs    the operation and its fixed set of items, in one transaction
//! fixed.rs     an operation over listed deployments of several folders (rollout waves)
//! lease.rs     claims, leases and their fencing generation, release, stop, finish
//! item.rs      one item: its upgrade and its recorded outcome in one transaction
//! worker.rs    the workers and the sweep each replica runs
//! run_until.rs a holder's copy of `run_until`, checked as each item starts
//! monitor.rs   reading operations and items; cancel
//! counters.rs  counters counted from the items
//! completion.rs the `operation.completed` webhook event, with the final status
//! retention.rs purge after the retention period; the queue's gauges
//! request.rs   what a caller may ask for, validated
//! ```
//!
//! The synchronous bulk call and the operations share the upgrade engine's rules
//! (`upgrade/`): each item in its own transaction, tenant and folder re-checked on
//! the locked row, never backwards, the event committed with the change.

mod completion;
mod counters;
mod create;
mod fixed;
mod item;
pub mod lease;
mod monitor;
mod request;
mod retention;
mod run_until;
mod worker;

pub use counters::Counters;
pub use create::{NewOperation, create};
pub use entity::{
    operation::{Model as Operation, OperationKind, OperationStatus},
    operation_item::{ItemStatus, Model as OperationItem},
};
pub use fixed::{FixedItem, FixedOperation, create_fixed, set_run_until};
pub use item::OPERATION_ITEM as POSTGRES_OPERATION_ITEM_SQL;
pub use lease::next_pending;
pub use monitor::{
    Snapshot, cancel, cancel_within, find, items, list, load, outcome, outcomes, snapshot,
};
pub use request::{FailureBudget, Selection, Selector, UpgradeRequest, concurrency};
pub use retention::purge;
pub use worker::Workers;
