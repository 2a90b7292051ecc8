//! The OpenAPI document and the docs page are served by the binary itself.

use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_openapi_document_is_served_for_the_configured_organization() {
    let app = spawn_app().await;
    let response = app.get_path("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let bulk =
        "/acme/apps_/default/api/v1/default/models/deployed/apps/updateToLatestAppVersionBulk";
    assert!(
        doc["paths"][bulk]["post"].is_object(),
        "paths follow UPLIFT_ORGANIZATION"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn the_docs_page_is_served_without_internet_access() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap();
    let page = client
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    // Every script the page loads comes from this server, not a CDN.
    assert!(
        !html.contains("https://"),
        "the page must not load anything from the internet"
    );
    let initializer = client
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(initializer.status(), 200);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
}
