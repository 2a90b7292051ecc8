//! The OData collection envelope UiPath's list calls answer with.

use actix_web::HttpRequest;
use serde::Serialize;
use serde_json::{Value, json};

pub fn collection<T: Serialize>(
    req: &HttpRequest,
    entity_set: &str,
    count: u64,
    items: Vec<T>,
) -> Value {
    let info = req.connection_info();
    json!({
        "@odata.context": format!("{}://{}{}/$metadata#{entity_set}", info.scheme(), info.host(), base_of(req.path())),
        "@odata.count": count,
        "value": items,
    })
}

/// The UiPath base path (`/{org}/apps_/default/api/v1/default`) a request path starts with.
fn base_of(path: &str) -> &str {
    path.find("/models/").map(|i| &path[..i]).unwrap_or(path)
}
