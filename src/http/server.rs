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

use super::{extract, limits, metrics};
use crate::{
    app::{AppState, IdempotencyPolicy, Limits, OperationPolicy},
    auth::Keys,
    config::Settings,
    db, idempotency,
    metrics::Metrics,
    operations::Workers,
    rollouts::Driver,
    service, telemetry,
    webhooks::{Relay, WebhookPolicy},
};

pub struct Application {
    port: u16,
    server: Server,
    workers: Arc<Workers>,
    relay: Arc<Relay>,
    driver: Arc<Driver>,
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
        let http_workers = settings.workers;
        let shutdown = settings.shutdown_timeout_seconds;
        service::clients::warm_up();
        let state = AppState::new(db, settings, keys);
        spawn_idempotency_purge(state.db.clone(), state.idempotency().retention);
        let workers = Arc::new(Workers::start(
            state.db.clone(),
            state.operations(),
            state.metrics.clone(),
        ));
        let webhooks = WebhookPolicy::from_settings(&state.settings);
        let relay = Arc::new(Relay::start(
            state.db.clone(),
            webhooks.clone(),
            state.metrics.clone(),
        ));
        // The rollout driver looks as often as an idle operation worker.
        let driver = Arc::new(Driver::start(
            state.db.clone(),
            workers.clone(),
            state.operations().poll,
        ));
        let collaborators = Collaborators::of(state, workers.clone(), relay.clone(), webhooks);
        let mut server = HttpServer::new(move || {
            let settings = collaborators.state.settings.clone();
            App::new()
                .configure(|cfg| collaborators.register(cfg))
                .configure(|cfg| super::configure(cfg, &settings))
                .wrap(ErrorHandlers::new().default_handler(super::problem_for_bare_errors))
                .wrap(from_fn(limits::header_limit))
                .wrap(from_fn(telemetry::request_context))
                .wrap(from_fn(metrics::track))
                .wrap(TracingLogger::<telemetry::UpliftRootSpan>::new())
        })
        .listen(listener)?
        .client_request_timeout(Duration::from_secs(10))
        .shutdown_timeout(shutdown);
        if let Some(n) = http_workers {
            server = server.workers(n);
        }
        tracing::info!(port, "uplift is listening");
        Ok(Application {
            port,
            server: server.run(),
            workers,
            relay,
            driver,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT/SIGTERM, letting in-flight requests finish. The operation
    /// workers stop claiming at the signal, finish their items in flight and release
    /// their leases, so another replica carries on at once.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (workers, relay) = (self.workers.clone(), self.relay.clone());
        let driver = self.driver.clone();
        let on_signal = tokio::spawn(async move {
            stop_signal().await;
            driver.shutdown().await;
            tokio::join!(workers.shutdown(), relay.shutdown());
        });
        let served = self.server.await;
        // Stopped without a signal (the server failed): the workers stop too.
        self.driver.shutdown().await;
        tokio::join!(self.workers.shutdown(), self.relay.shutdown());
        on_signal.abort();
        served
    }
}

/// SIGTERM or SIGINT (the same signals actix-web stops on).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Everything the handlers, extractors and middleware look up, each as its own
/// `web::Data`, made once and shared by every worker. This is the only place that
/// registers them, so none can be missing from one app and present in another.
#[derive(Clone)]
struct Collaborators {
    state: web::Data<AppState>,
    db: web::Data<DatabaseConnection>,
    keys: web::Data<Keys>,
    metrics: web::Data<Metrics>,
    limits: web::Data<Limits>,
    idempotency: web::Data<IdempotencyPolicy>,
    operations: web::Data<OperationPolicy>,
    workers: web::Data<Workers>,
    relay: web::Data<Relay>,
    webhooks: web::Data<WebhookPolicy>,
}

impl Collaborators {
    fn of(
        state: AppState,
        workers: Arc<Workers>,
        relay: Arc<Relay>,
        webhooks: WebhookPolicy,
    ) -> Self {
        Collaborators {
            relay: web::Data::from(relay),
            webhooks: web::Data::new(webhooks),
            operations: web::Data::new(state.operations()),
            workers: web::Data::from(workers),
            db: web::Data::new(state.db.clone()),
            keys: web::Data::from(state.keys.clone()),
            metrics: web::Data::from(state.metrics.clone()),
            limits: web::Data::new(state.limits()),
            idempotency: web::Data::new(state.idempotency()),
            state: web::Data::new(state),
        }
    }

    fn register(&self, cfg: &mut web::ServiceConfig) {
        let max_body = self.limits.max_body_bytes;
        cfg.app_data(self.state.clone())
            .app_data(self.db.clone())
            .app_data(self.keys.clone())
            .app_data(self.metrics.clone())
            .app_data(self.limits.clone())
            .app_data(self.idempotency.clone())
            .app_data(self.operations.clone())
            .app_data(self.workers.clone())
            .app_data(self.relay.clone())
            .app_data(self.webhooks.clone())
            .app_data(web::PayloadConfig::new(max_body))
            .app_data(
                web::JsonConfig::default()
                    .limit(max_body)
                    .error_handler(extract::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(extract::query_error))
            .app_data(web::PathConfig::default().error_handler(extract::path_error));
    }
}

/// Deletes idempotency keys past their retention, now and every ten minutes.
fn spawn_idempotency_purge(db: DatabaseConnection, retention: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            match idempotency::purge_expired(&db, retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "purged expired idempotency keys"),
                Err(e) => tracing::warn!(error = %e, "could not purge idempotency keys"),
            }
        }
    });
}
