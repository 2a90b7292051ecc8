//! The token endpoint under a flood (issue 20, point 2): it needs no credentials to
//! reach and every well-formed request costs an Argon2 check, so the checks are
//! bounded (a queue limit), budgeted (per client id, per source address) and their
//! memory reused.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;

use crate::{
    fixtures::client_credentials,
    helpers::{TestApp, spawn_app_with},
    server_process::Server,
};

fn garbage_form(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", format!("flood-{n}")),
        ("client_secret", "not-the-secret".into()),
    ]
}

/// Sends `count` token requests at once for unknown clients; their statuses.
async fn flood(app: &TestApp, count: usize) -> Vec<reqwest::Response> {
    join_all((0..count).map(|n| {
        app.client
            .post(app.token_url())
            .form(&garbage_form(n))
            .send()
    }))
    .await
    .into_iter()
    .map(|r| r.expect("the token endpoint answered"))
    .collect()
}

async fn assert_slow_down(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
}

/// Asserts each answer is a 401 or a 429 asking to slow down; how many were 429s.
async fn count_slowed_down(answers: Vec<reqwest::Response>) -> usize {
    let mut refused = 0;
    for answer in answers {
        if answer.status() == 429 {
            refused += 1;
            assert_slow_down(answer).await;
        } else {
            assert_eq!(answer.status(), 401);
        }
    }
    refused
}

/// About 20 garbage requests a second used to make a real token request wait 5-9 s.
#[tokio::test]
async fn a_flood_from_one_address_is_refused_while_a_client_elsewhere_gets_its_token_promptly() {
    let app = spawn_app_with(|s| s.token_requests_per_minute_per_address = 20).await;
    let (client_id, secret) = app.create_client("ci", "Apps").await;
    // Another loopback address: the flood's budget is 127.0.0.1's.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let legitimate = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let response = elsewhere
            .post(app.token_url())
            .form(&client_credentials(&client_id, &secret))
            .send()
            .await
            .unwrap();
        (response.status(), started.elapsed())
    };
    let (answers, (status, took)) = tokio::join!(flood(&app, 120), legitimate);
    assert_eq!(status, 200);
    assert!(
        took < Duration::from_secs(3),
        "the real request took {took:?}"
    );
    let refused = count_slowed_down(answers).await;
    assert!(refused >= 100, "only {refused} of 120 refused");
}

#[tokio::test]
async fn one_client_id_beyond_its_budget_is_refused_whatever_its_secret() {
    let app = spawn_app_with(|s| s.token_requests_per_minute_per_client = 3).await;
    let (client_id, secret) = app.create_client("ci", "Apps").await;
    for _ in 0..3 {
        let response = app
            .request_token(&client_credentials(&client_id, "wrong"))
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = app
        .request_token(&client_credentials(&client_id, &secret))
        .await;
    assert_slow_down(response).await;
    // Another id (here one that does not exist) has its own budget.
    let other = app.request_token(&garbage_form(0)).await;
    assert_eq!(other.status(), 401);
}

#[tokio::test]
async fn secret_checks_beyond_the_queue_limit_are_refused_at_once() {
    let app = spawn_app_with(|s| {
        s.token_queue_limit = 2;
        s.token_requests_per_minute_per_address = 0;
        s.token_requests_per_minute_per_client = 0;
    })
    .await;
    let answers = flood(&app, 40).await;
    let refused = count_slowed_down(answers).await;
    assert!(
        refused > 0,
        "40 checks at once never met the queue limit of 2"
    );
}

/// Each Argon2 check's 19 MiB block used to stay with the allocator: ten token requests
/// took a fresh server from 43 to 214 MiB.
#[tokio::test]
async fn token_requests_leave_the_server_s_memory_bounded() {
    let app = spawn_app_with(|_| {}).await;
    let (client_id, secret) = app.create_client("ci", "Apps").await;
    let server = Server::start(&app, &[("UPLIFT_WORKERS", "2")]).await;
    let token_url = server.url("/identity_/connect/token");
    for round in 0..4 {
        let requests = (0..10).map(|n| {
            let secret = if n % 2 == 0 {
                secret.clone()
            } else {
                format!("wrong-{round}")
            };
            app.client
                .post(&token_url)
                .form(&client_credentials(&client_id, &secret))
                .send()
        });
        for response in join_all(requests).await {
            let status = response.unwrap().status().as_u16();
            assert!(status == 200 || status == 401, "{status}");
        }
    }
    let resident = server.resident_mib();
    eprintln!("resident after 40 token requests: {resident} MiB");
    assert!(resident < 100, "{resident} MiB after 40 token requests");
}
