//! Progressive rollouts: waves over a selection fixed at creation, each wave run as a
//! durable operation, with bake time, failure budgets, manual gates, four-eyes
//! approval, maintenance windows and rollback.
//!
//! ```text
//! plan.rs      sizes, budgets, gates, the failure policy (validated)
//! assign.rs    which deployment falls in which wave (pure)
//! window.rs    maintenance windows in IANA zones, across DST (pure)
//! state.rs     the states and which action applies in which (pure)
//! create.rs    the plan checked against the database, and written
//! timeline.rs  the one place a transition is written, with its timeline entry
//! events.rs    the rollout.* webhook events a transition emits, in its transaction
//! progress.rs  starting waves, judging their end, bakes, gates, reverting
//! driver.rs    the loop every replica runs; claims with FOR UPDATE SKIP LOCKED
//! actions.rs   pause, resume, approve, abort, retry, rollback
//! read.rs      one rollout with its waves and timeline; the list
//! ```

mod actions;
mod assign;
mod create;
mod driver;
mod events;
mod plan;
mod progress;
mod read;
mod state;
mod timeline;
mod window;

pub use actions::{Request, act};
pub use create::{NewRollout, create};
pub use driver::{Driver, step};
pub use entity::{rollout::Model as Rollout, rollout_deployment::Model as RolloutDeployment};
pub use plan::{
    AppVersion, Gate, MAX_BAKE_SECONDS, MAX_WAVES, OnFailure, Plan, RolloutTarget, Size, Tolerance,
    WaveFolder, WavePlan,
};
pub use read::{RolloutView, WaveView, find, list, view};
pub use state::{Action, RolloutStatus, name as status_name};
pub use window::{SlotSpec, Window, WindowSpec};
