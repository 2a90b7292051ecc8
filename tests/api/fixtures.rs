//! Scenario builders for the setups the tests repeat: a folder where a subject holds a
//! role, a fleet of deployments waiting for an upgrade, token-request forms and the
//! `uplift` command line.

use std::{
    future::{Future, IntoFuture},
    pin::Pin,
    process::Command,
};

use entity::{deployment, folder};
use sea_orm::{EntityTrait, PaginatorTrait};
use uplift::{access::Role, service::catalog::Published};

use crate::helpers::{ALL_SCOPES, CliOutput, TestApp, run_cli};

/// What [`TestApp::fleet`] set up: a folder, an app published at `published` (version
/// 1) and deployed there, with any newer versions published after the deployments.
pub struct Fleet {
    pub folder: folder::Model,
    pub published: Published,
    pub system_name: String,
    pub deployments: Vec<deployment::Model>,
}

impl Fleet {
    /// The deployments' ids, in the order they were deployed.
    pub fn ids(&self) -> Vec<String> {
        self.deployments.iter().map(|d| d.id.clone()).collect()
    }

    /// The deployments as an array to name each: `let [first, second] = fleet.each();`.
    pub fn each<const N: usize>(&self) -> [&deployment::Model; N] {
        assert_eq!(self.deployments.len(), N, "the fleet has another size");
        std::array::from_fn(|i| &self.deployments[i])
    }
}

/// A [`Fleet`] being described; awaiting it sets it up, in this order: the folder, the
/// grants, the first version, the deployments on it, the newer versions.
#[must_use = "a fleet is set up only when awaited"]
pub struct FleetBuilder<'a> {
    app: &'a TestApp,
    folder: &'a str,
    grants: Vec<(&'a str, Role)>,
    package: &'a str,
    version: &'a str,
    count: usize,
    newer: Vec<&'a str>,
}

impl TestApp {
    /// A fleet in the folder "Ops": one deployment of "Portal" 1.0.0, no grant and no
    /// newer version until the builder adds them.
    pub fn fleet(&self) -> FleetBuilder<'_> {
        FleetBuilder {
            app: self,
            folder: "Ops",
            grants: Vec::new(),
            package: "Portal",
            version: "1.0.0",
            count: 1,
            newer: Vec::new(),
        }
    }

    /// A top-level folder `name` where `subject` holds `role`.
    pub async fn granted_folder(&self, name: &str, subject: &str, role: Role) -> folder::Model {
        let folder = self.folder(name).await;
        self.grant(subject, role, Some(&folder)).await;
        folder
    }

    /// A top-level folder `name` where `subject` is FolderAdministrator, and a token
    /// for `subject` with every scope.
    pub async fn editor_in(&self, name: &str, subject: &str) -> (folder::Model, String) {
        let folder = self
            .granted_folder(name, subject, Role::FolderAdministrator)
            .await;
        (folder, self.token(subject, ALL_SCOPES))
    }
}

impl<'a> FleetBuilder<'a> {
    /// The folder's name (default "Ops").
    pub fn in_folder(mut self, name: &'a str) -> Self {
        self.folder = name;
        self
    }

    /// `subject` holds `role` in the folder.
    pub fn granted(mut self, subject: &'a str, role: Role) -> Self {
        self.grants.push((subject, role));
        self
    }

    /// `subject` is FolderAdministrator in the folder.
    pub fn administered_by(self, subject: &'a str) -> Self {
        self.granted(subject, Role::FolderAdministrator)
    }

    /// The package and its first version (default "Portal" 1.0.0).
    pub fn of(mut self, package: &'a str, version: &'a str) -> Self {
        self.package = package;
        self.version = version;
        self
    }

    /// How many deployments on version 1 (default 1).
    pub fn deployments(mut self, count: usize) -> Self {
        self.count = count;
        self
    }

    /// A newer version published once the deployments exist (call again for more).
    pub fn newer(mut self, version: &'a str) -> Self {
        self.newer.push(version);
        self
    }

    async fn build(self) -> Fleet {
        let app = self.app;
        let folder = app.folder(self.folder).await;
        for (subject, role) in self.grants {
            app.grant(subject, role, Some(&folder)).await;
        }
        let published = app.publish(self.package, self.version).await;
        let system_name = published.app.system_name.clone();
        let mut deployments = Vec::with_capacity(self.count);
        for _ in 0..self.count {
            deployments.push(app.deploy(&folder, &system_name, 1).await);
        }
        for version in self.newer {
            app.publish(self.package, version).await;
        }
        Fleet {
            folder,
            published,
            system_name,
            deployments,
        }
    }
}

impl<'a> IntoFuture for FleetBuilder<'a> {
    type Output = Fleet;
    type IntoFuture = Pin<Box<dyn Future<Output = Fleet> + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.build())
    }
}

/// The form of a client-credentials token request.
pub fn client_credentials<'a>(id: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ]
}

/// The `uplift` command line against this app.
impl TestApp {
    /// Runs `uplift ARGS` to completion with nothing on its stdin.
    pub async fn uplift(&self, args: &[&str]) -> CliOutput {
        let mut command = self.uplift_command();
        command.args(args);
        run_cli(command, None).await
    }

    /// `uplift upgrade` aimed at this app's tenant and `folder_key`, for the test to add
    /// credentials and ids.
    pub fn upgrade_command(&self, folder_key: &str) -> Command {
        self.client_command(&["upgrade"], folder_key)
    }

    /// `uplift operations SUBCOMMAND…` aimed at this app's tenant and `folder_key`, for
    /// the test to add credentials.
    pub fn operations_command(&self, folder_key: &str, subcommand: &[&str]) -> Command {
        let command = [&["operations"][..], subcommand].concat();
        self.client_command(&command, folder_key)
    }

    /// `uplift COMMAND…` followed by the connection options of the client commands.
    fn client_command(&self, command: &[&str], folder_key: &str) -> Command {
        let mut uplift = self.uplift_command();
        uplift.args(command).args([
            "--base-url",
            &self.base,
            "--tenant",
            &self.tenant,
            "--folder",
            folder_key,
        ]);
        uplift
    }

    /// Sets the tags of each deployment through the API (`PATCH` of the deployed app).
    pub async fn tag(
        &self,
        token: &str,
        folder_key: &str,
        tagged: &[(&deployment::Model, &[&str])],
    ) {
        for (d, tags) in tagged {
            self.edit_deployed(
                token,
                folder_key,
                &d.id,
                serde_json::json!({ "tags": tags }),
            )
            .ok()
            .await;
        }
    }
}

/// Counts straight from the database.
impl TestApp {
    /// How many history events there are, in every tenant.
    pub async fn event_count(&self) -> u64 {
        entity::deployment_event::Entity::find()
            .count(&self.db)
            .await
            .unwrap()
    }

    /// How many `Idempotency-Key` records are stored, in every tenant.
    pub async fn idempotency_records(&self) -> u64 {
        entity::idempotency_key::Entity::find()
            .count(&self.db)
            .await
            .unwrap()
    }
}

/// The `code` of each failure in a bulk answer, in order.
pub fn failure_codes(body: &serde_json::Value) -> Vec<&str> {
    body["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect()
}

/// Fleets waiting for an upgrade, and operations run to their end.
impl TestApp {
    /// `count` deployments of "Portal" 1.0.0 in the folder "Ops", where `subject` is
    /// FolderAdministrator, with 1.1.0 published after them: every one outdated.
    pub async fn outdated_fleet(&self, subject: &str, count: usize) -> Fleet {
        self.fleet()
            .administered_by(subject)
            .deployments(count)
            .newer("1.1.0")
            .await
    }

    /// Creates an operation from `body` (expecting 202) and polls its monitor until the
    /// operation is finished: the last monitor.
    pub async fn operation_run_to_the_end(
        &self,
        token: &str,
        folder: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let created = self.create_operation(token, folder, body).accepted().await;
        let id = created["id"].as_str().expect("an operation id");
        self.finished_operation(token, folder, id).await
    }

    /// Creates an operation over `ids` that upgrades one item at a time (expecting
    /// 202): its first monitor.
    pub async fn one_at_a_time_operation(
        &self,
        token: &str,
        folder: &str,
        ids: &[String],
    ) -> serde_json::Value {
        let body = serde_json::json!({"deploymentIds": ids, "maxConcurrency": 1});
        self.create_operation(token, folder, body).accepted().await
    }
}

/// Calls whose answer the tests read one way.
impl TestApp {
    /// The titles of the deployed apps `GET …/models/deployed/apps{query}` lists, in order.
    pub async fn listed_titles(&self, token: &str, folder: &str, query: &str) -> Vec<String> {
        let body = self.list_deployed(token, folder, query).json().await;
        body["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["title"].as_str().unwrap().to_string())
            .collect()
    }

    /// An Administrator of the tenant ("admin") unpublishes `version` of `system_name`
    /// through the API (expecting 204).
    pub async fn withdraw_version(&self, system_name: &str, version: i32) {
        self.grant("admin", Role::Administrator, None).await;
        let admin = self.token("admin", ALL_SCOPES);
        self.unpublish_call(&admin, system_name, version)
            .expect(204)
            .await;
    }
}
