//! The four bugs the architecture review found, each pinned by a test that failed
//! before its fix: a `dryRun` read two ways, a token request whose body was read with
//! no time limit, idempotency writes that a taken-over call could still make, and
//! generated routing names that could make a deploy fail.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use chrono::Utc;
use entity::idempotency_key::{self, KeyState};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uplift::{
    access::Role,
    domain::RoutingName,
    idempotency::{self as store, Claim, KeyId, StoredResponse},
    service::{Actor, deployments},
};

use crate::helpers::{ALL_SCOPES, is_postgres, spawn_app, spawn_app_with};

/// `?dryRun=true&dryRun=false` used to be a dry run to the idempotency middleware
/// (which then skipped the key the client sent) and a real upgrade to the handler.
#[tokio::test]
async fn a_bulk_call_naming_dry_run_twice_is_refused_and_upgrades_nothing() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("editor").await;
    let token = app.token("editor", ALL_SCOPES);
    for query in ["?dryRun=true&dryRun=false", "?dryRun=false&dryRun=true"] {
        let problem = app
            .bulk_call(&token, &folder.key, std::slice::from_ref(&deployment.id))
            .query(query)
            .key(&format!("twice-{query}"))
            .problem(400)
            .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("dryRun"), "{detail}");
    }
    assert_eq!(app.deployment(&deployment.id).await.version, 1);
    assert_eq!(app.events(&deployment.id).await.len(), 1, "only the deploy");
}

/// The token endpoint is the one unauthenticated POST; it read its body with its own
/// code and no timeout, so a client sending a byte a second held a connection open
/// for as long as it liked.
#[tokio::test]
async fn a_token_request_whose_body_trickles_in_is_answered_408_within_the_body_timeout() {
    let app = spawn_app_with(|s| s.body_timeout_seconds = 2).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = "POST /identity_/connect/token HTTP/1.1\r\nHost: uplift\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 400\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        // One byte every 300 ms: never the whole body within the test's bound.
        for byte in b"grant_type=client_credentials&client_id=x"
            .iter()
            .cycle()
            .take(60)
        {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    trickle.abort();
    assert!(read.is_ok(), "no answer within 10 s to a body trickling in");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "answered after {:?}",
        started.elapsed()
    );
}

fn key_id(app: &crate::helpers::TestApp, key: &str) -> KeyId {
    KeyId {
        tenant_id: app.tenant.clone(),
        subject: "editor".into(),
        key: key.into(),
    }
}

/// Ends the current lease of a key, as when the server holding it stopped renewing.
async fn lapse_lease(app: &crate::helpers::TestApp, key: &str) {
    idempotency_key::Entity::update_many()
        .col_expr(
            idempotency_key::Column::LeaseExpiresAt,
            Expr::value(Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(idempotency_key::Column::Key.eq(key))
        .exec(&app.db)
        .await
        .unwrap();
}

/// `complete`, `renew` and `delete` used to match only (tenant, subject, key): a call
/// whose lease lapsed and was taken over could overwrite or delete the new holder's
/// record.
#[tokio::test]
async fn a_call_whose_lease_was_taken_over_can_neither_store_renew_nor_release_the_key() {
    let app = spawn_app().await;
    let id = key_id(&app, "fenced");
    let (lease, retention) = (Duration::from_secs(30), Duration::from_secs(3600));
    let Claim::Proceed(first) = store::claim(&app.db, &id, "hash", lease, retention)
        .await
        .unwrap()
    else {
        panic!("a new key is ours to run");
    };
    lapse_lease(&app, "fenced").await;
    let Claim::Proceed(second) = store::claim(&app.db, &id, "hash", lease, retention)
        .await
        .unwrap()
    else {
        panic!("a lapsed lease is taken over");
    };
    assert_ne!(first, second);

    let answer = |body: &str| StoredResponse {
        status: 200,
        content_type: Some("application/json".into()),
        body: body.as_bytes().to_vec(),
        location: None,
    };
    assert!(!store::renew(&app.db, &id, &first, lease).await.unwrap());
    store::complete(&app.db, &id, &first, &answer("first"))
        .await
        .unwrap();
    store::release(&app.db, &id, &first).await.unwrap();
    assert!(
        matches!(
            store::claim(&app.db, &id, "hash", lease, retention)
                .await
                .unwrap(),
            Claim::InProgress { .. }
        ),
        "the second holder's call is still running, untouched"
    );

    assert!(store::renew(&app.db, &id, &second, lease).await.unwrap());
    store::complete(&app.db, &id, &second, &answer("second"))
        .await
        .unwrap();
    match store::claim(&app.db, &id, "hash", lease, retention)
        .await
        .unwrap()
    {
        Claim::Replay(stored) => assert_eq!(stored.body, b"second"),
        other => panic!("expected the second holder's answer, got {other:?}"),
    }
}

/// The same through HTTP: a keyed bulk call waits on a row lock while its lease lapses
/// and another server takes the key over; when the first call finishes, its answer
/// must not replace the running holder's record, nor reach its client as the kept one.
#[tokio::test]
async fn a_keyed_call_that_lost_its_lease_does_not_store_its_answer_over_the_new_holder() {
    use sea_orm::{QuerySelect, TransactionTrait};
    if !is_postgres() {
        eprintln!(
            "skipped on SQLite: it needs a row lock to hold a call mid-flight \
             (the store-level test above covers SQLite)"
        );
        return;
    }
    let app = spawn_app_with(|s| s.lock_timeout_ms = 10_000).await;
    let (folder, deployment) = app.upgradable_deployment("editor").await;
    let holder = app.db.begin().await.unwrap();
    entity::deployment::Entity::find_by_id(deployment.id.clone())
        .lock_exclusive()
        .one(&holder)
        .await
        .unwrap()
        .unwrap();

    let token = app.token("editor", ALL_SCOPES);
    let ids = std::slice::from_ref(&deployment.id);
    let first = tokio::spawn(
        app.bulk_call(&token, &folder.key, ids)
            .key("lost-lease")
            .send(),
    );
    let row = loop {
        let found = idempotency_key::Entity::find()
            .filter(idempotency_key::Column::Key.eq("lost-lease"))
            .one(&app.db)
            .await
            .unwrap();
        if let Some(row) = found {
            break row;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    lapse_lease(&app, "lost-lease").await;
    let id = key_id(&app, "lost-lease");
    let taken = store::claim(
        &app.db,
        &id,
        &row.request_hash,
        Duration::from_secs(60),
        Duration::from_secs(3600),
    )
    .await
    .unwrap();
    assert!(matches!(taken, Claim::Proceed(_)), "{taken:?}");
    holder.rollback().await.unwrap();

    // The first call's work committed, but the key is the new holder's now: its
    // answer is the one retries get, so the first call does not answer as if its own
    // were kept (a 200 no retry would repeat) but says so.
    let answered = first.await.unwrap();
    assert_eq!(answered.status(), 409);
    let row = idempotency_key::Entity::find()
        .filter(idempotency_key::Column::Key.eq("lost-lease"))
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.state,
        KeyState::Running,
        "the new holder's record stands"
    );
    app.bulk_call(&token, &folder.key, ids)
        .key("lost-lease")
        .problem(409)
        .await;
}

/// A deploy without a `routingName` got one 24-bit random suffix and no retry: with a
/// few thousand deployments of one app, deploys failed with 409 "already taken".
#[tokio::test]
async fn a_generated_routing_name_that_is_taken_is_replaced_by_a_free_one() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    let published = app.publish("Portal", "1.0.0").await;
    let system_name = published.app.system_name.clone();
    let base = system_name.to_ascii_lowercase();
    let taken = deployments::deploy(
        &app.db,
        &folder,
        &system_name,
        1,
        deployments::DeployOptions {
            routing_name: Some(RoutingName::parse(&format!("{base}-aaaaaa")).unwrap()),
            ..Default::default()
        },
        &Actor::new("deployer", None),
    )
    .await
    .unwrap();

    // A deploy that names no routing name, its suffixes scripted.
    let deployer = Actor::new("deployer", None);
    let deploy_with = |suffixes: Vec<&'static str>| {
        let mut scripted = suffixes.into_iter().cycle().map(String::from);
        deployments::deploy_with_suffixes(
            &app.db,
            &folder,
            &system_name,
            1,
            deployments::DeployOptions::default(),
            &deployer,
            move || scripted.next().unwrap(),
        )
    };
    let deployed = deploy_with(vec!["aaaaaa", "aaaaaa", "bbbbbb"])
        .await
        .expect("a generated name never makes a deploy fail");
    assert_eq!(taken.routing_name, format!("{base}-aaaaaa"));
    assert_eq!(deployed.routing_name, format!("{base}-bbbbbb"));

    // When every short suffix offered is taken, a long one is used.
    let deployed = deploy_with(vec!["aaaaaa"]).await.unwrap();
    assert_eq!(deployed.routing_name.len(), base.len() + 1 + 32);
}

#[tokio::test]
async fn many_deploys_of_one_app_without_a_routing_name_all_succeed_with_distinct_names() {
    let app = spawn_app().await;
    let folder = app.folder("Ops").await;
    app.grant("deployer", Role::FolderAdministrator, Some(&folder))
        .await;
    let published = app.publish("Portal", "1.0.0").await;
    let token = app.token("deployer", ALL_SCOPES);
    let mut ids = HashSet::new();
    for _ in 0..150 {
        let body = app
            .deploy_call(&token, &folder.key, &published.app.system_name, 1)
            .json()
            .await;
        ids.insert(body["id"].as_str().unwrap().to_string());
    }
    let names: HashSet<String> = entity::deployment::Entity::find()
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.routing_name)
        .collect();
    assert_eq!((ids.len(), names.len()), (150, 150));
}
