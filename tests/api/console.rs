//! The operator console's page and files, served by the binary: content types, caching,
//! the security headers on every answer under `/console`, and a problem+json 404 for a
//! file it does not have.

use std::collections::BTreeSet;

use reqwest::{Response, header};

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// The header every console answer must carry, errors included.
fn assert_locked_down(response: &Response) {
    let headers = response.headers();
    let csp = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap_or_else(|| panic!("{} has no CSP", response.url()))
        .to_str()
        .unwrap();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for wanted in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ] {
        assert!(directives.contains(&wanted), "CSP lacks {wanted}: {csp}");
    }
    for banned in ["unsafe-inline", "unsafe-eval", "http:", "https:", "*"] {
        assert!(!csp.contains(banned), "CSP allows {banned}: {csp}");
    }
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
}

async fn console_get(app: &TestApp, path: &str) -> Response {
    app.get_path(path).await
}

/// The files a page or module names: `src="…"`/`href="…"` in HTML, `from "./…"` in
/// modules, relative to `/console/`.
fn references(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["src=\"", "href=\"", "from \"./"] {
        let mut rest = text;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let end = rest.find('"').unwrap();
            let name = rest[..end].trim_start_matches("./");
            if !name.starts_with('#') && !name.is_empty() {
                found.push(name.to_string());
            }
            rest = &rest[end..];
        }
    }
    found
}

#[tokio::test]
async fn the_console_page_is_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    let page = console_get(&app, "/console/").await;
    assert_eq!(page.status(), 200);
    assert_locked_down(&page);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-cache");
    assert!(page.headers().contains_key(header::ETAG));
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<meta name="uplift-base" content="/acme/apps_/default/api/v1/default">"#),
        "the page names the configured UiPath base path: {html}"
    );
    assert!(html.contains(r#"<script type="module" src="main.js"></script>"#));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("<style"), "no inline style");
}

#[tokio::test]
async fn every_file_the_console_loads_is_served_from_the_binary_with_its_content_type() {
    let app = spawn_app().await;
    let mut pending: Vec<String> =
        references(&console_get(&app, "/console/").await.text().await.unwrap());
    let mut seen = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        assert!(
            !name.contains("://") && !name.starts_with("//"),
            "{name} would be fetched from elsewhere"
        );
        let response = console_get(&app, &format!("/console/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        assert_locked_down(&response);
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        let expected = match name.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            other => panic!("{name}: unexpected kind of file {other}"),
        };
        assert_eq!(content_type, expected, "{name}");
        let text = response.text().await.unwrap();
        if name.ends_with(".js") {
            pending.extend(references(&text));
        }
    }
    for module in [
        "main.js",
        "api.js",
        "fleet.js",
        "operation.js",
        "history.js",
        "signin.js",
    ] {
        assert!(
            seen.contains(module),
            "{module} is reachable from the page: {seen:?}"
        );
    }
}

#[tokio::test]
async fn a_console_file_answers_a_matching_if_none_match_with_304() {
    let app = spawn_app().await;
    let first = console_get(&app, "/console/main.js").await;
    let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "a strong tag: {etag}"
    );
    let again = app
        .client
        .get(format!("{}/console/main.js", app.address))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()[header::ETAG], etag.as_str());
    assert_locked_down(&again);
    assert!(again.bytes().await.unwrap().is_empty());

    let stale = app
        .client
        .get(format!("{}/console/main.js", app.address))
        .header(header::IF_NONE_MATCH, "\"another\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
    let other = console_get(&app, "/console/api.js").await;
    assert_ne!(
        other.headers()[header::ETAG],
        etag.as_str(),
        "each file has its own tag"
    );
}

#[tokio::test]
async fn an_unknown_console_file_is_a_problem_json_404_naming_it() {
    let app = spawn_app().await;
    for path in [
        "/console/nope.js",
        "/console/%2e%2e%2fCargo.toml",
        "/console/views/x.js",
    ] {
        let response = console_get(&app, path).await;
        assert_locked_down(&response);
        let problem = assert_problem(response, 404).await;
        assert!(
            problem["detail"].as_str().unwrap().contains("no file")
                || problem["detail"].as_str().unwrap().contains("no route"),
            "{path}: {problem}"
        );
    }
    let problem = assert_problem(console_get(&app, "/console/nope.js").await, 404).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("nope.js"),
        "{problem}"
    );
    assert!(problem["traceId"].is_string());
}

#[tokio::test]
async fn the_bare_console_path_redirects_to_the_page_and_writes_are_refused() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/console", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    assert_eq!(response.headers()[header::LOCATION], "/console/");
    assert_locked_down(&response);

    let post = app
        .client
        .post(format!("{}/console/", app.address))
        .send()
        .await
        .unwrap();
    assert_locked_down(&post);
    let problem = assert_problem(post, 405).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("POST"),
        "{problem}"
    );

    let head = app
        .client
        .head(format!("{}/console/console.css", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()[header::CONTENT_TYPE],
        "text/css; charset=utf-8"
    );
}
