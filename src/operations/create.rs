//! Creating an operation: the row, and one item per target deployment, in one
//! transaction, so the set of items (and `total`) is fixed the moment the operation
//! exists. A selector is resolved by the database (`INSERT … SELECT`), so a 100,000-
//! deployment operation never holds its ids in memory.

use std::collections::HashSet;

use chrono::Utc;
use entity::{
    app, deployment, folder,
    operation::{self, OperationKind, OperationStatus},
    operation_item::{self, ItemStatus},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait, Set, Statement, TransactionSession, TransactionTrait, Value,
    sea_query::{Expr, ExprTrait, Query},
};

use super::request::{Selection, Selector, UpgradeRequest};
use crate::{
    db,
    domain::DeploymentId,
    error::Error,
    service::{Actor, folders, listing},
    upgrade::Target,
};

pub struct NewOperation<'a> {
    pub tenant_id: &'a str,
    pub folder: &'a folder::Model,
    pub actor: &'a Actor,
    pub request: UpgradeRequest,
    /// The body as accepted, kept for the monitor.
    pub request_json: serde_json::Value,
    /// The most items one operation may hold.
    pub max_items: usize,
}

/// Creates the operation with its items; an empty selection is created finished
/// (`Succeeded`, `total: 0`).
#[tracing::instrument(skip_all, fields(tenant = new.tenant_id, folder = new.folder.id))]
pub async fn create<C>(db: &C, mut new: NewOperation<'_>) -> Result<operation::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    if let Selection::Selector(selector) = &new.request.selection {
        selector.check()?;
    }
    if let Selection::Ids(ids) = &new.request.selection
        && ids.len() > new.max_items
    {
        return Err(Error::invalid(format!(
            "deploymentIds holds {} ids; at most {} are accepted per operation",
            ids.len(),
            new.max_items
        )));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let txn = db::begin_write(db).await?;
    operation::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(new.tenant_id.to_string()),
        folder_id: Set(new.folder.id),
        kind: Set(OperationKind::Upgrade),
        status: Set(OperationStatus::NotStarted),
        request: Set(new.request_json.to_string()),
        created_by: Set(new.actor.subject.clone()),
        request_id: Set(new.actor.request_id.clone()),
        created_at: Set(now),
        started_at: Set(None),
        finished_at: Set(None),
        target_version: Set(match new.request.target {
            Target::Latest => None,
            Target::Version(v) => Some(v),
        }),
        dry_run: Set(new.request.dry_run),
        max_failures: Set(None),
        max_concurrency: Set(i32::try_from(new.request.max_concurrency).unwrap_or(i32::MAX)),
        total: Set(0),
        error_code: Set(None),
        error_message: Set(None),
        cancel_requested: Set(false),
        lease_owner: Set(None),
        lease_generation: Set(0),
        lease_expires_at: Set(None),
        last_served_at: Set(None),
        claim_cursor: Set(0),
        rollout_id: Set(None),
        rollout_wave: Set(None),
        run_until: Set(None),
        // The settled head and its counts start at the columns' defaults (0).
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let total = match &mut new.request.selection {
        // Taken out of the request: each id is dropped as soon as it is written into
        // its statement's parameter, not held beside it.
        Selection::Ids(ids) => insert_listed(&txn, &id, new.folder.id, std::mem::take(ids)).await?,
        Selection::Selector(selector) => {
            insert_selected(
                &txn,
                &id,
                new.tenant_id,
                new.folder,
                selector,
                new.request.target,
            )
            .await?
        }
    };
    if total > new.max_items {
        // Dropping the transaction undoes the operation and its items.
        return Err(Error::invalid(format!(
            "the selector matches {total} deployments; at most {} are accepted per operation",
            new.max_items
        )));
    }
    let max_failures = new
        .request
        .max_failures
        .map(|budget| i32::try_from(budget.limit(total)).unwrap_or(i32::MAX));
    let mut update = operation::ActiveModel {
        id: Set(id.clone()),
        total: Set(i32::try_from(total).unwrap_or(i32::MAX)),
        max_failures: Set(max_failures),
        ..Default::default()
    };
    if total == 0 {
        // Nothing to do is done: a finished operation, not an error.
        update.status = Set(OperationStatus::Succeeded);
        update.started_at = Set(Some(now));
        update.finished_at = Set(Some(now));
    }
    let created = update.update(&txn).await?;
    if total == 0 {
        super::completion::record_empty(&txn, &created).await?;
    }
    txn.commit().await?;
    Ok(created)
}

/// One item per distinct listed id, numbered in the order given, by one statement per
/// `STATEMENT_BYTES` of ids: each statement's ids travel as one JSON array (`[[raw],
/// [raw, canonical], [raw, null], …]`) that the database unpacks, rather than as seven
/// bound values per row.
async fn insert_listed<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    folder_id: i32,
    ids: Vec<String>,
) -> Result<usize, Error> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => INSERT_LISTED_POSTGRES,
        _ => INSERT_LISTED_SQLITE,
    };
    let mut listed = ListedIds::new(ids);
    let mut total = 0;
    loop {
        let (chunk, count) = listed.next_chunk(STATEMENT_BYTES);
        if count == 0 {
            return Ok(total);
        }
        let values: Vec<Value> = vec![
            operation_id.into(),
            folder_id.into(),
            ItemStatus::Pending.as_str().into(),
            chunk.into(),
            i32::try_from(total).unwrap_or(i32::MAX).into(),
        ];
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        total += count;
    }
}

/// The listed ids, consumed in chunks of JSON with each distinct id once: `[raw]` when
/// it is a deployment id as written, `[raw, canonical]` when it is one spelled
/// otherwise, `[raw, null]` when it is none. Each distinct id is written once
/// (compared in canonical form; the first spelling and the order kept, as
/// `upgrade::distinct`). Only the canonical ids' 128-bit values are kept to
/// find repeats, and each id is dropped once written: a `Value` tree, or distinct items
/// with copies of each id, would cost tens of MiB for a moment at 100,000 ids.
struct ListedIds {
    ids: std::vec::IntoIter<String>,
    seen_uuids: HashSet<u128>,
    /// Ids that are no UUID (each becomes a `not_found` item): few, kept whole.
    seen_others: HashSet<String>,
}

impl ListedIds {
    fn new(ids: Vec<String>) -> Self {
        ListedIds {
            seen_uuids: HashSet::with_capacity(ids.len()),
            seen_others: HashSet::new(),
            ids: ids.into_iter(),
        }
    }

    /// The next distinct ids not seen before, about `max_bytes` of them (the chunk
    /// ends with the first id that reaches it), and how many.
    fn next_chunk(&mut self, max_bytes: usize) -> (String, usize) {
        let mut json = String::with_capacity(max_bytes.min(self.ids.len() * 84) + 84);
        let mut count = 0;
        json.push('[');
        while count == 0 || json.len() < max_bytes {
            let Some(raw) = self.ids.next() else { break };
            let canonical = DeploymentId::parse(&raw);
            let first = match &canonical {
                Some(id) => self
                    .seen_uuids
                    .insert(uuid::Uuid::parse_str(id.as_str()).map_or(0, |uuid| uuid.as_u128())),
                None => !self.seen_others.contains(&raw),
            };
            if !first {
                continue;
            }
            if count > 0 {
                json.push(',');
            }
            count += 1;
            json.push('[');
            // Serialising a `str` cannot fail.
            json.push_str(&serde_json::to_string(&raw).unwrap_or_default());
            match &canonical {
                Some(id) if id.as_str() == raw => {}
                Some(id) => {
                    json.push_str(",\"");
                    json.push_str(id.as_str());
                    json.push('"');
                }
                None => {
                    json.push_str(",null");
                    self.seen_others.insert(raw);
                }
            }
            json.push(']');
        }
        json.push(']');
        (json, count)
    }
}

/// About how many bytes of items one insert statement carries. Below one TLS record
/// (16 KiB), for two reasons. The driver (sqlx) leaves Nagle's algorithm on, so a
/// message of several records, written in several writes, has its tail held back until
/// PostgreSQL's delayed acknowledgement, 40 ms a statement. And it keeps each
/// connection's write buffer at the largest message it ever sent: one 100,000-id
/// statement left about 8 MiB behind on every pooled connection that carried one.
pub(super) const STATEMENT_BYTES: usize = 15_000;

const INSERT_LISTED_POSTGRES: &str = r#"
INSERT INTO operation_items (operation_id, seq, raw_id, deployment_id, folder_id, status)
SELECT $1, $5 + t.n::integer, t.item->>0,
       CASE jsonb_array_length(t.item) WHEN 1 THEN t.item->>0 ELSE t.item->>1 END, $2, $3
FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY AS t(item, n)
"#;

const INSERT_LISTED_SQLITE: &str = r#"
INSERT INTO operation_items (operation_id, seq, raw_id, deployment_id, folder_id, status)
SELECT ?1, ?5 + t.key + 1, json_extract(t.value, '$[0]'),
       CASE json_array_length(t.value) WHEN 1 THEN json_extract(t.value, '$[0]')
           ELSE json_extract(t.value, '$[1]') END, ?2, ?3
FROM json_each(?4) AS t
"#;

/// One item per matching deployment, numbered in id order, by one statement.
async fn insert_selected<C: ConnectionTrait>(
    txn: &C,
    operation_id: &str,
    tenant_id: &str,
    root: &folder::Model,
    selector: &Selector,
    target: Target,
) -> Result<usize, Error> {
    let folders = if selector.include_subfolders {
        folders::with_descendants(txn, root).await?
    } else {
        vec![root.id]
    };
    let matching = listing::search_and_tags(
        txn,
        tenant_id,
        selector.search_text.as_deref(),
        &selector.tags,
    )
    .await?;
    let mut select = Query::select();
    select
        .expr(Expr::val(operation_id))
        .expr(Expr::cust("ROW_NUMBER() OVER (ORDER BY deployments.id)"))
        .column((deployment::Entity, deployment::Column::Id))
        .column((deployment::Entity, deployment::Column::Id))
        .column((deployment::Entity, deployment::Column::FolderId))
        .expr(Expr::val(ItemStatus::Pending.as_str()))
        .from(deployment::Entity)
        .and_where(Expr::col((deployment::Entity, deployment::Column::TenantId)).eq(tenant_id))
        .and_where(Expr::col((deployment::Entity, deployment::Column::FolderId)).is_in(folders))
        .cond_where(matching);
    if !selector.app_system_names.is_empty() {
        let apps = app::Entity::find()
            .select_only()
            .column(app::Column::Id)
            .filter(app::Column::TenantId.eq(tenant_id))
            .filter(app::Column::SystemName.is_in(selector.app_system_names.iter().cloned()))
            .into_query();
        select.and_where(
            Expr::col((deployment::Entity, deployment::Column::AppId)).in_subquery(apps),
        );
    }
    if selector.only_outdated {
        // The version is a validated integer, written into the SQL as a literal.
        select.and_where(Expr::cust(match target {
            Target::Latest => "deployments.version < (SELECT MAX(v.version) FROM app_versions v \
                 WHERE v.app_id = deployments.app_id AND v.published)"
                .to_string(),
            Target::Version(version) => format!(
                "deployments.version < {version} AND EXISTS (SELECT 1 FROM app_versions v \
                 WHERE v.app_id = deployments.app_id AND v.published AND v.version = {version})"
            ),
        }));
    }
    let mut insert = Query::insert();
    insert
        .into_table(operation_item::Entity)
        .columns([
            operation_item::Column::OperationId,
            operation_item::Column::Seq,
            operation_item::Column::RawId,
            operation_item::Column::DeploymentId,
            operation_item::Column::FolderId,
            operation_item::Column::Status,
        ])
        .select_from(select)
        .map_err(|e| Error::Internal(anyhow::anyhow!("building the selector: {e}")))?;
    let inserted = txn.execute(&insert).await?;
    Ok(usize::try_from(inserted.rows_affected()).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade;

    /// Every chunk `ListedIds` gives at `max_bytes` a chunk, as (raw, canonical) pairs.
    fn chunks(ids: &[String], max_bytes: usize) -> Vec<Vec<(String, Option<String>)>> {
        let mut listed = ListedIds::new(ids.to_vec());
        let mut all = Vec::new();
        loop {
            let (json, count) = listed.next_chunk(max_bytes);
            let parsed: Vec<Vec<Option<String>>> = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed.len(), count, "{json}");
            if count == 0 {
                return all;
            }
            all.push(parsed.into_iter().map(pair).collect());
        }
    }

    /// What the insert statements read from one item.
    fn pair(item: Vec<Option<String>>) -> (String, Option<String>) {
        let raw = item[0].clone().unwrap();
        match item.get(1) {
            None => (raw.clone(), Some(raw)),
            Some(canonical) => (raw, canonical.clone()),
        }
    }

    #[test]
    fn listed_ids_are_written_as_the_raw_id_with_its_canonical_form_when_it_differs() {
        let ids = [
            "6F9619FF-8B86-D011-B42D-00C04FC964FF".to_string(),
            "not \"a\" uuid\\".to_string(),
            "6f9619ff-8b86-d011-b42d-00c04fc964fe".to_string(),
        ];
        let (json, count) = ListedIds::new(ids.to_vec()).next_chunk(10_000);
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([
                [ids[0], "6f9619ff-8b86-d011-b42d-00c04fc964ff"],
                [ids[1], null],
                [ids[2]]
            ])
        );
        assert_eq!(count, 3);
        assert_eq!(
            ListedIds::new(Vec::new()).next_chunk(10_000),
            ("[]".to_string(), 0)
        );
    }

    #[test]
    fn listed_ids_are_written_once_each_first_spelling_first_as_the_sync_call_does_across_chunks() {
        let ids: Vec<String> = [
            "6F9619FF-8B86-D011-B42D-00C04FC964FF",
            "x",
            "6f9619ff-8b86-d011-b42d-00c04fc964ff",
            "x",
            "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
            "y",
            "00000000-0000-0000-0000-000000000001",
            "y",
        ]
        .map(String::from)
        .to_vec();
        let sync: Vec<(String, Option<String>)> = upgrade::distinct(&ids)
            .into_iter()
            .map(|item| (item.raw, item.canonical.map(|id| id.as_str().to_string())))
            .collect();
        for max_bytes in [1, 50, 100, 10_000] {
            let chunks = chunks(&ids, max_bytes);
            assert_eq!(chunks.concat(), sync, "{max_bytes} bytes a chunk");
        }
        assert_eq!(chunks(&ids, 1).len(), sync.len(), "an id a chunk");
        assert_eq!(chunks(&ids, 10_000).len(), 1);
    }

    #[test]
    fn a_chunk_of_listed_ids_ends_with_the_id_that_reaches_its_size() {
        let ids: Vec<String> = (0..1_000u32)
            .map(|n| format!("00000000-0000-4000-8000-{n:012}"))
            .collect();
        let mut listed = ListedIds::new(ids);
        let (json, count) = listed.next_chunk(STATEMENT_BYTES);
        assert!(
            json.len() >= STATEMENT_BYTES && json.len() < STATEMENT_BYTES + 50,
            "{}",
            json.len()
        );
        assert!(json.len() < 16 * 1024, "one TLS record");
        let (_, rest) = listed.next_chunk(usize::MAX);
        assert_eq!(count + rest, 1_000);
    }
}
