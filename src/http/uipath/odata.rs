//! The OData collection envelope UiPath's list calls answer with.

use actix_web::{HttpRequest, http::header, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::app::AppState;

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
    let (scheme, host) = origin(req);
    ODataCollection {
        context: format!(
            "{scheme}://{host}{}/$metadata#{entity_set}",
            base_of(req.path())
        ),
        count,
        value: items,
    }
}

/// The scheme and host the client reached us by. `Forwarded` / `X-Forwarded-*` are
/// believed only from a configured trusted proxy (`trusted_proxies`): from anyone else
/// they are the client's say-so, and would put any URL in `@odata.context`.
pub(super) fn origin(req: &HttpRequest) -> (String, String) {
    let trusted = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.trusted_proxies.as_slice())
        .unwrap_or_default();
    let from_proxy = req
        .peer_addr()
        .is_some_and(|peer| trusted.contains(&peer.ip().to_canonical()));
    if from_proxy {
        let info = req.connection_info();
        return (info.scheme().to_string(), info.host().to_string());
    }
    let config = req.app_config();
    let scheme = if config.secure() { "https" } else { "http" };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or(config.host());
    (scheme.to_string(), host.to_string())
}

/// The UiPath base path (`/{org}/apps_/default/api/v1/default`) a request path starts with.
fn base_of(path: &str) -> &str {
    path.find("/models/")
        .or_else(|| path.strip_suffix("/folders").map(str::len))
        .map(|i| &path[..i])
        .unwrap_or(path)
}
