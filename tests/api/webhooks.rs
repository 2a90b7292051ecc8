//! Webhooks through real HTTP with a real receiver on 127.0.0.1 (allowed by the
//! operator's allow-list, as a self-hosted receiver would be): every kind of event
//! arrives signed with its documented payload, nothing is lost through a receiver
//! that is down, answers 500s or is too slow, a 410 disables the endpoint, a change
//! that rolled back sends nothing, rotation signs twice, replays re-send, and the
//! SSRF rules refuse inside addresses. Signatures are checked here with `hmac`
//! directly, not with uplift's signing code (`scripts/webhooks/verify.py` checks
//! them with the Standard Webhooks reference library).

use std::{
    net::TcpListener,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use uplift::{access::Role, config::Settings};

use crate::{
    client::Call,
    helpers::{ALL_SCOPES, READ_SCOPES, TestApp, spawn_app_with},
};

/// What the receiver got: headers (lower-case names) and the raw body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn event_type(&self) -> String {
        self.header("ce-type")
            .map(str::to_string)
            .unwrap_or_else(|| self.json()["type"].as_str().unwrap().to_string())
    }

    fn id(&self) -> String {
        self.header("webhook-id").unwrap().to_string()
    }
}

/// How the receiver answers the next requests (then `default`).
struct Script {
    queue: Vec<(u16, Duration, Option<String>)>,
    default: u16,
}

#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    /// Every request, answered with a 2xx or not.
    attempts: Arc<Mutex<usize>>,
}

impl Receiver {
    fn new() -> Self {
        Receiver {
            got: Arc::default(),
            script: Arc::new(Mutex::new(Script {
                queue: Vec::new(),
                default: 204,
            })),
            attempts: Arc::default(),
        }
    }

    /// Starts serving on `listener` (an actix server on this test's runtime).
    fn serve(&self, listener: TcpListener) {
        let me = self.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(me.clone()))
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
    }

    fn answer_next(&self, status: u16, delay: Duration, retry_after: Option<&str>) {
        self.script
            .lock()
            .unwrap()
            .queue
            .push((status, delay, retry_after.map(str::to_string)));
    }

    fn answer_always(&self, status: u16) {
        self.script.lock().unwrap().default = status;
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn attempts(&self) -> usize {
        *self.attempts.lock().unwrap()
    }

    /// Waits until `done` holds for what was received (2xx answered only).
    async fn until(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..600 {
            let got = self.received();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; received {:#?}",
            self.received()
        );
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, me: web::Data<Receiver>) -> HttpResponse {
    *me.attempts.lock().unwrap() += 1;
    let (status, delay, retry_after) = {
        let mut script = me.script.lock().unwrap();
        if script.queue.is_empty() {
            (script.default, Duration::ZERO, None)
        } else {
            script.queue.remove(0)
        }
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if (200..300).contains(&status) {
        me.got.lock().unwrap().push(Received {
            headers: req
                .headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.to_vec(),
        });
    }
    let mut answer = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    if let Some(wait) = retry_after {
        answer.insert_header(("retry-after", wait));
    }
    answer.finish()
}

/// A free port on loopback and a listener holding it.
fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// Webhooks to loopback allowed, fast retries, a short timeout.
fn fast_webhooks(settings: &mut Settings) {
    settings.webhook_allow_http = true;
    settings.webhook_allow_networks = vec!["127.0.0.1/32".into()];
    settings.webhook_retry_schedule_seconds = vec![0, 1, 1, 1, 1, 1, 1, 1];
    settings.webhook_timeout_ms = 1500;
    settings.webhook_poll_ms = 50;
    settings.operation_poll_ms = 50;
}

/// The signatures of `received` that verify with `secret` (HMAC-SHA256 of
/// `id.timestamp.body`, computed here).
fn verifying_signatures(received: &Received, secret: &str) -> usize {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let signed = format!(
        "{}.{}.",
        received.header("webhook-id").unwrap(),
        received.header("webhook-timestamp").unwrap()
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    mac.update(&received.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    received
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .filter(|s| *s == expected)
        .count()
}

/// The webhook calls, as typed calls.
impl TestApp {
    fn webhooks_call(&self, method: Method, path: &str, token: &str) -> Call<'_> {
        self.call(method, &format!("/webhooks{path}"), token, None)
    }

    fn create_webhook(&self, token: &str, body: Value) -> Call<'_> {
        self.webhooks_call(Method::POST, "", token).body(body)
    }

    /// An administrator's token and an endpoint to `url` taking `body`'s other fields.
    async fn admin_with_webhook(&self, url: &str, mut body: Value) -> (String, Value) {
        self.grant("admin", Role::Administrator, None).await;
        let token = self.token("admin", ALL_SCOPES);
        body["url"] = json!(url);
        let created = self.create_webhook(&token, body).expect(201).await;
        (token, created.json().await.unwrap())
    }

    async fn deliveries(&self, token: &str, endpoint: &str, query: &str) -> Value {
        self.webhooks_call(Method::GET, &format!("/{endpoint}/deliveries"), token)
            .query(query)
            .json()
            .await
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_event_type_arrives_signed_with_its_documented_payload_in_commit_order() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    // Registered first: the fleet's own publishes and deploy are delivered too.
    let (admin, endpoint) = app
        .admin_with_webhook(&format!("http://127.0.0.1:{port}/in"), json!({}))
        .await;
    let fleet = app.fleet().administered_by("ops").newer("1.1.0").await;
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let ops = app.token("ops", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let system = &fleet.system_name;

    // deployment.deployed, .edited, .upgraded (bulk), .rolled_back, app.version_*,
    // operation.completed with its item's deployment.upgraded.
    let deployed = app.deploy_call(&ops, folder, system, 1).json().await;
    let d = id_of(&deployed);
    app.edit_deployed(&ops, folder, &d, json!({"title": "Renamed"}))
        .ok()
        .await;
    app.bulk_call(&ops, folder, std::slice::from_ref(&d))
        .ok()
        .await;
    app.rollback(&ops, folder, &d, Some(json!({"version": 1})))
        .ok()
        .await;
    app.publish_call(&admin, "Portal", "1.2.0").ok().await;
    app.unpublish_call(&admin, system, 3).expect(204).await;
    let created = app
        .create_operation(
            &ops,
            folder,
            json!({"deploymentIds": [fleet.deployments[0].id]}),
        )
        .accepted()
        .await;
    let operation = id_of(&created);

    // The fleet's 3 (two publishes, a deploy), then 8.
    let got = receiver.until("eleven events", |got| got.len() >= 11).await;
    let types: Vec<String> = got.iter().map(Received::event_type).collect();
    let of_d: Vec<String> = got
        .iter()
        .filter(|r| r.json()["data"]["deploymentId"] == d.as_str())
        .map(Received::event_type)
        .collect();
    assert_eq!(
        of_d,
        [
            "deployment.deployed",
            "deployment.edited",
            "deployment.upgraded",
            "deployment.rolled_back"
        ],
        "one deployment's events in commit order"
    );
    for t in [
        "app.version_published",
        "app.version_unpublished",
        "operation.completed",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 11, "{types:?}");
    for r in &got {
        assert_eq!(verifying_signatures(r, &secret), 1, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        let body = r.json();
        assert!(r.body.len() < 20 * 1024);
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(body["data"]["tenantId"], app.tenant.as_str());
    }
    let find = |t: &str| {
        got.iter()
            .map(Received::json)
            .find(|b| b["type"] == t && b["data"]["deploymentId"] == d.as_str())
            .unwrap()
    };
    let upgraded = find("deployment.upgraded");
    assert_eq!(
        upgraded["data"],
        json!({
            "tenantId": app.tenant,
            "folderKey": folder,
            "deploymentId": d,
            "appSystemName": system,
            "fromVersion": 1,
            "toVersion": 2,
            "fromPackageVersion": "1.0.0",
            "toPackageVersion": "1.1.0",
            "actor": "ops",
            "requestId": upgraded["data"]["requestId"],
        })
    );
    assert!(upgraded["data"]["requestId"].is_string());
    let published = got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "app.version_published" && b["data"]["version"] == 3)
        .unwrap()["data"]
        .clone();
    assert_eq!(published["appSystemName"], system.as_str());
    assert_eq!(published["version"], 3);
    assert_eq!(published["packageVersion"], "1.2.0");
    assert_eq!(published["actor"], "admin");
    let completed = got
        .iter()
        .map(Received::json)
        .find(|b| b["type"] == "operation.completed")
        .unwrap()["data"]
        .clone();
    assert_eq!(completed["operationId"], operation.as_str());
    assert_eq!(completed["folderKey"], folder.as_str());
    assert_eq!(completed["status"], "Succeeded");
    assert_eq!(completed["counters"]["total"], 1);
    assert_eq!(completed["counters"]["updated"], 1);
    let by_operation = got
        .iter()
        .map(Received::json)
        .find(|b| {
            b["data"]["operationId"] == operation.as_str() && b["type"] == "deployment.upgraded"
        })
        .expect("the operation's item's event");
    assert_eq!(
        by_operation["data"]["deploymentId"],
        fleet.deployments[0].id.as_str()
    );

    let log = app
        .deliveries(&admin, &id_of(&endpoint), "status=succeeded")
        .await;
    assert_eq!(log["count"], 11);
    let first = &log["value"][0];
    assert_eq!(first["attempts"][0]["statusCode"], 204);
    assert!(first["webhookId"].as_str().unwrap().starts_with("evt_"));
}

/// Found by scripts/chaos.py: an operation created already finished (its selector
/// matched nothing) wrote no `operation.completed`, so a subscriber waiting for it
/// never heard it end.
#[tokio::test]
async fn an_operation_with_nothing_to_do_is_announced_completed_like_any_other() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let (_, endpoint) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{port}/in"),
            json!({"eventTypes": ["operation.completed"]}),
        )
        .await;
    let fleet = app.fleet().administered_by("ops").await;
    let ops = app.token("ops", ALL_SCOPES);
    let created = app
        .create_operation(
            &ops,
            &fleet.folder.key,
            json!({"selector": {"appSystemNames": [fleet.system_name], "onlyOutdated": true}}),
        )
        .accepted()
        .await;
    assert_eq!(created["status"], "Succeeded", "{created}");
    assert_eq!(created["counters"]["total"], 0, "{created}");

    let got = receiver
        .until("the operation's completion", |got| !got.is_empty())
        .await;
    let completed = got[0].json();
    assert_eq!(completed["type"], "operation.completed");
    assert_eq!(completed["data"]["operationId"], created["id"]);
    assert_eq!(completed["data"]["status"], "Succeeded");
    assert_eq!(completed["data"]["counters"]["total"], 0);
    assert_eq!(
        verifying_signatures(&got[0], endpoint["secret"].as_str().unwrap()),
        1
    );
}

/// Found by scripts/chaos.py (30 minutes): the claim's window held the 256 due
/// deliveries with the earliest due time. A delivery that failed is due again later
/// than the events of its deployment queued behind it meanwhile, so once more than 256
/// of those waited, the window was all blocked successors and the failed one never
/// came back into it: every replica's relay stopped delivering, for good.
#[tokio::test]
async fn a_failed_delivery_with_hundreds_of_events_queued_behind_it_is_retried_and_all_arrive() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(|s| {
        fast_webhooks(s);
        // The failed delivery's retry comes after the 300 edits below were queued.
        s.webhook_retry_schedule_seconds = vec![0, 4, 1, 1, 1, 1];
    })
    .await;
    app.admin_with_webhook(
        &format!("http://127.0.0.1:{port}/in"),
        json!({"eventTypes": ["deployment.edited"]}),
    )
    .await;
    let fleet = app.fleet().administered_by("ops").deployments(2).await;
    let ops = app.token("ops", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let (d, other) = (&fleet.deployments[0].id, &fleet.deployments[1].id);

    receiver.answer_next(500, Duration::ZERO, None);
    for n in 0..300 {
        app.edit_deployed(&ops, folder, d, json!({"title": format!("edit {n}")}))
            .ok()
            .await;
    }
    app.edit_deployed(&ops, folder, other, json!({"title": "other"}))
        .ok()
        .await;

    let got = receiver
        .until("the 301 edits", |got| got.len() >= 301)
        .await;
    let of_d: std::collections::HashSet<String> = got
        .iter()
        .filter(|r| r.json()["data"]["deploymentId"] == d.as_str())
        .map(Received::id)
        .collect();
    assert_eq!(of_d.len(), 300, "each of d's edits arrived");
    assert!(
        receiver.attempts() > 301,
        "the first attempt failed and was retried"
    );
}

/// The claim used to read a window of the 256 oldest due deliveries of any endpoint
/// and only then drop those that could not go: once the window was full of them,
/// no endpoint of any tenant received anything. Here they are first the successors
/// of a delivery waiting a minute for its retry, then a disabled endpoint's backlog.
#[tokio::test]
async fn deliveries_that_cannot_go_yet_never_hold_back_another_endpoints() {
    let (failing_socket, failing_port) = listener();
    let failing = Receiver::new();
    failing.answer_always(500);
    failing.serve(failing_socket);
    let (socket, port) = listener();
    let healthy = Receiver::new();
    healthy.serve(socket);
    let app = spawn_app_with(|s| {
        fast_webhooks(s);
        s.webhook_retry_schedule_seconds = vec![0, 60];
    })
    .await;
    let types = json!({"eventTypes": ["deployment.edited"]});
    let (admin, stuck) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{failing_port}/in"),
            types.clone(),
        )
        .await;
    let mut other = types;
    other["url"] = json!(format!("http://127.0.0.1:{port}/in"));
    app.create_webhook(&admin, other).expect(201).await;
    let fleet = app.fleet().administered_by("ops").deployments(1).await;
    let ops = app.token("ops", ALL_SCOPES);
    let (folder, d) = (&fleet.folder.key, &fleet.deployments[0].id);
    let (app, ops) = (&app, &ops);
    let edits = |from: usize| async move {
        for n in from..from + 300 {
            app.edit_deployed(ops, folder, d, json!({"title": format!("edit {n}")}))
                .ok()
                .await;
        }
    };

    // The failing endpoint's first delivery waits 60 s for its retry; its 299
    // successors wait behind it.
    edits(0).await;
    let got = healthy
        .until("300 edits beside a key waiting for its retry", |got| {
            got.len() >= 300
        })
        .await;
    assert_eq!(failing.attempts(), 1, "its retry is a minute away");
    let ids: std::collections::HashSet<String> = got.iter().map(Received::id).collect();
    assert_eq!(ids.len(), 300, "each edit once");

    // Disabled, the failing endpoint keeps its 300 deliveries pending.
    let stuck_id = id_of(&stuck);
    app.webhooks_call(Method::PATCH, &format!("/{stuck_id}"), &admin)
        .body(json!({"enabled": false}))
        .ok()
        .await;
    edits(300).await;
    healthy
        .until("300 more beside a disabled endpoint's backlog", |got| {
            got.len() >= 600
        })
        .await;
    let waiting = app.deliveries(&admin, &stuck_id, "status=pending").await;
    assert_eq!(
        waiting["count"], 300,
        "kept for when it is enabled: {waiting}"
    );
}

#[tokio::test]
async fn a_rollout_sends_each_rollout_event_in_the_order_of_its_transitions_with_who_and_why() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let rollout_types = [
        "rollout.wave_completed",
        "rollout.awaiting_approval",
        "rollout.completed",
        "rollout.paused",
        "rollout.rolled_back",
    ];
    let (_, endpoint) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{port}/in"),
            json!({"eventTypes": rollout_types}),
        )
        .await;
    let secret = endpoint["secret"].as_str().unwrap().to_string();
    let fleet = app
        .fleet()
        .administered_by("ops")
        .deployments(3)
        .newer("1.1.0")
        .await;
    let ops = app.token("ops", ALL_SCOPES);
    let created = app
        .created_rollout(
            &ops,
            json!({
                "name": "portal 1.1",
                "waves": [{"name": "canary", "size": 1}, {"name": "rest", "gate": "manual"}],
            }),
        )
        .await;
    let rollout = id_of(&created);

    // A wave, its gate, a pause and resume there, the approval, the end, a rollback.
    app.rollout_in(&ops, &rollout, "AwaitingApproval").await;
    app.rollout_action(&ops, &rollout, "pause", "hold on")
        .ok()
        .await;
    app.rollout_action(&ops, &rollout, "resume", "").ok().await;
    app.rollout_action(&ops, &rollout, "approve", "go")
        .ok()
        .await;
    app.rollout_in(&ops, &rollout, "Succeeded").await;
    app.rollout_action(&ops, &rollout, "rollback", "undo")
        .ok()
        .await;
    app.rollout_in(&ops, &rollout, "RolledBack").await;

    let got = receiver
        .until("seven rollout events", |got| got.len() >= 7)
        .await;
    let types: Vec<String> = got.iter().map(Received::event_type).collect();
    assert_eq!(
        types,
        [
            "rollout.wave_completed",
            "rollout.awaiting_approval",
            "rollout.paused",
            "rollout.awaiting_approval",
            "rollout.wave_completed",
            "rollout.completed",
            "rollout.rolled_back",
        ],
        "one rollout's events in the order of its transitions"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 7, "nothing else: {types:?}");
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    for (r, body) in got.iter().zip(&bodies) {
        assert_eq!(verifying_signatures(r, &secret), 1, "{r:?}");
        assert_eq!(body["data"]["tenantId"], app.tenant.as_str());
        assert_eq!(body["data"]["rolloutId"], rollout.as_str());
        assert_eq!(body["data"]["rolloutName"], "portal 1.1");
        assert!(body["data"].get("folderKey").is_none(), "tenant-wide");
    }
    let canary = &bodies[0]["data"];
    assert_eq!(canary["wave"]["index"], 0);
    assert_eq!(canary["wave"]["name"], "canary");
    assert_eq!(canary["wave"]["status"], "Succeeded");
    assert!(canary["wave"]["operationId"].is_string());
    assert_eq!(canary["counters"]["total"], 1);
    assert_eq!(canary["counters"]["updated"], 1);
    assert_eq!(canary["actor"], "uplift");
    assert_eq!(bodies[1]["data"]["status"], "AwaitingApproval");
    assert_eq!(bodies[1]["data"]["wave"]["name"], "rest");
    let paused = &bodies[2]["data"];
    assert_eq!(paused["status"], "Paused");
    assert_eq!(paused["previousStatus"], "AwaitingApproval");
    assert_eq!(paused["actor"], "ops");
    assert_eq!(paused["comment"], "hold on");
    assert!(paused["requestId"].is_string(), "{paused}");
    assert_eq!(bodies[4]["data"]["wave"]["name"], "rest");
    assert_eq!(bodies[4]["data"]["counters"]["updated"], 2);
    let completed = &bodies[5]["data"];
    assert_eq!(completed["status"], "Succeeded");
    assert_eq!(completed["counters"]["total"], 3);
    assert_eq!(completed["counters"]["updated"], 3);
    let rolled_back = &bodies[6]["data"];
    assert_eq!(rolled_back["status"], "RolledBack");
    assert_eq!(rolled_back["counters"]["rolledBack"], 3);
    for d in &fleet.deployments {
        assert_eq!(app.deployment(&d.id).await.version, 1);
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_then_answers_500s_then_is_too_slow_still_gets_every_event_once_up()
{
    let (socket, port) = listener();
    // Down: nothing listens on the port yet.
    drop(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let fleet = app
        .fleet()
        .administered_by("ops")
        .deployments(3)
        .newer("1.1.0")
        .await;
    let (admin, endpoint) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{port}/in"),
            json!({"eventTypes": ["deployment.upgraded"]}),
        )
        .await;
    let ops = app.token("ops", ALL_SCOPES);
    app.bulk_call(&ops, &fleet.folder.key, &fleet.ids())
        .ok()
        .await;
    let endpoint_id = id_of(&endpoint);
    // Each delivery failed to connect at least once.
    for _ in 0..200 {
        let log = app.deliveries(&admin, &endpoint_id, "").await;
        if log["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| !d["attempts"].as_array().unwrap().is_empty())
            && log["count"] == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = app.deliveries(&admin, &endpoint_id, "status=pending").await;
    assert_eq!(log["count"], 3, "{log}");
    let error = log["value"][0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("connect"), "{error}");

    // Up, but answering two 500s and one answer slower than the timeout first.
    let receiver = Receiver::new();
    receiver.answer_next(500, Duration::ZERO, None);
    receiver.answer_next(500, Duration::ZERO, None);
    receiver.answer_next(200, Duration::from_millis(2500), None);
    receiver.serve(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());

    // The slow answer was a 200 the sender no longer waited for: that event may arrive
    // twice (same webhook-id); wait for three distinct ones.
    let distinct = |got: &[Received]| {
        let mut ids: Vec<String> = got.iter().map(Received::id).collect();
        ids.sort();
        ids.dedup();
        ids.len()
    };
    let got = receiver
        .until("three distinct events", |got| distinct(got) >= 3)
        .await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| {
            r.json()["data"]["deploymentId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    let mut expected = fleet.ids();
    expected.sort();
    ids.dedup();
    assert_eq!(ids, expected);
    let log = app.deliveries(&admin, &endpoint_id, "").await;
    let errors: Vec<String> = log["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["attempts"].as_array().unwrap().clone())
        .filter_map(|a| a["error"].as_str().map(str::to_string))
        .collect();
    assert!(errors.iter().any(|e| e == "status 500"), "{errors:?}");
    assert!(errors.iter().any(|e| e == "timeout"), "{errors:?}");
    for _ in 0..100 {
        if app
            .deliveries(&admin, &endpoint_id, "status=succeeded")
            .await["count"]
            == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.deliveries(&admin, &endpoint_id, "status=succeeded")
            .await["count"],
        3
    );
}

#[tokio::test]
async fn many_deployments_sent_concurrently_each_arrive_in_their_own_commit_order_through_failures()
{
    let (socket, port) = listener();
    let receiver = Receiver::new();
    // Failures scattered among the first sends: each holds back its deployment's
    // later events, and only those.
    for n in 0..12 {
        let status = if n % 3 == 0 { 500 } else { 204 };
        receiver.answer_next(status, Duration::ZERO, None);
    }
    receiver.serve(socket);
    let app = spawn_app_with(|settings| {
        fast_webhooks(settings);
        settings.webhook_concurrency = 8;
    })
    .await;
    let fleet = app
        .fleet()
        .administered_by("ops")
        .deployments(30)
        .newer("1.1.0")
        .await;
    let (admin, _) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{port}/in"),
            json!({"eventTypes": ["deployment.upgraded"]}),
        )
        .await;
    let ops = app.token("ops", ALL_SCOPES);
    let folder = &fleet.folder.key;
    app.bulk_call(&ops, folder, &fleet.ids()).ok().await;
    for version in ["1.2.0", "1.3.0"] {
        app.publish_call(&admin, "Portal", version).ok().await;
        app.bulk_call(&ops, folder, &fleet.ids()).ok().await;
    }

    let distinct = |got: &[Received]| {
        let mut seen: Vec<String> = Vec::new();
        got.iter()
            .filter(|r| {
                let fresh = !seen.contains(&r.id());
                seen.push(r.id());
                fresh
            })
            .cloned()
            .collect::<Vec<_>>()
    };
    let got = receiver
        .until("90 distinct events", |got| distinct(got).len() >= 90)
        .await;
    assert!(receiver.attempts() > got.len(), "some answers were 500s");
    for id in fleet.ids() {
        let versions: Vec<i64> = distinct(&got)
            .iter()
            .map(Received::json)
            .filter(|e| e["data"]["deploymentId"] == id.as_str())
            .map(|e| e["data"]["toVersion"].as_i64().unwrap())
            .collect();
        assert_eq!(
            versions,
            [2, 3, 4],
            "deployment {id}'s events in commit order"
        );
    }
}

#[tokio::test]
async fn a_410_disables_the_endpoint_and_retry_after_is_honoured() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.answer_next(429, Duration::ZERO, Some("2"));
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let (admin, endpoint) = app
        .admin_with_webhook(&format!("http://127.0.0.1:{port}/in"), json!({}))
        .await;
    let id = id_of(&endpoint);
    let test_path = format!("/{id}/test");
    let test = || {
        app.webhooks_call(Method::POST, &test_path, &admin)
            .expect(202)
    };
    test().await;
    let got = receiver
        .until("the test event", |got| !got.is_empty())
        .await;
    assert_eq!(got[0].event_type(), "webhook.test");
    // The receiver saw it before the sender recorded its answer.
    let mut log = app.deliveries(&admin, &id, "").await;
    for _ in 0..100 {
        if log["value"][0]["status"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        log = app.deliveries(&admin, &id, "").await;
    }
    let attempts = log["value"][0]["attempts"].as_array().unwrap().clone();
    assert_eq!(attempts[0]["statusCode"], 429);
    let first = chrono::DateTime::parse_from_rfc3339(attempts[0]["at"].as_str().unwrap()).unwrap();
    let second = chrono::DateTime::parse_from_rfc3339(attempts[1]["at"].as_str().unwrap()).unwrap();
    assert!(
        second - first >= chrono::Duration::milliseconds(1900),
        "Retry-After: 2 waited {:?}",
        second - first
    );

    receiver.answer_always(410);
    test().await;
    for _ in 0..200 {
        let e = app
            .webhooks_call(Method::GET, &format!("/{id}"), &admin)
            .json()
            .await;
        if e["enabled"] == false {
            assert_eq!(e["disabledReason"], "gone");
            assert!(e["disabledAt"].is_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let e = app
        .webhooks_call(Method::GET, &format!("/{id}"), &admin)
        .json()
        .await;
    assert_eq!(e["enabled"], false, "{e}");
    let failed = app.deliveries(&admin, &id, "status=failed").await;
    assert_eq!(failed["count"], 1, "the 410 is not retried");
    // Disabled: a further event is not sent.
    let before = receiver.attempts();
    test().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(receiver.attempts(), before);
    let mut metrics = String::new();
    for _ in 0..60 {
        metrics = app.get_path("/metrics").await.text().await.unwrap();
        if metrics.contains("uplift_webhook_disabled_endpoints 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("uplift_webhook_disabled_endpoints 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("uplift_webhook_deliveries_total{"),
        "{metrics}"
    );

    // Enabled again, what waited goes out.
    receiver.answer_always(204);
    app.webhooks_call(Method::PATCH, &format!("/{id}"), &admin)
        .body(json!({"enabled": true}))
        .ok()
        .await;
    receiver
        .until("the waiting test event", |got| got.len() >= 2)
        .await;
}

#[tokio::test]
async fn a_change_that_rolled_back_sends_nothing() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let (admin, endpoint) = app
        .admin_with_webhook(&format!("http://127.0.0.1:{port}/in"), json!({}))
        .await;
    let fleet = app.fleet().administered_by("ops").await;
    let ops = app.token("ops", ALL_SCOPES);
    let folder = &fleet.folder.key;
    let taken = fleet.deployments[0].routing_name.clone();
    // A deploy whose routing name is taken fails after its insert began: rolled back.
    app.deploy_call(&ops, folder, &fleet.system_name, 1)
        .body(json!({"routingName": taken}))
        .problem(409)
        .await;
    // The test event is written after the failed deploy: once it arrived, anything
    // the deploy had written would have arrived before it.
    app.webhooks_call(Method::POST, &format!("/{}/test", id_of(&endpoint)), &admin)
        .expect(202)
        .await;
    receiver
        .until("the test event", |got| {
            got.iter().any(|r| r.event_type() == "webhook.test")
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut types: Vec<String> = receiver
        .received()
        .iter()
        .map(Received::event_type)
        .collect();
    types.sort();
    // The fleet's publish and deploy, the test event, and nothing of the failed deploy.
    assert_eq!(
        types,
        [
            "app.version_published",
            "deployment.deployed",
            "webhook.test"
        ]
    );
    use sea_orm::{EntityTrait, PaginatorTrait};
    let outbox = entity::webhook_event::Entity::find()
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(outbox, 3, "no outbox row for the rolled-back deploy");
}

#[tokio::test]
async fn a_rotated_secret_and_the_previous_one_both_sign_during_the_overlap() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let (admin, endpoint) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{port}/in"),
            json!({"format": "cloudevents"}),
        )
        .await;
    let id = id_of(&endpoint);
    let old = endpoint["secret"].as_str().unwrap().to_string();
    let rotated = app
        .webhooks_call(Method::POST, &format!("/{id}/rotate-secret"), &admin)
        .json()
        .await;
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated["previousSecretExpiresAt"].is_string());
    app.webhooks_call(Method::POST, &format!("/{id}/test"), &admin)
        .expect(202)
        .await;
    let got = receiver
        .until("the test event", |got| !got.is_empty())
        .await;
    let r = &got[0];
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert_eq!(verifying_signatures(r, &new), 1);
    assert_eq!(verifying_signatures(r, &old), 1);
    // CloudEvents binary mode: attributes in headers, data as the body.
    assert_eq!(r.header("ce-specversion"), Some("1.0"));
    assert_eq!(r.header("ce-type"), Some("webhook.test"));
    assert_eq!(r.header("ce-id"), Some(r.id().as_str()));
    assert!(r.header("ce-source").unwrap().ends_with(&app.tenant));
    assert_eq!(r.json()["endpointId"], id.as_str());
    // The secret is never shown again.
    let read = app
        .webhooks_call(Method::GET, &format!("/{id}"), &admin)
        .json()
        .await;
    assert!(read.get("secret").is_none(), "{read}");
}

#[tokio::test]
async fn replaying_a_delivery_or_everything_since_a_time_resends_with_the_same_webhook_ids() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let app = spawn_app_with(fast_webhooks).await;
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let fleet = app
        .fleet()
        .administered_by("ops")
        .deployments(2)
        .newer("1.1.0")
        .await;
    // Registered after the changes: replay since reaches back to them.
    let (admin, endpoint) = app
        .admin_with_webhook(
            &format!("http://127.0.0.1:{port}/in"),
            json!({"eventTypes": ["deployment.upgraded"], "folderKeys": [fleet.folder.key]}),
        )
        .await;
    let id = id_of(&endpoint);
    let ops = app.token("ops", ALL_SCOPES);
    app.bulk_call(&ops, &fleet.folder.key, &fleet.ids())
        .ok()
        .await;
    let live = receiver.until("two events", |got| got.len() >= 2).await;

    let log = app.deliveries(&admin, &id, "").await;
    let delivery = id_of(&log["value"][0]);
    let replayed = app
        .webhooks_call(
            Method::POST,
            &format!("/{id}/deliveries/{delivery}/replay"),
            &admin,
        )
        .expect(202)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(replayed["replay"], true);
    assert_eq!(replayed["webhookId"], log["value"][0]["webhookId"]);
    let got = receiver.until("the replay", |got| got.len() >= 3).await;
    assert_eq!(got[2].id(), log["value"][0]["webhookId"].as_str().unwrap());

    let queued = app
        .webhooks_call(Method::POST, &format!("/{id}/replay"), &admin)
        .query(&format!("since={since}"))
        .expect(202)
        .await
        .json::<Value>()
        .await
        .unwrap();
    // The two upgrades; the deploys and publishes are filtered out by type.
    assert_eq!(queued["count"], 2);
    let got = receiver.until("the replays", |got| got.len() >= 5).await;
    let mut live_ids: Vec<String> = live.iter().map(Received::id).collect();
    let mut replay_ids: Vec<String> = got[3..].iter().map(Received::id).collect();
    live_ids.sort();
    replay_ids.sort();
    assert_eq!(live_ids, replay_ids);

    // The deploys were fanned out before any endpoint wanted them: a replay completes
    // their payload as a live delivery would have had it.
    let deploys = app
        .create_webhook(
            &admin,
            json!({"url": format!("http://127.0.0.1:{port}/in"), "eventTypes": ["deployment.deployed"]}),
        )
        .expect(201)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let queued = app
        .webhooks_call(
            Method::POST,
            &format!("/{}/replay", id_of(&deploys)),
            &admin,
        )
        .query(&format!("since={since}"))
        .accepted()
        .await;
    assert_eq!(queued["count"], 2);
    let got = receiver.until("the deploys", |got| got.len() >= 7).await;
    for r in &got[5..] {
        let body = r.json();
        assert_eq!(body["type"], "deployment.deployed");
        assert_eq!(body["data"]["folderKey"], fleet.folder.key.as_str());
        assert_eq!(body["data"]["appSystemName"], fleet.system_name.as_str());
        assert_eq!(body["data"]["toPackageVersion"], "1.0.0");
        assert_eq!(body["data"]["tenantId"], app.tenant.as_str());
    }

    for bad in ["", "since=yesterday", "since=2026-13-01T00:00:00Z"] {
        let problem = app
            .webhooks_call(Method::POST, &format!("/{id}/replay"), &admin)
            .query(bad)
            .problem(400)
            .await;
        assert!(
            problem["detail"].as_str().unwrap().contains("since"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn inside_addresses_are_refused_at_registration_and_a_name_resolving_inside_is_blocked_at_delivery()
 {
    // No allow-list: the SSRF rules in full.
    let app = spawn_app_with(|s| {
        s.webhook_allow_http = true;
        s.webhook_poll_ms = 50;
        s.webhook_retry_schedule_seconds = vec![0];
    })
    .await;
    app.grant("admin", Role::Administrator, None).await;
    let admin = app.token("admin", ALL_SCOPES);
    for (url, words) in [
        ("http://127.0.0.1:9/in", "loopback"),
        ("https://10.0.0.1/in", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[::ffff:192.168.0.1]/in", "private"),
        ("https://[fd00::1]/in", "private"),
        ("https://[fe80::1]/in", "link-local"),
        ("ftp://hooks.example.com/", "https"),
    ] {
        let problem = app
            .create_webhook(&admin, json!({"url": url}))
            .problem(400)
            .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{url}: {detail}");
    }
    // A name is checked when it is resolved: `localhost` is loopback.
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.serve(socket);
    let created = app
        .create_webhook(
            &admin,
            json!({"url": format!("http://localhost:{port}/in")}),
        )
        .expect(201)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let id = id_of(&created);
    app.webhooks_call(Method::POST, &format!("/{id}/test"), &admin)
        .expect(202)
        .await;
    for _ in 0..200 {
        if app.deliveries(&admin, &id, "status=failed").await["count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let failed = app.deliveries(&admin, &id, "status=failed").await;
    let error = failed["value"][0]["attempts"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with("blocked_address: localhost resolves to"),
        "{error}"
    );
    assert_eq!(receiver.attempts(), 0, "nothing was sent");
}

#[tokio::test]
async fn only_a_tenant_wide_administrator_manages_webhooks_and_bad_fields_are_named() {
    let app = spawn_app_with(fast_webhooks).await;
    let folder = app.folder("Ops").await;
    app.grant("folder-admin", Role::FolderAdministrator, Some(&folder))
        .await;
    app.grant("admin", Role::Administrator, None).await;
    let folder_admin = app.token("folder-admin", ALL_SCOPES);
    let admin = app.token("admin", ALL_SCOPES);
    let body = json!({"url": "https://hooks.example.com/uplift"});
    app.create_webhook(&folder_admin, body.clone())
        .problem(403)
        .await;
    app.webhooks_call(Method::GET, "", &folder_admin)
        .problem(403)
        .await;
    // Reading needs only the read scope; changing needs the write scope.
    let reader = app.token("admin", READ_SCOPES);
    app.webhooks_call(Method::GET, "", &reader).ok().await;
    app.create_webhook(&reader, body.clone()).problem(403).await;

    for (fields, words) in [
        (json!({}), "url"),
        (
            json!({"url": "https://h.example/", "eventTypes": ["deployment.exploded"]}),
            "eventTypes",
        ),
        (
            json!({"url": "https://h.example/", "format": "xml"}),
            "format",
        ),
        (
            json!({"url": "https://h.example/", "folderKeys": ["not-a-uuid"]}),
            "folderKeys",
        ),
        (
            json!({"url": "https://h.example/", "folderKeys": [uuid::Uuid::new_v4().to_string()]}),
            "folderKeys",
        ),
        (
            json!({"url": "https://h.example/", "description": "x".repeat(501)}),
            "description",
        ),
        (json!({"url": 5}), "url"),
    ] {
        let problem = app
            .create_webhook(&admin, fields.clone())
            .problem(400)
            .await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(words), "{fields}: {detail}");
    }

    let created = app
        .create_webhook(
            &admin,
            json!({"url": "https://h.example/", "eventTypes": ["deployment.upgraded"], "folderKeys": [folder.key], "description": "CD board"}),
        )
        .expect(201)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let id = id_of(&created);
    assert_eq!(created["eventTypes"], json!(["deployment.upgraded"]));
    assert_eq!(created["format"], "standard");
    assert_eq!(created["enabled"], true);
    let list = app.webhooks_call(Method::GET, "", &admin).json().await;
    assert_eq!(list["count"], 1);
    assert!(list["value"][0].get("secret").is_none());
    let patched = app
        .webhooks_call(Method::PATCH, &format!("/{id}"), &admin)
        .body(json!({"enabled": false, "eventTypes": []}))
        .json()
        .await;
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["disabledReason"], Value::Null);
    assert_eq!(patched["eventTypes"], json!([]));
    // Another tenant's administrator sees nothing of it.
    let other = app.token_for("tenant-b", "admin", ALL_SCOPES);
    app.grant_in("tenant-b", "admin").await;
    let call = app
        .webhooks_call(Method::GET, &format!("/{id}"), &other)
        .tenant(Some("tenant-b"));
    call.problem(404).await;
    app.webhooks_call(Method::DELETE, &format!("/{id}"), &admin)
        .expect(204)
        .await;
    app.webhooks_call(Method::GET, &format!("/{id}"), &admin)
        .problem(404)
        .await;
    app.webhooks_call(Method::GET, "/not-an-id", &admin)
        .problem(404)
        .await;
}

#[tokio::test]
async fn creates_racing_for_the_last_endpoints_never_pass_the_tenants_limit_of_50() {
    let app = spawn_app_with(fast_webhooks).await;
    app.grant("admin", Role::Administrator, None).await;
    let admin = app.token("admin", ALL_SCOPES);
    let body = |n: usize| json!({"url": format!("https://h{n}.example/uplift")});
    for n in 0..45 {
        app.create_webhook(&admin, body(n)).expect(201).await;
    }
    // 20 at once for the last 5 places: a count read before another's insert
    // committed would let more than 5 in.
    let answers = futures_util::future::join_all(
        (45..65).map(|n| app.create_webhook(&admin, body(n)).send()),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [[201; 5].as_slice(), &[409; 15]].concat());
    let list = app.webhooks_call(Method::GET, "", &admin).json().await;
    assert_eq!(list["count"], 50);
}

impl TestApp {
    async fn grant_in(&self, tenant: &str, subject: &str) {
        uplift::service::roles::assign(&self.db, tenant, subject, Role::Administrator, None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_endpoint_failing_every_attempt_for_the_configured_period_is_disabled_as_failing() {
    let (socket, port) = listener();
    let receiver = Receiver::new();
    receiver.answer_always(500);
    receiver.serve(socket);
    let app = spawn_app_with(|s| {
        fast_webhooks(s);
        s.webhook_disable_after_seconds = 1;
    })
    .await;
    let (admin, endpoint) = app
        .admin_with_webhook(&format!("http://127.0.0.1:{port}/in"), json!({}))
        .await;
    let id = id_of(&endpoint);
    app.webhooks_call(Method::POST, &format!("/{id}/test"), &admin)
        .expect(202)
        .await;
    let mut e = Value::Null;
    for _ in 0..100 {
        e = app
            .webhooks_call(Method::GET, &format!("/{id}"), &admin)
            .json()
            .await;
        if e["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(e["enabled"], false, "{e}");
    assert_eq!(e["disabledReason"], "failing");
    // Disabled after its second failure (a second after the first), not given up on:
    // the delivery waits, and goes out once the endpoint is enabled and answers.
    let pending = app.deliveries(&admin, &id, "status=pending").await;
    assert_eq!(pending["count"], 1, "{pending}");
    assert!(receiver.attempts() >= 2);
    receiver.answer_always(204);
    app.webhooks_call(Method::PATCH, &format!("/{id}"), &admin)
        .body(json!({"enabled": true}))
        .ok()
        .await;
    receiver.until("the delivery", |got| !got.is_empty()).await;
}
