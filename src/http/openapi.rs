//! The OpenAPI 3.1 document, generated from the route annotations, and the Swagger UI
//! page that shows it (served from the binary, no internet needed).
//!
//! What every protected operation shares (the bearer scheme, the tenant header, the
//! `Idempotency-Key` header on writes, and the error answers any of them can give) is
//! added here once rather than repeated on each route.

use utoipa::{
    OpenApi,
    openapi::{
        Components, ContentBuilder, HttpMethod, ObjectBuilder, Ref, RefOr, Required,
        ResponseBuilder, Schema, Type,
        path::{Operation, ParameterBuilder, ParameterIn, PathItem},
        schema::{AdditionalProperties, ArrayItems},
        security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        },
        server::ServerBuilder,
    },
};
use utoipa_swagger_ui::SwaggerUi;

use super::{self as routes, problem::PROBLEM_JSON};
use crate::{
    api_paths::{TENANT_HEADER, TENANT_HEADER_ALIAS},
    config::Settings,
};

pub const OPENAPI_PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "uplift",
        description = "Upgrades deployed apps to their latest published version, in bulk, safely. \
                       UiPath Apps-compatible routes live under `/{organization}/apps_/default/api/v1/default`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(super::problem::Problem)),
    tags(
        (name = "UiPath Apps", description = "UiPath Apps deployment API, same names and shapes as UiPath's cloud"),
        (name = "uplift extensions", description = "Additions beyond UiPath: history, rollback, unpublish"),
        (name = "Rainbond", description = "Rainbond's upgrade API over the same data; also accepts `Authorization: <token>`"),
        (name = "Identity", description = "Tokens for registered client applications, and the signing key"),
        (name = "Operations", description = "Health and readiness"),
        (name = "Webhooks", description = "Signed events (Standard Webhooks) to endpoints a tenant registers; see docs/webhooks.md"),
        (name = "Rollouts", description = "Progressive rollouts: waves, bake time, failure budgets, approvals, maintenance windows, rollback"),
    ),
)]
struct RootApi;

/// The whole document for these settings (the organization shapes the UiPath paths).
pub fn document(settings: &Settings) -> utoipa::openapi::OpenApi {
    let base = settings.uipath_base_path();
    let mut doc = RootApi::openapi()
        .nest(&base, routes::uipath::UiPathApi::openapi())
        .nest(
            routes::rainbond::BASE,
            routes::rainbond::RainbondApi::openapi(),
        )
        .nest(
            settings.organization_path(),
            routes::identity::OrganizationIdentityApi::openapi(),
        );
    doc.merge(routes::ops::OpsApi::openapi());
    doc.merge(routes::identity::IdentityApi::openapi());
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    // Every path is absolute (the organization included), so the one server is the
    // origin itself; docs/architecture.md ("The OpenAPI document") says why.
    doc.servers = Some(vec![
        ServerBuilder::new()
            .url("/")
            .description(Some(
                "The uplift instance serving this document (paths are absolute: the UiPath \
                 routes carry the configured organization, the Rainbond, identity and \
                 operations routes sit at the root)",
            ))
            .build(),
    ]);
    let components = doc.components.get_or_insert_with(Components::new);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    components.add_security_scheme(
            BARE_TOKEN_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The bare token, `Authorization: <token>`, as Rainbond clients send it (Rainbond routes only)",
            ))),
        );
    for (path, item) in doc.paths.paths.iter_mut() {
        let errors = if path.starts_with(&base) {
            ErrorBody {
                schema: "Problem",
                content_type: PROBLEM_JSON,
                tenant_header: true,
                bare_token: false,
            }
        } else if path.starts_with(routes::rainbond::BASE) {
            ErrorBody {
                schema: "RainbondError",
                content_type: "application/json",
                tenant_header: false,
                bare_token: true,
            }
        } else {
            for (_, operation) in operations(item) {
                add_public(operation);
            }
            continue;
        };
        for (method, operation) in operations(item) {
            add_common(method, operation, &errors);
        }
    }
    plain_optional_bodies(&mut doc);
    reference_components(&mut doc);
    doc
}

/// A route that needs no token (health, metrics, the token endpoint, the signing key):
/// `security: []` says so explicitly, and the header limit, which runs before every
/// route, is its one error answer that is not its own.
fn add_public(operation: &mut Operation) {
    operation.security = Some(Vec::new());
    operation
        .responses
        .responses
        .entry("431".to_string())
        .or_insert_with(|| {
            error_response(
                "The request headers are larger than the limit",
                &ErrorBody {
                    schema: "Problem",
                    content_type: PROBLEM_JSON,
                    tenant_header: false,
                    bare_token: false,
                },
            )
        });
}

/// utoipa writes an optional body (`Option<T>` in the annotation) as
/// `oneOf: [T, {type: null}]`, which says "the JSON value `null`" rather than "no body",
/// and which generated clients turn into a union they then fail to serialise. An absent
/// body is what `required: false` means: the schema is the plain reference.
fn plain_optional_bodies(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            let Some(RefOr::T(body)) = operation.request_body.as_mut() else {
                continue;
            };
            if matches!(body.required, Some(Required::True)) {
                continue;
            }
            body.required = Some(Required::False);
            for content in body.content.values_mut() {
                let RefOr::T(content) = content else { continue };
                if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema
                    && let [RefOr::Ref(reference), RefOr::T(other)] = one_of.items.as_slice()
                    && serde_json::to_value(other).ok() == Some(serde_json::json!({"type": "null"}))
                {
                    content.schema = Some(RefOr::Ref(reference.clone()));
                }
            }
        }
    }
}

/// utoipa inlines a generic's argument (`ODataCollection<DeployedApp>` carries a copy of
/// `DeployedApp`), which leaves the component itself unused and gives generated clients
/// two types for one thing. Every inline schema equal to a component becomes a `$ref`
/// to it, in the paths and in the components alike.
fn reference_components(doc: &mut utoipa::openapi::OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let named: Vec<(String, Schema)> = components
        .schemas
        .iter()
        .filter_map(|(name, schema)| match schema {
            // A bare `{"type": ...}` component would match every plain field of that type.
            RefOr::T(schema) if !is_bare_type(schema) => Some((name.clone(), schema.clone())),
            _ => None,
        })
        .collect();
    for schema in components.schemas.values_mut() {
        if let RefOr::T(schema) = schema {
            reference_children(schema, &named);
        }
    }
    for item in doc.paths.paths.values_mut() {
        for (_, operation) in operations(item) {
            for parameter in operation.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter
                    && let Some(schema) = parameter.schema.as_mut()
                {
                    reference(schema, &named);
                }
            }
            if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                for content in body.content.values_mut() {
                    if let RefOr::T(content) = content
                        && let Some(schema) = content.schema.as_mut()
                    {
                        reference(schema, &named);
                    }
                }
            }
            for response in operation.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    for content in response.content.values_mut() {
                        if let RefOr::T(content) = content
                            && let Some(schema) = content.schema.as_mut()
                        {
                            reference(schema, &named);
                        }
                    }
                }
            }
        }
    }
}

fn is_bare_type(schema: &Schema) -> bool {
    serde_json::to_value(schema)
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().all(|k| k == "type")))
        .unwrap_or(false)
}

/// Replaces `schema` by a reference when it equals a named component, else looks inside.
fn reference(schema: &mut RefOr<Schema>, named: &[(String, Schema)]) {
    let RefOr::T(inline) = schema else { return };
    if let Some((name, _)) = named.iter().find(|(_, component)| component == inline) {
        *schema = RefOr::Ref(Ref::from_schema_name(name.clone()));
    } else {
        reference_children(inline, named);
    }
}

fn reference_children(schema: &mut Schema, named: &[(String, Schema)]) {
    let children: Vec<&mut RefOr<Schema>> = match schema {
        Schema::Object(object) => {
            let mut children: Vec<_> = object.properties.values_mut().collect();
            if let Some(additional) = object.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(additional) = additional
            {
                children.push(additional);
            }
            children
        }
        Schema::Array(array) => match &mut array.items {
            ArrayItems::RefOrSchema(items) => vec![items.as_mut()],
            _ => Vec::new(),
        },
        Schema::OneOf(one_of) => one_of.items.iter_mut().collect(),
        Schema::AllOf(all_of) => all_of.items.iter_mut().collect(),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().collect(),
        _ => Vec::new(),
    };
    for child in children {
        reference(child, named);
    }
}

fn operations(item: &mut PathItem) -> Vec<(HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, item.get.as_mut()),
        (HttpMethod::Post, item.post.as_mut()),
        (HttpMethod::Put, item.put.as_mut()),
        (HttpMethod::Patch, item.patch.as_mut()),
        (HttpMethod::Delete, item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.map(|op| (method, op)))
    .collect()
}

/// How an API area answers errors: UiPath routes with problem+json, Rainbond routes
/// with Rainbond's own body.
struct ErrorBody {
    schema: &'static str,
    content_type: &'static str,
    tenant_header: bool,
    /// The area also takes the bare token (`Authorization: <token>`).
    bare_token: bool,
}

/// The security scheme of a bare token in `Authorization` (Rainbond's form).
const BARE_TOKEN_SCHEME: &str = "apiKey";

fn add_common(method: HttpMethod, operation: &mut Operation, errors_as: &ErrorBody) {
    let mut security = vec![SecurityRequirement::new("bearer", Vec::<String>::new())];
    if errors_as.bare_token {
        // Either scheme alone suffices.
        security.push(SecurityRequirement::new(
            BARE_TOKEN_SCHEME,
            Vec::<String>::new(),
        ));
    }
    operation.security = Some(security);
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if errors_as.tenant_header {
        parameters.insert(
            0,
            RefOr::T(
                ParameterBuilder::new()
                    .name(TENANT_HEADER)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some(format!(
                        "The caller's tenant; must equal the token's tenant claim (403 otherwise). \
                         `{TENANT_HEADER_ALIAS}` (as UiPath's Python SDK sends it) is accepted \
                         in its place under the same rule; both sent with different values is a 400"
                    )))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
        );
        parameters.insert(
            1,
            RefOr::T(
                ParameterBuilder::new()
                    .name(TENANT_HEADER_ALIAS)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(format!(
                        "Accepted in place of `{TENANT_HEADER}` (UiPath's Python SDK sends it); \
                         the same rule applies, and it must agree with `{TENANT_HEADER}` when both are sent"
                    )))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ),
        );
    }
    let writes = matches!(method, HttpMethod::Post | HttpMethod::Patch);
    if writes {
        parameters.push(RefOr::T(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retry safe: the first answer is stored and replayed for the same request",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(255))))
                .build(),
        ));
    }
    let mut errors = vec![
        (
            "400",
            "A malformed header, parameter or body; the detail names it",
        ),
        (
            "401",
            "A missing, malformed, expired or badly signed token (WWW-Authenticate: Bearer error=\"invalid_token\")",
        ),
        (
            "403",
            "A missing scope (error=\"insufficient_scope\"), another tenant, or no permission",
        ),
        ("431", "The request headers are larger than the limit"),
        (
            "500",
            "An unexpected failure; the log has it under the trace id",
        ),
        ("503", "The database is unavailable"),
    ];
    if writes {
        errors.push((
            "409",
            "A request with this Idempotency-Key is still running, its lease was taken over by a retry \
             (this answer is not the one kept for the key), or the data changed meanwhile",
        ));
        // Replaces the general 503: the first description of a status is the one kept.
        errors.retain(|(status, _)| *status != "503");
        errors.push((
            "503",
            "The database is unavailable, or the answer to this Idempotency-Key could not be \
             stored: the key is free again, and a retry runs the request afresh (what the first \
             run changed stays changed)",
        ));
        errors.push((
            "422",
            "This Idempotency-Key was used with a different request",
        ));
    }
    if operation.request_body.is_some() {
        errors.push(("408", "The body did not arrive within the body timeout"));
        errors.push(("413", "The body is larger than the limit"));
        errors.push(("415", "The body is not JSON"));
    }
    for (status, description) in errors {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description, errors_as));
    }
}

fn error_response(description: &str, errors_as: &ErrorBody) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                errors_as.content_type,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(errors_as.schema)))
                    .build(),
            )
            .build(),
    )
}

/// `/openapi.json` and the Swagger UI page at `/docs/`.
pub fn swagger_ui(settings: &Settings) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}").url(OPENAPI_PATH, document(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI fails when the committed copy drifts from the code: regenerate it with
    /// `cargo run -- openapi > docs/openapi.json`.
    #[test]
    fn the_committed_openapi_document_matches_the_code() {
        let generated = serde_json::to_string_pretty(&document(&Settings::default())).unwrap();
        let committed =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
                .expect("docs/openapi.json exists");
        assert!(
            committed.trim_end() == generated.trim_end(),
            "docs/openapi.json is out of date: run `cargo run -- openapi > docs/openapi.json`"
        );
    }
}
