//! `uplift upgrade`: the bulk upgrade as a CI step. It calls a running uplift (or UiPath)
//! over HTTP, prints the JSON answer on stdout, and says with its exit code whether
//! everything was upgraded (0), some items failed (2), or the call itself failed (1).
//! With `--async` it creates a durable operation instead (over ids or a selector) and,
//! with `--wait`, follows it to the end (`follow.rs`) with the same exit codes.
//!
//! It is a plain HTTP client: it reads no configuration and opens no database, so it
//! runs on a CI runner that has nothing but the binary.

use std::{
    io::{BufRead, IsTerminal, Write},
    process::ExitCode,
};

use anyhow::Context;
use clap::{ArgGroup, Args};
use reqwest::Method;
use serde_json::{Value, json};

use uplift::api_paths::BULK_UPGRADE_PATH;

use super::{
    follow::{self, Watch},
    remote::{EXIT_ERROR, EXIT_ITEMS_FAILED, EXIT_OK, Remote, Session},
};

#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("selector")
        .multiple(true)
        .args(["all", "apps", "tags", "search"])
        .conflicts_with("ids")
        .requires("asynchronous")
))]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub remote: Remote,
    /// Ask what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop starting new items once this many have failed (the rest are `skipped`).
    /// With --async also a percentage of the items, rounded up: `5%`.
    #[arg(long, value_name = "N|P%", value_parser = parse_max_failures)]
    pub max_failures: Option<MaxFailures>,
    /// Sent as Idempotency-Key, so a retried step does the work once (with --async: the
    /// same operation is answered again).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Create a durable operation (`POST …/operations/upgrades`, no 1,000-id cap)
    /// instead of one synchronous bulk call; prints its monitor and exits 0 unless
    /// --wait.
    #[arg(long = "async")]
    pub asynchronous: bool,
    /// With --async: follow the operation to its end (progress on stderr; the timeout
    /// bounds the wait), print its final answer and exit 0, 2 or 1 as the operation
    /// ended. Ctrl-C stops following, not the operation.
    #[arg(long, requires = "asynchronous")]
    pub wait: bool,
    /// With --async: items upgraded at once (default: the server's setting).
    #[arg(long, requires = "asynchronous", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrency: Option<u64>,
    /// With --async: upgrade to this published version of each app instead of the
    /// latest.
    #[arg(long, value_name = "VERSION", requires = "asynchronous", value_parser = clap::value_parser!(u32).range(1..))]
    pub target_version: Option<u32>,
    /// With --async: every deployment of the folder (outdated ones, unless
    /// --include-up-to-date) instead of listed ids.
    #[arg(long, conflicts_with_all = ["apps", "tags", "search"])]
    pub all: bool,
    /// With --async: the folder's deployments of this app (system name); repeat for any
    /// of several apps.
    #[arg(long = "app", value_name = "NAME")]
    pub apps: Vec<String>,
    /// With --async: only deployments with this tag; repeat to require every one.
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// With --async: only deployments whose title, routing name or app system name
    /// contains TEXT (case-insensitive).
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// With a selector (--all, --app, --tag, --search): also the folders below this one.
    #[arg(long, requires = "selector")]
    pub include_subfolders: bool,
    /// With a selector: also deployments already on the target version (they count as
    /// unchanged); by default only outdated ones are selected.
    #[arg(long, requires = "selector")]
    pub include_up_to_date: bool,
    /// Deployment ids; when none are given (and no selector), one per line on standard
    /// input.
    pub ids: Vec<String>,
}

/// `--max-failures`: a count, or (operations only) a percentage of the items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxFailures {
    Count(u64),
    Percent(u8),
}

fn parse_max_failures(raw: &str) -> Result<MaxFailures, String> {
    let raw = raw.trim();
    if let Some(percent) = raw.strip_suffix('%') {
        return match percent.trim().parse::<u8>() {
            Ok(p @ 1..=100) => Ok(MaxFailures::Percent(p)),
            _ => Err(format!("{raw:?}: a percentage from 1% to 100%")),
        };
    }
    match raw.parse::<u64>() {
        Ok(n @ 1..) => Ok(MaxFailures::Count(n)),
        _ => Err(format!(
            "{raw:?}: a whole number of at least 1, or a percentage such as 5%"
        )),
    }
}

impl MaxFailures {
    fn as_json(self) -> Value {
        match self {
            MaxFailures::Count(n) => json!(n),
            MaxFailures::Percent(p) => json!(format!("{p}%")),
        }
    }
}

/// The deployments to upgrade.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    Ids(Vec<String>),
    /// `POST …/operations/upgrades`'s `selector`, as JSON.
    Selector(Value),
}

impl UpgradeArgs {
    /// The selector the flags describe, if any flag describes one.
    fn selector(&self) -> Option<Value> {
        if !self.all && self.apps.is_empty() && self.tags.is_empty() && self.search.is_none() {
            return None;
        }
        let mut selector = json!({
            "includeSubfolders": self.include_subfolders,
            "onlyOutdated": !self.include_up_to_date,
        });
        if !self.apps.is_empty() {
            selector["appSystemNames"] = json!(self.apps);
        }
        if !self.tags.is_empty() {
            selector["tags"] = json!(self.tags);
        }
        if let Some(text) = &self.search {
            selector["searchText"] = json!(text);
        }
        Some(selector)
    }

    /// The create call's body for `selection`.
    fn operation_body(&self, selection: Selection) -> Value {
        let mut body = match selection {
            Selection::Ids(ids) => json!({ "deploymentIds": ids }),
            Selection::Selector(selector) => json!({ "selector": selector }),
        };
        body["dryRun"] = json!(self.dry_run);
        if let Some(budget) = self.max_failures {
            body["maxFailures"] = budget.as_json();
        }
        if let Some(n) = self.max_concurrency {
            body["maxConcurrency"] = json!(n);
        }
        if let Some(version) = self.target_version {
            body["target"] = json!({ "version": version });
        }
        body
    }
}

/// `uplift upgrade`: needs no configuration or database, only the network. Returns
/// the process exit code (0 all upgraded, 2 some items failed, 1 any other error).
pub async fn main(args: UpgradeArgs) -> ExitCode {
    let selection = match args.selector() {
        Some(selector) => Selection::Selector(selector),
        None if !args.ids.is_empty() => Selection::Ids(args.ids.clone()),
        None if std::io::stdin().is_terminal() => {
            // Waiting on a terminal for ids nobody is going to type would look like a hang.
            eprintln!(
                "error: no deployment ids: pass them as arguments or one per line on standard input{}",
                if args.asynchronous {
                    ", or select deployments with --all, --app, --tag or --search"
                } else {
                    ""
                }
            );
            return ExitCode::from(EXIT_ERROR);
        }
        None => match read_ids(std::io::stdin().lock()) {
            Ok(ids) => Selection::Ids(ids),
            Err(e) => {
                eprintln!("error: reading deployment ids from standard input: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
    };
    let code = run(
        &args,
        selection,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await;
    ExitCode::from(code)
}

/// The answered synchronous call: its body as received, and how many items failed.
#[derive(Debug)]
pub struct Answer {
    pub body: String,
    pub updated: usize,
    pub failed: usize,
}

impl Answer {
    pub fn exit_code(&self) -> u8 {
        if self.failed == 0 {
            EXIT_OK
        } else {
            EXIT_ITEMS_FAILED
        }
    }
}

/// Runs the upgrade and reports: the answer (or, for an operation not waited for, its
/// monitor) on `stdout`, a summary or the error on `stderr`. Returns the exit code.
pub async fn run(
    args: &UpgradeArgs,
    selection: Selection,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> u8 {
    if let Selection::Ids(ids) = &selection
        && ids.is_empty()
    {
        let _ = writeln!(
            stderr,
            "error: no deployment ids: pass them as arguments or one per line on standard input"
        );
        return EXIT_ERROR;
    }
    if !args.asynchronous && matches!(args.max_failures, Some(MaxFailures::Percent(_))) {
        let _ = writeln!(
            stderr,
            "error: --max-failures as a percentage needs --async (the synchronous call takes a count)"
        );
        return EXIT_ERROR;
    }
    let session = match Session::open(&args.remote).await {
        Ok(session) => session,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            return EXIT_ERROR;
        }
    };
    if !args.asynchronous {
        let Selection::Ids(ids) = selection else {
            unreachable!("clap requires --async with a selector")
        };
        return match call(&session, args, &ids).await {
            Ok(answer) => {
                let _ = writeln!(stdout, "{}", answer.body.trim_end());
                let _ = stdout.flush();
                let _ = writeln!(
                    stderr,
                    "uplift upgrade: {} updated, {} failed{}",
                    answer.updated,
                    answer.failed,
                    if args.dry_run { " (dry run)" } else { "" }
                );
                answer.exit_code()
            }
            Err(e) => {
                let _ = writeln!(stderr, "error: {e:#}");
                EXIT_ERROR
            }
        };
    }
    let watch = match create(&session, args, selection).await {
        Ok(watch) => watch,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            return EXIT_ERROR;
        }
    };
    if args.wait {
        return follow::wait_and_report(
            &session,
            watch,
            args.remote.timeout(),
            "uplift upgrade",
            stdout,
            stderr,
        )
        .await;
    }
    let _ = writeln!(stdout, "{}", watch.monitor);
    let _ = stdout.flush();
    let _ = writeln!(
        stderr,
        "uplift upgrade: operation {id} created over {total} deployment(s){dry}; follow it with `uplift operations show {id} --wait`",
        id = watch.id,
        total = watch.monitor["counters"]["total"],
        dry = if args.dry_run { " (dry run)" } else { "" },
    );
    EXIT_OK
}

/// The synchronous bulk call.
async fn call(session: &Session, args: &UpgradeArgs, ids: &[String]) -> anyhow::Result<Answer> {
    let mut url = session.url(BULK_UPGRADE_PATH);
    {
        let mut query = url.query_pairs_mut();
        if args.dry_run {
            query.append_pair("dryRun", "true");
        }
        if let Some(MaxFailures::Count(n)) = args.max_failures {
            query.append_pair("maxFailures", &n.to_string());
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let mut request = session
        .request(Method::POST, url.clone())
        .json(&json!({ "deploymentIds": ids }));
    if let Some(key) = &args.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let reply = session.send(request, &url).await?.success()?;
    parse_answer(reply.body)
}

/// Creates the operation; its first monitor.
async fn create(
    session: &Session,
    args: &UpgradeArgs,
    selection: Selection,
) -> anyhow::Result<Watch> {
    let url = session.url("operations/upgrades");
    let mut request = session
        .request(Method::POST, url.clone())
        .json(&args.operation_body(selection));
    if let Some(key) = &args.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let reply = session.send(request, &url).await?.success()?;
    Watch::from_reply(session, &reply)
}

/// Reads deployment ids, one per line; blank lines and surrounding spaces are ignored.
pub fn read_ids(reader: impl BufRead) -> std::io::Result<Vec<String>> {
    let mut ids = Vec::new();
    for line in reader.lines() {
        let line = line?;
        let id = line.trim();
        if !id.is_empty() {
            ids.push(id.to_string());
        }
    }
    Ok(ids)
}

fn parse_answer(body: String) -> anyhow::Result<Answer> {
    let json: Value =
        serde_json::from_str(&body).context("the bulk call answered something that is not JSON")?;
    let count = |field: &str| -> anyhow::Result<usize> {
        json[field]
            .as_array()
            .map(Vec::len)
            .with_context(|| format!("the bulk call's answer has no {field} list"))
    };
    let updated = count("updatedDeployments")?;
    let failed = count("failedItems")?;
    Ok(Answer {
        body,
        updated,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_one_per_line_skipping_blank_lines() {
        let input = "a\n\n  b  \r\n\t\nc";
        assert_eq!(read_ids(input.as_bytes()).unwrap(), ["a", "b", "c"]);
    }

    #[test]
    fn the_exit_code_says_whether_any_item_failed() {
        let answer = parse_answer(
            r#"{"updatedDeployments":[{"id":"a"}],"failedItems":[],"failures":[]}"#.into(),
        )
        .unwrap();
        assert_eq!(answer.exit_code(), EXIT_OK);
        let answer =
            parse_answer(r#"{"updatedDeployments":[],"failedItems":["b"]}"#.into()).unwrap();
        assert_eq!(answer.exit_code(), EXIT_ITEMS_FAILED);
        assert!(parse_answer(r#"{"value":[]}"#.into()).is_err());
        assert!(parse_answer("<html>".into()).is_err());
    }

    #[test]
    fn max_failures_is_a_count_or_a_percentage() {
        assert_eq!(parse_max_failures("3"), Ok(MaxFailures::Count(3)));
        assert_eq!(parse_max_failures("5%"), Ok(MaxFailures::Percent(5)));
        assert_eq!(MaxFailures::Percent(5).as_json(), json!("5%"));
        for bad in ["0", "0%", "101%", "-1", "x", "%"] {
            assert!(parse_max_failures(bad).is_err(), "{bad}");
        }
    }
}
