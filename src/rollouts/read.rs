//! Reading rollouts: one with its waves (and each wave's operation counters) and its
//! timeline, and the tenant's list. A rollout is visible to a caller holding
//! `Apps.View` in every folder it touches; to anyone else it does not exist.

use entity::{rollout, rollout_deployment, rollout_event, rollout_wave};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
    sea_query::{Expr, ExprTrait, Query},
};

use super::actions::{folder_ids, may};
use crate::{
    access::{self, Permission},
    auth::Principal,
    domain::DeploymentId,
    error::Error,
    operations::{self, Counters},
};

pub struct WaveView {
    pub wave: rollout_wave::Model,
    pub counters: Option<Counters>,
    pub deployments: Vec<rollout_deployment::Model>,
}

pub struct RolloutView {
    pub rollout: rollout::Model,
    pub waves: Vec<WaveView>,
    pub timeline: Vec<rollout_event::Model>,
}

pub async fn find<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    id: &str,
) -> Result<Option<RolloutView>, Error> {
    let Some(id) = DeploymentId::parse(id) else {
        return Ok(None);
    };
    let Some(found) = rollout::Entity::find_by_id(id.as_str().to_string())
        .filter(rollout::Column::TenantId.eq(&principal.tenant_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    if !may(db, principal, &folder_ids(&found), Permission::AppsView).await? {
        return Ok(None);
    }
    Ok(Some(view(db, found).await?))
}

pub async fn view<C: ConnectionTrait>(db: &C, found: rollout::Model) -> Result<RolloutView, Error> {
    let planned = rollout_wave::Entity::find()
        .filter(rollout_wave::Column::RolloutId.eq(&found.id))
        .order_by_asc(rollout_wave::Column::Idx)
        .all(db)
        .await?;
    let members = rollout_deployment::Entity::find()
        .filter(rollout_deployment::Column::RolloutId.eq(&found.id))
        .order_by_asc(rollout_deployment::Column::Wave)
        .order_by_asc(rollout_deployment::Column::Seq)
        .all(db)
        .await?;
    let mut waves = Vec::with_capacity(planned.len());
    for wave in planned {
        let counters = match wave.operation_id.as_deref() {
            Some(op) => match operations::load(db, op).await? {
                Some(operation) => Some(operations::snapshot(db, operation).await?.counters),
                None => None,
            },
            None => None,
        };
        let deployments = members
            .iter()
            .filter(|m| m.wave == wave.idx)
            .cloned()
            .collect();
        waves.push(WaveView {
            wave,
            counters,
            deployments,
        });
    }
    let timeline = rollout_event::Entity::find()
        .filter(rollout_event::Column::RolloutId.eq(&found.id))
        .order_by_asc(rollout_event::Column::Id)
        .all(db)
        .await?;
    Ok(RolloutView {
        rollout: found,
        waves,
        timeline,
    })
}

/// The tenant's rollouts the caller may see, newest first: the count of all of them
/// and one page, both by the database. A caller holding `Apps.View` tenant-wide sees
/// them all (folders deleted since included, as in `may`); anyone else sees those of
/// which no deployment is in a folder outside the ones where the caller holds it.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    principal: &Principal,
    top: u64,
    skip: u64,
) -> Result<(u64, Vec<rollout::Model>), Error> {
    let mut query =
        rollout::Entity::find().filter(rollout::Column::TenantId.eq(&principal.tenant_id));
    match access::authorize_tenant(db, principal, Permission::AppsView).await {
        Ok(()) => {}
        Err(Error::Forbidden(_)) => {
            let visible: Vec<i32> = access::folders_with(db, principal, Permission::AppsView)
                .await?
                .into_iter()
                .map(|f| f.id)
                .collect();
            let outside = Query::select()
                .expr(Expr::val(1))
                .from(rollout_deployment::Entity)
                .and_where(
                    Expr::col((
                        rollout_deployment::Entity,
                        rollout_deployment::Column::RolloutId,
                    ))
                    .equals((rollout::Entity, rollout::Column::Id)),
                )
                .and_where(
                    Expr::col((
                        rollout_deployment::Entity,
                        rollout_deployment::Column::FolderId,
                    ))
                    .is_not_in(visible),
                )
                .to_owned();
            query = query.filter(Expr::exists(outside).not());
        }
        Err(e) => return Err(e),
    }
    let count = query.clone().count(db).await?;
    let page = query
        .order_by_desc(rollout::Column::CreatedAt)
        .order_by_desc(rollout::Column::Id)
        .offset(skip)
        .limit(top)
        .all(db)
        .await?;
    Ok((count, page))
}
