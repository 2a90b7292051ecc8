//! What the client commands (`uplift upgrade`, `uplift operations`) share: the options
//! that say which server, tenant and folder to call and with what credentials, a
//! session that gets the token once and sends every call with it, and the wording of
//! error answers. No configuration and no database: only the network.

use std::{fmt::Write as _, time::Duration};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args};
use reqwest::{Method, RequestBuilder, StatusCode, Url, header::HeaderMap};
use serde_json::Value;

use uplift::api_paths::{FOLDER_KEY_HEADER, TENANT_HEADER, TOKEN_PATH};

/// Exit code when every item succeeded (or, for a command about no items, it worked).
pub const EXIT_OK: u8 = 0;
/// Exit code for anything that kept a call from being answered as asked.
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the work was done and answered, but some items failed (or were
/// skipped or canceled).
pub const EXIT_ITEMS_FAILED: u8 = 2;

/// Where to call and as whom.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("credentials").required(true).args(["token", "client_id"])))]
pub struct Remote {
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
    /// Seconds to wait for each call and, with --wait, for the operation to finish.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// How the caller proves who it is.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A bearer token obtained elsewhere.
    Token(String),
    /// A registered client, exchanged for a token at the token endpoint first.
    Client { id: String, secret: String },
}

impl Remote {
    pub fn credentials(&self) -> anyhow::Result<Credentials> {
        match (&self.token, &self.client_id, &self.client_secret) {
            (_, Some(id), Some(secret)) => Ok(Credentials::Client {
                id: id.clone(),
                secret: secret.clone(),
            }),
            (Some(token), _, _) => Ok(Credentials::Token(token.clone())),
            // clap's argument group and `requires` rule the other combinations out.
            _ => bail!("pass --token, or --client-id with --client-secret"),
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

/// A server, tenant and folder to call, with a token in hand.
pub struct Session {
    client: reqwest::Client,
    base: Url,
    token: std::sync::Mutex<String>,
    /// Where and as whom to get a new token, with client credentials.
    refresh: Option<(Url, String, String)>,
    tenant: String,
    folder: String,
}

/// A call's answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The body of a 2xx answer; any other is an error describing it.
    pub fn success(self) -> anyhow::Result<Self> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(anyhow::anyhow!(describe_failure(self.status, &self.body)))
        }
    }

    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).context("the server answered something that is not JSON")
    }

    /// `Retry-After` in seconds, when given as a number.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

impl Session {
    /// Checks the base URL and gets a token (with client credentials, from the token
    /// endpoint).
    pub async fn open(remote: &Remote) -> anyhow::Result<Session> {
        let credentials = remote.credentials()?;
        let base = parse_base_url(&remote.base_url)?;
        let client = reqwest::Client::builder()
            .timeout(remote.timeout())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let (token, refresh) = match credentials {
            Credentials::Token(token) => (token.trim().to_string(), None),
            Credentials::Client { id, secret } => {
                let url = match &remote.token_url {
                    Some(url) => Url::parse(url).with_context(|| format!("--token-url {url:?}"))?,
                    None => token_url(&base)?,
                };
                let token = fetch_token(&client, &url, &id, &secret).await?;
                (token, Some((url, id, secret)))
            }
        };
        Ok(Session {
            client,
            base,
            token: std::sync::Mutex::new(token),
            refresh,
            tenant: remote.tenant.clone(),
            folder: remote.folder.clone(),
        })
    }

    /// Gets a new token with the client credentials (a long wait outlives a token);
    /// false when the session was given a token and cannot get another.
    pub async fn refresh_token(&self) -> anyhow::Result<bool> {
        let Some((url, id, secret)) = &self.refresh else {
            return Ok(false);
        };
        let token = fetch_token(&self.client, url, id, secret).await?;
        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = token;
        Ok(true)
    }

    /// `path` under the base URL.
    pub fn url(&self, path: &str) -> Url {
        endpoint(&self.base, path)
    }

    /// An absolute URL the server handed out (`Operation-Location`), when it is on the
    /// base URL's origin: the token is never sent anywhere else.
    pub fn same_origin(&self, raw: &str) -> Option<Url> {
        let url = Url::parse(raw).ok()?;
        (url.origin() == self.base.origin()).then_some(url)
    }

    /// A request to `url` with the token, tenant and folder.
    pub fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let request = self
            .client
            .request(method, url)
            .bearer_auth(token)
            .header(TENANT_HEADER, &self.tenant);
        // No folder for tenant-scope calls (rollouts).
        if self.folder.is_empty() {
            request
        } else {
            request.header(FOLDER_KEY_HEADER, &self.folder)
        }
    }

    /// Sends `request` (built for `url`) and reads the whole answer; the error is for a
    /// call that got no answer at all.
    pub async fn send(&self, request: RequestBuilder, url: &Url) -> anyhow::Result<Reply> {
        send(request, url).await
    }

    /// `GET url`, a 2xx answer's JSON body.
    pub async fn get_json(&self, url: Url) -> anyhow::Result<Value> {
        self.send(self.request(Method::GET, url.clone()), &url)
            .await?
            .success()?
            .json()
    }
}

async fn send(request: RequestBuilder, url: &Url) -> anyhow::Result<Reply> {
    let response = request
        .send()
        .await
        .with_context(|| format!("calling {url}"))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// `{scheme}://{host}[:port]/identity_/connect/token` for a base URL.
pub fn token_url(base: &Url) -> anyhow::Result<Url> {
    base.join(TOKEN_PATH)
        .with_context(|| format!("deriving the token URL from {base}"))
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
    let reply = send(request, url).await?;
    if !reply.status.is_success() {
        bail!(
            "token request failed: {}",
            describe_failure(reply.status, &reply.body)
        );
    }
    let answer: Value = serde_json::from_str(&reply.body)
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
