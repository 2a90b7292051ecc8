//! The folders the caller may look into (extension): what a folder picker offers, such
//! as the console's. UiPath lists folders in Orchestrator, not in the Apps API; uplift
//! has no Orchestrator, so it answers here, read-only.

use std::collections::HashMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    odata::{self, ODataCollection},
    params::PageParams,
};
use crate::{
    access::Permission,
    app::AppState,
    http::{ApiError, auth::UiPathCaller},
};

/// A folder where the caller holds `Apps.View`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    /// The folder's key: the `X-UiPath-FolderKey` of calls in it.
    pub key: String,
    pub display_name: String,
    /// The names of the caller's visible folders from the top down to this one, joined
    /// by `/`, as Orchestrator shows them.
    pub fully_qualified_name: String,
    /// The parent's key; null for a top folder, and for a folder whose parent the
    /// caller may not see (it is a top folder for this caller).
    pub parent_key: Option<String>,
}

/// List the folders the caller can see
///
/// Every folder of the token's tenant where the caller holds `Apps.View` (directly, on
/// an ancestor, or tenant-wide), in creation order, a page at a time. Needs no folder
/// header.
#[utoipa::path(
    get,
    path = "/folders",
    tag = "uplift extensions",
    params(PageParams),
    responses((status = 200, description = "A page of folders", body = ODataCollection<Folder>)),
)]
pub async fn list_folders(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: UiPathCaller,
) -> Result<HttpResponse, ApiError> {
    let needs = caller.needs(Permission::AppsView)?;
    let page = PageParams::from_query(req.query_string())?;
    let folders = needs.folders(&state.db).await?;
    // Paths and parents are made of visible folders only: a grant on a subfolder says
    // nothing about the folders above it, so their names are not shown.
    let by_id: HashMap<i32, &entity::folder::Model> = folders.iter().map(|f| (f.id, f)).collect();
    let count = folders.len() as u64;
    let skip = usize::try_from(page.skip).unwrap_or(usize::MAX);
    let top = usize::try_from(page.top).unwrap_or(usize::MAX);
    let value: Vec<Folder> = folders
        .iter()
        .skip(skip)
        .take(top)
        .map(|f| Folder {
            key: f.key.clone(),
            display_name: f.name.clone(),
            fully_qualified_name: path_of(f, &by_id),
            parent_key: f
                .parent_id
                .and_then(|p| by_id.get(&p))
                .map(|p| p.key.clone()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(odata::collection(&req, "Folders", count, value)))
}

/// The folder's name preceded by those of its visible ancestors, joined by `/`.
fn path_of(folder: &entity::folder::Model, by_id: &HashMap<i32, &entity::folder::Model>) -> String {
    let mut names = vec![folder.name.as_str()];
    let mut parent = folder.parent_id;
    // Bounded: a cycle in the data cannot loop forever.
    for _ in 0..64 {
        let Some(f) = parent.and_then(|p| by_id.get(&p)) else {
            break;
        };
        names.push(f.name.as_str());
        parent = f.parent_id;
    }
    names.reverse();
    names.join("/")
}
