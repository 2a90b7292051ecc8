//! The relay every replica runs (like the operation workers): fan out new outbox rows,
//! claim due deliveries, send them at `concurrency`, record each attempt; a sweep
//! refreshes the gauges and purges events past the retention. Stopping: no new claim;
//! sends in flight finish and are recorded.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures_util::{StreamExt, stream};
use sea_orm::DatabaseConnection;
use tokio::{
    sync::{Notify, watch},
    task::JoinHandle,
};

use super::{
    fanout,
    guard::{Guard, Lookup, SystemLookup},
    message,
    policy::WebhookPolicy,
    relay::{self, Claimed, Sent, Settled},
    transport::{self, Failure, HttpTransport, Transport},
};
use crate::{background::Tasks, metrics::Metrics};

/// Events one fan-out pass takes.
const FAN_OUT_BATCH: u64 = 500;

/// Further tries of a round's recording that failed (each well inside the lease).
const SETTLE_RETRIES: usize = 3;

pub struct Relay {
    wake: Arc<Notify>,
    tasks: Tasks,
}

struct Context {
    db: DatabaseConnection,
    policy: WebhookPolicy,
    metrics: Arc<Metrics>,
    guard: Guard,
    transport: Arc<dyn Transport>,
    owner: String,
    wake: Arc<Notify>,
}

impl Relay {
    /// Starts the relay and its sweep on the current runtime (nothing when the
    /// settings turn the relay off on this replica).
    pub fn start(db: DatabaseConnection, policy: WebhookPolicy, metrics: Arc<Metrics>) -> Self {
        let lookup: Arc<dyn Lookup> = Arc::new(SystemLookup);
        let transport: Arc<dyn Transport> = Arc::new(HttpTransport::new(policy.timeout));
        Self::start_with(db, policy, metrics, lookup, transport)
    }

    pub fn start_with(
        db: DatabaseConnection,
        policy: WebhookPolicy,
        metrics: Arc<Metrics>,
        lookup: Arc<dyn Lookup>,
        transport: Arc<dyn Transport>,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let mut tasks = Tasks::new();
        if policy.relay {
            let context = Arc::new(Context {
                guard: Guard::new(lookup, policy.allow.clone(), policy.allow_http),
                db,
                metrics,
                transport,
                owner: format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple()),
                wake: wake.clone(),
                policy,
            });
            let relayed = context.clone();
            tasks.spawn(|stop| relay_loop(relayed, stop));
            tasks.spawn(|stop| sweep(context, stop));
        }
        Relay { wake, tasks }
    }

    /// Something is waiting (a test event, a replay): look now, not at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Stops claiming; returns once the rounds in flight were sent and recorded.
    pub async fn shutdown(&self) {
        self.tasks.shutdown().await;
    }
}

async fn relay_loop(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    // The previous round's results, being recorded while this round claims and sends:
    // its deliveries are still `sending` until then, so nothing queued behind them (the
    // same ordering key, the same endpoint) can be claimed early.
    let mut recording: Option<JoinHandle<()>> = None;
    // Whether the last round found work: then the next claims without looking first.
    let mut busy = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let fanned_out = match fanout::fan_out(&context.db, FAN_OUT_BATCH).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "could not fan out webhook events");
                false
            }
        };
        let look = busy || fanned_out || relay::anything_due(&context.db).await.unwrap_or(true);
        busy = fanned_out;
        if !look {
            idle(&context, &mut stop).await;
            continue;
        }
        // One round of sends per claim: every claimed delivery is sent within about
        // one timeout, well inside its lease (twice the timeout), so no other replica
        // takes one over while it waits its turn here. A claim holds at most one
        // delivery per (endpoint, ordering key), so they are all sent at once.
        let limit = context.policy.concurrency;
        let round = std::time::Instant::now();
        match relay::claim(&context.db, &context.owner, &context.policy, limit).await {
            Ok(claimed) if !claimed.is_empty() => {
                busy = true;
                let (n, claim_ms) = (claimed.len(), round.elapsed().as_millis());
                let sent: Vec<Sent> = stream::iter(claimed)
                    .map(|claimed| {
                        let context = context.clone();
                        async move { send(&context, claimed).await }
                    })
                    .buffer_unordered(context.policy.concurrency)
                    .collect()
                    .await;
                let send_ms = round.elapsed().as_millis() - claim_ms;
                // One recording at a time: it is one transaction, and the next
                // round's results wait for it rather than pile up.
                if let Some(previous) = recording.take() {
                    let _ = previous.await;
                }
                tracing::debug!(claimed = n, claim_ms, send_ms, "relay round");
                if n < limit {
                    // The claim took all that could go: what is due next waits behind
                    // these deliveries (their ordering keys), so claiming beside their
                    // recording would find nothing. Recorded first, the next claim
                    // can take each key's next event (a few busy keys drain at one
                    // round per event instead of two).
                    record(&context, &sent).await;
                } else {
                    let context = context.clone();
                    recording = Some(tokio::spawn(async move { record(&context, &sent).await }));
                }
            }
            // Nothing claimable while the last round is being recorded may only mean
            // that what is due waits behind it (its ordering key): look again once
            // it is recorded, not at the next poll.
            Ok(_) => {
                if let Some(previous) = recording.take() {
                    let _ = previous.await;
                    busy = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not claim webhook deliveries"),
        }
        if !busy {
            idle(&context, &mut stop).await;
        }
    }
    // Stopping: what was sent is recorded before the relay ends.
    if let Some(last) = recording {
        let _ = last.await;
    }
}

/// Waits for the next poll, a wake-up or the stop.
async fn idle(context: &Context, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = context.wake.notified() => {}
        _ = tokio::time::sleep(context.policy.poll) => {}
        _ = stop.changed() => {}
    }
}

#[tracing::instrument(skip_all, fields(delivery = %claimed.delivery.id, endpoint = %claimed.endpoint.id))]
async fn send(context: &Context, claimed: Claimed) -> Sent {
    if claimed.taken_over {
        context.metrics.webhook_redelivery();
        tracing::info!("sending again a delivery whose sender's lease lapsed");
    }
    let data: serde_json::Value = claimed
        .event
        .data
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or_default();
    let outgoing = message::outgoing(
        &claimed.endpoint,
        &claimed.event,
        &data,
        &context.policy.source,
        Utc::now(),
    );
    let url = match reqwest::Url::parse(&claimed.endpoint.url) {
        Ok(url) => url,
        Err(e) => {
            let failure = Failure::Other(format!("the stored URL: {e}"));
            return Sent {
                claimed,
                took: Duration::ZERO,
                result: Err((None, None, failure)),
            };
        }
    };
    let (took, result) =
        transport::deliver(&context.guard, context.transport.as_ref(), &url, outgoing).await;
    let result = match result {
        Ok(answer) if (200..300).contains(&answer.status) => Ok(answer.status),
        Ok(answer) => Err((
            Some(answer.status),
            answer.retry_after,
            Failure::Other(format!("status {}", answer.status)),
        )),
        Err(failure) => Err((None, None, failure)),
    };
    Sent {
        claimed,
        took,
        result,
    }
}

async fn record(context: &Context, sent: &[Sent]) {
    let started = std::time::Instant::now();
    // A recording that failed (a lock wait past `lock_timeout` on a loaded database)
    // is tried again while the lease still holds: left `sending`, the whole round
    // would be sent a second time once the lease lapsed.
    let mut result = relay::settle(&context.db, &context.owner, sent, &context.policy).await;
    for _ in 0..SETTLE_RETRIES {
        let Err(e) = &result else { break };
        tracing::info!(error = %e, "recording webhook attempts again");
        tokio::time::sleep(Duration::from_millis(200)).await;
        result = relay::settle(&context.db, &context.owner, sent, &context.policy).await;
    }
    match result {
        Ok(settled) => {
            tracing::debug!(
                settled = sent.len(),
                settle_ms = started.elapsed().as_millis(),
                "relay round recorded"
            );
            for (sent, settled) in sent.iter().zip(settled) {
                let claimed = &sent.claimed;
                if settled == Settled::Fenced {
                    tracing::info!(delivery = %claimed.delivery.id, "the delivery's lease was taken over; its attempt was not recorded here");
                    continue;
                }
                let blocked = matches!(
                    &sent.result,
                    Err((_, _, Failure::Refused(super::guard::Refusal::Blocked(_))))
                );
                let lag = (settled == Settled::Delivered)
                    .then(|| (Utc::now() - claimed.event.created_at).to_std().ok())
                    .flatten();
                let label = if blocked {
                    "blocked_address"
                } else {
                    settled.as_str()
                };
                context
                    .metrics
                    .webhook_attempt(&claimed.endpoint.id, label, lag);
                if settled == Settled::Failed {
                    tracing::warn!(delivery = %claimed.delivery.id, attempts = claimed.delivery.attempts + 1, "webhook delivery given up");
                }
            }
        }
        // Left `sending`: once their lease lapses they are claimed and sent again.
        Err(e) => tracing::warn!(error = %e, "could not record webhook attempts"),
    }
}

async fn sweep(context: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let every = (context.policy.poll * 20).min(Duration::from_secs(10));
    loop {
        match relay::gauges(&context.db).await {
            Ok((retrying, disabled)) => context.metrics.set_webhooks(retrying, disabled),
            Err(e) => tracing::warn!(error = %e, "could not read the webhook queue"),
        }
        match relay::purge(&context.db, context.policy.retention).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "purged webhook events past their retention"),
            Err(e) => tracing::warn!(error = %e, "could not purge webhook events"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
