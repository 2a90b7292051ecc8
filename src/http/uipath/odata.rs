//! The OData collection envelope UiPath's list calls answer with.

use actix_web::HttpRequest;
use serde::Serialize;
use utoipa::ToSchema;

/// `{"@odata.context", "@odata.count", "value"}`; the count is of all matching items,
/// not just this page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ODataCollection<T> {
    #[serde(rename = "@odata.context")]
    pub context: String,
    #[serde(rename = "@odata.count")]
    pub count: u64,
    pub value: Vec<T>,
}

pub fn collection<T: Serialize>(
    req: &HttpRequest,
    entity_set: &str,
    count: u64,
    items: Vec<T>,
) -> ODataCollection<T> {
    let info = req.connection_info();
    ODataCollection {
        context: format!(
            "{}://{}{}/$metadata#{entity_set}",
            info.scheme(),
            info.host(),
            base_of(req.path())
        ),
        count,
        value: items,
    }
}

/// The UiPath base path (`/{org}/apps_/default/api/v1/default`) a request path starts with.
fn base_of(path: &str) -> &str {
    path.find("/models/").map(|i| &path[..i]).unwrap_or(path)
}
