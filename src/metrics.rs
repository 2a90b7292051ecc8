//! Prometheus metrics: HTTP requests by route and status with their latency, bulk-call
//! sizes, upgrade outcomes by result and failure code, and database pool use.
//!
//! Each application owns its registry rather than using the process-global one, so
//! several servers in one process (the API tests) never see each other's counts.

use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use sea_orm::DatabaseConnection;

use crate::upgrade::Outcome;

/// Which API a bulk upgrade came through.
#[derive(Debug, Clone, Copy)]
pub enum BulkApi {
    UiPath,
    Rainbond,
}

impl BulkApi {
    fn label(self) -> &'static str {
        match self {
            BulkApi::UiPath => "uipath",
            BulkApi::Rainbond => "rainbond",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    in_flight: IntGauge,
    bulk_items: HistogramVec,
    upgrade_items: IntCounterVec,
    pool_connections: IntGaugeVec,
    operations: IntGaugeVec,
    operation_pending_items: IntGauge,
    operation_oldest_pending_seconds: IntGauge,
    operation_items: IntCounterVec,
    operation_takeovers: prometheus::IntCounter,
    webhook_deliveries: IntCounterVec,
    webhook_lag_seconds: prometheus::Histogram,
    webhook_retry_queue: IntGauge,
    webhook_disabled_endpoints: IntGauge,
    webhook_redeliveries: prometheus::IntCounter,
}

/// The database-wide state of the operations, read by each replica's sweep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationsSnapshot {
    /// (status, number of operations).
    pub by_status: Vec<(&'static str, i64)>,
    pub pending_items: i64,
    /// Age of the oldest unfinished operation that still has pending items.
    pub oldest_pending_seconds: i64,
}

/// Route label of a request no route matched: one series for every unknown path, so
/// a scan of random URLs cannot grow the registry without bound.
pub const UNMATCHED: &str = "unmatched";

impl Metrics {
    pub fn new(pool_max: u32) -> Self {
        let registry = Registry::new_custom(Some("uplift".into()), None)
            .expect("the prefix is a valid metric name");
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from receiving a request to its answer",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("http_requests_in_flight", "Requests being handled")
            .expect("valid metric");
        let bulk_items = HistogramVec::new(
            HistogramOpts::new(
                "bulk_upgrade_items",
                "Distinct deployment ids per bulk call",
            )
            .buckets(vec![
                1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
            ]),
            &["api"],
        )
        .expect("valid metric");
        let upgrade_items = IntCounterVec::new(
            Opts::new(
                "upgrade_items_total",
                "Bulk-upgrade items by result (updated, unchanged, failed) and failure code",
            ),
            &["api", "mode", "result", "code"],
        )
        .expect("valid metric");
        let pool_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state"),
            &["state"],
        )
        .expect("valid metric");
        let operations = IntGaugeVec::new(
            Opts::new(
                "operations",
                "Operations in the database by status (read every few seconds)",
            ),
            &["status"],
        )
        .expect("valid metric");
        let operation_pending_items = IntGauge::new(
            "operation_pending_items",
            "Items of unfinished operations not yet started",
        )
        .expect("valid metric");
        let operation_oldest_pending_seconds = IntGauge::new(
            "operation_oldest_pending_seconds",
            "Age of the oldest unfinished operation that has items not yet started",
        )
        .expect("valid metric");
        let operation_items = IntCounterVec::new(
            Opts::new(
                "operation_items_total",
                "Operation items settled by this replica, by result",
            ),
            &["result"],
        )
        .expect("valid metric");
        let operation_takeovers = prometheus::IntCounter::new(
            "operation_lease_takeovers_total",
            "Operations this replica claimed after another holder's lease lapsed",
        )
        .expect("valid metric");
        let webhook_deliveries = IntCounterVec::new(
            Opts::new(
                "webhook_deliveries_total",
                "Webhook delivery attempts made by this replica, by endpoint and result \
                 (delivered, retrying, failed, blocked_address)",
            ),
            &["endpoint", "result"],
        )
        .expect("valid metric");
        let webhook_lag_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "webhook_delivery_lag_seconds",
                "From the change's commit to the receiver's 2xx",
            )
            .buckets(vec![
                0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0,
            ]),
        )
        .expect("valid metric");
        let webhook_retry_queue = IntGauge::new(
            "webhook_retry_queue",
            "Webhook deliveries waiting for a retry (read every few seconds)",
        )
        .expect("valid metric");
        let webhook_disabled_endpoints = IntGauge::new(
            "webhook_disabled_endpoints",
            "Webhook endpoints disabled (by their owner, a 410 or failing too long)",
        )
        .expect("valid metric");
        let webhook_redeliveries = prometheus::IntCounter::new(
            "webhook_redeliveries_total",
            "Deliveries this replica sent again after another sender's lease lapsed mid-send \
             (the receiver may see that webhook-id twice)",
        )
        .expect("valid metric");
        let pool_max_gauge = IntGauge::new("db_pool_max_connections", "Database pool size limit")
            .expect("valid metric");
        pool_max_gauge.set(i64::from(pool_max));
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_seconds.clone()),
            Box::new(in_flight.clone()),
            Box::new(bulk_items.clone()),
            Box::new(upgrade_items.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_max_gauge.clone()),
            Box::new(operations.clone()),
            Box::new(operation_pending_items.clone()),
            Box::new(operation_oldest_pending_seconds.clone()),
            Box::new(operation_items.clone()),
            Box::new(operation_takeovers.clone()),
            Box::new(webhook_deliveries.clone()),
            Box::new(webhook_lag_seconds.clone()),
            Box::new(webhook_retry_queue.clone()),
            Box::new(webhook_disabled_endpoints.clone()),
            Box::new(webhook_redeliveries.clone()),
        ] {
            registry
                .register(collector)
                .expect("each metric is registered once");
        }
        Metrics {
            registry,
            requests,
            request_seconds,
            in_flight,
            bulk_items,
            upgrade_items,
            pool_connections,
            operations,
            operation_pending_items,
            operation_oldest_pending_seconds,
            operation_items,
            operation_takeovers,
            webhook_deliveries,
            webhook_lag_seconds,
            webhook_retry_queue,
            webhook_disabled_endpoints,
            webhook_redeliveries,
        }
    }

    /// One webhook attempt by endpoint id and result; a delivered one also times the
    /// lag from its event's commit.
    pub fn webhook_attempt(&self, endpoint: &str, result: &str, lag: Option<Duration>) {
        self.webhook_deliveries
            .with_label_values(&[endpoint, result])
            .inc();
        if let Some(lag) = lag {
            self.webhook_lag_seconds.observe(lag.as_secs_f64());
        }
    }

    /// A delivery claimed again after its sender's lease lapsed.
    pub fn webhook_redelivery(&self) {
        self.webhook_redeliveries.inc();
    }

    pub fn set_webhooks(&self, retry_queue: i64, disabled_endpoints: i64) {
        self.webhook_retry_queue.set(retry_queue);
        self.webhook_disabled_endpoints.set(disabled_endpoints);
    }

    /// One operation item settled here, by its result (`updated`, `failed`, …).
    pub fn operation_item(&self, result: &str) {
        self.operation_items.with_label_values(&[result]).inc();
    }

    /// This replica took over an operation whose holder's lease had lapsed.
    pub fn operation_takeover(&self) {
        self.operation_takeovers.inc();
    }

    pub fn set_operations(&self, snapshot: &OperationsSnapshot) {
        for (status, n) in &snapshot.by_status {
            self.operations.with_label_values(&[status]).set(*n);
        }
        self.operation_pending_items.set(snapshot.pending_items);
        self.operation_oldest_pending_seconds
            .set(snapshot.oldest_pending_seconds);
    }

    /// A request is being handled (until `request_finished`).
    pub fn request_started(&self) {
        self.in_flight.inc();
    }

    /// Counts and times an answered request under its route pattern (never its path,
    /// whose ids would make one series per deployment).
    pub fn request_finished(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.in_flight.dec();
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.request_seconds
            .with_label_values(&labels)
            .observe(took.as_secs_f64());
    }

    /// Counts one bulk call's size and what happened to each of its items.
    pub fn record_bulk(&self, api: BulkApi, dry_run: bool, outcomes: &[Outcome]) {
        let api = api.label();
        let mode = if dry_run { "dry_run" } else { "apply" };
        self.bulk_items
            .with_label_values(&[api])
            .observe(outcomes.len() as f64);
        for outcome in outcomes {
            let (result, code) = match outcome {
                Outcome::Updated(u) if u.changed() => ("updated", ""),
                Outcome::Updated(_) => ("unchanged", ""),
                Outcome::Failed(f) => ("failed", f.code.as_str()),
            };
            self.upgrade_items
                .with_label_values(&[api, mode, result, code])
                .inc();
        }
    }

    /// The text exposition, with the pool gauges read at this moment.
    pub fn render(&self, db: &DatabaseConnection) -> String {
        if let Some((size, idle)) = pool_use(db) {
            self.pool_connections
                .with_label_values(&["idle"])
                .set(i64::from(idle));
            self.pool_connections
                .with_label_values(&["in_use"])
                .set(i64::from(size.saturating_sub(idle)));
        }
        let mut out = Vec::new();
        // Encoding our own well-formed families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// (open connections, idle connections) of whichever pool the connection wraps.
fn pool_use(db: &DatabaseConnection) -> Option<(u32, u32)> {
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            Some((pool.size(), pool.num_idle() as u32))
        }
        sea_orm::DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            Some((pool.size(), pool.num_idle() as u32))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upgrade::{Failure, FailureCode, Updated};

    fn updated(id: &str, from: i32, to: i32) -> Outcome {
        Outcome::Updated(Updated {
            id: id.into(),
            app_system_name: "app".into(),
            version: to,
            previous_version: from,
        })
    }

    #[test]
    fn bulk_outcomes_are_counted_by_result_and_failure_code() {
        let metrics = Metrics::new(4);
        metrics.record_bulk(
            BulkApi::UiPath,
            false,
            &[
                updated("a", 1, 2),
                updated("b", 2, 2),
                Outcome::Failed(Failure::new("c", FailureCode::NotFound)),
                Outcome::Failed(Failure::new("d", FailureCode::NotFound)),
            ],
        );
        let count = |result: &str, code: &str| {
            metrics
                .upgrade_items
                .with_label_values(&["uipath", "apply", result, code])
                .get()
        };
        assert_eq!(count("updated", ""), 1);
        assert_eq!(count("unchanged", ""), 1);
        assert_eq!(count("failed", "not_found"), 2);
        assert_eq!(
            metrics
                .bulk_items
                .with_label_values(&["uipath"])
                .get_sample_sum(),
            4.0
        );
    }

    #[test]
    fn dry_runs_are_counted_apart_from_real_upgrades() {
        let metrics = Metrics::new(4);
        metrics.record_bulk(BulkApi::Rainbond, true, &[updated("a", 1, 2)]);
        let get = |mode: &str| {
            metrics
                .upgrade_items
                .with_label_values(&["rainbond", mode, "updated", ""])
                .get()
        };
        assert_eq!(get("dry_run"), 1);
        assert_eq!(get("apply"), 0);
    }
}
