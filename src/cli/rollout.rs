//! `uplift rollout create|list|status|approve|pause|resume|abort|retry|rollback`: a
//! running server's progressive rollouts over HTTP (tenant scope: no folder). JSON on
//! stdout; exit 0 when the call worked, 1 when it did not; `status --watch` follows
//! the rollout, printing each wave's progress on stderr as it changes, and ends 0 when
//! it succeeded, 2 when it ended otherwise (aborted, rolled back, failed), 1 on a
//! timeout or error.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::{Method, Url};
use serde_json::Value;

use super::remote::{EXIT_ERROR, EXIT_ITEMS_FAILED, EXIT_OK, Remote, Session};

/// Where to call and as whom (`uplift upgrade`'s options, without a folder).
#[derive(Debug, Clone, Args)]
pub struct TenantRemote {
    /// The UiPath base URL, e.g. http://127.0.0.1:8080/local/apps_/default/api/v1/default.
    #[arg(long, env = "UPLIFT_BASE_URL")]
    pub base_url: String,
    /// Tenant id, sent as X-UiPath-Internal-TenantId.
    #[arg(long, env = "UPLIFT_TENANT")]
    pub tenant: String,
    /// A bearer token (better passed as UPLIFT_TOKEN than on the command line).
    #[arg(long, env = "UPLIFT_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Seconds to wait for each call and, with --watch, for the rollout to end.
    #[arg(long, default_value_t = 3600)]
    pub timeout: u64,
}

impl TenantRemote {
    fn remote(&self) -> Remote {
        Remote {
            base_url: self.base_url.clone(),
            tenant: self.tenant.clone(),
            // Rollouts act at tenant scope: no folder header is sent.
            folder: String::new(),
            token: Some(self.token.clone()),
            client_id: None,
            client_secret: None,
            token_url: None,
            timeout: self.timeout,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Create a rollout from a plan file (JSON, or YAML for .yaml/.yml); prints it.
    Create {
        #[command(flatten)]
        remote: TenantRemote,
        /// The plan: the body of POST /rollouts.
        #[arg(long)]
        file: PathBuf,
    },
    /// Print one page of the tenant's rollouts as JSON.
    List {
        #[command(flatten)]
        remote: TenantRemote,
    },
    /// Print a rollout as JSON; with --watch, follow it to its end.
    Status {
        #[command(flatten)]
        remote: TenantRemote,
        id: String,
        /// Follow it (each wave's progress on stderr) until it succeeds, aborts, rolls
        /// back or fails; Ctrl-C stops following, not the rollout.
        #[arg(long)]
        watch: bool,
        /// Seconds between two looks.
        #[arg(long, default_value_t = 2)]
        every: u64,
    },
    /// Approve the next wave (a manual gate).
    Approve(ActionArgs),
    /// Pause: no new item starts (items in flight finish).
    Pause(ActionArgs),
    /// Resume a paused rollout.
    Resume(ActionArgs),
    /// Abort: stop, leaving every deployment where it is.
    Abort(ActionArgs),
    /// Retry the current wave's failed deployments and continue.
    Retry(ActionArgs),
    /// Roll back every deployment the rollout upgraded.
    Rollback(ActionArgs),
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    #[command(flatten)]
    remote: TenantRemote,
    id: String,
    /// Why, recorded in the timeline.
    #[arg(long)]
    comment: Option<String>,
}

pub async fn main(command: RolloutCommand) -> ExitCode {
    ExitCode::from(run(&command, &mut std::io::stdout(), &mut std::io::stderr()).await)
}

pub async fn run(command: &RolloutCommand, stdout: &mut impl Write, stderr: &mut impl Write) -> u8 {
    match try_run(command, stdout, stderr).await {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            EXIT_ERROR
        }
    }
}

async fn try_run(
    command: &RolloutCommand,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> anyhow::Result<u8> {
    let (remote, action) = match command {
        RolloutCommand::Create { remote, .. }
        | RolloutCommand::List { remote }
        | RolloutCommand::Status { remote, .. } => (remote, None),
        RolloutCommand::Approve(a) => (&a.remote, Some(("approve", a))),
        RolloutCommand::Pause(a) => (&a.remote, Some(("pause", a))),
        RolloutCommand::Resume(a) => (&a.remote, Some(("resume", a))),
        RolloutCommand::Abort(a) => (&a.remote, Some(("abort", a))),
        RolloutCommand::Retry(a) => (&a.remote, Some(("retry", a))),
        RolloutCommand::Rollback(a) => (&a.remote, Some(("rollback", a))),
    };
    let session = Session::open(&remote.remote()).await?;
    let body = if let Some((name, args)) = action {
        let url = rollout_url(&session, &args.id, Some(name))?;
        let body = serde_json::json!({ "comment": args.comment });
        call(&session, Method::POST, url, Some(body)).await?
    } else {
        match command {
            RolloutCommand::Create { file, .. } => {
                let plan = read_plan(file)?;
                call(&session, Method::POST, session.url("rollouts"), Some(plan)).await?
            }
            RolloutCommand::List { .. } => {
                call(&session, Method::GET, session.url("rollouts"), None).await?
            }
            RolloutCommand::Status {
                id, watch, every, ..
            } => {
                let url = rollout_url(&session, id, None)?;
                if *watch {
                    return watch_rollout(&session, url, remote, *every, stdout, stderr).await;
                }
                call(&session, Method::GET, url, None).await?
            }
            _ => unreachable!("actions are handled above"),
        }
    };
    writeln!(stdout, "{}", serde_json::to_string_pretty(&body)?)?;
    Ok(EXIT_OK)
}

fn rollout_url(session: &Session, id: &str, action: Option<&str>) -> anyhow::Result<Url> {
    let mut url = session.url("rollouts");
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|_| anyhow::anyhow!("the base URL cannot take a path"))?;
        segments.push(id);
        if let Some(action) = action {
            segments.push(action);
        }
    }
    Ok(url)
}

async fn call(
    session: &Session,
    method: Method,
    url: Url,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = session.request(method, url.clone());
    if let Some(body) = body {
        request = request.json(&body);
    }
    session.send(request, &url).await?.success()?.json()
}

/// Reads a plan: YAML for `.yaml`/`.yml`, JSON otherwise.
pub fn read_plan(file: &PathBuf) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let yaml = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    if yaml {
        serde_yaml::from_str(&text).with_context(|| format!("{} is not valid YAML", file.display()))
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", file.display()))
    }
}

/// One line per wave: its name, state, and counters.
pub fn progress(rollout: &Value) -> Vec<String> {
    let mut lines = vec![format!(
        "rollout {} {}{}",
        rollout["name"].as_str().unwrap_or(""),
        rollout["status"].as_str().unwrap_or("?"),
        rollout["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    )];
    for wave in rollout["waves"].as_array().into_iter().flatten() {
        let c = &wave["counters"];
        let done = |k: &str| c[k].as_u64().unwrap_or(0);
        lines.push(format!(
            "  wave {} {:<12} {:<10} {}/{} updated, {} unchanged, {} failed",
            wave["index"],
            wave["name"].as_str().unwrap_or(""),
            wave["status"].as_str().unwrap_or(""),
            done("updated"),
            wave["total"],
            done("unchanged"),
            done("failed"),
        ));
    }
    lines
}

async fn watch_rollout(
    session: &Session,
    url: Url,
    remote: &TenantRemote,
    every: u64,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> anyhow::Result<u8> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(remote.timeout);
    let mut last = Vec::new();
    loop {
        let rollout = call(session, Method::GET, url.clone(), None).await?;
        let lines = progress(&rollout);
        if lines != last {
            for line in &lines {
                writeln!(stderr, "{line}")?;
            }
            last = lines;
        }
        let status = rollout["status"].as_str().unwrap_or("");
        if matches!(status, "Succeeded" | "Aborted" | "RolledBack" | "Failed") {
            writeln!(stdout, "{}", serde_json::to_string_pretty(&rollout)?)?;
            return Ok(if status == "Succeeded" {
                EXIT_OK
            } else {
                EXIT_ITEMS_FAILED
            });
        }
        if tokio::time::Instant::now() >= deadline {
            writeln!(
                stderr,
                "error: the rollout is still {status} after {} s",
                remote.timeout
            )?;
            return Ok(EXIT_ERROR);
        }
        tokio::time::sleep(Duration::from_secs(every.max(1))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_plan_reads_as_the_same_body_as_its_json_form() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("plan.yaml");
        std::fs::write(
            &yaml,
            "name: portal\nwaves:\n  - folders: [{key: abc}]\n  - size: 25%\n  - gate: manual\n",
        )
        .unwrap();
        let json = dir.path().join("plan.json");
        std::fs::write(
            &json,
            r#"{"name":"portal","waves":[{"folders":[{"key":"abc"}]},{"size":"25%"},{"gate":"manual"}]}"#,
        )
        .unwrap();
        assert_eq!(read_plan(&yaml).unwrap(), read_plan(&json).unwrap());
        std::fs::write(&json, "{not json").unwrap();
        assert!(
            read_plan(&json)
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn progress_shows_one_line_per_wave_with_its_counters() {
        let rollout = serde_json::json!({
            "name": "portal", "status": "Running",
            "waves": [
                {"index": 0, "name": "canary", "status": "Succeeded", "total": 2,
                 "counters": {"updated": 2, "unchanged": 0, "failed": 0}},
                {"index": 1, "name": "rest", "status": "Pending", "total": 8, "counters": null},
            ],
        });
        let lines = progress(&rollout);
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("canary") && lines[1].contains("2/2 updated"));
        assert!(lines[2].contains("0/8 updated"));
    }
}
