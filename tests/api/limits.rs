//! Hostile and oversized input: each gets a clear 4xx (or a timeout) and the server
//! stays healthy for other clients meanwhile. And rows locked by someone else.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, DbBackend};
use serde_json::{Value, json};
use uplift::access::Role;

use crate::{
    client::BULK_PATH,
    helpers::{ALL_SCOPES, TestApp, is_postgres, spawn_app_with},
};

async fn ready(
    configure: impl FnOnce(&mut uplift::config::Settings),
) -> (TestApp, entity::folder::Model, String) {
    let app = spawn_app_with(configure).await;
    let (folder, token) = app.editor_in("Ops", "editor").await;
    (app, folder, token)
}

#[tokio::test]
async fn a_million_ids_nested_json_and_invalid_utf8_get_clear_4xx_answers() {
    let (app, folder, token) = ready(|_| {}).await;
    let million: Vec<String> = (0..1_000_000).map(|i| format!("{i:08}")).collect();
    app.bulk_call(&token, &folder.key, &million)
        .problem(413)
        .await;
    // Nested inside an unknown (ignored) field, so only the depth limit can stop it.
    let nested = format!(
        "{{\"extra\": {}{}, \"deploymentIds\": []}}",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let body = app
        .bulk_call(&token, &folder.key, &[])
        .raw("application/json", nested)
        .problem(400)
        .await;
    assert!(
        body["detail"].as_str().unwrap().contains("nested deeper"),
        "{body}"
    );
    let invalid_utf8 = b"{\"deploymentIds\": [\"\xff\xfe\"]}".to_vec();
    app.bulk_call(&token, &folder.key, &[])
        .raw("application/json", invalid_utf8)
        .problem(400)
        .await;
    let healthy = app.get_path("/healthz").await;
    assert_eq!(healthy.status(), 200);
}

#[tokio::test]
async fn a_64_kb_header_gets_431() {
    let (app, folder, token) = ready(|_| {}).await;
    app.bulk_call(&token, &folder.key, &[])
        .header("X-Padding", &"p".repeat(64 * 1024))
        .problem(431)
        .await;
}

#[tokio::test]
async fn a_client_sending_one_byte_per_second_times_out_while_others_are_served() {
    let (app, folder, token) = ready(|s| s.body_timeout_seconds = 2).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let path = format!("{}{BULK_PATH}", app.settings.uipath_base_path());
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         X-UiPath-Internal-TenantId: {}\r\nX-UiPath-FolderKey: {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n",
        app.tenant, folder.key
    );
    let slow = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(900)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        for _ in 0..30 {
            if stream.write_all(b" ").is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {}
            }
        }
        (
            String::from_utf8_lossy(&answer).to_string(),
            started.elapsed(),
        )
    });
    // Meanwhile the server answers everyone else at once.
    for _ in 0..5 {
        let started = Instant::now();
        let healthy = app.get_path("/healthz").await;
        assert_eq!(healthy.status(), 200);
        assert!(started.elapsed() < Duration::from_millis(500));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (answer, elapsed) = slow.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(
        elapsed < Duration::from_secs(10),
        "timed out only after {elapsed:?}"
    );
}

#[tokio::test]
async fn rows_locked_by_another_connection_fail_as_conflict_while_the_rest_succeed() {
    let (app, folder, token) = ready(|s| s.lock_timeout_ms = 300).await;
    app.publish("Portal", "1.0.0").await;
    let held = [
        app.deploy(&folder, "Portal", 1).await,
        app.deploy(&folder, "Portal", 1).await,
    ];
    let free = [
        app.deploy(&folder, "Portal", 1).await,
        app.deploy(&folder, "Portal", 1).await,
    ];
    app.publish("Portal", "1.1.0").await;
    let ids: Vec<String> = held
        .iter()
        .chain(free.iter())
        .map(|d| d.id.clone())
        .collect();

    let other = uplift::db::connect(&app.settings).await.unwrap();
    let holder = uplift::db::begin_write(&other).await.unwrap();
    if holder.get_database_backend() == DbBackend::Postgres {
        holder
            .execute_unprepared(&format!(
                "SELECT id FROM deployments WHERE id IN ('{}', '{}') FOR UPDATE",
                held[0].id, held[1].id
            ))
            .await
            .unwrap();
    } else {
        // SQLite locks the whole database for writing, not rows.
        holder
            .execute_unprepared("UPDATE folders SET name = name WHERE id = 0")
            .await
            .unwrap();
    }
    let body: Value = app.bulk_call(&token, &folder.key, &ids).json().await;
    let conflicted: Vec<&str> = body["failures"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|f| assert_eq!(f["code"], "conflict", "{f}"))
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    if is_postgres() {
        assert_eq!(conflicted, [held[0].id.as_str(), held[1].id.as_str()]);
        assert_eq!(
            body["updatedDeployments"].as_array().unwrap().len(),
            2,
            "the unlocked rows were upgraded"
        );
    } else {
        assert_eq!(
            conflicted.len(),
            4,
            "a held SQLite write lock makes every item a conflict"
        );
    }
    holder.rollback().await.unwrap();
    let retry: Value = app.bulk_call(&token, &folder.key, &ids).json().await;
    assert_eq!(retry["failedItems"], json!([]));
    for d in held.iter().chain(free.iter()) {
        assert_eq!(app.deployment(&d.id).await.version, 2);
        assert_eq!(app.events(&d.id).await.len(), 2, "one upgrade event each");
    }
}

#[tokio::test]
async fn nul_characters_in_bodies_paths_and_queries_are_400s_not_database_errors() {
    let (app, folder, _) = ready(|_| {}).await;
    app.grant("admin", Role::Administrator, None).await;
    let token = app.token("admin", ALL_SCOPES);
    app.publish("Portal", "1.0.0").await;
    let cases = vec![
        app.publish_call(&token, "A\u{0}B", "1.0.0"),
        app.deploy_call(&token, &folder.key, "Portal", 1)
            .body(json!({"title": "x\u{0}y"})),
        app.list_deployed(&token, &folder.key, "?searchText=a%00b"),
        app.catalog_versions(&token, "Por%00tal", "x"),
    ];
    for call in cases {
        let body = call.problem(400).await;
        assert!(body["detail"].as_str().unwrap().contains("NUL"), "{body}");
    }
}
