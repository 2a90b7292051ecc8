//! Registered client applications: what the token endpoint authenticates with
//! `client_credentials`. A client belongs to one tenant, may ask for a fixed set of
//! scopes, and is known by a random id and a secret of which only an Argon2id hash is
//! kept. Deleting a client keeps its row (marked deleted) so its id is never reused and
//! the tokens it holds can be told apart from tokens of a client that never existed.

use std::{
    sync::{
        Arc, LazyLock, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::{
        PasswordHasher,
        phc::{Output, PasswordHash},
    },
};
use base64::Engine;
use chrono::Utc;
use entity::{client, role_assignment};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set, TransactionSession, TransactionTrait,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    auth::scopes::{APPS, APPS_READ, APPS_WRITE, FOLDERS_READ, is_orchestrator_scope},
    db,
    domain::TenantId,
    error::Error,
};

/// The scopes a client may be registered with: those the Apps API checks.
pub const CLIENT_SCOPES: [&str; 4] = [APPS, APPS_READ, APPS_WRITE, FOLDERS_READ];

const MAX_NAME_CHARS: usize = 200;

/// Longest secret looked at. Ours are 43 characters; anything far longer cannot be one,
/// and refusing it early keeps an oversized guess from costing more than a normal one.
pub const MAX_SECRET_BYTES: usize = 512;

/// Checks client secrets against their Argon2 hashes, boundedly. Each verification takes
/// a core for tens of milliseconds and 19 MiB of memory, and the token endpoint is
/// reachable without credentials, so:
///
/// - at most `min(cores, 8)` run at once (more would only share the cores);
/// - at most `queue_limit` wait or run at once; a request beyond that is `Busy` (429)
///   at once rather than queued without bound (20 garbage requests a second made real
///   ones wait 5–9 s);
/// - the 19 MiB memory blocks are kept and reused: one allocation each, freed after
///   every verification, left the allocator holding 19 MiB more per verification (ten
///   token requests took a fresh server from 43 to 214 MiB).
pub struct SecretVerifier {
    running: Semaphore,
    waiting: AtomicUsize,
    queue_limit: usize,
    memory: Mutex<Vec<Vec<Block>>>,
}

impl SecretVerifier {
    pub fn new(queue_limit: usize) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SecretVerifier {
            running: Semaphore::new(cores.clamp(1, 8)),
            waiting: AtomicUsize::new(0),
            queue_limit: queue_limit.max(1),
            memory: Mutex::new(Vec::new()),
        }
    }

    /// Whether `secret` matches the PHC-format `hash`. An unparsable stored hash counts
    /// as a mismatch and is logged: it is our data that is wrong, not the caller's.
    async fn verify(self: &Arc<Self>, secret: &str, hash: String) -> Result<bool, Error> {
        if secret.len() > MAX_SECRET_BYTES {
            return Ok(false);
        }
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if queued >= self.queue_limit {
            return Err(Error::Busy {
                message: "too many token requests are waiting; retry shortly".into(),
                retry_after: Duration::from_secs(1),
            });
        }
        let _permit = self
            .running
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        let secret = secret.to_string();
        // The blocking pool's thread does not inherit the request's span by itself.
        let span = tracing::Span::current();
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _in_request = span.enter();
            let mut blocks = this.take_memory();
            let result = verify_with(&mut blocks, secret.as_bytes(), &hash);
            this.give_back(blocks);
            result.unwrap_or_else(|e| {
                tracing::error!(error = %e, "a stored client secret hash could not be used");
                false
            })
        })
        .await
        .map_err(|e| Error::Internal(e.into()))
    }

    fn take_memory(&self) -> Vec<Block> {
        let mut pool = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        pool.pop().unwrap_or_default()
    }

    fn give_back(&self, blocks: Vec<Block>) {
        let mut pool = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        // As many as can run at once; more would only be kept for nothing.
        if pool.len() < 8 {
            pool.push(blocks);
        }
    }
}

/// Decrements the waiting count however the verification ends (also when the request
/// is dropped mid-wait).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Argon2 verification into reused memory: the hash's own algorithm, version and
/// parameters, then a constant-time comparison of the outputs (`Output`'s `==`), as
/// `PasswordVerifier` does, but without allocating the memory blocks each time.
fn verify_with(blocks: &mut Vec<Block>, secret: &[u8], hash: &str) -> Result<bool, String> {
    let parsed = PasswordHash::new(hash).map_err(|e| e.to_string())?;
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err("the stored hash has no salt or output".into());
    };
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    blocks.resize(params.block_count(), Block::default());
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(secret, salt.as_ref(), &mut out, &mut blocks[..])
        .map_err(|e| e.to_string())?;
    let computed = Output::new(&out).map_err(|e| e.to_string())?;
    Ok(&computed == expected)
}

/// The hash an unknown client id is verified against, with the same parameters as real
/// hashes: a request for an id that does not exist then costs what a wrong secret costs,
/// so the answer's timing does not reveal which ids exist.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_secret(&random_token(32)).expect("hashing a random secret with default parameters")
});

/// A client as just created: the only moment its secret exists in clear.
#[derive(Debug)]
pub struct NewClient {
    pub client: client::Model,
    pub secret: String,
}

/// Splits a space-separated scope list, keeping the first occurrence of each scope in
/// order, and refuses any scope a client cannot hold.
pub fn parse_scopes(raw: &str) -> Result<Vec<String>, String> {
    let mut scopes: Vec<String> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    for scope in raw.split_whitespace() {
        if !CLIENT_SCOPES.contains(&scope) && !is_orchestrator_scope(scope) {
            unknown.push(scope);
        } else if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_string());
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown scope(s) {}; a client may hold {}, and UiPath's Orchestrator scopes (OR.Execution, OR.Jobs.Read, …), which grant nothing more here",
            unknown.join(", "),
            CLIENT_SCOPES.join(", ")
        ));
    }
    if scopes.is_empty() {
        return Err(format!(
            "a client needs at least one scope out of {}",
            CLIENT_SCOPES.join(", ")
        ));
    }
    Ok(scopes)
}

/// The scopes a stored client holds.
pub fn scopes_of(client: &client::Model) -> Vec<String> {
    client
        .scopes
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Registers a client and returns it with its secret (shown once, never stored).
#[tracing::instrument(skip_all, fields(tenant, name))]
pub async fn create<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    name: &str,
    scope: &str,
) -> Result<NewClient, Error> {
    let tenant = TenantId::parse(tenant.trim())?;
    let tenant = tenant.as_str();
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid(format!(
            "client name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    let scopes = parse_scopes(scope).map_err(Error::Invalid)?;
    let secret = random_token(32);
    let to_hash = secret.clone();
    // The blocking pool's thread does not inherit the request's span by itself.
    let span = tracing::Span::current();
    let secret_hash = tokio::task::spawn_blocking(move || span.in_scope(|| hash_secret(&to_hash)))
        .await
        .map_err(|e| Error::Internal(e.into()))??;
    let client = client::ActiveModel {
        client_id: Set(Uuid::new_v4().to_string()),
        tenant_id: Set(tenant.to_string()),
        name: Set(name.to_string()),
        scopes: Set(scopes.join(" ")),
        secret_hash: Set(secret_hash),
        created_at: Set(Utc::now()),
        deleted_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewClient { client, secret })
}

/// The tenant's clients, oldest first; deleted ones only when asked for.
#[tracing::instrument(skip_all, fields(tenant))]
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    include_deleted: bool,
) -> Result<Vec<client::Model>, Error> {
    let mut query = client::Entity::find().filter(client::Column::TenantId.eq(tenant));
    if !include_deleted {
        query = query.filter(client::Column::DeletedAt.is_null());
    }
    Ok(query
        .order_by_asc(client::Column::CreatedAt)
        .order_by_asc(client::Column::ClientId)
        .all(db)
        .await?)
}

/// What `delete` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    /// Marked deleted now; this many role assignments of the client were removed.
    Now { roles_removed: u64 },
    /// It had been deleted before; nothing changed.
    Already,
}

/// Deletes a client of `tenant`: it can no longer get tokens, the tokens it holds stop
/// working (see `ensure_active`), and its role assignments go with it, in one
/// transaction. 404 when the tenant has no such client.
#[tracing::instrument(skip_all, fields(tenant, client_id))]
pub async fn delete<C>(db: &C, tenant: &str, client_id: &str) -> Result<Deleted, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let txn = db::begin_write(db).await?;
    let found = client::Entity::find_by_id(client_id.trim().to_string())
        .filter(client::Column::TenantId.eq(tenant))
        .one(&txn)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no client {client_id} in tenant {tenant}")))?;
    if found.deleted_at.is_some() {
        return Ok(Deleted::Already);
    }
    let client_id = found.client_id.clone();
    let mut active = found.into_active_model();
    active.deleted_at = Set(Some(Utc::now()));
    active.update(&txn).await?;
    let removed = role_assignment::Entity::delete_many()
        .filter(role_assignment::Column::TenantId.eq(tenant))
        .filter(role_assignment::Column::Subject.eq(client_id))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(Deleted::Now {
        roles_removed: removed,
    })
}

/// Checks a client id and secret. Every failure (unknown id, deleted client, wrong
/// secret) is the same `None` after the same amount of work: one indexed read and one
/// Argon2 verification, against a dummy hash when there is no live client.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn authenticate<C: ConnectionTrait>(
    db: &C,
    verifier: &Arc<SecretVerifier>,
    client_id: &str,
    secret: &str,
) -> Result<Option<client::Model>, Error> {
    let found = if could_be_client_id(client_id) {
        client::Entity::find_by_id(client_id.to_string())
            .one(db)
            .await?
            .filter(|c| c.deleted_at.is_none())
    } else {
        None
    };
    let hash = match &found {
        Some(client) => client.secret_hash.clone(),
        None => DUMMY_HASH.clone(),
    };
    let matches = verifier.verify(secret, hash).await?;
    Ok(found.filter(|_| matches))
}

/// Refuses a token issued to a client that has since been deleted (or that names a
/// client of another tenant, or whose subject is not the client). One primary-key
/// read; called only for tokens that carry a `client_id` claim.
pub async fn ensure_active<C: ConnectionTrait>(
    db: &C,
    client_id: &str,
    subject: &str,
    tenant: &str,
) -> Result<(), Error> {
    let refused = || {
        Error::InvalidToken("the client application this token was issued to was deleted".into())
    };
    if subject != client_id || !could_be_client_id(client_id) {
        return Err(refused());
    }
    let client = client::Entity::find_by_id(client_id.to_string())
        .one(db)
        .await?
        .ok_or_else(refused)?;
    if client.deleted_at.is_some() || client.tenant_id != tenant {
        return Err(refused());
    }
    Ok(())
}

/// Ids we hand out are UUIDs. Anything longer than the column or with characters
/// outside printable ASCII cannot exist, and is not sent to the database at all
/// (PostgreSQL refuses a NUL byte in text with an error, which would become a 500).
fn could_be_client_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Hashes the secret once at start-up, so the first request for an unknown client does
/// not pay for creating the dummy hash (and stand out by its timing).
pub fn warm_up() {
    tokio::task::spawn_blocking(|| LazyLock::force(&DUMMY_HASH));
}

fn hash_secret(secret: &str) -> Result<String, Error> {
    Argon2::default()
        .hash_password(secret.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::Internal(anyhow::anyhow!("hashing a client secret: {e}")))
}

/// `bytes` random bytes from the thread-local CSPRNG, base64url without padding.
fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_split_deduplicated_and_kept_in_order() {
        assert_eq!(
            parse_scopes("  OR.Folders.Read Apps  OR.Folders.Read ").unwrap(),
            ["OR.Folders.Read", "Apps"]
        );
    }

    #[test]
    fn unknown_or_missing_scopes_are_refused_with_the_accepted_list() {
        let err = parse_scopes("Apps apps OR.Admin").unwrap_err();
        assert!(err.contains("apps, OR.Admin"), "{err}");
        assert!(err.contains("Apps.Write"), "{err}");
        assert!(parse_scopes("   ").unwrap_err().contains("at least one"));
    }

    #[test]
    fn a_secret_verifies_against_its_hash_and_nothing_else_does() {
        let hash = hash_secret("right").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let verifier = Arc::new(SecretVerifier::new(4));
            assert!(verifier.verify("right", hash.clone()).await.unwrap());
            assert!(!verifier.verify("wrong", hash.clone()).await.unwrap());
            assert!(
                !verifier
                    .verify("right", "not a phc string".into())
                    .await
                    .unwrap()
            );
            assert!(
                !verifier
                    .verify(&"x".repeat(MAX_SECRET_BYTES + 1), hash)
                    .await
                    .unwrap()
            );
        });
    }

    #[test]
    fn the_dummy_hash_uses_the_parameters_of_real_hashes() {
        let real = hash_secret("s").unwrap();
        let params = |h: &str| h.split('$').take(4).collect::<Vec<_>>().join("$");
        assert_eq!(params(&DUMMY_HASH), params(&real));
    }

    #[test]
    fn generated_secrets_are_long_url_safe_and_different() {
        let (a, b) = (random_token(32), random_token(32));
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }
}
