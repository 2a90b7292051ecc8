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
        .shutdown_timeout(shutdown)
        // The signals are this application's (`run_until_stopped`), so that they are
        // handled from before "listening" is logged and stop the workers too.
        .disable_signals();
        if let Some(n) = http_workers {
            server = server.workers(n);
        }
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
    ///
    /// The signal handlers are installed before "uplift is listening" is logged: a
    /// SIGTERM sent as soon as the line appears (a supervisor, a test) is a graceful
    /// stop, not the default action of killing the process.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let signals = StopSignals::install()?;
        tracing::info!(port = self.port, "uplift is listening");
        let (workers, relay) = (self.workers.clone(), self.relay.clone());
        let driver = self.driver.clone();
        let http = self.server.handle();
        let on_signal = tokio::spawn(async move {
            signals.recv().await;
            tracing::info!("stopping: no new connections, the calls in flight finish");
            let background = async {
                driver.shutdown().await;
                tokio::join!(workers.shutdown(), relay.shutdown());
            };
            tokio::join!(http.stop(true), background);
        });
        let served = self.server.await;
        // Stopped without a signal (the server failed), or by one: either way the
        // background tasks have finished when this returns (a second shutdown waits
        // for the first).
        self.driver.shutdown().await;
        tokio::join!(self.workers.shutdown(), self.relay.shutdown());
        on_signal.abort();
        served
    }
}

/// SIGTERM and SIGINT, registered at once (so neither kills the process from then
/// on) and awaited later.
struct StopSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(StopSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(StopSignals {})
        }
    }

    async fn recv(mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => {}
                _ = self.interrupt.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
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
