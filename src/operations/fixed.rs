//! Operations over a fixed list of deployments that may span several folders (each
//! item carries its own folder, which the item's statement checks on the locked row),
//! created inside the caller's transaction: a rollout starts a wave's operation in
//! the same transaction as the transition that records it, so neither exists
//! without the other.

use chrono::{DateTime, Utc};
use entity::{
    operation::{self, OperationKind, OperationStatus},
    operation_item::ItemStatus,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, Set,
    Statement, Value, sea_query::Expr,
};

use super::create::STATEMENT_BYTES;
use crate::{error::Error, service::Actor, upgrade::Target};

/// An operation over `items`, as a rollout's wave.
pub struct FixedOperation<'a> {
    pub tenant_id: &'a str,
    /// The folder the operation is listed under (its monitor's folder): the wave's
    /// first deployment's.
    pub folder_id: i32,
    pub actor: &'a Actor,
    /// In order; ids are canonical and distinct.
    pub items: &'a [FixedItem],
    pub target: Target,
    /// Items not started are skipped once this many failed.
    pub max_failures: Option<usize>,
    pub max_concurrency: usize,
    pub rollout_id: &'a str,
    pub rollout_wave: i32,
    pub run_until: Option<DateTime<Utc>>,
    pub request_json: serde_json::Value,
}

/// One deployment of a fixed operation.
pub struct FixedItem {
    pub deployment_id: String,
    pub folder_id: i32,
    /// The version it is to reach; `None`: the operation's target.
    pub target_version: Option<i32>,
}

/// Inserts the operation and its items in `txn` (the caller commits).
pub async fn create_fixed<C: ConnectionTrait>(
    txn: &C,
    new: FixedOperation<'_>,
) -> Result<operation::Model, Error> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let total = new.items.len();
    let empty = total == 0;
    let created = operation::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(new.tenant_id.to_string()),
        folder_id: Set(new.folder_id),
        kind: Set(OperationKind::Upgrade),
        status: Set(if empty {
            OperationStatus::Succeeded
        } else {
            OperationStatus::NotStarted
        }),
        request: Set(new.request_json.to_string()),
        created_by: Set(new.actor.subject.clone()),
        request_id: Set(new.actor.request_id.clone()),
        created_at: Set(now),
        started_at: Set(empty.then_some(now)),
        finished_at: Set(empty.then_some(now)),
        target_version: Set(match new.target {
            Target::Latest => None,
            Target::Version(v) => Some(v),
        }),
        dry_run: Set(false),
        max_failures: Set(new
            .max_failures
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX))),
        max_concurrency: Set(i32::try_from(new.max_concurrency).unwrap_or(i32::MAX)),
        total: Set(i32::try_from(total).unwrap_or(i32::MAX)),
        error_code: Set(None),
        error_message: Set(None),
        cancel_requested: Set(false),
        lease_owner: Set(None),
        lease_generation: Set(0),
        lease_expires_at: Set(None),
        last_served_at: Set(None),
        claim_cursor: Set(0),
        rollout_id: Set(Some(new.rollout_id.to_string())),
        rollout_wave: Set(Some(new.rollout_wave)),
        run_until: Set(new.run_until),
        // The settled head and its counts start at the columns' defaults (0).
        ..Default::default()
    }
    .insert(txn)
    .await?;
    if empty {
        super::completion::record_empty(txn, &created).await?;
    } else {
        insert_items(txn, &id, new.items).await?;
    }
    Ok(created)
}

/// One statement per `STATEMENT_BYTES` of items (an item is at most 64 bytes), each
/// chunk's items travelling as one JSON array `[[id, folder, target], …]`.
async fn insert_items<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    items: &[FixedItem],
) -> Result<(), Error> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => INSERT_POSTGRES,
        _ => INSERT_SQLITE,
    };
    const PER_INSERT: usize = STATEMENT_BYTES / 64;
    for (n, chunk) in items.chunks(PER_INSERT).enumerate() {
        let listed = serde_json::Value::Array(
            chunk
                .iter()
                .map(|i| serde_json::json!([i.deployment_id, i.folder_id, i.target_version]))
                .collect(),
        )
        .to_string();
        let values: Vec<Value> = vec![
            operation_id.into(),
            ItemStatus::Pending.as_str().into(),
            listed.into(),
            i32::try_from(n * PER_INSERT).unwrap_or(i32::MAX).into(),
        ];
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

const INSERT_POSTGRES: &str = r#"
INSERT INTO operation_items (operation_id, seq, raw_id, deployment_id, folder_id, status,
                             target_version)
SELECT $1, $4 + t.n::integer, t.item->>0, t.item->>0, (t.item->>1)::integer, $2,
       (t.item->>2)::integer
FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS t(item, n)
"#;

const INSERT_SQLITE: &str = r#"
INSERT INTO operation_items (operation_id, seq, raw_id, deployment_id, folder_id, status,
                             target_version)
SELECT ?1, ?4 + t.key + 1, json_extract(t.value, '$[0]'), json_extract(t.value, '$[0]'),
       json_extract(t.value, '$[1]'), ?2, json_extract(t.value, '$[2]')
FROM json_each(?3) AS t
"#;

/// Sets the instant from which no item of the operation starts (`None`: no limit).
pub async fn set_run_until<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    until: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    operation::Entity::update_many()
        .col_expr(operation::Column::RunUntil, Expr::value(until))
        .filter(operation::Column::Id.eq(operation_id))
        .exec(txn)
        .await?;
    Ok(())
}
