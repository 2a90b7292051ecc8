use crate::{
    client::BULK_PATH,
    helpers::{TestApp, ids, spawn_app},
};

/// The value of the sample `name{labels…}` in a Prometheus text exposition, whatever
/// order the labels are printed in.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let printed: Vec<&str> = rest
            .trim_end_matches('}')
            .split(',')
            .filter(|pair| !pair.is_empty())
            .collect();
        let same = printed.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| printed.contains(&format!("{k}=\"{v}\"").as_str()));
        same.then(|| value.parse().ok()).flatten()
    })
}

async fn scrape(app: &TestApp) -> String {
    let response = app.get_path("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_and_status() {
    let app = spawn_app().await;
    let (folder, deployed) = app.upgradable_deployment("ci-bot").await;
    app.bulk("ci-bot", &folder.key, &ids(&[&deployed])).await;
    app.bulk("ci-bot", &folder.key, &ids(&[&deployed])).await;
    for path in ["/no/such/path", "/another/unknown/path"] {
        let response = app.get_path(path).await;
        assert_eq!(response.status(), 404);
    }

    let text = scrape(&app).await;

    let bulk_route = format!("{}{BULK_PATH}", app.settings.uipath_base_path());
    let labels = [
        ("method", "POST"),
        ("route", bulk_route.as_str()),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "uplift_http_requests_total", &labels),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "uplift_http_request_duration_seconds_count", &labels),
        Some(2.0)
    );
    let unmatched = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(
        sample(&text, "uplift_http_requests_total", &unmatched),
        Some(2.0),
        "unknown paths share one series: {text}"
    );
    assert!(
        !text.contains("/no/such/path"),
        "a raw path never becomes a label"
    );
}

#[tokio::test]
async fn metrics_count_bulk_sizes_and_each_items_outcome_by_result_and_failure_code() {
    let app = spawn_app().await;
    let (folder, old) = app.upgradable_deployment("ci-bot").await;
    // Publishing an existing version answers what it answered the first time.
    let name = app.publish("Invoice Portal", "2.0.0").await.app.system_name;
    let current = app.deploy(&folder, &name, 2).await;
    let mut request = ids(&[&old, &current]);
    request.push("not-a-deployment".into());

    app.bulk("ci-bot", &folder.key, &request).await;
    let text = scrape(&app).await;

    let items = |result: &str, code: &str| {
        sample(
            &text,
            "uplift_upgrade_items_total",
            &[
                ("api", "uipath"),
                ("mode", "apply"),
                ("result", result),
                ("code", code),
            ],
        )
    };
    assert_eq!(items("updated", ""), Some(1.0), "{text}");
    assert_eq!(items("unchanged", ""), Some(1.0));
    assert_eq!(items("failed", "not_found"), Some(1.0));
    assert_eq!(
        sample(&text, "uplift_bulk_upgrade_items_sum", &[("api", "uipath")]),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "uplift_bulk_upgrade_items_count",
            &[("api", "uipath")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn metrics_show_the_database_pool_size_and_use() {
    let app = spawn_app().await;

    let text = scrape(&app).await;

    assert_eq!(
        sample(&text, "uplift_db_pool_max_connections", &[]),
        Some(f64::from(app.settings.db_max_connections))
    );
    let idle = sample(&text, "uplift_db_pool_connections", &[("state", "idle")]);
    let in_use = sample(&text, "uplift_db_pool_connections", &[("state", "in_use")]);
    assert!(idle.is_some() && in_use.is_some(), "{text}");
    assert!(
        idle.unwrap() + in_use.unwrap() >= 1.0,
        "min_connections is 1"
    );
}

#[tokio::test]
async fn invented_http_methods_share_one_metrics_series_so_the_registry_stays_small() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let series = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("uplift_http_requests_total{"))
            .count()
    };
    let methods: Vec<String> = (0..300).map(|i| format!("PROBE{i}")).collect();
    for chunk in methods.chunks(50) {
        let calls = chunk.iter().map(|m| {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            app.client
                .request(method, format!("{}/healthz", app.address))
                .send()
        });
        for response in futures_util::future::join_all(calls).await {
            response.unwrap();
        }
    }

    let text = scrape(&app).await;

    assert!(
        !text.contains("PROBE"),
        "an invented method never becomes a label: {text}"
    );
    let other: f64 = text
        .lines()
        .filter(|l| l.starts_with("uplift_http_requests_total{") && l.contains("method=\"other\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum();
    assert_eq!(other, 300.0, "{text}");
    assert!(
        series(&text) <= series(&before) + 4,
        "300 methods added at most a few series: {text}"
    );
}
