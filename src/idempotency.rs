//! The idempotency records: claiming a key, storing the answer, renewing the lease of a
//! call in progress, and purging old keys.
//!
//! Every write of the call that holds a key is fenced with its `Lease`: once a retry
//! has taken over a lapsed lease, the first call's late writes match no row.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::idempotency_key::{self, KeyState};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
    sea_query::Expr,
};

use crate::db;

/// The lease a claim or take-over hands out; it names this holding of the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease(String);

impl Lease {
    fn new() -> Self {
        Lease(uuid::Uuid::new_v4().to_string())
    }
}

/// Who owns a key: keys are scoped to the tenant and the token subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyId {
    pub tenant_id: String,
    pub subject: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// The `Operation-Location` of a 202 answer: a replay names the same operation.
    pub location: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key now under this lease: run it and store the answer.
    Proceed(Lease),
    /// The key's first request finished: send its answer again.
    Replay(StoredResponse),
    /// The key's first request is still running (its lease is live).
    InProgress { retry_after: Duration },
    /// The key was used with another request.
    Mismatch,
}

pub async fn claim<C: ConnectionTrait>(
    db: &C,
    id: &KeyId,
    request_hash: &str,
    lease: Duration,
    retention: Duration,
) -> Result<Claim, DbErr> {
    // Two rounds at most: the second after removing a record past its retention.
    for _ in 0..2 {
        let now = Utc::now();
        let lease_token = Lease::new();
        let inserted = idempotency_key::ActiveModel {
            tenant_id: Set(id.tenant_id.clone()),
            subject: Set(id.subject.clone()),
            key: Set(id.key.clone()),
            request_hash: Set(request_hash.to_string()),
            state: Set(KeyState::Running),
            response_status: Set(None),
            response_content_type: Set(None),
            response_body: Set(None),
            response_location: Set(None),
            lease_expires_at: Set(now + lease),
            lease_token: Set(lease_token.0.clone()),
            created_at: Set(now),
        }
        .insert(db)
        .await;
        match inserted {
            Ok(_) => return Ok(Claim::Proceed(lease_token)),
            Err(e) if db::is_unique_violation(&e) => {}
            Err(e) => return Err(e),
        }
        let Some(row) = find(db, id).await? else {
            continue;
        };
        if row.created_at + retention < now {
            idempotency_key::Entity::delete_many()
                .filter(by_id(id))
                .filter(idempotency_key::Column::CreatedAt.eq(row.created_at))
                .exec(db)
                .await?;
            continue;
        }
        if row.request_hash != request_hash {
            return Ok(Claim::Mismatch);
        }
        if row.state == KeyState::Done {
            return Ok(Claim::Replay(StoredResponse {
                status: row
                    .response_status
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(200),
                content_type: row.response_content_type,
                body: row.response_body.unwrap_or_default(),
                location: row.response_location,
            }));
        }
        if row.lease_expires_at > now {
            let retry_after = (row.lease_expires_at - now).to_std().unwrap_or_default();
            return Ok(Claim::InProgress { retry_after });
        }
        // The call that held the key stopped renewing its lease (its server died):
        // take the key over, unless another retry just did.
        return take_over(db, id, row.lease_expires_at, now + lease).await;
    }
    Ok(Claim::InProgress {
        retry_after: Duration::from_secs(1),
    })
}

async fn take_over<C: ConnectionTrait>(
    db: &C,
    id: &KeyId,
    expired_lease: DateTime<Utc>,
    new_lease: DateTime<Utc>,
) -> Result<Claim, DbErr> {
    let lease = Lease::new();
    let result = idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::LeaseExpiresAt,
            Expr::value(new_lease),
        )
        .col_expr(
            idempotency_key::Column::LeaseToken,
            Expr::value(lease.0.clone()),
        )
        .filter(by_id(id))
        .filter(idempotency_key::Column::State.eq(KeyState::Running))
        .filter(idempotency_key::Column::LeaseExpiresAt.eq(expired_lease))
        .exec(db)
        .await?;
    Ok(if result.rows_affected == 1 {
        Claim::Proceed(lease)
    } else {
        Claim::InProgress {
            retry_after: Duration::from_secs(1),
        }
    })
}

/// Stores the answer of the call that holds the key under `lease`. `false` when the key
/// is no longer held under it (the lease lapsed and a retry took the key over): nothing
/// was stored, and the new holder's answer is the one kept.
pub async fn complete<C: ConnectionTrait>(
    db: &C,
    id: &KeyId,
    lease: &Lease,
    response: &StoredResponse,
) -> Result<bool, DbErr> {
    let stored = idempotency_key::Entity::update_many()
        .col_expr(idempotency_key::Column::State, Expr::value(KeyState::Done))
        .col_expr(
            idempotency_key::Column::ResponseStatus,
            Expr::value(i32::from(response.status)),
        )
        .col_expr(
            idempotency_key::Column::ResponseContentType,
            Expr::value(response.content_type.clone()),
        )
        .col_expr(
            idempotency_key::Column::ResponseBody,
            Expr::value(response.body.clone()),
        )
        .col_expr(
            idempotency_key::Column::ResponseLocation,
            Expr::value(response.location.clone()),
        )
        .filter(held(id, lease))
        .exec(db)
        .await?;
    Ok(stored.rows_affected == 1)
}

/// Extends the lease of a call still in progress; `false` when the call no longer
/// holds the key (its lease was taken over, or the key was released).
pub async fn renew<C: ConnectionTrait>(
    db: &C,
    id: &KeyId,
    lease: &Lease,
    time: Duration,
) -> Result<bool, DbErr> {
    let result = idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::LeaseExpiresAt,
            Expr::value(Utc::now() + time),
        )
        .filter(held(id, lease))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Gives up the key held under `lease`, so the next request with it runs afresh
/// (after an answer that must not be replayed, such as a 5xx or a 401). A stored
/// answer, or another holder's lease, is left alone.
pub async fn release<C: ConnectionTrait>(db: &C, id: &KeyId, lease: &Lease) -> Result<(), DbErr> {
    idempotency_key::Entity::delete_many()
        .filter(held(id, lease))
        .exec(db)
        .await?;
    Ok(())
}

/// Removes keys older than `retention`; returns how many.
pub async fn purge_expired<C: ConnectionTrait>(db: &C, retention: Duration) -> Result<u64, DbErr> {
    let cutoff = Utc::now() - retention;
    let result = idempotency_key::Entity::delete_many()
        .filter(idempotency_key::Column::CreatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

async fn find<C: ConnectionTrait>(
    db: &C,
    id: &KeyId,
) -> Result<Option<idempotency_key::Model>, DbErr> {
    idempotency_key::Entity::find()
        .filter(by_id(id))
        .one(db)
        .await
}

/// The key's row while it is running under `lease`.
fn held(id: &KeyId, lease: &Lease) -> sea_orm::Condition {
    by_id(id)
        .add(idempotency_key::Column::State.eq(KeyState::Running))
        .add(idempotency_key::Column::LeaseToken.eq(&lease.0))
}

fn by_id(id: &KeyId) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(idempotency_key::Column::TenantId.eq(&id.tenant_id))
        .add(idempotency_key::Column::Subject.eq(&id.subject))
        .add(idempotency_key::Column::Key.eq(&id.key))
}
