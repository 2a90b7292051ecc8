//! Following an operation to its end (`uplift upgrade --async --wait`, `uplift
//! operations show --wait`): poll its monitor as often as `Retry-After` says, show the
//! progress (a bar on a terminal, plain lines otherwise, both on stderr), and end with
//! the final answer in the bulk call's shape on stdout.
//!
//! Ctrl-C stops following, never the operation: it goes on on the server, and its id
//! is printed so it can be followed again or cancelled.

use std::{
    io::{IsTerminal, Write},
    time::Duration,
};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use super::remote::{EXIT_ERROR, EXIT_ITEMS_FAILED, EXIT_OK, Reply, Session};

/// Poll no faster than this, whatever `Retry-After` says.
const MIN_POLL: Duration = Duration::from_millis(200);
/// Poll at least this often, whatever `Retry-After` says.
const MAX_POLL: Duration = Duration::from_secs(30);
/// Polls in a row that may get no answer (or a 5xx/429) before following gives up.
const TOLERATED_POLL_ERRORS: u32 = 3;
/// The largest page `/items` gives.
const ITEMS_PAGE: u64 = 1000;

/// `{base}/operations/{id}` followed by `tail`, each a path segment.
pub fn operation_url(session: &Session, id: &str, tail: &[&str]) -> Url {
    let mut url = session.url("operations");
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.push(id);
        for segment in tail {
            segments.push(segment);
        }
    }
    url
}

/// The monitor to follow: as first answered, where to poll it, when to poll again.
pub struct Watch {
    pub id: String,
    pub monitor: Value,
    pub location: Url,
    pub retry_after: Option<Duration>,
}

impl Watch {
    /// From a monitor answer (a create call's 202, or a `GET` of the monitor). The
    /// `Operation-Location` is used when it is on the base URL's origin.
    pub fn from_reply(session: &Session, reply: &Reply) -> anyhow::Result<Watch> {
        let monitor = reply.json()?;
        let id = monitor["id"]
            .as_str()
            .context("the monitor has no operation id")?
            .to_string();
        let location = reply
            .header("operation-location")
            .and_then(|raw| session.same_origin(raw))
            .unwrap_or_else(|| operation_url(session, &id, &[]));
        Ok(Watch {
            id,
            monitor,
            location,
            retry_after: reply.retry_after(),
        })
    }
}

/// Whether the monitor's status is final.
pub fn is_terminal(monitor: &Value) -> bool {
    matches!(
        monitor["status"].as_str(),
        Some("Succeeded" | "Failed" | "Canceled")
    )
}

/// The exit code a finished operation ends with: 0 Succeeded; 2 Canceled, or Failed
/// because of its items (`items_failed`, `failure_budget_exhausted`) or because its
/// creator lost the right to go on (`permission_revoked`: the items not started are
/// `skipped` in the answer); 1 Failed for any other reason (`internal`) or not finished.
pub fn exit_code(monitor: &Value) -> u8 {
    match monitor["status"].as_str() {
        Some("Succeeded") => EXIT_OK,
        Some("Canceled") => EXIT_ITEMS_FAILED,
        Some("Failed") => match monitor["error"]["code"].as_str() {
            Some("items_failed" | "failure_budget_exhausted" | "permission_revoked") => {
                EXIT_ITEMS_FAILED
            }
            _ => EXIT_ERROR,
        },
        _ => EXIT_ERROR,
    }
}

/// Follows the operation to its end and prints its final answer on `stdout` and a
/// summary on `stderr`. `command` names the command in messages. Returns the exit code.
pub async fn wait_and_report(
    session: &Session,
    watch: Watch,
    timeout: Duration,
    command: &str,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> u8 {
    let id = watch.id.clone();
    let resume = format!(
        "follow it again with `uplift operations show {id} --wait`, or stop it with `uplift operations cancel {id}`"
    );
    let mut progress = Progress::new(&id, &watch.monitor);
    let followed = tokio::select! {
        followed = follow(session, watch, timeout, &mut progress) => followed,
        _ = tokio::signal::ctrl_c() => {
            progress.abandon();
            let _ = writeln!(
                stderr,
                "{command}: interrupted; operation {id} goes on on the server: {resume}"
            );
            return EXIT_ERROR;
        }
    };
    progress.finish();
    let monitor = match followed {
        Ok(monitor) => monitor,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}; operation {id}: {resume}");
            return EXIT_ERROR;
        }
    };
    let answer = match final_answer(session, &id, &monitor).await {
        Ok(answer) => answer,
        Err(e) => {
            let _ = writeln!(stderr, "error: operation {id} finished, but {e:#}");
            return EXIT_ERROR;
        }
    };
    match serde_json::to_string(&answer) {
        Ok(text) => {
            let _ = writeln!(stdout, "{text}");
            let _ = stdout.flush();
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: the answer as JSON: {e}");
            return EXIT_ERROR;
        }
    }
    let error = match monitor["error"]["code"].as_str() {
        Some(code) => format!(" ({code})"),
        None => String::new(),
    };
    let _ = writeln!(
        stderr,
        "{command}: operation {id} {}{error}: {}",
        monitor["status"].as_str().unwrap_or("?"),
        counters_text(&monitor["counters"]),
    );
    exit_code(&monitor)
}

/// Polls the monitor until the operation is finished; its last monitor.
async fn follow(
    session: &Session,
    watch: Watch,
    timeout: Duration,
    progress: &mut Progress,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    let Watch {
        monitor,
        location,
        mut retry_after,
        ..
    } = watch;
    let mut monitor = monitor;
    let mut errors = 0;
    let mut refreshed = false;
    loop {
        progress.show(&monitor);
        if is_terminal(&monitor) {
            return Ok(monitor);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "not finished after {}s (--timeout)",
                timeout.as_secs_f64().round()
            );
        }
        let pause = retry_after
            .unwrap_or(Duration::from_secs(1))
            .clamp(MIN_POLL, MAX_POLL)
            .min(deadline - now);
        tokio::time::sleep(pause).await;
        let request = session.request(reqwest::Method::GET, location.clone());
        match session.send(request, &location).await {
            Ok(reply) if reply.status.is_success() => {
                errors = 0;
                refreshed = false;
                retry_after = reply.retry_after();
                monitor = reply.json()?;
            }
            // The token expired during a long wait: with client credentials, get another
            // (once in a row).
            Ok(reply)
                if reply.status == reqwest::StatusCode::UNAUTHORIZED
                    && !refreshed
                    && session.refresh_token().await? =>
            {
                refreshed = true;
                retry_after = Some(Duration::ZERO);
                continue;
            }
            // A client error (401, 404, …) does not go away by asking again.
            Ok(reply) if reply.status.is_client_error() && reply.status.as_u16() != 429 => {
                reply.success()?;
            }
            other => {
                errors += 1;
                let why = match other {
                    Ok(reply) => reply.success().err().map(|e| e.to_string()),
                    Err(e) => Some(format!("{e:#}")),
                }
                .unwrap_or_default();
                if errors > TOLERATED_POLL_ERRORS {
                    bail!("{why}");
                }
                progress.note(&format!("polling again after: {why}"));
            }
        }
    }
}

/// The bulk call's answer.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkAnswer {
    pub updated_deployments: Vec<Updated>,
    pub failed_items: Vec<String>,
    pub failures: Vec<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Updated {
    pub id: String,
    pub app_system_name: String,
    pub version: i64,
    pub previous_version: i64,
}

/// The monitor's inline `result`, or, for an operation too large for one, every item
/// paged through `/items` and put in the same shape.
async fn final_answer(session: &Session, id: &str, monitor: &Value) -> anyhow::Result<BulkAnswer> {
    if let Some(result) = monitor.get("result").filter(|r| r.is_object()) {
        return BulkAnswer::deserialize(result)
            .context("the monitor's result is not a bulk answer");
    }
    let mut answer = BulkAnswer::default();
    let mut skip = 0;
    loop {
        let mut url = operation_url(session, id, &["items"]);
        url.query_pairs_mut()
            .append_pair("top", &ITEMS_PAGE.to_string())
            .append_pair("skip", &skip.to_string());
        let page = session
            .get_json(url)
            .await
            .context("paging its items failed")?;
        let items = page["value"]
            .as_array()
            .context("an items page has no value list")?;
        for item in items {
            answer.add(item)?;
        }
        skip += items.len() as u64;
        let count = page["count"].as_u64().unwrap_or(0);
        if items.is_empty() || skip >= count {
            return Ok(answer);
        }
    }
}

impl BulkAnswer {
    /// Adds one item of `/items` the way the monitor's `result` lists it.
    fn add(&mut self, item: &Value) -> anyhow::Result<()> {
        let id = item["id"]
            .as_str()
            .context("an item has no id")?
            .to_string();
        match item["status"].as_str() {
            Some("updated" | "unchanged") => {
                let previous = item["previousVersion"].as_i64().unwrap_or(0);
                self.updated_deployments.push(Updated {
                    id,
                    app_system_name: item["appSystemName"].as_str().unwrap_or("").into(),
                    version: item["version"].as_i64().unwrap_or(previous),
                    previous_version: previous,
                });
            }
            Some(status @ ("failed" | "skipped" | "canceled")) => {
                let failure = match item.get("failure").filter(|f| f.is_object()) {
                    Some(failure) => failure.clone(),
                    None => serde_json::json!({"id": id, "code": status, "message": ""}),
                };
                self.failed_items.push(id);
                self.failures.push(failure);
            }
            // Not settled: a finished operation has none.
            _ => {}
        }
        Ok(())
    }
}

/// `3/10 done: 2 updated, 1 unchanged, 0 failed, 0 skipped, 0 canceled`.
fn counters_text(counters: &Value) -> String {
    let n = |field: &str| counters[field].as_u64().unwrap_or(0);
    let total = n("total");
    let done = total.saturating_sub(n("pending") + n("running"));
    format!(
        "{done}/{total} done: {} updated, {} unchanged, {} failed, {} skipped, {} canceled",
        n("updated"),
        n("unchanged"),
        n("failed"),
        n("skipped"),
        n("canceled")
    )
}

/// Progress on stderr: a bar on a terminal, otherwise a line when something changed
/// (at most one every few seconds, and the last one always).
enum Progress {
    Bar(ProgressBar),
    Lines {
        id: String,
        last: String,
        printed_at: Option<std::time::Instant>,
    },
}

/// Plain progress lines come at most this often.
const LINE_INTERVAL: Duration = Duration::from_secs(2);

impl Progress {
    fn new(id: &str, monitor: &Value) -> Progress {
        if std::io::stderr().is_terminal() {
            let total = monitor["counters"]["total"].as_u64().unwrap_or(0);
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("operation {id}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                id: id.to_string(),
                last: String::new(),
                printed_at: None,
            }
        }
    }

    fn show(&mut self, monitor: &Value) {
        let status = monitor["status"].as_str().unwrap_or("?");
        let counters = &monitor["counters"];
        match self {
            Progress::Bar(bar) => {
                let n = |field: &str| counters[field].as_u64().unwrap_or(0);
                bar.set_length(n("total"));
                bar.set_position(n("total").saturating_sub(n("pending") + n("running")));
                bar.set_message(format!(
                    "{status}: {} updated, {} unchanged, {} failed",
                    n("updated"),
                    n("unchanged"),
                    n("failed") + n("skipped") + n("canceled"),
                ));
            }
            Progress::Lines {
                id,
                last,
                printed_at,
            } => {
                let line = format!("{status}: {}", counters_text(counters));
                let due = printed_at.is_none_or(|at| at.elapsed() >= LINE_INTERVAL);
                if line != *last && (due || is_terminal(monitor)) {
                    eprintln!("uplift: operation {id} {line}");
                    *last = line;
                    *printed_at = Some(std::time::Instant::now());
                }
            }
        }
    }

    fn note(&self, text: &str) {
        match self {
            Progress::Bar(bar) => bar.println(text),
            Progress::Lines { id, .. } => eprintln!("uplift: operation {id}: {text}"),
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }

    fn abandon(&self) {
        if let Progress::Bar(bar) = self {
            bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_exit_code_says_how_the_operation_ended() {
        let ended = |status: &str, code: Option<&str>| {
            let mut monitor = json!({"status": status});
            if let Some(code) = code {
                monitor["error"] = json!({"code": code});
            }
            exit_code(&monitor)
        };
        assert_eq!(ended("Succeeded", None), EXIT_OK);
        assert_eq!(ended("Canceled", None), EXIT_ITEMS_FAILED);
        assert_eq!(ended("Failed", Some("items_failed")), EXIT_ITEMS_FAILED);
        assert_eq!(
            ended("Failed", Some("failure_budget_exhausted")),
            EXIT_ITEMS_FAILED
        );
        assert_eq!(
            ended("Failed", Some("permission_revoked")),
            EXIT_ITEMS_FAILED
        );
        assert_eq!(ended("Failed", Some("internal")), EXIT_ERROR);
        assert_eq!(ended("Running", None), EXIT_ERROR);
    }

    #[test]
    fn items_become_the_bulk_answer_in_order() {
        let mut answer = BulkAnswer::default();
        for item in [
            json!({"id": "a", "status": "updated", "appSystemName": "p", "previousVersion": 1, "version": 2}),
            json!({"id": "b", "status": "unchanged", "appSystemName": "p", "previousVersion": 2, "version": null}),
            json!({"id": "c", "status": "failed", "failure": {"id": "c", "code": "not_found", "message": "m"}}),
            json!({"id": "d", "status": "canceled"}),
        ] {
            answer.add(&item).unwrap();
        }
        let answer = serde_json::to_value(&answer).unwrap();
        assert_eq!(answer["updatedDeployments"][0]["version"], 2);
        assert_eq!(answer["updatedDeployments"][1]["version"], 2);
        assert_eq!(answer["failedItems"], json!(["c", "d"]));
        assert_eq!(answer["failures"][0]["code"], "not_found");
        assert_eq!(answer["failures"][1]["code"], "canceled");
    }

    #[test]
    fn counters_read_as_done_out_of_total() {
        let counters = json!({"total": 5, "pending": 1, "running": 1, "updated": 2, "unchanged": 0, "failed": 1, "skipped": 0, "canceled": 0});
        assert_eq!(
            counters_text(&counters),
            "3/5 done: 2 updated, 0 unchanged, 1 failed, 0 skipped, 0 canceled"
        );
    }
}
