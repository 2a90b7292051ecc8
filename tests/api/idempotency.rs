//! `Idempotency-Key`: replay, mismatch, in-progress, scoping, expiry, and a server
//! killed in the middle of a keyed bulk call.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chrono::Utc;
use entity::{deployment, deployment_event, idempotency_key};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use uplift::{access::Role, config::Settings, db, idempotency as store};

use crate::{
    client::Call,
    helpers::{
        ALL_SCOPES, TestApp, assert_history_chains, assert_problem, fresh_database, ids,
        seed_deployments, spawn_app,
    },
};

/// A bulk call by `subject` (all scopes) with an `Idempotency-Key`.
fn keyed<'a>(app: &'a TestApp, subject: &str, folder: &str, key: &str, ids: &[String]) -> Call<'a> {
    app.bulk_call(&app.token(subject, ALL_SCOPES), folder, ids)
        .key(key)
}

/// The folder "Ops" where "editor" is FolderAdministrator.
async fn editors_folder(app: &TestApp) -> entity::folder::Model {
    app.granted_folder("Ops", "editor", Role::FolderAdministrator)
        .await
}

#[tokio::test]
async fn a_repeated_keyed_call_gets_the_first_answer_back_and_changes_nothing() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("editor").newer("1.1.0").await;
    let (folder, [d]) = (&fleet.folder, fleet.each());
    let body = ids(&[d]);

    let first = keyed(&app, "editor", &folder.key, "run-1", &body)
        .send()
        .await;
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.bytes().await.unwrap();
    app.publish("Portal", "1.2.0").await;
    let events_before = app.event_count().await;

    let repeat = keyed(&app, "editor", &folder.key, "run-1", &body)
        .send()
        .await;
    assert_eq!(repeat.status(), 200);
    assert_eq!(repeat.headers()["idempotent-replayed"], "true");
    assert_eq!(repeat.headers()["content-type"], "application/json");
    assert_eq!(
        repeat.bytes().await.unwrap(),
        first_body,
        "the stored answer, byte for byte"
    );
    assert_eq!(
        app.event_count().await,
        events_before,
        "the repeat changed nothing"
    );
    assert_eq!(app.deployment(&d.id).await.version, 2);

    // Another subject's key space is its own: the same key runs afresh for them.
    app.grant("other-bot", Role::FolderAdministrator, Some(folder))
        .await;
    let theirs: Value = keyed(&app, "other-bot", &folder.key, "run-1", &body)
        .send()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["updatedDeployments"][0]["version"], 3);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422_and_changes_nothing() {
    let app = spawn_app().await;
    let fleet = app.outdated_fleet("editor", 2).await;
    let (folder, [a, b]) = (&fleet.folder, fleet.each());
    keyed(&app, "editor", &folder.key, "k", &ids(&[a]))
        .send()
        .await;
    keyed(&app, "editor", &folder.key, "k", &ids(&[b]))
        .problem(422)
        .await;
    assert_eq!(app.deployment(&b.id).await.version, 1);
    keyed(&app, "editor", &folder.key, "has space", &[])
        .problem(400)
        .await;
}

#[tokio::test]
async fn every_data_changing_call_honours_the_key() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("admin", Role::Administrator, None).await;
    let token = app.token("admin", ALL_SCOPES);
    let publish = || {
        app.publish_call(&token, "Portal", "1.0.0")
            .key("publish-1")
            .send()
    };
    assert_eq!(publish().await.status(), 200);
    assert_eq!(publish().await.headers()["idempotent-replayed"], "true");
    let deploy = || {
        app.deploy_call(&token, &folder.key, "Portal", 1)
            .key("deploy-1")
            .send()
    };
    let first: Value = deploy().await.json().await.unwrap();
    let second: Value = deploy().await.json().await.unwrap();
    assert_eq!(
        first, second,
        "the retried deploy returns the first deployment's id"
    );
    assert_eq!(
        deployment::Entity::find().count(&app.db).await.unwrap(),
        1,
        "and creates no second one"
    );
    let id = first["id"].as_str().unwrap();
    let edit = || {
        app.edit_deployed(&token, &folder.key, id, json!({"title": "Renamed"}))
            .key("edit-1")
            .send()
    };
    assert_eq!(edit().await.status(), 200);
    assert_eq!(edit().await.headers()["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_repeat_while_the_first_call_still_runs_gets_a_409_then_the_answer() {
    // Enough items, one at a time, that the first call is still running when the
    // repeat arrives even on a loaded machine (900 once finished first there).
    let app = crate::helpers::spawn_app_with(|s| {
        s.upgrade_concurrency = 1;
        s.max_bulk_items = 5000;
    })
    .await;
    let folder = editors_folder(&app).await;
    let published = app.publish("Portal", "1.0.0").await;
    let ids = seed_deployments(&app.db, &folder, published.app.id, 1, 5000).await;
    app.publish("Portal", "1.1.0").await;

    let first = tokio::spawn(keyed(&app, "editor", &folder.key, "slow", &ids).send());
    wait_for_upgrade_events(&app.db, 1).await;
    let during = keyed(&app, "editor", &folder.key, "slow", &ids)
        .send()
        .await;
    assert!(during.headers().contains_key("retry-after"));
    assert_problem(during, 409).await;
    let first: Value = first.await.unwrap().json().await.unwrap();
    let after: Value = keyed(&app, "editor", &folder.key, "slow", &ids)
        .send()
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first, after);
}

#[tokio::test]
async fn keys_past_their_retention_are_purged_and_run_afresh() {
    let app = spawn_app().await;
    let folder = editors_folder(&app).await;
    keyed(&app, "editor", &folder.key, "old", &[]).send().await;
    keyed(&app, "editor", &folder.key, "new", &[]).send().await;
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::CreatedAt,
            Expr::value(Utc::now() - chrono::Duration::hours(25)),
        )
        .filter(idempotency_key::Column::Key.eq("old"))
        .exec(&app.db)
        .await
        .unwrap();
    let fresh = keyed(&app, "editor", &folder.key, "old", &[]).send().await;
    assert!(
        fresh.headers().get("idempotent-replayed").is_none(),
        "an expired key is not replayed"
    );
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::CreatedAt,
            Expr::value(Utc::now() - chrono::Duration::hours(25)),
        )
        .exec(&app.db)
        .await
        .unwrap();
    let purged = store::purge_expired(&app.db, Duration::from_secs(24 * 3600))
        .await
        .unwrap();
    assert_eq!(purged, 2);
    assert_eq!(
        idempotency_key::Entity::find()
            .count(&app.db)
            .await
            .unwrap(),
        0
    );
}

async fn wait_for_upgrade_events(db: &sea_orm::DatabaseConnection, at_least: u64) {
    let started = Instant::now();
    loop {
        let n = deployment_event::Entity::find()
            .filter(deployment_event::Column::Kind.eq("upgrade"))
            .count(db)
            .await
            .unwrap();
        if n >= at_least {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no upgrade started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `uplift serve` as a child process, killed with SIGKILL on drop.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    async fn start(settings: &Settings) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_uplift"));
        command
            .arg("serve")
            .env("UPLIFT_LISTEN", format!("127.0.0.1:{port}"))
            .env("UPLIFT_DATA_DIR", &settings.data_dir)
            .env("UPLIFT_ORGANIZATION", &settings.organization)
            .env(
                "UPLIFT_JWT_SECRET",
                settings.jwt_secret.as_ref().unwrap().expose(),
            )
            .env("UPLIFT_UPGRADE_CONCURRENCY", "1")
            .env(
                "UPLIFT_IDEMPOTENCY_LEASE_SECONDS",
                settings.idempotency_lease_seconds.to_string(),
            )
            .env("UPLIFT_MAX_BULK_ITEMS", "5000")
            .env("UPLIFT_MAX_BODY_BYTES", "4194304")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = &settings.database_url {
            command.env("UPLIFT_DATABASE_URL", url.expose());
        }
        let child = command.spawn().expect("start uplift serve");
        let server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("uplift serve did not become ready");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn a_keyed_bulk_call_retried_after_the_server_was_killed_mid_call_upgrades_each_item_exactly_once()
 {
    let mut settings = Settings {
        organization: "acme".into(),
        jwt_secret: Some(format!("crash-secret-{}", uuid::Uuid::new_v4()).into()),
        idempotency_lease_seconds: 3,
        ..Settings::default()
    };
    let _database = fresh_database(&mut settings).await;
    let conn = db::connect_and_migrate(&settings).await.unwrap();
    let keys = uplift::auth::Keys::from_settings(&settings).unwrap();
    let tenant = "crash-tenant";
    let folder = uplift::service::folders::create(&conn, tenant, "Ops", None, "default")
        .await
        .unwrap();
    uplift::service::roles::assign(
        &conn,
        tenant,
        "ci",
        Role::FolderAdministrator,
        Some(&folder.key),
    )
    .await
    .unwrap();
    let actor = uplift::service::Actor::new("seed", None);
    let defaults = uplift::service::catalog::AppDefaults::default();
    let app =
        uplift::service::catalog::publish(&conn, tenant, "Portal", "1.0.0", &actor, &defaults)
            .await
            .unwrap();
    let ids = seed_deployments(&conn, &folder, app.app.id, 1, 2000).await;
    uplift::service::catalog::publish(&conn, tenant, "Portal", "1.1.0", &actor, &defaults)
        .await
        .unwrap();

    let token = keys
        .issue(tenant, "ci", ALL_SCOPES, Duration::from_secs(600))
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let call = |base: &str| {
        client
            .post(format!("{base}/acme/apps_/default/api/v1/default/models/deployed/apps/updateToLatestAppVersionBulk"))
            .bearer_auth(&token)
            .header("X-UiPath-Internal-TenantId", tenant)
            .header("X-UiPath-FolderKey", &folder.key)
            .header("Idempotency-Key", "deploy-train-7")
            .json(&json!({"deploymentIds": ids}))
            .send()
    };

    let mut first = ServerProcess::start(&settings).await;
    let in_flight = tokio::spawn(call(&first.base));
    wait_for_upgrade_events(&conn, 20).await;
    first.kill();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the first call died with its server"
    );
    let done_before_retry = deployment::Entity::find()
        .filter(deployment::Column::Version.eq(2))
        .count(&conn)
        .await
        .unwrap();
    assert!(
        done_before_retry > 0 && done_before_retry < 2000,
        "killed mid-call ({done_before_retry} done)"
    );

    let second = ServerProcess::start(&settings).await;
    let started = Instant::now();
    let answer: Value = loop {
        let response = call(&second.base).await.unwrap();
        match response.status().as_u16() {
            // The dead call's lease has not lapsed yet.
            409 => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the key stayed locked"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            200 => break response.json().await.unwrap(),
            other => panic!("retry answered {other}"),
        }
    };
    assert_eq!(answer["failedItems"], json!([]));
    assert_eq!(answer["updatedDeployments"].as_array().unwrap().len(), 2000);
    assert_eq!(
        deployment::Entity::find()
            .filter(deployment::Column::Version.eq(2))
            .count(&conn)
            .await
            .unwrap(),
        2000
    );
    let upgrades = deployment_event::Entity::find()
        .filter(deployment_event::Column::Kind.eq("upgrade"))
        .count(&conn)
        .await
        .unwrap();
    assert_eq!(upgrades, 2000, "each item upgraded exactly once");
    assert_history_chains(&conn).await;
    // A further retry replays the stored answer.
    assert_eq!(
        call(&second.base).await.unwrap().headers()["idempotent-replayed"],
        "true"
    );
}

/// Makes storing an idempotent answer fail, as it does when the database goes away
/// between the call's work and the answer: a trigger refusing the key's move to `done`.
async fn refuse_storing_answers(app: &TestApp) {
    use sea_orm::ConnectionTrait;
    let statements: &[&str] = if crate::helpers::is_postgres() {
        &[
            "CREATE FUNCTION uplift_test_refuse() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected: the answer cannot be stored'; END $$",
            "CREATE TRIGGER uplift_test_refuse_done BEFORE UPDATE ON idempotency_keys \
             FOR EACH ROW WHEN (NEW.state = 'done') EXECUTE FUNCTION uplift_test_refuse()",
        ]
    } else {
        &[
            "CREATE TRIGGER uplift_test_refuse_done BEFORE UPDATE ON idempotency_keys \
           WHEN NEW.state = 'done' BEGIN SELECT RAISE(ABORT, 'injected'); END",
        ]
    };
    for sql in statements {
        app.db.execute_unprepared(sql).await.unwrap();
    }
}

#[tokio::test]
async fn an_answer_that_could_not_be_stored_is_never_sent_and_the_retry_answers_for_the_key() {
    let app = spawn_app().await;
    let fleet = app.fleet().administered_by("editor").newer("1.1.0").await;
    let (folder, [d]) = (&fleet.folder, fleet.each());
    let body = ids(&[d]);
    refuse_storing_answers(&app).await;

    // The upgrade commits, but its answer cannot be kept for a retry: a 503 to retry,
    // not a 200 that a retry with the same key would contradict.
    let first = keyed(&app, "editor", &folder.key, "cut-off", &body)
        .send()
        .await;
    assert_problem(first, 503).await;
    assert_eq!(app.deployment(&d.id).await.version, 2);

    {
        use sea_orm::ConnectionTrait;
        let drop = if crate::helpers::is_postgres() {
            "DROP TRIGGER uplift_test_refuse_done ON idempotency_keys"
        } else {
            "DROP TRIGGER uplift_test_refuse_done"
        };
        app.db.execute_unprepared(drop).await.unwrap();
    }
    // The key was released: the retry runs at once, moves nothing twice, and its
    // answer is the one every later retry gets.
    let retry = keyed(&app, "editor", &folder.key, "cut-off", &body)
        .send()
        .await;
    assert_eq!(retry.status(), 200);
    assert!(retry.headers().get("idempotent-replayed").is_none());
    let retry_body: Value = retry.json().await.unwrap();
    assert_eq!(retry_body["updatedDeployments"][0]["previousVersion"], 2);
    assert_eq!(retry_body["updatedDeployments"][0]["version"], 2);
    let replay = keyed(&app, "editor", &folder.key, "cut-off", &body)
        .send()
        .await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), retry_body);
    assert_eq!(
        app.events(&d.id).await.len(),
        2,
        "the deploy and one upgrade"
    );
}
