//! What the running service shares between requests, each collaborator on its own so
//! a piece of the HTTP layer depends on what it reads, not on all of `Settings`.
//!
//! A leaf: it names the collaborators' types and imports nothing that serves
//! requests. The server registers each of these as its own `web::Data`, all in one
//! place (`http::server::register_state`).

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use crate::{
    auth::Keys, config::Settings, metrics::Metrics, service::clients::SecretVerifier,
    throttle::RateLimiter,
};

/// What a handler reaches: the database, the settings it acts on, and the collaborators.
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub keys: Arc<Keys>,
    pub metrics: Arc<Metrics>,
    pub token_endpoint: Arc<TokenEndpointLimits>,
}

/// What bounds the token endpoint's work: the client-secret checks and the per-client
/// and per-address budgets.
pub struct TokenEndpointLimits {
    pub verifier: Arc<SecretVerifier>,
    pub per_client: RateLimiter,
    pub per_address: RateLimiter,
}

impl TokenEndpointLimits {
    pub fn from_settings(settings: &Settings) -> Self {
        TokenEndpointLimits {
            verifier: Arc::new(SecretVerifier::new(settings.token_queue_limit)),
            per_client: RateLimiter::new(settings.token_requests_per_minute_per_client),
            per_address: RateLimiter::new(settings.token_requests_per_minute_per_address),
        }
    }
}

impl AppState {
    pub fn new(db: DatabaseConnection, settings: Settings, keys: Keys) -> Self {
        let metrics = Metrics::new(settings.db_max_connections);
        AppState {
            db,
            token_endpoint: Arc::new(TokenEndpointLimits::from_settings(&settings)),
            settings: Arc::new(settings),
            keys: Arc::new(keys),
            metrics: Arc::new(metrics),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits::from_settings(&self.settings)
    }

    pub fn operations(&self) -> OperationPolicy {
        OperationPolicy::from_settings(&self.settings)
    }

    pub fn idempotency(&self) -> IdempotencyPolicy {
        IdempotencyPolicy::from_settings(&self.settings)
    }
}

/// Limits on what a request may send, read by the body extractors and the header
/// check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// The body limit of calls that create operations.
    pub max_operation_body_bytes: usize,
    /// How long a client may take to send its whole body.
    pub body_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Self {
        Limits {
            max_body_bytes: settings.max_body_bytes,
            max_operation_body_bytes: settings.max_operation_body_bytes,
            body_timeout: Duration::from_secs(settings.body_timeout_seconds),
            max_header_bytes: settings.max_header_bytes,
        }
    }
}

/// How keyed (`Idempotency-Key`) calls are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyPolicy {
    /// The lease a running call renews; a retry takes over a key whose lease lapsed.
    pub lease: Duration,
    /// How long a finished call's answer is replayed.
    pub retention: Duration,
}

impl IdempotencyPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        IdempotencyPolicy {
            lease: Duration::from_secs(settings.idempotency_lease_seconds),
            retention: Duration::from_secs(settings.idempotency_retention_hours * 3600),
        }
    }
}

/// How this replica runs durable operations (`operations::Workers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationPolicy {
    /// A worker renews its claim's lease; another replica takes over once it lapses.
    pub lease: Duration,
    /// Operations this replica runs at once.
    pub workers: usize,
    /// Items a claim takes before the operation goes back in line (fair turns).
    pub batch: usize,
    /// How often an idle worker looks for work (a create on this replica wakes it
    /// at once).
    pub poll: Duration,
    /// How long finished operations are kept.
    pub retention: Duration,
    /// The most items one operation may hold.
    pub max_items: usize,
    /// The most items of one operation running at once.
    pub max_concurrency: usize,
}

impl OperationPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        OperationPolicy {
            lease: Duration::from_secs(settings.operation_lease_seconds),
            workers: settings.operation_workers,
            batch: settings.operation_batch_items,
            poll: Duration::from_millis(settings.operation_poll_ms),
            retention: Duration::from_secs(settings.operation_retention_days * 24 * 3600),
            max_items: settings.max_operation_items,
            max_concurrency: settings.max_operation_concurrency,
        }
    }
}
