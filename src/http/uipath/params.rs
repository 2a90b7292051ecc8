//! The query parameters of the UiPath list calls, as types that are both the parser
//! (`from_query`) and the OpenAPI parameters. OData's `$top`, `$skip` and `$orderBy`
//! spellings are accepted as aliases; a parameter given twice is refused, never
//! guessed.

use std::str::FromStr;

use serde::{Deserialize, Deserializer, de::Error as _};
use utoipa::IntoParams;

use crate::{
    error::Error,
    http::{ApiError, extract::parse_query},
    service::{
        catalog::{AppSortField, CatalogQuery, VersionSortField},
        listing::{self, DEFAULT_TOP, ListQuery, MAX_TOP},
    },
};

/// A paged list's query-parameter struct: `top` and `skip` (also as OData's `$top` and
/// `$skip`) spliced in before the list's own fields. utoipa's `IntoParams` cannot
/// flatten one parameter struct into another, so the two are written here once; every
/// paged list of the UiPath area (operations, rollouts, webhooks too) uses it.
macro_rules! paged_params {
    ($(#[$meta:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Deserialize, IntoParams)]
        #[into_params(parameter_in = Query)]
        pub struct $name {
            /// Page size, 0 to 1000 (default 100).
            #[serde(alias = "$top", default = "crate::http::uipath::params::default_top", deserialize_with = "crate::http::uipath::params::top")]
            #[param(value_type = Option<u64>, minimum = 0, maximum = 1000)]
            pub top: u64,
            /// Items to skip.
            #[serde(alias = "$skip", default, deserialize_with = "crate::http::uipath::params::skip")]
            #[param(value_type = Option<u64>, minimum = 0, maximum = 4294967295_u64)]
            pub skip: u64,
            $($fields)*
        }
    };
}
pub(super) use paged_params;

paged_params! {
    /// One page of a collection.
    pub struct PageParams {}
}

impl PageParams {
    pub fn from_query(query: &str) -> Result<Self, ApiError> {
        parse_query(query)
    }
}

paged_params! {
    /// The list call's query parameters (`$top`, `$skip`, `$orderBy` are accepted too).
    pub struct ListParams {
        /// `field [asc|desc]`, comma-separated, over id, title, description, version,
        /// routingName, appSystemName; the id always breaks ties.
        #[serde(rename = "orderBy", alias = "$orderBy", default)]
        #[param(rename = "orderBy")]
        pub order_by: Option<String>,
        /// Case-insensitive text in the title, routing name or app system name.
        #[serde(rename = "searchText", default)]
        #[param(rename = "searchText")]
        pub search_text: Option<String>,
        /// Comma-separated; a deployment must carry all of them.
        #[serde(default)]
        pub tags: Option<String>,
        /// Comma-separated app system names; a deployment must run one of them.
        #[serde(rename = "appSystemNames", default)]
        #[param(rename = "appSystemNames")]
        pub app_system_names: Option<String>,
        /// `true`: only deployments behind their app's latest published version
        /// (`isOutdated`); `false`: only those that are not. Default: both.
        #[serde(default, deserialize_with = "outdated")]
        #[param(value_type = Option<bool>)]
        pub outdated: Option<bool>,
    }
}

/// The most app names one list call may filter by (each is a bound parameter).
pub const MAX_LIST_APPS: usize = listing::MAX_APP_NAMES;

fn comma_separated(raw: Option<String>) -> Vec<String> {
    raw.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

fn outdated<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let raw = String::deserialize(d)?;
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(Some(true)),
        "false" | "0" => Ok(Some(false)),
        _ => Err(D::Error::custom(format!(
            "outdated must be true or false, not {raw:?}"
        ))),
    }
}

impl ListParams {
    /// The list service's query.
    pub fn from_query(query: &str) -> Result<ListQuery, ApiError> {
        let params: ListParams = parse_query(query)?;
        Ok(ListQuery {
            top: params.top,
            skip: params.skip,
            order_by: params
                .order_by
                .as_deref()
                .map(listing::parse_order_by)
                .transpose()?
                .unwrap_or_default(),
            search_text: params.search_text,
            tags: comma_separated(params.tags),
            app_system_names: {
                let names = comma_separated(params.app_system_names);
                if names.len() > MAX_LIST_APPS {
                    return Err(ApiError::bad_request(format!(
                        "appSystemNames holds {} names; at most {MAX_LIST_APPS} are accepted",
                        names.len()
                    )));
                }
                names
            },
            outdated: params.outdated,
        })
    }
}

/// Which catalogue a published-apps call reads. uplift has one catalogue per tenant,
/// so both list it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
pub enum FolderFeedType {
    #[serde(rename = "tenant")]
    Tenant,
    #[serde(rename = "folderHierarchy")]
    FolderHierarchy,
}

paged_params! {
    /// The published-apps call's query parameters (`$top`, `$skip`, `$orderBy` are
    /// accepted too).
    pub struct PublishedAppsParams {
        /// `field [asc|desc]`, comma-separated, over systemName, title, packageName,
        /// deployVersion, packageVersion (semantic-version precedence; `appVersion` is the
        /// same); default systemName; the app's id always breaks ties.
        #[serde(rename = "orderBy", alias = "$orderBy", default)]
        #[param(rename = "orderBy")]
        pub order_by: Option<String>,
        /// Case-insensitive text in the title or system name.
        #[serde(rename = "searchText", default)]
        #[param(rename = "searchText")]
        pub search_text: Option<String>,
        /// `tenant` or `folderHierarchy`, accepted for UiPath compatibility: both list the
        /// tenant's catalogue (uplift publishes per tenant, not per folder).
        #[serde(
            rename = "folderFeedType",
            default,
            deserialize_with = "folder_feed_type"
        )]
        #[param(rename = "folderFeedType", value_type = Option<FolderFeedType>, inline)]
        #[allow(dead_code)] // Checked only: both feeds list the tenant's catalogue.
        pub folder_feed_type: Option<FolderFeedType>,
    }
}

impl PublishedAppsParams {
    /// The catalogue service's query.
    pub fn from_query(query: &str) -> Result<CatalogQuery<AppSortField>, ApiError> {
        let params: PublishedAppsParams = parse_query(query)?;
        catalog_query(params.top, params.skip, params.order_by, params.search_text)
    }
}

paged_params! {
    /// The published-versions call's query parameters (`$top`, `$skip`, `$orderBy` are
    /// accepted too).
    pub struct PublishedVersionsParams {
        /// `field [asc|desc]`, comma-separated, over deployVersion, packageVersion
        /// (semantic-version precedence; `appVersion` is the same), publishedAt,
        /// publishedBy; default deployVersion desc (newest first); the version always
        /// breaks ties.
        #[serde(rename = "orderBy", alias = "$orderBy", default)]
        #[param(rename = "orderBy")]
        pub order_by: Option<String>,
    }
}

impl PublishedVersionsParams {
    /// The catalogue service's query.
    pub fn from_query(query: &str) -> Result<CatalogQuery<VersionSortField>, ApiError> {
        let params: PublishedVersionsParams = parse_query(query)?;
        catalog_query(params.top, params.skip, params.order_by, None)
    }
}

/// The catalogue service's query from the parameters both catalogue calls share.
fn catalog_query<F: FromStr<Err = Error>>(
    top: u64,
    skip: u64,
    order_by: Option<String>,
    search_text: Option<String>,
) -> Result<CatalogQuery<F>, ApiError> {
    Ok(CatalogQuery {
        top,
        skip,
        order_by: CatalogQuery::order_by(order_by.as_deref())?,
        search_text,
    })
}

fn folder_feed_type<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FolderFeedType>, D::Error> {
    let raw = String::deserialize(d)?;
    match raw.trim() {
        "tenant" => Ok(Some(FolderFeedType::Tenant)),
        "folderHierarchy" => Ok(Some(FolderFeedType::FolderHierarchy)),
        other => Err(D::Error::custom(format!(
            "folderFeedType must be tenant or folderHierarchy, not {other:?}"
        ))),
    }
}

pub(super) fn default_top() -> u64 {
    DEFAULT_TOP
}

pub(super) fn top<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    count(d, "top", MAX_TOP)
}

pub(super) fn skip<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    count(d, "skip", u64::from(u32::MAX))
}

fn count<'de, D: Deserializer<'de>>(d: D, name: &str, max: u64) -> Result<u64, D::Error> {
    let raw = String::deserialize(d)?;
    listing::parse_count(name, &raw, max).map_err(|e| D::Error::custom(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odata_spellings_are_aliases_and_defaults_apply() {
        let q = ListParams::from_query("$top=5&$skip=10&$orderBy=version%20desc").unwrap();
        assert_eq!((q.top, q.skip, q.order_by.len()), (5, 10, 1));
        let q = ListParams::from_query("").unwrap();
        assert_eq!((q.top, q.skip), (DEFAULT_TOP, 0));
        let page = PageParams::from_query("top=0").unwrap();
        assert_eq!(page.top, 0);
    }

    #[test]
    fn bad_values_are_named_and_a_parameter_twice_is_refused() {
        for (query, named) in [
            ("top=1001", "top"),
            ("top=-1", "top"),
            ("skip=x", "skip"),
            ("orderBy=colour", "colour"),
            ("top=1&$top=2", "top"),
            ("tags=a&tags=b", "tags"),
        ] {
            let err = ListParams::from_query(query).unwrap_err().to_string();
            assert!(err.contains(named), "{query}: {err}");
        }
    }

    #[test]
    fn catalogue_params_take_the_list_spellings_and_name_what_is_wrong() {
        let q = PublishedAppsParams::from_query(
            "$top=5&$skip=1&$orderBy=title%20desc&searchText=hr&folderFeedType=folderHierarchy",
        )
        .unwrap();
        assert_eq!((q.top, q.skip, q.order_by.len()), (5, 1, 1));
        assert_eq!(q.search_text.as_deref(), Some("hr"));
        let q = PublishedVersionsParams::from_query("").unwrap();
        assert_eq!((q.top, q.skip, q.order_by.len()), (DEFAULT_TOP, 0, 0));
        for (query, named) in [
            ("top=1001", "top"),
            ("skip=-1", "skip"),
            ("orderBy=colour", "colour"),
            ("folderFeedType=folder", "folderFeedType"),
            ("top=1&$top=2", "top"),
        ] {
            let err = PublishedAppsParams::from_query(query)
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{query}: {err}");
        }
        let err = PublishedVersionsParams::from_query("orderBy=title")
            .unwrap_err()
            .to_string();
        assert!(err.contains("title"), "{err}");
    }

    #[test]
    fn tags_are_split_on_commas_and_blank_ones_dropped() {
        let q = ListParams::from_query("tags=a,%20b%20,,c").unwrap();
        assert_eq!(q.tags, ["a", "b", "c"]);
    }
}
