//! Builds the actix application; shared by `uplift serve` and the tests.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{
    App, HttpServer,
    dev::Server,
    middleware::{ErrorHandlers, from_fn},
    web,
};
use anyhow::Context;
use sea_orm::DatabaseConnection;
use tracing_actix_web::TracingLogger;

use crate::{
    auth::Keys, config::Settings, db, extract, idempotency, limits, metrics::Metrics, routes,
    telemetry,
};

/// What every handler can reach.
pub struct AppState {
    pub db: DatabaseConnection,
    pub settings: Arc<Settings>,
    pub keys: Arc<Keys>,
    pub metrics: Metrics,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Connects to the database, migrates it, loads the keys and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = db::connect_and_migrate(&settings).await?;
        let keys = Keys::from_settings(&settings)?;
        Self::build_with(settings, db, keys)
    }

    pub fn build_with(
        settings: Settings,
        db: DatabaseConnection,
        keys: Keys,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.listen)
            .with_context(|| format!("binding {}", settings.listen))?;
        let port = listener.local_addr()?.port();
        let workers = settings.workers;
        let shutdown = settings.shutdown_timeout_seconds;
        let settings = Arc::new(settings);
        crate::service::clients::warm_up();
        spawn_idempotency_purge(
            db.clone(),
            Duration::from_secs(settings.idempotency_retention_hours * 3600),
        );
        let state = web::Data::new(AppState {
            db,
            settings: settings.clone(),
            keys: Arc::new(keys),
            metrics: Metrics::new(settings.db_max_connections),
        });
        let mut server = HttpServer::new(move || {
            let max_body = settings.max_body_bytes;
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(extract::json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(extract::query_error))
                .app_data(web::PathConfig::default().error_handler(extract::path_error))
                .configure(|cfg| routes::configure(cfg, &settings))
                .wrap(ErrorHandlers::new().default_handler(routes::problem_for_bare_errors))
                .wrap(from_fn(limits::header_limit))
                .wrap(from_fn(telemetry::request_context))
                .wrap(from_fn(crate::metrics::track))
                .wrap(TracingLogger::<telemetry::UpliftRootSpan>::new())
        })
        .listen(listener)?
        .client_request_timeout(Duration::from_secs(10))
        .shutdown_timeout(shutdown);
        if let Some(workers) = workers {
            server = server.workers(workers);
        }
        tracing::info!(port, "uplift is listening");
        Ok(Application {
            port,
            server: server.run(),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, letting in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Deletes idempotency keys past their retention, now and every ten minutes.
fn spawn_idempotency_purge(db: DatabaseConnection, retention: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match idempotency::store::purge_expired(&db, retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
            }
        }
    });
}
