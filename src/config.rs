//! One `Settings` struct, read from defaults, then an optional `uplift.toml`, then
//! `UPLIFT_*` environment variables (each layer overriding the one before).

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Address the HTTP server binds to.
    #[serde(deserialize_with = "lenient::string")]
    pub listen: String,
    /// Database URL; `None` means an SQLite file under `data_dir`.
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub database_url: Option<Secret>,
    /// Where the default SQLite database and the generated signing secret live.
    pub data_dir: PathBuf,
    /// The `{organization}` segment of UiPath-style URLs.
    #[serde(deserialize_with = "lenient::string")]
    pub organization: String,
    /// HS256 secret shared with the token issuer.
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub jwt_secret: Option<Secret>,
    /// RS256/ES256 public key (PEM text or a path to a PEM file) that verifies tokens.
    #[serde(deserialize_with = "lenient::opt_string")]
    pub jwt_public_key: Option<String>,
    /// Matching private key (PEM text or path), needed only to mint tokens with it.
    #[serde(deserialize_with = "lenient::opt_secret")]
    pub jwt_private_key: Option<Secret>,
    /// JWKS document to fetch verification keys from (cached, refreshed on unknown `kid`).
    #[serde(deserialize_with = "lenient::opt_string")]
    pub jwks_url: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub jwt_issuer: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub jwt_audience: Option<String>,
    /// Claim that carries the tenant id.
    #[serde(deserialize_with = "lenient::string")]
    pub jwt_tenant_claim: String,
    /// Lifetime of tokens minted by `uplift token` and the token endpoint.
    pub token_ttl_seconds: u64,
    /// Longest validity of a token this service accepts (`exp` past now or past `iat`).
    pub max_token_lifetime_seconds: u64,
    /// Most deployment ids accepted in one bulk call.
    pub max_bulk_items: usize,
    /// Deployments upgraded at once within one bulk call.
    pub upgrade_concurrency: usize,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long one item waits for a row lock held by someone else before it fails as
    /// `conflict` (PostgreSQL `lock_timeout`, SQLite busy timeout).
    pub lock_timeout_ms: u64,
    /// Size of the database connection pool.
    pub db_max_connections: u32,
    /// HTTP worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// `text` (default) or `json`.
    pub log_format: LogFormat,
    /// Market name of apps created by a publish (Rainbond's `market_name`).
    #[serde(deserialize_with = "lenient::string")]
    pub default_market_name: String,
    /// Source of apps created by a publish (Rainbond's `source`).
    #[serde(deserialize_with = "lenient::string")]
    pub default_source: String,
    /// Region given to new folders when none is named (the Rainbond `region_name`).
    #[serde(deserialize_with = "lenient::string")]
    pub default_region: String,
    /// Seconds the server waits for in-flight requests on shutdown.
    pub shutdown_timeout_seconds: u64,
    /// Seconds a client may take to send its request body before it gets a 408.
    pub body_timeout_seconds: u64,
    /// Largest total size of the request headers, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Token requests that may wait for or run a client-secret check at once; beyond
    /// it the token endpoint answers 429 at once.
    pub token_queue_limit: usize,
    /// Token requests one client id may make per minute (per replica; 0: no limit).
    pub token_requests_per_minute_per_client: u32,
    /// Token requests one source address may make per minute (per replica; 0: no
    /// limit). Behind a proxy every request comes from the proxy's address.
    pub token_requests_per_minute_per_address: u32,
    /// How long the answer of a call made with an `Idempotency-Key` is kept.
    pub idempotency_retention_hours: u64,
    /// Lease a running keyed call renews; after a crash a retry waits at most this long.
    pub idempotency_lease_seconds: u64,
    /// Addresses of the reverse proxies whose `Forwarded`/`X-Forwarded-*` headers are
    /// believed (for the `@odata.context` URL). Empty: the connection's own scheme and
    /// `Host` are used, whatever a client sends in those headers.
    #[serde(deserialize_with = "lenient::ip_list")]
    pub trusted_proxies: Vec<IpAddr>,
    /// Seconds before each webhook attempt after the first failure: the Standard
    /// Webhooks schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
    /// 24 h). Its length is the number of attempts; jitter of up to a tenth is added.
    #[serde(deserialize_with = "lenient::u64_list")]
    pub webhook_retry_schedule_seconds: Vec<u64>,
    /// How long a receiver may take to answer, in milliseconds.
    pub webhook_timeout_ms: u64,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub webhook_disable_after_seconds: u64,
    /// How long the secret before a rotation keeps signing.
    pub webhook_secret_overlap_seconds: u64,
    /// How long events are kept for replay.
    pub webhook_retention_days: u64,
    /// Address ranges (CIDRs) webhooks may be sent to although the SSRF rules refuse
    /// them: for self-hosted receivers on private networks, and the tests' loopback.
    #[serde(deserialize_with = "lenient::string_list")]
    pub webhook_allow_networks: Vec<String>,
    /// Accept `http://` endpoint URLs (default: `https://` only).
    pub webhook_allow_http: bool,
    /// How often an idle relay looks for events and due deliveries.
    pub webhook_poll_ms: u64,
    /// Deliveries one replica sends at once.
    pub webhook_concurrency: usize,
    /// Run the relay on this replica.
    pub webhook_relay: bool,
    /// Lease of a worker's claim on an operation; after a crash another replica
    /// resumes the operation once it lapses.
    pub operation_lease_seconds: u64,
    /// Operations one replica runs at once (0: this replica runs none, it only
    /// serves the API).
    pub operation_workers: usize,
    /// Items a worker takes per turn before the operation goes back in line.
    pub operation_batch_items: usize,
    /// How often an idle worker looks for new operations.
    pub operation_poll_ms: u64,
    /// Finished operations are deleted this many days after they finished.
    pub operation_retention_days: u64,
    /// The most deployments one operation may act on.
    pub max_operation_items: usize,
    /// The highest `maxConcurrency` an operation may ask for.
    pub max_operation_concurrency: usize,
    /// Body limit of the calls that create operations (a list of 100,000 ids is
    /// about 4 MB).
    pub max_operation_body_bytes: usize,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            organization: "local".into(),
            jwt_secret: None,
            jwt_public_key: None,
            jwt_private_key: None,
            jwks_url: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_tenant_claim: "tenant_id".into(),
            token_ttl_seconds: 3600,
            max_token_lifetime_seconds: 24 * 3600,
            max_bulk_items: 1000,
            upgrade_concurrency: 8,
            max_body_bytes: 1024 * 1024,
            lock_timeout_ms: 2000,
            db_max_connections: 16,
            workers: None,
            log_format: LogFormat::Text,
            default_region: "default".into(),
            default_market_name: "local".into(),
            default_source: "uplift".into(),
            shutdown_timeout_seconds: 30,
            body_timeout_seconds: 30,
            max_header_bytes: 16 * 1024,
            token_queue_limit: 32,
            token_requests_per_minute_per_client: 60,
            token_requests_per_minute_per_address: 600,
            idempotency_retention_hours: 24,
            idempotency_lease_seconds: 30,
            trusted_proxies: Vec::new(),
            webhook_retry_schedule_seconds: vec![
                0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
            ],
            webhook_timeout_ms: 15_000,
            webhook_disable_after_seconds: 5 * 24 * 3600,
            webhook_secret_overlap_seconds: 24 * 3600,
            webhook_retention_days: 7,
            webhook_allow_networks: Vec::new(),
            webhook_allow_http: false,
            webhook_poll_ms: 250,
            webhook_concurrency: 64,
            webhook_relay: true,
            operation_lease_seconds: 15,
            operation_workers: 2,
            operation_batch_items: 500,
            operation_poll_ms: 500,
            operation_retention_days: 30,
            max_operation_items: 100_000,
            max_operation_concurrency: 64,
            max_operation_body_bytes: 8 * 1024 * 1024,
        }
    }
}

impl Settings {
    /// Reads `uplift.toml` (or the file named by `config_file`) and `UPLIFT_*` variables.
    pub fn load(config_file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let file = config_file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("uplift.toml"));
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("UPLIFT_").ignore(&["config", "test_postgres_url"]))
            .extract()
            .map_err(Box::new)?;
        settings
            .validate()
            .map_err(|e| Box::new(figment::Error::from(e)))?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), String> {
        if self.max_bulk_items == 0 {
            return Err("max_bulk_items must be at least 1".into());
        }
        if self.idempotency_lease_seconds < 3 {
            return Err("idempotency_lease_seconds must be at least 3".into());
        }
        if self.token_ttl_seconds > self.max_token_lifetime_seconds {
            return Err(format!(
                "token_ttl_seconds ({}) must not exceed max_token_lifetime_seconds ({}): \
                 the tokens minted would be refused",
                self.token_ttl_seconds, self.max_token_lifetime_seconds
            ));
        }
        if self.lock_timeout_ms == 0 {
            // 0 would mean "wait forever" on PostgreSQL but "fail at once" on SQLite.
            return Err("lock_timeout_ms must be at least 1".into());
        }
        if self.upgrade_concurrency == 0 {
            return Err("upgrade_concurrency must be at least 1".into());
        }
        if self.operation_lease_seconds < 3 {
            return Err("operation_lease_seconds must be at least 3".into());
        }
        if self.operation_batch_items == 0 || self.operation_poll_ms == 0 {
            return Err("operation_batch_items and operation_poll_ms must be at least 1".into());
        }
        if self.max_operation_items == 0 || self.max_operation_concurrency == 0 {
            return Err(
                "max_operation_items and max_operation_concurrency must be at least 1".into(),
            );
        }
        if self.webhook_retry_schedule_seconds.is_empty() {
            return Err("webhook_retry_schedule_seconds must list at least one attempt".into());
        }
        if self.webhook_timeout_ms == 0
            || self.webhook_poll_ms == 0
            || self.webhook_concurrency == 0
        {
            return Err(
                "webhook_timeout_ms, webhook_poll_ms and webhook_concurrency must be at least 1"
                    .into(),
            );
        }
        crate::address::AllowList::parse(&self.webhook_allow_networks)
            .map_err(|e| format!("webhook_allow_networks: {e}"))?;
        if self.organization.is_empty() || self.organization.contains('/') {
            return Err("organization must be a non-empty path segment".into());
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose().to_string(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("uplift.db").display()
            ),
        }
    }

    /// Where the generated HS256 secret is kept when no key is configured.
    pub fn generated_secret_path(&self) -> PathBuf {
        self.data_dir.join("jwt-secret")
    }

    /// `/{organization}`, where the organization's token endpoint is served too.
    pub fn organization_path(&self) -> String {
        format!("/{}", self.organization)
    }

    /// The UiPath base path: `/{organization}/apps_/default/api/v1/default`.
    pub fn uipath_base_path(&self) -> String {
        crate::api_paths::uipath_base_path(&self.organization)
    }
}

/// Environment values reach serde typed (`UPLIFT_ORGANIZATION=123` is a number): string
/// settings take any scalar as its text.
mod lenient {
    use std::net::IpAddr;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Unsigned(u64),
        Signed(i64),
        Float(f64),
        Bool(bool),
    }

    impl Scalar {
        fn into_string(self) -> String {
            match self {
                Scalar::Text(s) => s,
                Scalar::Unsigned(n) => n.to_string(),
                Scalar::Signed(n) => n.to_string(),
                Scalar::Float(n) => n.to_string(),
                Scalar::Bool(b) => b.to_string(),
            }
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Scalar::deserialize(d).map(Scalar::into_string)
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Option::<Scalar>::deserialize(d).map(|v| v.map(Scalar::into_string))
    }

    pub fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<super::Secret>, D::Error> {
        opt_string(d).map(|v| v.map(super::Secret::from))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(Scalar),
        Many(Vec<Scalar>),
    }

    fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items: Vec<String> = match List::deserialize(d)? {
            List::One(one) => vec![one.into_string()],
            List::Many(many) => many.into_iter().map(Scalar::into_string).collect(),
        };
        Ok(items
            .iter()
            .flat_map(|item| item.split([',', ' ']))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Text items as a list, or as one string separated by commas or spaces.
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        strings(d)
    }

    /// Whole numbers as a list, or as one string separated by commas or spaces
    /// (`UPLIFT_WEBHOOK_RETRY_SCHEDULE_SECONDS=0,1,2`).
    pub fn u64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        strings(d)?
            .iter()
            .map(|item| {
                item.parse::<u64>().map_err(|_| {
                    serde::de::Error::custom(format!("{item:?} is not a whole number"))
                })
            })
            .collect()
    }

    /// IP addresses as a list, or as one string separated by commas or spaces (as an
    /// environment variable gives them: `UPLIFT_TRUSTED_PROXIES=10.0.0.2,10.0.0.3`).
    pub fn ip_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
        let items: Vec<String> = match List::deserialize(d)? {
            List::One(one) => vec![one.into_string()],
            List::Many(many) => many.into_iter().map(Scalar::into_string).collect(),
        };
        items
            .iter()
            .flat_map(|item| item.split([',', ' ']))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpAddr>()
                    .map_err(|_| serde::de::Error::custom(format!("{item:?} is not an IP address")))
            })
            .collect()
    }
}

/// A setting that must never be printed (a signing secret or key, a database URL
/// with its password): `Debug` shows `[redacted]`, so logging `Settings` is safe.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[cfg(test)]
// figment::Jail fixes the closure's error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn default_database_is_an_sqlite_file_in_the_data_dir() {
        let settings = Settings::default();
        assert_eq!(
            settings.database_url(),
            "sqlite://./data/uplift.db?mode=rwc"
        );
    }

    #[test]
    fn environment_overrides_the_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UPLIFT_MAX_BULK_ITEMS", "25");
            jail.set_env("UPLIFT_ORGANIZATION", "acme");
            let settings = Settings::load(None).map_err(|e| *e)?;
            assert_eq!(settings.max_bulk_items, 25);
            assert_eq!(settings.organization, "acme");
            Ok(())
        });
    }

    #[test]
    fn webhook_lists_come_from_comma_separated_variables_and_a_bad_range_stops_the_load() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "UPLIFT_WEBHOOK_ALLOW_NETWORKS",
                "127.0.0.1/32, 10.20.0.0/16",
            );
            jail.set_env("UPLIFT_WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,1,2");
            let settings = Settings::load(None).map_err(|e| *e)?;
            assert_eq!(
                settings.webhook_allow_networks,
                vec!["127.0.0.1/32".to_string(), "10.20.0.0/16".to_string()]
            );
            assert_eq!(settings.webhook_retry_schedule_seconds, vec![0, 1, 2]);
            jail.set_env("UPLIFT_WEBHOOK_ALLOW_NETWORKS", "10.0.0.0/40");
            let err = Settings::load(None).unwrap_err().to_string();
            assert!(err.contains("webhook_allow_networks"), "{err}");
            jail.set_env("UPLIFT_WEBHOOK_ALLOW_NETWORKS", "");
            jail.set_env("UPLIFT_WEBHOOK_RETRY_SCHEDULE_SECONDS", "0,soon");
            assert!(Settings::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn the_toml_file_is_read_and_the_environment_wins_over_it() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "uplift.toml",
                "organization = \"fromfile\"\nlisten = \"0.0.0.0:9000\"",
            )?;
            jail.set_env("UPLIFT_LISTEN", "127.0.0.1:9999");
            let settings = Settings::load(None).map_err(|e| *e)?;
            assert_eq!(settings.organization, "fromfile");
            assert_eq!(settings.listen, "127.0.0.1:9999");
            Ok(())
        });
    }

    #[test]
    fn string_settings_accept_values_that_look_like_numbers() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UPLIFT_ORGANIZATION", "123");
            jail.set_env("UPLIFT_JWT_AUDIENCE", "42");
            let settings = Settings::load(None).map_err(|e| *e)?;
            assert_eq!(settings.organization, "123");
            assert_eq!(settings.jwt_audience.as_deref(), Some("42"));
            Ok(())
        });
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let settings = Settings {
            jwt_secret: Some("hs256-secret-value".into()),
            jwt_private_key: Some("-----BEGIN PRIVATE KEY-----abc".into()),
            database_url: Some("postgres://u:db-password@h/db".into()),
            ..Settings::default()
        };
        let text = format!("{settings:?}");
        for secret in ["hs256-secret-value", "BEGIN PRIVATE KEY", "db-password"] {
            assert!(!text.contains(secret), "{secret} printed in {text}");
        }
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn trusted_proxies_are_a_list_of_ip_addresses_from_the_environment_or_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UPLIFT_TRUSTED_PROXIES", "10.0.0.2, ::1");
            let settings = Settings::load(None).map_err(|e| *e)?;
            assert_eq!(
                settings.trusted_proxies,
                [
                    "10.0.0.2".parse::<IpAddr>().unwrap(),
                    "::1".parse().unwrap()
                ]
            );
            jail.set_env("UPLIFT_TRUSTED_PROXIES", "nginx");
            assert!(Settings::load(None).is_err());
            jail.set_env("UPLIFT_TRUSTED_PROXIES", "");
            jail.create_file("uplift.toml", "trusted_proxies = [\"127.0.0.1\"]")?;
            let settings = Settings::load(None).map_err(|e| *e)?;
            assert!(settings.trusted_proxies.is_empty(), "the environment wins");
            Ok(())
        });
        assert!(Settings::default().trusted_proxies.is_empty());
    }

    #[test]
    fn a_token_ttl_beyond_the_maximum_lifetime_is_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UPLIFT_TOKEN_TTL_SECONDS", "90000");
            assert!(Settings::load(None).is_err());
            Ok(())
        });
    }

    #[test]
    fn zero_bulk_items_is_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UPLIFT_MAX_BULK_ITEMS", "0");
            assert!(Settings::load(None).is_err());
            Ok(())
        });
    }
}
