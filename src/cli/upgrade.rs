//! `uplift upgrade`: the bulk upgrade as a CI step. It calls a running uplift (or UiPath)
//! over HTTP, prints the JSON answer on stdout, and says with its exit code whether
//! everything was upgraded (0), some items failed (2), or the call itself failed (1).
//!
//! It is a plain HTTP client: it reads no configuration and opens no database, so it
//! runs on a CI runner that has nothing but the binary.

use std::{
    fmt::Write as _,
    io::{BufRead, IsTerminal, Write},
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use uplift::api_paths::{BULK_UPGRADE_PATH, FOLDER_KEY_HEADER, TENANT_HEADER, TOKEN_PATH};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("credentials").required(true).args(["token", "client_id"])))]
pub struct UpgradeArgs {
    /// The UiPath base URL, e.g. http://127.0.0.1:8080/local/apps_/default/api/v1/default.
    #[arg(long, env = "UPLIFT_BASE_URL")]
    pub base_url: String,
    /// Tenant id, sent as X-UiPath-Internal-TenantId.
    #[arg(long, env = "UPLIFT_TENANT")]
    pub tenant: String,
    /// Folder key, sent as X-UiPath-FolderKey.
    #[arg(long, env = "UPLIFT_FOLDER")]
    pub folder: String,
    /// A bearer token (better passed as UPLIFT_TOKEN than on the command line).
    #[arg(long, env = "UPLIFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A registered client's id; a token is requested with it and --client-secret.
    #[arg(long, env = "UPLIFT_CLIENT_ID", requires = "client_secret")]
    pub client_id: Option<String>,
    /// The client's secret (better passed as UPLIFT_CLIENT_SECRET).
    #[arg(
        long,
        env = "UPLIFT_CLIENT_SECRET",
        hide_env_values = true,
        requires = "client_id"
    )]
    pub client_secret: Option<String>,
    /// Token endpoint; default: /identity_/connect/token on the base URL's host.
    #[arg(long, env = "UPLIFT_TOKEN_URL")]
    pub token_url: Option<String>,
    /// Ask what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop starting new items once this many have failed (the rest are `skipped`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_failures: Option<u64>,
    /// Sent as Idempotency-Key, so a retried step does the work once.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Seconds to wait for the whole call.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Deployment ids; when none are given, one per line on standard input.
    pub ids: Vec<String>,
}

/// `uplift upgrade`: needs no configuration or database, only the network. Returns
/// the process exit code (0 all upgraded, 2 some items failed, 1 any other error).
pub async fn main(args: UpgradeArgs) -> ExitCode {
    let mut stderr = std::io::stderr();
    let ids = if !args.ids.is_empty() {
        args.ids
    } else if std::io::stdin().is_terminal() {
        // Waiting on a terminal for ids nobody is going to type would look like a hang.
        eprintln!(
            "error: no deployment ids: pass them as arguments or one per line on standard input"
        );
        return ExitCode::from(EXIT_ERROR);
    } else {
        match read_ids(std::io::stdin().lock()) {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("error: reading deployment ids from standard input: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        }
    };
    let credentials = match (args.token, args.client_id, args.client_secret) {
        (_, Some(id), Some(secret)) => Credentials::Client { id, secret },
        (Some(token), _, _) => Credentials::Token(token),
        // clap's argument group and `requires` rule the other combinations out.
        _ => {
            eprintln!("error: pass --token, or --client-id with --client-secret");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let job = Upgrade {
        base_url: args.base_url,
        tenant: args.tenant,
        folder: args.folder,
        credentials,
        token_url: args.token_url,
        dry_run: args.dry_run,
        max_failures: args.max_failures.map(|n| n as usize),
        idempotency_key: args.idempotency_key,
        ids,
        timeout: Duration::from_secs(args.timeout),
    };
    let code = run(&job, &mut std::io::stdout(), &mut stderr).await;
    ExitCode::from(code)
}

/// Exit code when every deployment was upgraded (or already on the latest version).
pub const EXIT_ALL_UPDATED: u8 = 0;
/// Exit code for anything that kept the call from being answered.
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the call was answered but some items failed.
pub const EXIT_ITEMS_FAILED: u8 = 2;

/// How the pipeline proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A bearer token obtained elsewhere.
    Token(String),
    /// A registered client, exchanged for a token at the token endpoint first.
    Client { id: String, secret: String },
}

#[derive(Debug, Clone)]
pub struct Upgrade {
    /// The UiPath base URL, e.g. `http://host:8080/org/apps_/default/api/v1/default`.
    pub base_url: String,
    pub tenant: String,
    pub folder: String,
    pub credentials: Credentials,
    /// Default: `/identity_/connect/token` on the base URL's host.
    pub token_url: Option<String>,
    pub dry_run: bool,
    pub max_failures: Option<usize>,
    pub idempotency_key: Option<String>,
    pub ids: Vec<String>,
    pub timeout: Duration,
}

/// The answered call: its body as received, and how many items failed.
#[derive(Debug)]
pub struct Answer {
    pub body: String,
    pub updated: usize,
    pub failed: usize,
}

impl Answer {
    pub fn exit_code(&self) -> u8 {
        if self.failed == 0 {
            EXIT_ALL_UPDATED
        } else {
            EXIT_ITEMS_FAILED
        }
    }
}

/// Runs the call and reports: the answer on `stdout`, a summary or the error on
/// `stderr`. Returns the exit code.
pub async fn run(upgrade: &Upgrade, stdout: &mut impl Write, stderr: &mut impl Write) -> u8 {
    match call(upgrade).await {
        Ok(answer) => {
            let _ = writeln!(stdout, "{}", answer.body.trim_end());
            let _ = stdout.flush();
            let _ = writeln!(
                stderr,
                "uplift upgrade: {} updated, {} failed{}",
                answer.updated,
                answer.failed,
                if upgrade.dry_run { " (dry run)" } else { "" }
            );
            answer.exit_code()
        }
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            EXIT_ERROR
        }
    }
}

/// Gets a token when needed, then makes the bulk call.
pub async fn call(upgrade: &Upgrade) -> anyhow::Result<Answer> {
    if upgrade.ids.is_empty() {
        bail!("no deployment ids: pass them as arguments or one per line on standard input");
    }
    let base = parse_base_url(&upgrade.base_url)?;
    let client = reqwest::Client::builder()
        .timeout(upgrade.timeout)
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("building the HTTP client")?;
    let token = match &upgrade.credentials {
        Credentials::Token(token) => token.trim().to_string(),
        Credentials::Client { id, secret } => {
            let url = match &upgrade.token_url {
                Some(url) => Url::parse(url).with_context(|| format!("--token-url {url:?}"))?,
                None => token_url(&base)?,
            };
            fetch_token(&client, &url, id, secret).await?
        }
    };

    let mut url = endpoint(&base, BULK_UPGRADE_PATH);
    {
        let mut query = url.query_pairs_mut();
        if upgrade.dry_run {
            query.append_pair("dryRun", "true");
        }
        if let Some(n) = upgrade.max_failures {
            query.append_pair("maxFailures", &n.to_string());
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let mut request = client
        .post(url.clone())
        .bearer_auth(&token)
        .header(TENANT_HEADER, &upgrade.tenant)
        .header(FOLDER_KEY_HEADER, &upgrade.folder)
        .json(&serde_json::json!({ "deploymentIds": upgrade.ids }));
    if let Some(key) = &upgrade.idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let body = send(request, &url)
        .await?
        .map_err(|failure| anyhow::anyhow!(failure))?;
    parse_answer(body)
}

/// Sends a request and reads the whole answer: `Ok(body)` for a 2xx, `Err(description)`
/// for an error answer; the outer error is for a call that got no answer at all.
async fn send(
    request: reqwest::RequestBuilder,
    url: &Url,
) -> anyhow::Result<Result<String, String>> {
    let response = request
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    Ok(if status.is_success() {
        Ok(body)
    } else {
        Err(describe_failure(status, &body))
    })
}

/// `{scheme}://{host}[:port]/identity_/connect/token` for a base URL.
pub fn token_url(base: &Url) -> anyhow::Result<Url> {
    base.join(TOKEN_PATH)
        .with_context(|| format!("deriving the token URL from {base}"))
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

fn parse_base_url(raw: &str) -> anyhow::Result<Url> {
    let url = Url::parse(raw.trim()).with_context(|| format!("--base-url {raw:?} is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        bail!("--base-url {raw:?} must be an http:// or https:// URL with a host");
    }
    Ok(url)
}

/// `base` + `/` + `path`, whether or not the base ends with a slash.
fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url
}

async fn fetch_token(
    client: &reqwest::Client,
    url: &Url,
    id: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let request = client.post(url.clone()).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ]);
    let body = send(request, url)
        .await?
        .map_err(|failure| anyhow::anyhow!("token request failed: {failure}"))?;
    let answer: Value = serde_json::from_str(&body)
        .with_context(|| format!("the token endpoint {url} answered something that is not JSON"))?;
    answer["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .with_context(|| format!("the token endpoint {url} answered without an access_token"))
}

/// An error answer in one line: problem+json (`detail`, `traceId`), OAuth (`error`,
/// `error_description`), or the start of whatever else came back.
pub fn describe_failure(status: StatusCode, body: &str) -> String {
    let mut text = format!("HTTP {status}");
    match serde_json::from_str::<Value>(body) {
        Ok(json) if json.get("detail").is_some() || json.get("error").is_some() => {
            if let Some(error) = json["error"].as_str() {
                let _ = write!(text, ": {error}");
                if let Some(description) = json["error_description"].as_str() {
                    let _ = write!(text, ": {description}");
                }
            } else if let Some(detail) = json["detail"].as_str() {
                let _ = write!(text, ": {detail}");
            }
            if let Some(trace) = json["traceId"].as_str() {
                let _ = write!(text, " (traceId {trace})");
            }
        }
        _ => {
            let snippet: String = body.trim().chars().take(300).collect();
            if !snippet.is_empty() {
                let _ = write!(text, ": {snippet}");
            }
        }
    }
    text
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
    fn the_token_url_is_on_the_base_urls_host() {
        let base = Url::parse("http://127.0.0.1:8080/local/apps_/default/api/v1/default").unwrap();
        assert_eq!(
            token_url(&base).unwrap().as_str(),
            "http://127.0.0.1:8080/identity_/connect/token"
        );
    }

    #[test]
    fn endpoints_join_with_or_without_a_trailing_slash() {
        for base in [
            "https://h/org/apps_/default/api/v1/default",
            "https://h/org/apps_/default/api/v1/default/",
        ] {
            let url = endpoint(&Url::parse(base).unwrap(), "models/x");
            assert_eq!(
                url.as_str(),
                "https://h/org/apps_/default/api/v1/default/models/x"
            );
        }
    }

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
        assert_eq!(answer.exit_code(), EXIT_ALL_UPDATED);
        let answer =
            parse_answer(r#"{"updatedDeployments":[],"failedItems":["b"]}"#.into()).unwrap();
        assert_eq!(answer.exit_code(), EXIT_ITEMS_FAILED);
        assert!(parse_answer(r#"{"value":[]}"#.into()).is_err());
        assert!(parse_answer("<html>".into()).is_err());
    }

    #[test]
    fn failures_are_described_from_problem_oauth_or_plain_bodies() {
        let problem = r#"{"status":403,"detail":"no Apps.Edit here","traceId":"t-1"}"#;
        assert_eq!(
            describe_failure(StatusCode::FORBIDDEN, problem),
            "HTTP 403 Forbidden: no Apps.Edit here (traceId t-1)"
        );
        let oauth =
            r#"{"error":"invalid_client","error_description":"client authentication failed"}"#;
        assert_eq!(
            describe_failure(StatusCode::UNAUTHORIZED, oauth),
            "HTTP 401 Unauthorized: invalid_client: client authentication failed"
        );
        assert_eq!(
            describe_failure(StatusCode::BAD_GATEWAY, "upstream down\n"),
            "HTTP 502 Bad Gateway: upstream down"
        );
    }

    #[test]
    fn a_base_url_must_be_http_with_a_host() {
        assert!(parse_base_url("ftp://h/x").is_err());
        assert!(parse_base_url("not a url").is_err());
        assert!(parse_base_url("https://h/x").is_ok());
    }
}
