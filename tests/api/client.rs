//! A typed client on `TestApp` for the calls the tests repeat: one constructor per
//! UiPath operation (bulk upgrade, list, edit, history, rollback, deploy, publish,
//! unpublish, the catalogue and the name check), all returning a [`Call`] that adds
//! what varies (dry run, failure budget, `Idempotency-Key`, other headers, a body) and
//! then sends it.
//!
//! A `Call` sends what `TestApp::request` sends: the bearer token, the tenant header,
//! the folder header when a folder is given, and the query as written (so a test can
//! still send a malformed one); `authorization` and `tenant` change or drop the first
//! two, for the tests of what the service refuses.

use std::fmt::Display;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, WRITE_SCOPES, assert_problem};

/// Where the bulk call lives under the UiPath base path.
pub const BULK_PATH: &str = "/models/deployed/apps/updateToLatestAppVersionBulk";

/// One UiPath-API request being put together; nothing is sent until `send`, `json`,
/// `ok` or `problem`.
#[must_use = "a Call does nothing until it is sent"]
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    query: String,
    /// The whole `Authorization` value; `None` sends none.
    authorization: Option<String>,
    /// `X-UiPath-Internal-TenantId`; `None` sends none.
    tenant: Option<String>,
    /// `X-UiPath-FolderKey`; `None` sends none.
    folder: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<Payload>,
}

enum Payload {
    Json(Value),
    Raw {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl<'a> Call<'a> {
    fn new(
        app: &'a TestApp,
        method: Method,
        path: String,
        token: &str,
        folder: Option<&str>,
    ) -> Self {
        Call {
            app,
            method,
            path,
            query: String::new(),
            authorization: Some(format!("Bearer {token}")),
            tenant: Some(app.tenant.clone()),
            folder: folder.map(str::to_string),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Appends query parameters as written (`"top=2&skip=1"`; a leading `?` or `&` is
    /// dropped), so a test can send values the service must refuse.
    pub fn query(mut self, query: &str) -> Self {
        let query = query.trim_start_matches(['?', '&']);
        if !query.is_empty() {
            self.query
                .push(if self.query.is_empty() { '?' } else { '&' });
            self.query.push_str(query);
        }
        self
    }

    /// `?dryRun=true`: the answer the real call would give, with nothing written.
    pub fn dry_run(self) -> Self {
        self.query("dryRun=true")
    }

    /// `?maxFailures=n`: no new item starts once `n` items failed.
    pub fn max_failures(self, n: impl Display) -> Self {
        self.query(&format!("maxFailures={n}"))
    }

    /// An `Idempotency-Key` header.
    pub fn key(self, key: &str) -> Self {
        self.header("Idempotency-Key", key)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The whole `Authorization` header instead of `Bearer {token}`; `None` sends none.
    pub fn authorization(mut self, value: Option<&str>) -> Self {
        self.authorization = value.map(str::to_string);
        self
    }

    /// Another `X-UiPath-Internal-TenantId` than the app's tenant; `None` sends none.
    pub fn tenant(mut self, tenant: Option<&str>) -> Self {
        self.tenant = tenant.map(str::to_string);
        self
    }

    /// The JSON body (replacing the one the constructor set, if any).
    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(Payload::Json(body));
        self
    }

    /// A body sent as these bytes with this `Content-Type`, for bodies that are not
    /// (valid) JSON.
    pub fn raw(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(Payload::Raw {
            content_type: content_type.to_string(),
            bytes: bytes.into(),
        });
        self
    }

    /// Sets one field of the JSON object body (`publish_call(…).field("tenantName", …)`).
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Self {
        let body = match self.body.get_or_insert_with(|| Payload::Json(json!({}))) {
            Payload::Json(body) => body,
            Payload::Raw { .. } => panic!("field() needs a JSON body"),
        };
        body.as_object_mut()
            .expect("field() needs an object body")
            .insert(name.to_string(), value.into());
        self
    }

    /// The request as `reqwest` would send it, for the rare test that needs more.
    pub fn request(self) -> RequestBuilder {
        let url = format!("{}{}{}", self.app.base, self.path, self.query);
        let mut request = self.app.client.request(self.method, url);
        if let Some(value) = &self.authorization {
            request = request.header("Authorization", value);
        }
        if let Some(tenant) = &self.tenant {
            request = request.header("X-UiPath-Internal-TenantId", tenant);
        }
        if let Some(key) = &self.folder {
            request = request.header("X-UiPath-FolderKey", key);
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        match self.body {
            Some(Payload::Json(body)) => request.json(&body),
            Some(Payload::Raw {
                content_type,
                bytes,
            }) => request.header("content-type", content_type).body(bytes),
            None => request,
        }
    }

    /// Sends the call; the future owns everything, so it can be spawned.
    pub fn send(self) -> impl Future<Output = Response> + Send + 'static {
        let pending = self.request().send();
        async move { pending.await.expect("the request reached the server") }
    }

    /// Sends the call and asserts a 200, returning the response.
    pub async fn ok(self) -> Response {
        self.expect(200).await
    }

    /// Sends the call and asserts `status`, returning the response.
    pub async fn expect(self, expected: u16) -> Response {
        let what = self.describe();
        let response = self.send().await;
        if response.status() != expected {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            panic!("{what}: expected {expected}, got {status}: {body}");
        }
        response
    }

    /// Sends the call, asserts a 200 and returns the JSON body.
    pub async fn json(self) -> Value {
        self.ok().await.json().await.expect("a JSON body")
    }

    /// Sends the call, asserts a 202 (accepted for later) and returns the JSON body.
    pub async fn accepted(self) -> Value {
        self.expect(202).await.json().await.expect("a JSON body")
    }

    /// Sends the call and asserts a problem+json answer with `status` (see
    /// `assert_problem`), returning its body.
    pub async fn problem(self, status: u16) -> Value {
        assert_problem(self.send().await, status).await
    }

    fn describe(&self) -> String {
        format!("{} {}{}", self.method, self.path, self.query)
    }
}

/// The UiPath operations, as typed calls.
impl TestApp {
    /// Any UiPath-API call to `{base}{path}`.
    pub fn call(&self, method: Method, path: &str, token: &str, folder: Option<&str>) -> Call<'_> {
        Call::new(self, method, path.to_string(), token, folder)
    }

    /// `POST …/updateToLatestAppVersionBulk` with `{"deploymentIds": ids}`.
    pub fn bulk_call(&self, token: &str, folder: &str, ids: &[String]) -> Call<'_> {
        self.call(Method::POST, BULK_PATH, token, Some(folder))
            .body(json!({ "deploymentIds": ids }))
    }

    /// A bulk call by `subject` with a token holding the write scopes.
    pub fn bulk_as(&self, subject: &str, folder: &str, ids: &[String]) -> Call<'_> {
        self.bulk_call(&self.token(subject, WRITE_SCOPES), folder, ids)
    }

    /// `GET /models/deployed/apps{query}`.
    pub fn list_deployed(&self, token: &str, folder: &str, query: &str) -> Call<'_> {
        self.call(Method::GET, "/models/deployed/apps", token, Some(folder))
            .query(query)
    }

    /// `GET /folders{query}`: the folders the token may look into (no folder header).
    pub fn folders(&self, token: &str, query: &str) -> Call<'_> {
        self.call(Method::GET, "/folders", token, None).query(query)
    }

    /// `GET /models/deployed/apps/versionCounts` in `folder`.
    pub fn version_counts(&self, token: &str, folder: &str) -> Call<'_> {
        self.call(
            Method::GET,
            "/models/deployed/apps/versionCounts",
            token,
            Some(folder),
        )
    }

    /// `PATCH /models/deployed/apps/{id}` with `body`.
    pub fn edit_deployed(&self, token: &str, folder: &str, id: &str, body: Value) -> Call<'_> {
        self.call(
            Method::PATCH,
            &format!("/models/deployed/apps/{id}"),
            token,
            Some(folder),
        )
        .body(body)
    }

    /// `GET /models/deployed/apps/{id}/history{query}`.
    pub fn history(&self, token: &str, folder: &str, id: &str, query: &str) -> Call<'_> {
        self.call(
            Method::GET,
            &format!("/models/deployed/apps/{id}/history"),
            token,
            Some(folder),
        )
        .query(query)
    }

    /// `POST /models/deployed/apps/{id}/rollback`, with `body` when given (none means
    /// "the version before the last change").
    pub fn rollback(&self, token: &str, folder: &str, id: &str, body: Option<Value>) -> Call<'_> {
        let call = self.call(
            Method::POST,
            &format!("/models/deployed/apps/{id}/rollback"),
            token,
            Some(folder),
        );
        match body {
            Some(body) => call.body(body),
            None => call,
        }
    }

    /// `POST /models/{app}/publish/versions/{version}/deploy`, without a body; add one
    /// with `.body(…)`.
    pub fn deploy_call(
        &self,
        token: &str,
        folder: &str,
        system_name: &str,
        version: impl Display,
    ) -> Call<'_> {
        self.call(
            Method::POST,
            &format!("/models/{system_name}/publish/versions/{version}/deploy"),
            token,
            Some(folder),
        )
    }

    /// `POST /models/apps/codedapp/publish` with `{"packageName", "packageVersion"}`
    /// (add `tenantName` with `.field(…)` when a test sends it).
    pub fn publish_call(&self, token: &str, package: &str, version: &str) -> Call<'_> {
        self.call(Method::POST, "/models/apps/codedapp/publish", token, None)
            .body(json!({"packageName": package, "packageVersion": version}))
    }

    /// `POST /operations/upgrades` with `body`.
    pub fn create_operation(&self, token: &str, folder: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, "/operations/upgrades", token, Some(folder))
            .body(body)
    }

    /// `GET /operations/{id}`.
    pub fn operation(&self, token: &str, folder: &str, id: &str) -> Call<'_> {
        self.call(
            Method::GET,
            &format!("/operations/{id}"),
            token,
            Some(folder),
        )
    }

    /// `GET /operations/{id}/items{query}`.
    pub fn operation_items(&self, token: &str, folder: &str, id: &str, query: &str) -> Call<'_> {
        self.call(
            Method::GET,
            &format!("/operations/{id}/items"),
            token,
            Some(folder),
        )
        .query(query)
    }

    /// `GET /operations{query}`.
    pub fn operations(&self, token: &str, folder: &str, query: &str) -> Call<'_> {
        self.call(Method::GET, "/operations", token, Some(folder))
            .query(query)
    }

    /// `POST /operations/{id}/cancel`.
    pub fn cancel_operation(&self, token: &str, folder: &str, id: &str) -> Call<'_> {
        self.call(
            Method::POST,
            &format!("/operations/{id}/cancel"),
            token,
            Some(folder),
        )
    }

    /// `POST /rollouts` with `body` (tenant scope: no folder header).
    pub fn create_rollout(&self, token: &str, body: Value) -> Call<'_> {
        self.call(Method::POST, "/rollouts", token, None).body(body)
    }

    /// `POST /rollouts` that must answer 201; the rollout.
    pub async fn created_rollout(&self, token: &str, body: Value) -> Value {
        self.create_rollout(token, body)
            .expect(201)
            .await
            .json()
            .await
            .unwrap()
    }

    /// `GET /rollouts/{id}`.
    pub fn rollout(&self, token: &str, id: &str) -> Call<'_> {
        self.call(Method::GET, &format!("/rollouts/{id}"), token, None)
    }

    /// `GET /rollouts{query}`.
    pub fn rollouts(&self, token: &str, query: &str) -> Call<'_> {
        self.call(Method::GET, "/rollouts", token, None)
            .query(query)
    }

    /// `POST /rollouts/{id}/{action}` with `{"comment": …}`.
    pub fn rollout_action(&self, token: &str, id: &str, action: &str, comment: &str) -> Call<'_> {
        self.call(
            Method::POST,
            &format!("/rollouts/{id}/{action}"),
            token,
            None,
        )
        .body(json!({ "comment": comment }))
    }

    /// Polls the rollout until its status is `status` (at most 60 s); the rollout.
    pub async fn rollout_in(&self, token: &str, id: &str, status: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let rollout = self.rollout(token, id).json().await;
            if rollout["status"] == status {
                return rollout;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not {status}: {rollout:#}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Polls the monitor until the operation is finished (at most 60 s), checking at
    /// every poll that the counters add up to `total`; the last monitor.
    pub async fn finished_operation(&self, token: &str, folder: &str, id: &str) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let monitor = self.operation(token, folder, id).json().await;
            assert_counters_add_up(&monitor);
            if ["Succeeded", "Failed", "Canceled"].contains(&monitor["status"].as_str().unwrap()) {
                return monitor;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not finished: {monitor}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `DELETE /models/{app}/publish/versions/{version}`.
    pub fn unpublish_call(
        &self,
        token: &str,
        system_name: &str,
        version: impl Display,
    ) -> Call<'_> {
        self.call(
            Method::DELETE,
            &format!("/models/{system_name}/publish/versions/{version}"),
            token,
            None,
        )
    }

    /// `GET /models/tenants/{tenant}/publish/apps`: the published catalogue.
    pub fn catalog_apps(&self, token: &str, tenant: &str) -> Call<'_> {
        self.call(
            Method::GET,
            &format!("/models/tenants/{tenant}/publish/apps"),
            token,
            None,
        )
    }

    /// `GET /models/{app}/tenants/{tenant}/publish/versions`: one app's versions.
    pub fn catalog_versions(&self, token: &str, system_name: &str, tenant: &str) -> Call<'_> {
        self.call(
            Method::GET,
            &format!("/models/{system_name}/tenants/{tenant}/publish/versions"),
            token,
            None,
        )
    }

    /// `GET /models/deployed/apps/uniquename/check/{name}`.
    pub fn name_check(&self, token: &str, routing_name: &str) -> Call<'_> {
        self.call(
            Method::GET,
            &format!("/models/deployed/apps/uniquename/check/{routing_name}"),
            token,
            None,
        )
    }
}

/// Calls outside the UiPath API.
impl TestApp {
    /// `GET {address}{path}` with nothing else: health, metrics, documents, unknown paths.
    pub async fn get_path(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the request reached the server")
    }

    /// A `POST` to the token endpoint, for a test to add its own credentials and form.
    pub fn token_post(&self) -> RequestBuilder {
        self.client.post(self.token_url())
    }
}

/// The monitor's counters: every part, and their sum equal to `total`.
pub fn assert_counters_add_up(monitor: &Value) {
    let counters = &monitor["counters"];
    let parts = [
        "pending",
        "running",
        "updated",
        "unchanged",
        "failed",
        "skipped",
        "canceled",
    ];
    let sum: u64 = parts
        .iter()
        .map(|p| {
            counters[p]
                .as_u64()
                .unwrap_or_else(|| panic!("{p} missing: {monitor}"))
        })
        .sum();
    assert_eq!(sum, counters["total"].as_u64().unwrap(), "{monitor}");
}
