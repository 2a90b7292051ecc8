//! Webhooks: endpoints a tenant registers, and the relay that delivers the outbox's
//! events (`outbox`) to them, signed (Standard Webhooks), retried, replayable, and
//! only to addresses the SSRF rules allow.
//!
//! ```text
//! endpoints.rs   registering, changing, rotating the secret
//! fanout.rs      outbox rows -> one delivery per endpoint that wants the event
//! relay.rs       claiming due deliveries, recording attempts, disabling endpoints
//! worker.rs      the relay loop and sweep each replica runs
//! deliveries.rs  the delivery log, replay, replay since, the test event
//! message.rs     headers and body (standard or CloudEvents binary mode)
//! signing.rs     secrets and signatures
//! guard.rs       URL rules, resolve once and vet every address
//! transport.rs   sending to the vetted addresses only (pinned), no redirects
//! policy.rs      schedule, timeout, overlap, retention from the settings
//! ```

pub mod deliveries;
pub mod endpoints;
pub mod fanout;
pub mod guard;
pub mod message;
pub mod policy;
mod relay;
pub mod signing;
pub mod transport;
mod worker;

pub use crate::address::AllowList;
pub use policy::WebhookPolicy;
pub use worker::Relay;
