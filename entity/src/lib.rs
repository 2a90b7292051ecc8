//! sea-orm entities for uplift's schema. Plain data, no logic: the service layer in the
//! `uplift` crate owns every rule about them.

pub mod app;
pub mod app_version;
pub mod client;
pub mod deployment;
pub mod deployment_event;
pub mod deployment_tag;
pub mod folder;
pub mod idempotency_key;
pub mod operation;
pub mod operation_item;
pub mod role_assignment;
pub mod rollout;
pub mod rollout_deployment;
pub mod rollout_event;
pub mod rollout_wave;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod webhook_event;
