//! The `uplift serve` binary as operators run it: its log lines and its shutdown.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::fixtures::client_credentials;
use crate::helpers::{TestApp, spawn_app};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// A `uplift serve` child process over the test app's database and key.
pub struct Server {
    child: Child,
    address: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// The process's resident memory now, in MiB (Linux).
    pub fn resident_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server process is running");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib / 1024
    }

    pub async fn start(app: &TestApp, extra_env: &[(&str, &str)]) -> Server {
        let mut command = app.uplift_command();
        command
            .arg("serve")
            .env("UPLIFT_LISTEN", "127.0.0.1:0")
            .env("UPLIFT_ORGANIZATION", &app.settings.organization)
            .env("UPLIFT_LOG_FORMAT", "json")
            .env("UPLIFT_WORKERS", "1")
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start uplift serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            let found = stderr.lock().unwrap().iter().find_map(|line| {
                if let Ok(log) = serde_json::from_str::<Value>(line) {
                    return (log["fields"]["message"] == "uplift is listening")
                        .then(|| log["fields"]["port"].as_u64())
                        .flatten();
                }
                // The text format: `… uplift is listening port=1234`.
                let (_, rest) = line.split_once("uplift is listening port=")?;
                rest.split_whitespace().next()?.parse().ok()
            });
            if let Some(port) = found {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "uplift serve did not start: {:?}",
                stderr.lock().unwrap()
            );
            if let Some(status) = child.try_wait().unwrap() {
                panic!("uplift serve exited with {status}: {:?}", stderr.lock());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Server {
            child,
            address: format!("127.0.0.1:{port}"),
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A request to `path` under the UiPath base path, with `token` and the test app's
    /// tenant header.
    fn uipath(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        app: &TestApp,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        let url = self.url(&format!("{}{path}", app.settings.uipath_base_path()));
        http.request(method, url)
            .bearer_auth(token)
            .header("X-UiPath-Internal-TenantId", &app.tenant)
    }

    fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code and how long it took.
    async fn exit(&mut self, within: Duration) -> (i32, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (
                    status.code().expect("exited, not killed by a signal"),
                    started.elapsed(),
                );
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                panic!("uplift serve still running {within:?} after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn json_logs_carry_request_id_tenant_and_subject_but_never_a_token_or_secret() {
    let app = spawn_app().await;
    let (client_id, client_secret) = app.create_client("pipeline", "Apps OR.Folders.Read").await;
    let (folder, deployment) = app.upgradable_deployment(&client_id).await;
    let (folder_key, deployment_id) = (folder.key, deployment.id);
    let mut server = Server::start(&app, &[]).await;
    let http = reqwest::Client::new();

    let mut form = client_credentials(&client_id, &client_secret);
    form.push(("scope", "Apps OR.Folders.Read"));
    let token: Value = http
        .post(server.url("/identity_/connect/token"))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_string();
    let bulk = "/models/deployed/apps/updateToLatestAppVersionBulk";
    let upgraded = server
        .uipath(&http, reqwest::Method::POST, &app, bulk, &access_token)
        .header("X-UiPath-FolderKey", &folder_key)
        .header("X-Request-Id", "log-check-1")
        .json(&json!({"deploymentIds": [deployment_id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(upgraded.status(), 200);
    let wrong_secret = "wrong-secret-9f8e7d6c5b4a";
    let refused = http
        .post(server.url("/identity_/connect/token"))
        .form(&client_credentials(&client_id, wrong_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let forged = format!("{access_token}x");
    let list = "/models/deployed/apps";
    let rejected = server
        .uipath(&http, reqwest::Method::GET, &app, list, &forged)
        .header("X-UiPath-FolderKey", &folder_key)
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 401);
    let in_query = http
        .get(server.url(&format!("/healthz?access_token={access_token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 200);
    server.terminate();
    server.exit(Duration::from_secs(30)).await;

    let lines = server.log_lines();
    let jwt_secret = app.jwt_secret();
    let signature = access_token.rsplit('.').next().unwrap();
    for line in &lines {
        let parsed: Result<Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON log line: {line}");
        for (what, secret) in [
            ("the access token's signature", signature),
            ("the client secret", client_secret.as_str()),
            ("a wrong client secret", wrong_secret),
            ("the signing secret", jwt_secret.as_str()),
        ] {
            assert!(!line.contains(secret), "{what} in a log line: {line}");
        }
    }
    let completed: Vec<Value> = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|log| log["fields"]["message"] == "request completed")
        .collect();
    assert_eq!(completed.len(), 5, "one line per request: {lines:#?}");
    let bulk = completed
        .iter()
        .find(|log| log["span"]["request_id"] == "log-check-1")
        .unwrap_or_else(|| panic!("the client's X-Request-Id is logged: {completed:#?}"));
    assert_eq!(bulk["span"]["tenant"], app.tenant.as_str());
    assert_eq!(bulk["span"]["subject"], client_id.as_str());
    assert_eq!(bulk["fields"]["status"], 200);
    assert!(
        bulk["span"]["route"]
            .as_str()
            .unwrap()
            .ends_with("/updateToLatestAppVersionBulk")
    );
}

/// Reads one HTTP/1.1 answer with a `Content-Length` body off a kept-alive connection.
async fn read_one_answer(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-answer: {got:?}");
        got.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn sigterm_stops_new_connections_lets_the_call_in_flight_finish_and_exits_zero() {
    let app = spawn_app().await;
    let (folder, deployment) = app.upgradable_deployment("ci-bot").await;
    let (folder_key, deployment_id) = (folder.key, deployment.id);
    let token = app.token("ci-bot", "Apps OR.Folders.Read");
    let mut server = Server::start(&app, &[("UPLIFT_SHUTDOWN_TIMEOUT_SECONDS", "20")]).await;
    let body = json!({"deploymentIds": [deployment_id]}).to_string();
    let head = format!(
        "POST {}/models/deployed/apps/updateToLatestAppVersionBulk HTTP/1.1\r\n\
         Host: {}\r\nAuthorization: Bearer {token}\r\n\
         X-UiPath-Internal-TenantId: {}\r\nX-UiPath-FolderKey: {folder_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        app.settings.uipath_base_path(),
        server.address,
        app.tenant,
        body.len()
    );
    let (first_half, second_half) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(&server.address).await.unwrap();
    // A first call answered on this connection: it was accepted and is served (a
    // connection still in the listen queue when the signal comes is refused, as it
    // should be; under load 300 ms did not always see it accepted).
    in_flight
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.address).as_bytes())
        .await
        .unwrap();
    let alive = read_one_answer(&mut in_flight).await;
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
    in_flight.write_all(head.as_bytes()).await.unwrap();
    in_flight.write_all(first_half.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        TcpStream::connect(&server.address).await.is_err(),
        "a stopping server accepts no new connection"
    );
    in_flight.write_all(second_half.as_bytes()).await.unwrap();
    let mut answer = String::new();
    in_flight.read_to_string(&mut answer).await.unwrap();
    let (code, _) = server.exit(Duration::from_secs(30)).await;

    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"version\":2"), "{answer}");
    assert_eq!(app.deployment(&deployment_id).await.version, 2);
    assert_eq!(code, 0);
}

/// The handlers used to be installed after "listening" was logged, so a SIGTERM
/// sent on seeing the line (a supervisor's, or a loaded machine's late test) took
/// the default action and killed the process.
#[tokio::test]
async fn sigterm_sent_as_soon_as_the_server_says_it_listens_is_a_graceful_stop() {
    let app = spawn_app().await;
    let mut server = Server::start(&app, &[]).await;
    server.terminate();
    let (code, _) = server.exit(Duration::from_secs(30)).await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn sigterm_exits_zero_within_the_shutdown_timeout_though_a_client_never_finishes() {
    let app = spawn_app().await;
    let mut server = Server::start(&app, &[("UPLIFT_SHUTDOWN_TIMEOUT_SECONDS", "2")]).await;
    let mut stalled = TcpStream::connect(&server.address).await.unwrap();
    stalled
        .write_all(b"POST /identity_/connect/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.terminate();
    let (code, took) = server.exit(Duration::from_secs(15)).await;

    assert_eq!(code, 0);
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

/// What a hostile client puts in a value that is logged: a line feed that starts a
/// forged line, and an ESC sequence that erases the terminal's line.
const FORGERY: &str = "%0AFORGED%201970-01-01T00:00:00Z%20INFO%20all%20is%20well%1B%5B2K";

/// Sends a repeated form parameter and a path parameter carrying `FORGERY`.
async fn send_forgeries(app: &TestApp, server: &Server) {
    app.grant("admin", uplift::access::Role::Administrator, None)
        .await;
    let token = app.token("admin", "Apps OR.Folders.Read");
    let http = reqwest::Client::new();
    let repeated = http
        .post(server.url("/identity_/connect/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&x{FORGERY}=1&x{FORGERY}=2"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(repeated.status(), 400);
    let versions = format!(
        "/models/app{FORGERY}/tenants/{}/publish/versions",
        app.tenant
    );
    let in_path = server
        .uipath(&http, reqwest::Method::GET, app, &versions, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(in_path.status(), 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
}

fn assert_no_forged_line(lines: &[String]) {
    for line in lines {
        assert!(!line.contains('\u{1b}'), "a raw ESC in the log: {line:?}");
        assert!(
            !line.starts_with("FORGED"),
            "a request forged a log line: {lines:#?}"
        );
    }
}

#[tokio::test]
async fn text_logs_escape_control_characters_of_request_data_so_no_line_is_forged() {
    let app = spawn_app().await;
    let mut server = Server::start(&app, &[("UPLIFT_LOG_FORMAT", "text")]).await;
    send_forgeries(&app, &server).await;
    server.terminate();
    server.exit(Duration::from_secs(30)).await;

    let lines = server.log_lines();
    assert_no_forged_line(&lines);
    let logged = lines
        .iter()
        .filter(|l| l.contains("\\nFORGED 1970-01-01T00:00:00Z INFO all is well\\u{1b}[2K"))
        .count();
    assert!(logged >= 2, "both values are logged, escaped: {lines:#?}");
}

#[tokio::test]
async fn json_logs_escape_control_characters_of_request_data_so_no_line_is_forged() {
    let app = spawn_app().await;
    let mut server = Server::start(&app, &[]).await;
    send_forgeries(&app, &server).await;
    server.terminate();
    server.exit(Duration::from_secs(30)).await;

    let lines = server.log_lines();
    assert_no_forged_line(&lines);
    for line in &lines {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
    }
    assert!(lines.iter().any(|l| l.contains("\\nFORGED")), "{lines:#?}");
}

#[tokio::test]
async fn a_malformed_request_line_gets_a_400_and_no_error_log_line() {
    let app = spawn_app().await;
    let mut server = Server::start(&app, &[]).await;
    for garbage in [
        &b"GET /healthz HTTP/1.1\x01\r\nHost: x\r\n\r\n"[..],
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET / HTTP/9.9 nonsense\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(&server.address).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.terminate();
    server.exit(Duration::from_secs(30)).await;

    let lines = server.log_lines();
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|log| log["level"] == "ERROR"))
        .collect();
    assert!(
        errors.is_empty(),
        "a client's garbage logged as an error: {errors:#?}"
    );
}

/// SIGTERM to the replica running an operation: no new item starts, the lease is given
/// back at once (not left to lapse), the process exits 0, and the next replica
/// finishes the operation where this one stopped.
#[tokio::test]
async fn sigterm_stops_an_operations_items_releases_its_lease_at_once_and_exits_zero() {
    use entity::{operation, operation_item};
    use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

    // Only the child processes run workers here.
    let app = crate::helpers::spawn_app_with(|s| s.operation_workers = 0).await;
    let fleet = app.fleet().administered_by("ci-bot").newer("1.1.0").await;
    let ids =
        crate::helpers::seed_deployments(&app.db, &fleet.folder, fleet.published.app.id, 1, 3000)
            .await;
    let token = app.token("ci-bot", crate::helpers::ALL_SCOPES);
    let folder = &fleet.folder.key;
    let env = [("UPLIFT_OPERATION_BATCH_ITEMS", "5000")];
    let mut server = Server::start(&app, &env).await;
    let created = app.one_at_a_time_operation(&token, folder, &ids).await;
    let id = created["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.operation(&token, folder, &id).json().await["counters"]["updated"] == 0 {
        assert!(
            Instant::now() < deadline,
            "the child never started the operation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.terminate();
    let (code, _) = server.exit(Duration::from_secs(30)).await;

    assert_eq!(code, 0);
    let held = operation::Entity::find_by_id(id.clone())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(held.lease_owner, None, "released, not left to lapse");
    assert_eq!(held.lease_expires_at, None);
    let left = |status: operation_item::ItemStatus| {
        operation_item::Entity::find()
            .filter(operation_item::Column::OperationId.eq(&id))
            .filter(operation_item::Column::Status.eq(status))
            .count(&app.db)
    };
    assert_eq!(left(operation_item::ItemStatus::Running).await.unwrap(), 0);
    assert!(
        left(operation_item::ItemStatus::Pending).await.unwrap() > 0,
        "it stopped before the end"
    );

    let _next = Server::start(&app, &[]).await;
    let done = app.finished_operation(&token, folder, &id).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert_eq!(done["counters"]["updated"], 3000);
    assert_eq!(
        app.event_count().await,
        2 * 3000 + 1,
        "every deployment upgraded exactly once (plus the fleet's own deploy events)"
    );
}
