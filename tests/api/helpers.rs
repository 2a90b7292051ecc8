//! `spawn_app()`: a server on a random port over a fresh database, plus fixture
//! builders that set data up through the service layer.

use std::time::Duration;

use entity::{deployment, deployment_event, folder};
use reqwest::Response;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde_json::Value;
use uplift::{
    access::Role,
    auth::Keys,
    config::Settings,
    db,
    http::Application,
    service::{
        Actor,
        catalog::{self, AppDefaults, Published},
        deployments::{self, DeployOptions},
        folders, roles,
    },
    telemetry,
};

use crate::fixtures::client_credentials;

pub const WRITE_SCOPES: &str = "Apps.Write OR.Folders.Read";
pub const READ_SCOPES: &str = "Apps.Read";
pub const ALL_SCOPES: &str = "Apps OR.Folders.Read";

pub struct TestApp {
    pub address: String,
    /// `address` + the UiPath base path.
    pub base: String,
    pub db: DatabaseConnection,
    pub settings: Settings,
    pub keys: Keys,
    pub tenant: String,
    pub client: reqwest::Client,
    _database: TestDatabase,
}

pub enum TestDatabase {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let TestDatabase::Postgres { admin_url, name } = self {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs outside any runtime we may block on, so use a thread of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(&admin_url).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn is_postgres() -> bool {
    std::env::var("UPLIFT_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty())
}

pub async fn fresh_database(settings: &mut Settings) -> TestDatabase {
    match std::env::var("UPLIFT_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(admin_url) => {
            let name = format!("uplift_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to UPLIFT_TEST_POSTGRES_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("create test database");
            admin.close().await.ok();
            let (prefix, _) = admin_url
                .rsplit_once('/')
                .expect("UPLIFT_TEST_POSTGRES_URL has a database path");
            settings.database_url = Some(format!("{prefix}/{name}").into());
            TestDatabase::Postgres { admin_url, name }
        }
        None => {
            let dir = tempfile::tempdir().unwrap();
            settings.data_dir = dir.path().to_path_buf();
            TestDatabase::Sqlite(dir)
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        telemetry::init(uplift::config::LogFormat::Text);
    }
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        organization: "acme".into(),
        jwt_secret: Some(format!("test-secret-{}", uuid::Uuid::new_v4()).into()),
        workers: Some(2),
        db_max_connections: 12,
        ..Settings::default()
    };
    let database = fresh_database(&mut settings).await;
    configure(&mut settings);
    let app = Application::build(settings.clone())
        .await
        .expect("build the application");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let db = db::connect(&settings).await.unwrap();
    let keys = Keys::from_settings(&settings).unwrap();
    TestApp {
        base: format!("{address}{}", settings.uipath_base_path()),
        address,
        db,
        settings,
        keys,
        tenant: format!("tenant-{}", uuid::Uuid::new_v4().simple()),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
        _database: database,
    }
}

impl TestApp {
    /// The HS256 secret the test server signs and verifies with.
    pub fn jwt_secret(&self) -> String {
        let secret = self
            .settings
            .jwt_secret
            .as_ref()
            .expect("tests sign with HS256");
        secret.expose().to_string()
    }

    pub fn token(&self, subject: &str, scope: &str) -> String {
        self.token_for(&self.tenant, subject, scope)
    }

    pub fn token_for(&self, tenant: &str, subject: &str, scope: &str) -> String {
        self.keys
            .issue(tenant, subject, scope, Duration::from_secs(3600))
            .unwrap()
    }

    pub async fn folder(&self, name: &str) -> folder::Model {
        folders::create(&self.db, &self.tenant, name, None, "default")
            .await
            .unwrap()
    }

    pub async fn subfolder(&self, name: &str, parent: &folder::Model) -> folder::Model {
        folders::create(
            &self.db,
            &parent.tenant_id,
            name,
            Some(&parent.key),
            "default",
        )
        .await
        .unwrap()
    }

    pub async fn folder_in(&self, tenant: &str, name: &str) -> folder::Model {
        folders::create(&self.db, tenant, name, None, "default")
            .await
            .unwrap()
    }

    pub async fn grant(&self, subject: &str, role: Role, folder: Option<&folder::Model>) {
        let tenant = folder
            .map(|f| f.tenant_id.clone())
            .unwrap_or_else(|| self.tenant.clone());
        roles::assign(
            &self.db,
            &tenant,
            subject,
            role,
            folder.map(|f| f.key.as_str()),
        )
        .await
        .unwrap();
    }

    pub async fn revoke(&self, subject: &str, role: Role, folder: Option<&folder::Model>) {
        roles::revoke(
            &self.db,
            &self.tenant,
            subject,
            role,
            folder.map(|f| f.key.as_str()),
        )
        .await
        .unwrap();
    }

    pub async fn publish(&self, package: &str, version: &str) -> Published {
        self.publish_in(&self.tenant, package, version).await
    }

    pub async fn publish_in(&self, tenant: &str, package: &str, version: &str) -> Published {
        catalog::publish(
            &self.db,
            tenant,
            package,
            version,
            &Actor::new("publisher", None),
            &AppDefaults::default(),
        )
        .await
        .unwrap()
    }

    pub async fn deploy(
        &self,
        folder: &folder::Model,
        system_name: &str,
        version: i32,
    ) -> deployment::Model {
        deployments::deploy(
            &self.db,
            folder,
            system_name,
            version,
            DeployOptions::default(),
            &Actor::new("deployer", None),
        )
        .await
        .unwrap()
    }

    /// A folder where `subject` is FolderAdministrator, holding one deployment of
    /// "Invoice Portal" on version 1 while version 2 is published.
    pub async fn upgradable_deployment(&self, subject: &str) -> (folder::Model, deployment::Model) {
        let mut fleet = self
            .fleet()
            .in_folder("Finance")
            .administered_by(subject)
            .of("Invoice Portal", "1.0.0")
            .newer("2.0.0")
            .await;
        (fleet.folder, fleet.deployments.remove(0))
    }

    pub async fn deployment(&self, id: &str) -> deployment::Model {
        deployment::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .unwrap()
            .unwrap()
    }

    pub async fn events(&self, deployment_id: &str) -> Vec<deployment_event::Model> {
        deployment_event::Entity::find()
            .filter(deployment_event::Column::DeploymentId.eq(deployment_id))
            .order_by_asc(deployment_event::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    pub fn bulk_url(&self) -> String {
        format!(
            "{}/models/deployed/apps/updateToLatestAppVersionBulk",
            self.base
        )
    }

    /// A bulk call with a token for `subject` holding the write scopes.
    pub async fn bulk(&self, subject: &str, folder_key: &str, ids: &[String]) -> Response {
        self.bulk_as(subject, folder_key, ids).send().await
    }

    /// A bulk call by `subject` that must answer 200; its body.
    pub async fn bulk_json(&self, subject: &str, folder_key: &str, ids: &[String]) -> Value {
        self.bulk_as(subject, folder_key, ids).json().await
    }
}

/// Asserts a problem+json answer with `status`, returning its body.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(content_type, "application/problem+json");
    let request_id = response
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(body["traceId"], request_id.as_str());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    body
}

/// Inserts `n` deployments of `app_id` at `version` (with their deploy events) in bulk,
/// for tests that need many; returns their ids.
pub async fn seed_deployments(
    db: &DatabaseConnection,
    folder: &folder::Model,
    app_id: i32,
    version: i32,
    n: usize,
) -> Vec<String> {
    use sea_orm::Set;
    let now = chrono::Utc::now();
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for chunk in ids.chunks(200) {
        deployment::Entity::insert_many(chunk.iter().map(|id| deployment::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(folder.tenant_id.clone()),
            folder_id: Set(folder.id),
            app_id: Set(app_id),
            version: Set(version),
            title: Set(format!("App {id}")),
            description: Set(String::new()),
            routing_name: Set(format!("r-{id}")),
            maintenance_enabled: Set(false),
            maintenance_url: Set(None),
            maintenance_excluded_users: Set("[]".into()),
            created_at: Set(now),
            updated_at: Set(now),
        }))
        .exec(db)
        .await
        .unwrap();
        deployment_event::Entity::insert_many(chunk.iter().map(|id| {
            deployment_event::ActiveModel {
                tenant_id: Set(folder.tenant_id.clone()),
                deployment_id: Set(id.clone()),
                kind: Set(entity::deployment_event::EventKind::Deploy),
                from_version: Set(None),
                to_version: Set(version),
                actor: Set("seed".into()),
                request_id: Set(None),
                created_at: Set(now),
                ..Default::default()
            }
        }))
        .exec(db)
        .await
        .unwrap();
    }
    ids
}

/// Checks every deployment's history straight from the database: an unbroken chain
/// from its deploy event to its current version. Returns the number of events.
pub async fn assert_history_chains(db: &DatabaseConnection) -> usize {
    let events = deployment_event::Entity::find()
        .order_by_asc(deployment_event::Column::Id)
        .all(db)
        .await
        .unwrap();
    let mut last: std::collections::HashMap<String, i32> = std::collections::HashMap::new();
    for e in &events {
        match last.get(&e.deployment_id) {
            None => assert_eq!((e.kind.as_str(), e.from_version), ("deploy", None), "{e:?}"),
            Some(previous) => assert_eq!(e.from_version, Some(*previous), "broken chain at {e:?}"),
        }
        last.insert(e.deployment_id.clone(), e.to_version);
    }
    for d in deployment::Entity::find().all(db).await.unwrap() {
        assert_eq!(
            last.get(&d.id),
            Some(&d.version),
            "history of {} does not end at its version",
            d.id
        );
    }
    events.len()
}

/// An OpenAPI path with its parameters filled in: the app "Portal" at version 1, this
/// deployment, tenant (also the Rainbond team) and folder id (the Rainbond app id).
pub fn concrete_path(path: &str, deployment_id: &str, tenant: &str, folder_id: i32) -> String {
    path.replace("{app_system_name}", "Portal")
        .replace("{version}", "1")
        .replace("{cloud_tenant_id}", tenant)
        .replace("{deployed_app_id}", deployment_id)
        .replace("{routing_name}", "portal")
        .replace("{team_id}", tenant)
        .replace("{region_name}", "default")
        .replace("{app_id}", &folder_id.to_string())
}

pub fn ids(deployments: &[&deployment::Model]) -> Vec<String> {
    deployments.iter().map(|d| d.id.clone()).collect()
}

/// Locks that keep items in flight.
impl TestApp {
    /// Holds the database's write path for deployments until dropped (rolled back):
    /// PostgreSQL locks the table against writes (reads go on), SQLite takes the write
    /// lock. An item that starts meanwhile waits for it (give the test's server a lock
    /// timeout longer than the hold).
    pub async fn hold_deployment_writes(
        &self,
        folder: &folder::Model,
    ) -> sea_orm::DatabaseTransaction {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let blocker = self.db.begin().await.unwrap();
        let sql = if is_postgres() {
            "LOCK TABLE deployments IN EXCLUSIVE MODE".to_string()
        } else {
            format!("UPDATE folders SET name = name WHERE id = {}", folder.id)
        };
        blocker.execute_unprepared(&sql).await.unwrap();
        blocker
    }
}

/// Client applications and the token endpoint.
impl TestApp {
    pub fn token_url(&self) -> String {
        format!("{}/identity_/connect/token", self.address)
    }

    /// Registers a client of this app's tenant; returns (client_id, client_secret).
    pub async fn create_client(&self, name: &str, scope: &str) -> (String, String) {
        let created = uplift::service::clients::create(&self.db, &self.tenant, name, scope)
            .await
            .unwrap();
        (created.client.client_id, created.secret)
    }

    /// A form-encoded token request with these fields.
    pub async fn request_token(&self, form: &(impl serde::Serialize + ?Sized)) -> Response {
        self.client
            .post(self.token_url())
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A client-credentials token for a registered client (all of its scopes).
    pub async fn client_token(&self, client_id: &str, secret: &str) -> String {
        let response = self
            .request_token(&client_credentials(client_id, secret))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The `uplift` binary, configured for this app's database and key, with none of
    /// the caller's own `UPLIFT_*` pipeline variables or log settings leaking in.
    pub fn uplift_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_uplift"));
        for name in [
            "UPLIFT_CONFIG",
            "UPLIFT_TOKEN",
            "UPLIFT_CLIENT_ID",
            "UPLIFT_CLIENT_SECRET",
            "UPLIFT_BASE_URL",
            "UPLIFT_TENANT",
            "UPLIFT_FOLDER",
            "UPLIFT_TOKEN_URL",
            "UPLIFT_LOG",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        command.env("UPLIFT_DATA_DIR", &self.settings.data_dir);
        let expose =
            |s: &Option<uplift::config::Secret>| s.as_ref().map(|s| s.expose().to_string());
        for (name, value) in [
            ("UPLIFT_DATABASE_URL", &expose(&self.settings.database_url)),
            ("UPLIFT_JWT_SECRET", &expose(&self.settings.jwt_secret)),
            ("UPLIFT_JWT_PUBLIC_KEY", &self.settings.jwt_public_key),
            (
                "UPLIFT_JWT_PRIVATE_KEY",
                &expose(&self.settings.jwt_private_key),
            ),
        ] {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        command
    }
}

/// What a finished `uplift` process left.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` to completion on the blocking pool (the test's runtime keeps serving
/// the app meanwhile), feeding it `stdin` (empty when `None`).
pub async fn run_cli(mut command: std::process::Command, stdin: Option<&str>) -> CliOutput {
    use std::{io::Write, process::Stdio};
    let input = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start uplift");
        let mut pipe = child.stdin.take().unwrap();
        if let Some(input) = input {
            pipe.write_all(input.as_bytes()).unwrap();
        }
        drop(pipe);
        let output = child.wait_with_output().unwrap();
        CliOutput {
            code: output.status.code().expect("uplift exited by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .unwrap()
}

/// An RSA key pair (PKCS#8 PEM: public, private), generated once per test run.
pub fn rsa_key_pair() -> &'static (String, String) {
    static PAIR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let mut rng = rsa::rand_core::OsRng;
        let private = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        (
            private
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        )
    })
}

/// A P-256 key pair (PKCS#8 PEM: public, private), generated once per test run.
pub fn ec_key_pair() -> &'static (String, String) {
    static PAIR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        (
            secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        )
    })
}
