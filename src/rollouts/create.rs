//! Creating a rollout: the plan checked against the database (folders, permissions,
//! coverage, overlap with other rollouts), the waves assigned, and the rollout, its
//! waves, its deployments and its first timeline entry written in one transaction.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::Utc;
use entity::{app, app_version, deployment, folder, rollout, rollout_deployment, rollout_wave};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    Set, TransactionSession, TransactionTrait, sea_query::Expr,
};

use super::{
    assign::{WaveSpec, assign},
    plan::{AppVersion, Plan, RolloutTarget},
    state::RolloutStatus,
    timeline::{self, Step},
};
use crate::{
    access::{self, Permission},
    auth::Principal,
    db,
    domain::FolderKey,
    error::Error,
    service::{Actor, folders, listing},
    upgrade::Target,
};

pub struct NewRollout<'a> {
    pub principal: &'a Principal,
    pub actor: &'a Actor,
    pub plan: Plan,
    /// The body as accepted, shown with the rollout.
    pub plan_json: serde_json::Value,
    pub max_items: usize,
}

/// Validates and creates the rollout (status `Pending`; the driver starts it).
pub async fn create<C>(db: &C, new: NewRollout<'_>) -> Result<rollout::Model, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    let tenant = new.principal.tenant_id.as_str();
    let plan = &new.plan;
    new.plan.selector.check()?;
    let mut problems = Vec::new();
    // Each wave's folders, with their subfolders when asked.
    let mut specs = Vec::with_capacity(plan.waves.len());
    for (n, wave) in plan.waves.iter().enumerate() {
        let folders = if wave.folders.is_empty() {
            None
        } else {
            let mut ids = HashSet::new();
            for (f, wanted) in wave.folders.iter().enumerate() {
                match editable_folder(db, new.principal, &wanted.key).await? {
                    Some(found) if wanted.include_subfolders => {
                        ids.extend(folders::with_descendants(db, &found).await?)
                    }
                    Some(found) => {
                        ids.insert(found.id);
                    }
                    None => problems.push(format!(
                        "waves[{n}].folders[{f}]: no folder {} in this tenant where you hold Apps.Edit",
                        wanted.key
                    )),
                }
            }
            Some(ids)
        };
        specs.push(WaveSpec {
            name: wave.name.clone(),
            folders,
            size: wave.size,
        });
    }
    let (candidates, targets) = select(db, new.principal, plan, &mut problems).await?;
    if candidates.is_empty() && problems.is_empty() {
        return Err(Error::invalid(
            "the selector matches no deployment you may see: nothing to roll out",
        ));
    }
    if candidates.len() > new.max_items {
        problems.push(format!(
            "the selector matches {} deployments; at most {} are accepted per rollout",
            candidates.len(),
            new.max_items
        ));
    }
    let assigned = match assign(&candidates, &specs) {
        Ok(assigned) if problems.is_empty() => assigned,
        Ok(_) => return Err(Error::invalid(problems.join("; "))),
        Err(more) => {
            problems.extend(more);
            return Err(Error::invalid(problems.join("; ")));
        }
    };
    refuse_overlap(db, &candidates).await?;

    let id = uuid::Uuid::new_v4().to_string();
    let now = Utc::now();
    let folder_ids: Vec<i32> = candidates
        .iter()
        .map(|(_, f)| *f)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let txn = db::begin_write(db).await?;
    let created = rollout::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.to_string()),
        name: Set(plan.name.clone()),
        status: Set(RolloutStatus::Pending),
        plan: Set(new.plan_json.to_string()),
        target_version: Set(match plan.target {
            RolloutTarget::Same(Target::Version(v)) => Some(v),
            _ => None,
        }),
        on_failure: Set(plan.on_failure.as_str().into()),
        four_eyes: Set(plan.four_eyes),
        window: Set(plan
            .window
            .as_ref()
            .map(|w| serde_json::to_string(&w.spec).unwrap_or_default())),
        folder_ids: Set(serde_json::to_string(&folder_ids).unwrap_or_default()),
        created_by: Set(new.actor.subject.clone()),
        request_id: Set(new.actor.request_id.clone()),
        created_at: Set(now),
        updated_at: Set(now),
        finished_at: Set(None),
        current_wave: Set(0),
        operation_id: Set(None),
        reason: Set(None),
        bake_until: Set(None),
        window_opens_at: Set(None),
        resume_to: Set(None),
        rollback_from_wave: Set(0),
        total: Set(i32::try_from(candidates.len()).unwrap_or(i32::MAX)),
    };
    let created = rollout::Entity::insert(created)
        .exec_with_returning(&txn)
        .await?;
    for (n, (wave, members)) in plan.waves.iter().zip(&assigned).enumerate() {
        let total = members.len();
        rollout_wave::Entity::insert(rollout_wave::ActiveModel {
            rollout_id: Set(id.clone()),
            idx: Set(n as i32),
            name: Set(wave.name.clone()),
            folders: Set(serde_json::to_string(&wave.folders).unwrap_or_default()),
            gate: Set(wave.gate.as_str().into()),
            bake_seconds: Set(i64::try_from(wave.bake_seconds).unwrap_or(i64::MAX)),
            max_concurrency: Set(i32::try_from(wave.max_concurrency).unwrap_or(i32::MAX)),
            max_failures: Set(i32::try_from(wave.max_failures.of(total)).unwrap_or(i32::MAX)),
            total: Set(total as i32),
            status: Set("Pending".into()),
            operation_id: Set(None),
            attempts: Set(0),
            started_at: Set(None),
            finished_at: Set(None),
        })
        .exec(&txn)
        .await?;
        let rows: Vec<rollout_deployment::ActiveModel> = members
            .iter()
            .enumerate()
            .map(|(seq, &i)| rollout_deployment::ActiveModel {
                rollout_id: Set(id.clone()),
                deployment_id: Set(candidates[i].0.clone()),
                wave: Set(n as i32),
                seq: Set(seq as i32 + 1),
                folder_id: Set(candidates[i].1),
                active: Set(true),
                outcome: Set(None),
                from_version: Set(None),
                to_version: Set(None),
                rollback: Set(None),
                target_version: Set(targets[i]),
            })
            .collect();
        // Bounded statements: SQLite takes at most 32,766 bound values in one.
        for chunk in rows.chunks(1000) {
            if let Err(e) = rollout_deployment::Entity::insert_many(chunk.to_vec())
                .exec(&txn)
                .await
            {
                if db::is_unique_violation(&e) {
                    return Err(Error::Conflict(
                        "another active rollout was just created over some of the same deployments; list the rollouts and retry"
                            .into(),
                    ));
                }
                return Err(e.into());
            }
        }
    }
    timeline::record(
        &txn,
        &id,
        None,
        RolloutStatus::Pending,
        Step {
            kind: "created",
            actor: new.actor,
            comment: None,
            detail: Some(format!(
                "{} deployments in {} waves ({})",
                candidates.len(),
                assigned.len(),
                assigned
                    .iter()
                    .map(|m| m.len().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            wave: None,
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(created)
}

/// The folder `key` of the caller's tenant if the caller holds `Apps.Edit` there.
async fn editable_folder<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    key: &str,
) -> Result<Option<folder::Model>, Error> {
    if FolderKey::parse(key).is_err() {
        return Ok(None);
    }
    match access::authorize_folder(db, principal, key, Permission::AppsEdit).await {
        Ok(folder) => Ok(Some(folder)),
        Err(Error::Forbidden(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The selected deployments `(id, folder)` in id order, of the folders the caller
/// may see, with the version each is to reach under a per-app target (`None`: the
/// rollout's target); a folder the caller sees but may not edit is a problem, and so
/// is each app of a per-app target that is unknown, has no such published version, or
/// is selected without being named.
async fn select<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    plan: &Plan,
    problems: &mut Vec<String>,
) -> Result<(Vec<(String, i32)>, Vec<Option<i32>>), Error> {
    let tenant = principal.tenant_id.as_str();
    let selector = &plan.selector;
    let matching =
        listing::search_and_tags(db, tenant, selector.search_text.as_deref(), &selector.tags)
            .await?;
    let per_app = match &plan.target {
        RolloutTarget::PerApp(versions) => {
            Some(app_versions(db, tenant, versions, problems).await?)
        }
        RolloutTarget::Same(_) => None,
    };
    let mut query = deployment::Entity::find()
        .select_only()
        .column(deployment::Column::Id)
        .column(deployment::Column::FolderId)
        .column(deployment::Column::AppId)
        .column(deployment::Column::Version)
        .filter(deployment::Column::TenantId.eq(tenant))
        .filter(matching)
        .order_by_asc(deployment::Column::Id);
    if !selector.app_system_names.is_empty() {
        let apps = app::Entity::find()
            .select_only()
            .column(app::Column::Id)
            .filter(app::Column::TenantId.eq(tenant))
            .filter(app::Column::SystemName.is_in(selector.app_system_names.iter().cloned()))
            .into_query();
        query = query.filter(deployment::Column::AppId.in_subquery(apps));
    }
    if let (true, RolloutTarget::Same(target)) = (selector.only_outdated, &plan.target) {
        // The version is a validated integer, written into the SQL as a literal.
        query = query.filter(Expr::cust(match *target {
            Target::Latest => "deployments.version < (SELECT MAX(v.version) FROM app_versions v \
                 WHERE v.app_id = deployments.app_id AND v.published)"
                .to_string(),
            Target::Version(version) => format!(
                "deployments.version < {version} AND EXISTS (SELECT 1 FROM app_versions v \
                 WHERE v.app_id = deployments.app_id AND v.published AND v.version = {version})"
            ),
        }));
    }
    let mut rows: Vec<(String, i32, i32, i32)> = query.into_tuple().all(db).await?;
    if let Some(per_app) = &per_app {
        unnamed_apps(db, per_app, &rows, problems).await?;
        if selector.only_outdated {
            rows.retain(|(_, _, app, version)| per_app.get(app).is_some_and(|to| version < to));
        }
    }
    // Which folders the caller may edit, see, or neither (each folder checked once).
    let mut per_folder: BTreeMap<i32, usize> = BTreeMap::new();
    for (_, folder, _, _) in &rows {
        *per_folder.entry(*folder).or_default() += 1;
    }
    let mut visible = HashSet::new();
    for (folder_id, count) in per_folder {
        let Some(found) = folder::Entity::find_by_id(folder_id).one(db).await? else {
            continue;
        };
        let key = found.key.clone();
        let name = found.name.clone();
        if holds(db, principal, found.clone(), Permission::AppsEdit).await? {
            visible.insert(folder_id);
        } else if holds(db, principal, found, Permission::AppsView).await? {
            problems.push(format!(
                "the selection includes {count} deployments in folder '{name}' ({key}) where you lack Apps.Edit"
            ));
        }
    }
    Ok(rows
        .into_iter()
        .filter(|(_, folder, _, _)| visible.contains(folder))
        .map(|(id, folder, app, _)| {
            let target = per_app.as_ref().and_then(|p| p.get(&app).copied());
            ((id, folder), target)
        })
        .unzip())
}

/// `target.versions` resolved against the tenant's catalogue: app id -> version
/// number, each unknown app and each version not published recorded as a problem.
async fn app_versions<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    versions: &BTreeMap<String, AppVersion>,
    problems: &mut Vec<String>,
) -> Result<HashMap<i32, i32>, Error> {
    let apps = app::Entity::find()
        .filter(app::Column::TenantId.eq(tenant))
        .filter(app::Column::SystemName.is_in(versions.keys().cloned()))
        .all(db)
        .await?;
    let published = app_version::Entity::find()
        .filter(app_version::Column::AppId.is_in(apps.iter().map(|a| a.id)))
        .filter(app_version::Column::Published.eq(true))
        .all(db)
        .await?;
    let mut resolved = HashMap::new();
    for (name, wanted) in versions {
        let Some(found) = apps.iter().find(|a| &a.system_name == name) else {
            problems.push(format!(
                "target.versions.{name}: no app {name} in this tenant"
            ));
            continue;
        };
        let version = published.iter().find(|v| {
            v.app_id == found.id
                && match wanted {
                    AppVersion::Number(n) => v.version == *n,
                    AppVersion::Package(p) => &v.package_version == p,
                }
        });
        match version {
            Some(v) => {
                resolved.insert(found.id, v.version);
            }
            None => problems.push(format!(
                "target.versions.{name}: version {} of {name} is not published",
                match wanted {
                    AppVersion::Number(n) => n.to_string(),
                    AppVersion::Package(p) => format!("\"{p}\""),
                }
            )),
        }
    }
    Ok(resolved)
}

/// A problem for each app of the selection that `target.versions` does not name
/// (with how many of its deployments are selected).
async fn unnamed_apps<C: ConnectionTrait>(
    db: &C,
    per_app: &HashMap<i32, i32>,
    rows: &[(String, i32, i32, i32)],
    problems: &mut Vec<String>,
) -> Result<(), Error> {
    let mut unnamed: BTreeMap<i32, usize> = BTreeMap::new();
    for (_, _, app, _) in rows {
        if !per_app.contains_key(app) {
            *unnamed.entry(*app).or_default() += 1;
        }
    }
    if unnamed.is_empty() {
        return Ok(());
    }
    let apps = app::Entity::find()
        .filter(app::Column::Id.is_in(unnamed.keys().copied()))
        .all(db)
        .await?;
    for found in apps {
        problems.push(format!(
            "the selection includes {} deployments of app {}, which target.versions does not name",
            unnamed[&found.id], found.system_name
        ));
    }
    Ok(())
}

async fn holds<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    folder: folder::Model,
    permission: Permission,
) -> Result<bool, Error> {
    match access::authorize_in_folder(db, principal, folder, permission).await {
        Ok(_) => Ok(true),
        Err(Error::Forbidden(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A 409 naming the active rollout that already holds one of these deployments.
pub(super) async fn refuse_overlap<C: ConnectionTrait>(
    db: &C,
    candidates: &[(String, i32)],
) -> Result<(), Error> {
    for chunk in candidates.chunks(1000) {
        let held = rollout_deployment::Entity::find()
            .filter(rollout_deployment::Column::Active.eq(true))
            .filter(
                rollout_deployment::Column::DeploymentId
                    .is_in(chunk.iter().map(|(id, _)| id.clone())),
            )
            .one(db)
            .await?;
        if let Some(held) = held {
            let other = rollout::Entity::find_by_id(held.rollout_id.clone())
                .one(db)
                .await?;
            let name = other.map(|r| r.name).unwrap_or_default();
            return Err(Error::Conflict(format!(
                "deployment {} is already in active rollout {} ('{name}'); two active rollouts may not touch the same deployment",
                held.deployment_id, held.rollout_id
            )));
        }
    }
    Ok(())
}
