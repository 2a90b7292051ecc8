//! The keys that verify (and, where we hold a private key, sign) bearer tokens.
//!
//! Exactly one verification source is configured: an HS256 secret, an RSA/EC public
//! key, or a JWKS URL. The algorithm a token names must belong to that key's family,
//! which rules out `alg: none` and the HS/RS confusion attack (RFC 8725 §2.1, §3.1).

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash},
};
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, RwLock};

use super::secret_file;
use crate::config::Settings;

/// Why a token was refused. The message is safe to show to the client.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Tokens larger than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How long a JWKS refresh triggered by an unknown `kid` blocks further refreshes, so
/// a flood of tokens with random key ids cannot hammer the key server.
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// The claim naming the registered client a token was issued to (RFC 9068 §2.2). Its
/// presence is what makes the principal check that the client still exists.
pub const CLIENT_ID_CLAIM: &str = "client_id";

pub struct Keys {
    verifier: Verifier,
    signer: Option<Signer>,
    /// Our own public key as a JWK set, when we sign with an RSA/EC key pair.
    published: Option<JwkSet>,
    issuer: Option<String>,
    audience: Option<String>,
    tenant_claim: String,
    /// Longest validity accepted (`max_token_lifetime_seconds`).
    max_lifetime: Duration,
}

enum Verifier {
    Static {
        key: DecodingKey,
        allowed: &'static [Algorithm],
    },
    Jwks(JwksCache),
}

struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    /// Set for RSA/EC keys: the thumbprint of the public key we publish, so verifiers
    /// reading our JWKS find the right key.
    kid: Option<String>,
}

struct JwksCache {
    url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, (DecodingKey, Option<Algorithm>)>>,
    last_fetch: Mutex<Option<Instant>>,
}

/// A verified token's claims as a JSON object.
pub type Claims = Map<String, Value>;

impl Keys {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let configured = [
            settings.jwt_secret.is_some(),
            settings.jwt_public_key.is_some(),
            settings.jwks_url.is_some(),
        ];
        if configured.iter().filter(|c| **c).count() > 1 {
            bail!(
                "configure only one of UPLIFT_JWT_SECRET, UPLIFT_JWT_PUBLIC_KEY and UPLIFT_JWKS_URL"
            );
        }
        let mut published = None;
        let (verifier, signer) = if let Some(pem) = &settings.jwt_public_key {
            let pem = read_pem(pem).context("reading UPLIFT_JWT_PUBLIC_KEY")?;
            let (key, allowed) = public_key(&pem)?;
            let signer = match &settings.jwt_private_key {
                Some(private) => {
                    let mut signer = private_key(
                        &read_pem(private.expose()).context("reading UPLIFT_JWT_PRIVATE_KEY")?,
                    )?;
                    check_key_pair(&signer, &key)?;
                    let jwk = public_jwk(&key, signer.algorithm)?;
                    signer.kid = jwk.common.key_id.clone();
                    published = Some(JwkSet { keys: vec![jwk] });
                    Some(signer)
                }
                None => None,
            };
            (Verifier::Static { key, allowed }, signer)
        } else if let Some(url) = &settings.jwks_url {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .context("building the JWKS client")?;
            let cache = JwksCache {
                url: url.clone(),
                client,
                keys: RwLock::new(HashMap::new()),
                last_fetch: Mutex::new(None),
            };
            (Verifier::Jwks(cache), None)
        } else {
            let secret = match &settings.jwt_secret {
                Some(secret) => secret.expose().to_string(),
                None => secret_file::load_or_generate(&settings.generated_secret_path())?,
            };
            if secret.len() < secret_file::MIN_SECRET_BYTES {
                bail!(
                    "UPLIFT_JWT_SECRET must be at least {} bytes long",
                    secret_file::MIN_SECRET_BYTES
                );
            }
            let verifier = Verifier::Static {
                key: DecodingKey::from_secret(secret.as_bytes()),
                allowed: &[Algorithm::HS256],
            };
            let signer = Signer {
                key: EncodingKey::from_secret(secret.as_bytes()),
                algorithm: Algorithm::HS256,
                kid: None,
            };
            (verifier, Some(signer))
        };
        Ok(Keys {
            verifier,
            signer,
            published,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            tenant_claim: settings.jwt_tenant_claim.clone(),
            max_lifetime: Duration::from_secs(settings.max_token_lifetime_seconds),
        })
    }

    pub fn tenant_claim(&self) -> &str {
        &self.tenant_claim
    }

    /// Whether this service holds a key to mint tokens with (a secret or a private key).
    /// Without one, every token it sees was issued by someone else.
    pub fn can_mint(&self) -> bool {
        self.signer.is_some()
    }

    /// The public key we sign with, as a JWK set for `/.well-known/jwks.json`; `None`
    /// with an HS256 secret (never published) or when we do not sign at all.
    pub fn published_jwks(&self) -> Option<&JwkSet> {
        self.published.as_ref()
    }

    /// Checks signature, algorithm, `exp`, `nbf`, and `iss`/`aud` when configured.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError(format!(
                "token is larger than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| TokenError("malformed token".into()))?;
        // RFC 7515 §4.1.11: a verifier must refuse critical header parameters it does
        // not understand, and this one understands none.
        if header.crit.is_some() {
            return Err(TokenError(
                "token names critical header parameters (crit) this service does not understand"
                    .into(),
            ));
        }
        let key = match &self.verifier {
            Verifier::Static { key, allowed } => {
                if !allowed.contains(&header.alg) {
                    return Err(TokenError(format!(
                        "algorithm {:?} is not accepted",
                        header.alg
                    )));
                }
                key.clone()
            }
            Verifier::Jwks(cache) => {
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or_else(|| TokenError("token has no key id (kid)".into()))?;
                let (key, pinned) = cache.key(kid).await?;
                let family_ok = key.family().algorithms().contains(&header.alg)
                    && key.family() != jsonwebtoken::AlgorithmFamily::Hmac;
                if !family_ok || pinned.is_some_and(|alg| alg != header.alg) {
                    return Err(TokenError(format!(
                        "algorithm {:?} does not match key {kid:?}",
                        header.alg
                    )));
                }
                key
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.validate_nbf = true;
        // jsonwebtoken checks iss/aud only when the token carries them: a configured
        // issuer or audience must also be required, or leaving the claim out passes.
        let mut required = vec!["exp", "sub"];
        match &self.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError(describe(e.kind())))?;
        self.check_lifetime(&claims)?;
        Ok(claims)
    }

    /// Refuses a token valid for longer than `max_token_lifetime_seconds`: its `exp`
    /// that far past now, or past its own `iat`. (An `exp` of 2^63 would otherwise
    /// make a stolen token good forever.)
    fn check_lifetime(&self, claims: &Claims) -> Result<(), TokenError> {
        let max = self.max_lifetime.as_secs() as f64;
        let now = jsonwebtoken::get_current_timestamp() as f64;
        let number = |name: &str| claims.get(name).and_then(Value::as_f64);
        let exp = number("exp").ok_or_else(|| TokenError("token has no exp claim".into()))?;
        let too_long = exp - now > max || number("iat").is_some_and(|iat| exp - iat > max);
        if too_long {
            return Err(TokenError(format!(
                "token is valid for longer than the {} seconds this service accepts",
                self.max_lifetime.as_secs()
            )));
        }
        Ok(())
    }

    /// Mints a token the way `uplift token` does.
    pub fn issue(
        &self,
        tenant: &str,
        subject: &str,
        scope: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.mint(tenant, subject, scope, ttl, None)
    }

    /// Mints a token for a registered client (the token endpoint): its subject is the
    /// client id, and the `client_id` claim makes every use of it check that the client
    /// has not been deleted since.
    pub fn issue_for_client(
        &self,
        tenant: &str,
        client_id: &str,
        scope: &str,
        ttl: Duration,
    ) -> anyhow::Result<String> {
        self.mint(tenant, client_id, scope, ttl, Some(client_id))
    }

    fn mint(
        &self,
        tenant: &str,
        subject: &str,
        scope: &str,
        ttl: Duration,
        client_id: Option<&str>,
    ) -> anyhow::Result<String> {
        let signer = self.signer.as_ref().context(
            "this service only verifies tokens (no secret or private key is configured), so it cannot mint one",
        )?;
        let now = jsonwebtoken::get_current_timestamp();
        let mut claims = json!({
            "sub": subject,
            "scope": scope,
            "iat": now,
            "nbf": now,
            "exp": now + ttl.as_secs(),
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        claims[self.tenant_claim.as_str()] = json!(tenant);
        if let Some(iss) = &self.issuer {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = &self.audience {
            claims["aud"] = json!(aud);
        }
        if let Some(client_id) = client_id {
            claims[CLIENT_ID_CLAIM] = json!(client_id);
        }
        let mut header = Header::new(signer.algorithm);
        header.kid = signer.kid.clone();
        jsonwebtoken::encode(&header, &claims, &signer.key).context("signing the token")
    }
}

impl JwksCache {
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Option<Algorithm>), TokenError> {
        if let Some(found) = self.keys.read().await.get(kid) {
            return Ok(found.clone());
        }
        self.refresh().await;
        self.keys
            .read()
            .await
            .get(kid)
            .cloned()
            .ok_or_else(|| TokenError(format!("no verification key with id {kid:?}")))
    }

    async fn refresh(&self) {
        let mut last = self.last_fetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < JWKS_MIN_REFRESH) {
            return;
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => *self.keys.write().await = keys,
            Err(e) => tracing::warn!(url = %self.url, error = %e, "could not refresh the JWKS"),
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (DecodingKey, Option<Algorithm>)>> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let pinned = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok());
            keys.insert(kid, (key, pinned));
        }
        Ok(keys)
    }
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "token has the wrong issuer".into(),
        ErrorKind::InvalidAudience => "token has the wrong audience".into(),
        ErrorKind::InvalidSignature => "token signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "token algorithm is not accepted".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no {claim} claim"),
        _ => "malformed token".into(),
    }
}

/// A PEM given inline or as a path to a file.
fn read_pem(value: &str) -> anyhow::Result<Vec<u8>> {
    if value.trim_start().starts_with("-----BEGIN") {
        Ok(value.as_bytes().to_vec())
    } else {
        std::fs::read(Path::new(value)).with_context(|| format!("reading {value}"))
    }
}

fn public_key(pem: &[u8]) -> anyhow::Result<(DecodingKey, &'static [Algorithm])> {
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Ok((
            key,
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
            ],
        ));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        return Ok((key, &[Algorithm::ES256, Algorithm::ES384]));
    }
    bail!("the public key is neither an RSA nor an EC key in PEM form")
}

fn private_key(pem: &[u8]) -> anyhow::Result<Signer> {
    if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
        return Ok(Signer {
            key,
            algorithm: Algorithm::RS256,
            kid: None,
        });
    }
    if let Ok(key) = EncodingKey::from_ec_pem(pem) {
        return Ok(Signer {
            key,
            algorithm: Algorithm::ES256,
            kid: None,
        });
    }
    bail!("the private key is neither an RSA nor an EC key in PEM form")
}

/// Signs a probe and verifies it with the public key: a private key that does not match
/// the public one would otherwise mint tokens this service itself refuses (and that
/// its published JWKS cannot verify), noticed only at the first call.
fn check_key_pair(signer: &Signer, public: &DecodingKey) -> anyhow::Result<()> {
    let probe = jsonwebtoken::encode(
        &Header::new(signer.algorithm),
        &json!({"sub": "key-pair-check", "exp": jsonwebtoken::get_current_timestamp() + 60}),
        &signer.key,
    )
    .context("signing with UPLIFT_JWT_PRIVATE_KEY (an EC key must be P-256 for ES256)")?;
    let mut validation = Validation::new(signer.algorithm);
    validation.validate_aud = false;
    jsonwebtoken::decode::<Claims>(&probe, public, &validation).map_err(|_| {
        anyhow::anyhow!("UPLIFT_JWT_PRIVATE_KEY is not the private half of UPLIFT_JWT_PUBLIC_KEY")
    })?;
    Ok(())
}

/// The public key as a JWK (RFC 7517) with `use`, `alg` and a `kid` that is its RFC 7638
/// thumbprint: stable across restarts and replicas sharing the key, and different for
/// a new key, so a verifier's cache picks a rotated key up by its unknown `kid`.
fn public_jwk(key: &DecodingKey, algorithm: Algorithm) -> anyhow::Result<Jwk> {
    let mut jwk = Jwk::from_decoding_key(key, Some(algorithm))
        .context("describing UPLIFT_JWT_PUBLIC_KEY as a JWK")?;
    jwk.common.key_id = Some(
        jwk.thumbprint(ThumbprintHash::SHA256)
            .context("computing the key id of UPLIFT_JWT_PUBLIC_KEY")?,
    );
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn hs_keys() -> Keys {
        let settings = Settings {
            jwt_secret: Some("s".repeat(40).into()),
            ..Settings::default()
        };
        Keys::from_settings(&settings).unwrap()
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[tokio::test]
    async fn a_minted_token_verifies_and_carries_tenant_and_scope() {
        let keys = hs_keys();
        let token = keys
            .issue(
                "t1",
                "alice",
                "Apps OR.Folders.Read",
                Duration::from_secs(60),
            )
            .unwrap();
        let claims = keys.verify(&token).await.unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["tenant_id"], "t1");
        assert_eq!(claims["scope"], "Apps OR.Folders.Read");
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let keys = hs_keys();
        let now = jsonwebtoken::get_current_timestamp();
        let header = b64(&json!({"alg": "none", "typ": "JWT"}));
        let payload = b64(&json!({"sub": "x", "tenant_id": "t", "exp": now + 60}));
        assert!(keys.verify(&format!("{header}.{payload}.")).await.is_err());
    }

    #[tokio::test]
    async fn a_token_signed_with_another_secret_is_refused() {
        let keys = hs_keys();
        let other = Keys::from_settings(&Settings {
            jwt_secret: Some("o".repeat(40).into()),
            ..Settings::default()
        })
        .unwrap();
        let token = other
            .issue("t", "x", "Apps", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            keys.verify(&token).await.unwrap_err().0,
            "token signature does not verify"
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let keys = hs_keys();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"sub": "x", "tenant_id": "t", "exp": now - 120});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret("s".repeat(40).as_bytes()),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&token).await.unwrap_err().0,
            "token has expired"
        );
    }

    #[tokio::test]
    async fn an_hs384_token_is_refused_when_only_hs256_is_configured() {
        let keys = hs_keys();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = json!({"sub": "x", "tenant_id": "t", "exp": now + 60});
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &claims,
            &EncodingKey::from_secret("s".repeat(40).as_bytes()),
        )
        .unwrap();
        assert!(keys.verify(&token).await.is_err());
    }

    #[tokio::test]
    async fn a_configured_issuer_and_audience_are_required_not_just_checked_when_present() {
        let settings = Settings {
            jwt_secret: Some("s".repeat(40).into()),
            jwt_issuer: Some("https://issuer.test".into()),
            jwt_audience: Some("uplift".into()),
            ..Settings::default()
        };
        let keys = Keys::from_settings(&settings).unwrap();
        let good = keys
            .issue("t", "x", "Apps", Duration::from_secs(60))
            .unwrap();
        assert!(keys.verify(&good).await.is_ok());
        let now = jsonwebtoken::get_current_timestamp();
        let secret = EncodingKey::from_secret("s".repeat(40).as_bytes());
        for claims in [
            json!({"sub": "x", "tenant_id": "t", "exp": now + 60, "aud": "uplift"}),
            json!({"sub": "x", "tenant_id": "t", "exp": now + 60, "iss": "https://issuer.test"}),
            json!({"sub": "x", "tenant_id": "t", "exp": now + 60, "iss": "https://other.test", "aud": "uplift"}),
        ] {
            let token =
                jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret).unwrap();
            assert!(keys.verify(&token).await.is_err(), "{claims}");
        }
    }

    #[test]
    fn a_short_configured_secret_is_refused() {
        let settings = Settings {
            jwt_secret: Some("short".into()),
            ..Settings::default()
        };
        assert!(Keys::from_settings(&settings).is_err());
    }

    fn ec_pair() -> (String, String) {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let secret = p256::SecretKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        (
            secret
                .public_key()
                .to_public_key_pem(LineEnding::LF)
                .unwrap(),
            secret.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
        )
    }

    fn pair_settings(public: &str, private: Option<&str>) -> Settings {
        Settings {
            jwt_public_key: Some(public.into()),
            jwt_private_key: private.map(Into::into),
            ..Settings::default()
        }
    }

    #[test]
    fn a_private_key_that_is_not_the_public_keys_other_half_is_refused_at_start() {
        let (public, _) = ec_pair();
        let (_, other_private) = ec_pair();
        let err = Keys::from_settings(&pair_settings(&public, Some(&other_private)))
            .err()
            .unwrap();
        assert!(err.to_string().contains("private half"), "{err}");
    }

    #[tokio::test]
    async fn only_a_signing_key_pair_is_published_and_minted_tokens_name_its_kid() {
        let (public, private) = ec_pair();
        let keys = Keys::from_settings(&pair_settings(&public, Some(&private))).unwrap();
        let jwk = &keys.published_jwks().unwrap().keys[0];
        let kid = jwk.common.key_id.clone().unwrap();
        assert_eq!(kid, jwk.thumbprint(ThumbprintHash::SHA256).unwrap());
        let token = keys
            .issue_for_client("t", "c1", "Apps", Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(),
            Some(kid.as_str())
        );
        let claims = keys.verify(&token).await.unwrap();
        assert_eq!(
            (&claims["sub"], &claims["client_id"]),
            (&json!("c1"), &json!("c1"))
        );

        let verify_only = Keys::from_settings(&pair_settings(&public, None)).unwrap();
        assert!(verify_only.published_jwks().is_none());
        assert!(!verify_only.can_mint());
        let hs = hs_keys();
        assert!(hs.published_jwks().is_none());
        assert!(hs.can_mint());
        let token = hs
            .issue("t", "alice", "Apps", Duration::from_secs(60))
            .unwrap();
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid, None);
        assert!(hs.verify(&token).await.unwrap().get("client_id").is_none());
    }

    #[test]
    fn two_verification_sources_are_refused() {
        let settings = Settings {
            jwt_secret: Some("s".repeat(40).into()),
            jwks_url: Some("http://127.0.0.1:1/jwks".into()),
            ..Settings::default()
        };
        assert!(Keys::from_settings(&settings).is_err());
    }

    /// Whether two tokens' three base64url parts decode to the same bytes.
    fn decodes_the_same(a: &str, b: &str) -> bool {
        use base64::Engine as _;
        let decode = |t: &str| -> Option<Vec<Vec<u8>>> {
            t.split('.')
                .map(|part| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(part)
                        .ok()
                })
                .collect()
        };
        matches!((decode(a), decode(b)), (Some(x), Some(y)) if x == y)
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_tokens_are_refused_without_panicking(token in r"[A-Za-z0-9_\-\.=+/]{0,400}") {
            let keys = hs_keys();
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            proptest::prop_assert!(runtime.block_on(keys.verify(&token)).is_err());
        }

        #[test]
        fn a_genuine_token_with_any_byte_changed_is_refused(position in 0usize..400, byte in proptest::num::u8::ANY) {
            let keys = hs_keys();
            let token = keys.issue("t", "x", "Apps", Duration::from_secs(60)).unwrap();
            let mut bytes = token.clone().into_bytes();
            let i = position % bytes.len();
            proptest::prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            // A header carries text only: a byte that is not UTF-8 arrives replaced.
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            if runtime.block_on(keys.verify(&tampered)).is_ok() {
                // Only a change in a base64url part's unused low bits decodes to the
                // very same header, claims and signature.
                proptest::prop_assert!(
                    decodes_the_same(&token, &tampered),
                    "a changed token was accepted: {tampered}"
                );
            }
        }
    }
}
