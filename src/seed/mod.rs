//! `uplift seed`: data to try the API with (`--demo`) or to measure it with
//! (`--deployments N`).

mod demo;
mod volume;

pub use demo::demo;
pub use volume::{Volume, volume};
