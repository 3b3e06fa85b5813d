//! The upstream OpenID provider of `[source.oidc]`: its discovery document
//! and JWK Set, fetched and kept in memory, and the token request of a
//! login. The checks on what comes back are vestibule-core's
//! ([`vestibule_core::oidc`]); this module only fetches.
//!
//! - The discovery document (OIDC Discovery §4) is fetched on first use
//!   and kept for [`METADATA_TTL`]; a failed refetch keeps the old one.
//! - The JWK Set is fetched from its `jwks_uri` on first use, and again
//!   when a token names a key id vestibule does not have (OIDC Core
//!   §10.1.1: how providers rotate), at most every [`MIN_REFETCH`] so a
//!   forged `kid` cannot make vestibule hammer the provider.
//! - The code is exchanged with the PKCE verifier (RFC 7636 §4.5),
//!   vestibule authenticated by `source.oidc.client_auth` (OIDC Core §9):
//!   `client_secret_basic` or `client_secret_post` (RFC 6749 §2.3.1), or
//!   `private_key_jwt` (RFC 7523 §2.2): a JWT signed with vestibule's own
//!   signing key, whose public half the provider reads from
//!   `/.vestibule/jwks.json` (the client's registered `jwks_uri`).
//!
//! ## The client assertion
//!
//! `iss` = `sub` = the client id (RFC 7523 §3 items 1, 2), `aud` = the
//! provider's token endpoint URL as one string (OIDC Core §9: "SHOULD be
//! the URL of the Authorization Server's Token Endpoint"; RFC 7523 §3
//! item 3 allows it), `jti` 256 random bits (OIDC Core §9: providers may
//! refuse a `jti` seen before), `iat` now and `exp` [`ASSERTION_LIFETIME`]
//! later. The token endpoint rather than the issuer because it is what
//! OIDC Core 1.0 asks for and what Keycloak, Authelia, authentik and
//! kanidm all accept; a single string, never an array, so the assertion
//! cannot be replayed at another audience named beside it.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use vestibule_core::jwt::{Jwks, JwtError};
use vestibule_core::oidc::{
    ClaimsRefused, MAX_DISCOVERY_BYTES, MAX_TOKEN_RESPONSE_BYTES, MAX_USERINFO_BYTES,
    OidcTokenError, ProviderMetadata, RefreshResponse, TokenResponse, TokenResponseError,
    UserinfoError, check_userinfo, parse_discovery, parse_refresh_response, parse_token_response,
};

use crate::config::{ClientAuthMethod, OidcLogin};
use crate::identity::jwks::request;
use crate::keys::KeyRing;

/// How long a client assertion is valid: one token request, with room
/// for clock skew at the provider.
pub const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);
/// `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The claims of a `private_key_jwt` client assertion (see the module
/// documentation), `now` in unix seconds, `jti` fresh for each request.
pub fn client_assertion_claims(
    client_id: &str,
    token_endpoint: &str,
    now: i64,
    jti: &str,
) -> serde_json::Value {
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": jti,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME.as_secs() as i64,
    })
}

/// 256 random bits, base64url: a `jti`.
fn random_jti() -> String {
    use rand::RngCore as _;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// How long a discovery document is used before it is fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The shortest time between two key fetches caused by unknown key ids.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Time allowed for one request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWK Set read.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// [`vestibule_core::oidc::allowed_identity`] with `source.oidc`'s claim
/// mapping, issuer and `allowed_groups`.
pub fn identity_of(
    settings: &OidcLogin,
    id_token: &vestibule_core::oidc::IdToken,
) -> Result<vestibule_core::identity::Identity, ClaimsRefused> {
    vestibule_core::oidc::allowed_identity(
        id_token,
        &settings.mapping,
        &settings.issuer,
        &settings.allowed_groups,
    )
}

/// What the provider said to a re-check of a session.
#[derive(Debug)]
pub enum Asked<T> {
    /// It vouched for the session.
    Vouched(T),
    /// It refused (RFC 6749 §5.2 `invalid_grant` or another error about
    /// the grant, a 400 or 401 without a code, an answer for another
    /// subject): the session must end now.
    Refused(String),
    /// It could not be reached or gave no usable answer (a timeout, a 5xx,
    /// a malformed body): the session may live on within the grace.
    Unreachable(String),
}

/// Why [`Upstream::verify_with_keys`] gave no verified token.
#[derive(Debug)]
pub enum KeyedCheckError {
    /// The provider's keys could not be fetched: nothing is known of the
    /// token.
    NoKeys(String),
    /// The token failed a check.
    Refused(OidcTokenError),
}

impl std::fmt::Display for KeyedCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoKeys(e) => write!(f, "the provider's keys cannot be fetched: {e}"),
            Self::Refused(e) => e.fmt(f),
        }
    }
}

/// The provider, as this gateway knows it.
pub struct Upstream {
    login: OidcLogin,
    /// Seals the provider's tokens of each session in the store.
    kek: Option<crate::keys::kek::Kek>,
    tls: tokio_rustls::TlsConnector,
    metadata: RwLock<Option<(Arc<ProviderMetadata>, Instant)>>,
    keys: RwLock<Option<Arc<Jwks>>>,
    /// Held during a fetch (single flight).
    fetching: tokio::sync::Mutex<()>,
    last_refetch: Mutex<Option<Instant>>,
}

impl Upstream {
    /// Prepares the client; nothing is fetched until first use.
    pub fn new(login: OidcLogin) -> Result<Self, String> {
        let config = crate::config::client_tls(login.ca.as_deref())?;
        Ok(Self {
            login,
            kek: None,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            metadata: RwLock::new(None),
            keys: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            last_refetch: Mutex::new(None),
        })
    }

    /// Seals the sessions' provider tokens with `kek` (`[keys] kek_file`
    /// or `kek_env`), as signing keys are.
    #[must_use]
    pub fn with_kek(mut self, kek: Option<crate::keys::kek::Kek>) -> Self {
        self.kek = kek;
        self
    }

    /// The key-encryption key, when one is configured.
    pub fn kek(&self) -> Option<&crate::keys::kek::Kek> {
        self.kek.as_ref()
    }

    /// The `[source.oidc]` settings.
    pub fn settings(&self) -> &OidcLogin {
        &self.login
    }

    async fn get(&self, url: &http::Uri, limit: usize) -> Result<Vec<u8>, String> {
        let (status, body) = tokio::time::timeout(
            TIMEOUT,
            request(
                url,
                &self.tls,
                http::Method::GET,
                &[(http::header::ACCEPT, "application/json")],
                Bytes::new(),
                limit,
            ),
        )
        .await
        .map_err(|_| format!("{url}: no answer within {TIMEOUT:?}"))??;
        if status != http::StatusCode::OK {
            return Err(format!("{url} answered {status}"));
        }
        Ok(body)
    }

    /// The provider's metadata, fetched when missing or older than
    /// [`METADATA_TTL`] (an old copy is kept when the refetch fails).
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>, String> {
        let cached = self.metadata.read().ok().and_then(|m| m.clone());
        if let Some((m, at)) = &cached
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let _one = self.fetching.lock().await;
        let fetched = async {
            let body = self
                .get(&self.login.discovery_url, MAX_DISCOVERY_BYTES)
                .await?;
            parse_discovery(&body, &self.login.issuer).map_err(|e| e.to_string())
        }
        .await;
        match (fetched, cached) {
            (Ok(m), _) => {
                let m = Arc::new(m);
                if let Ok(mut slot) = self.metadata.write() {
                    *slot = Some((m.clone(), Instant::now()));
                }
                Ok(m)
            }
            (Err(e), Some((old, _))) => {
                tracing::warn!(error = %e, "the OpenID provider's discovery document could not be fetched again; keeping the old one");
                Ok(old)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Fetches the discovery document and the JWK Set again now (`SIGHUP`),
    /// whatever their age: the number of usable keys. On failure what was
    /// held stays (the metadata as [`Upstream::metadata`] keeps it, the
    /// keys untouched).
    pub async fn refetch(&self) -> Result<usize, String> {
        let _one = self.fetching.lock().await;
        let body = self
            .get(&self.login.discovery_url, MAX_DISCOVERY_BYTES)
            .await?;
        let m = Arc::new(parse_discovery(&body, &self.login.issuer).map_err(|e| e.to_string())?);
        if let Ok(mut slot) = self.metadata.write() {
            *slot = Some((m, Instant::now()));
        }
        Ok(self.load_keys().await?.len())
    }

    /// The provider's keys, fetched on first use.
    pub async fn keys(&self) -> Result<Arc<Jwks>, String> {
        if let Some(k) = self.keys.read().ok().and_then(|k| k.clone()) {
            return Ok(k);
        }
        let _one = self.fetching.lock().await;
        if let Some(k) = self.keys.read().ok().and_then(|k| k.clone()) {
            return Ok(k);
        }
        self.load_keys().await
    }

    /// Fetches the keys again because a token named an unknown key id,
    /// unless that happened within [`MIN_REFETCH`]. The new keys, or
    /// `None` when no fetch was made or it failed.
    pub async fn refetch_keys(&self) -> Option<Arc<Jwks>> {
        let _one = self.fetching.lock().await;
        {
            let mut last = self.last_refetch.lock().ok()?;
            if last.is_some_and(|t| t.elapsed() < MIN_REFETCH) {
                return None;
            }
            *last = Some(Instant::now());
        }
        match self.load_keys().await {
            Ok(k) => Some(k),
            Err(e) => {
                tracing::warn!(error = %e, "the OpenID provider's keys could not be fetched again");
                None
            }
        }
    }

    async fn load_keys(&self) -> Result<Arc<Jwks>, String> {
        let m = self.metadata_unlocked().await?;
        let url: http::Uri = m
            .jwks_uri
            .parse()
            .map_err(|_| "jwks_uri is not a URL".to_owned())?;
        let body = self.get(&url, MAX_JWKS_BYTES).await?;
        let jwks = Jwks::parse(&body).map_err(|e| format!("the JWK Set is refused: {e}"))?;
        if jwks.is_empty() {
            return Err("the provider's JWK Set has no usable signing key".into());
        }
        let jwks = Arc::new(jwks);
        if let Ok(mut slot) = self.keys.write() {
            *slot = Some(jwks.clone());
        }
        Ok(jwks)
    }

    /// The cached metadata, or a fetch without taking the fetch lock (the
    /// caller holds it).
    async fn metadata_unlocked(&self) -> Result<Arc<ProviderMetadata>, String> {
        if let Some((m, _)) = self.metadata.read().ok().and_then(|m| m.clone()) {
            return Ok(m);
        }
        let body = self
            .get(&self.login.discovery_url, MAX_DISCOVERY_BYTES)
            .await?;
        let m = Arc::new(parse_discovery(&body, &self.login.issuer).map_err(|e| e.to_string())?);
        if let Ok(mut slot) = self.metadata.write() {
            *slot = Some((m.clone(), Instant::now()));
        }
        Ok(m)
    }

    /// Runs a token check with the provider's keys, and once more with
    /// keys fetched again when the token names a key id vestibule does not
    /// have (rotation, OIDC Core §10.1.1). Keys that cannot be fetched are
    /// told apart from a refused token: the first says nothing about the
    /// token (a 503, or a re-check's grace), the second is its verdict.
    pub async fn verify_with_keys<T>(
        &self,
        check: impl Fn(&Jwks) -> Result<T, OidcTokenError>,
    ) -> Result<T, KeyedCheckError> {
        let keys = self.keys().await.map_err(KeyedCheckError::NoKeys)?;
        match check(&keys) {
            Err(OidcTokenError::Jwt(JwtError::UnknownKey { kid: Some(_) })) => {
                match self.refetch_keys().await {
                    Some(keys) => check(&keys),
                    None => Err(OidcTokenError::Jwt(JwtError::UnknownKey { kid: None })),
                }
            }
            other => other,
        }
        .map_err(KeyedCheckError::Refused)
    }

    /// Whether the provider takes the configured client authentication:
    /// when its discovery document lists `token_endpoint_auth_methods_supported`
    /// (and, for `private_key_jwt`, the assertion algorithms), ours must be
    /// listed. Checked when a login starts, so a mismatch is one clear
    /// error before the browser goes anywhere, not a refused code later.
    pub fn check_client_auth(
        &self,
        m: &ProviderMetadata,
        keys: Option<&KeyRing>,
    ) -> Result<(), String> {
        let method = self.login.client_auth;
        if !m.accepts_client_auth(method.name()) {
            return Err(format!(
                "source.oidc.client_auth is {}, which the provider does not offer at its token endpoint (it lists {}); \
                 pick one of those, or enable {} for the client at the provider",
                method.name(),
                m.token_endpoint_auth_methods
                    .as_deref()
                    .unwrap_or_default()
                    .join(", "),
                method.name(),
            ));
        }
        if method == ClientAuthMethod::PrivateKeyJwt {
            let Some(keys) = keys else {
                return Err("private_key_jwt needs vestibule's signing keys, which live in the store ([accounts])".into());
            };
            let alg = keys.current().current().algorithm();
            if !m.accepts_client_assertion_alg(alg.as_str()) {
                return Err(format!(
                    "the client assertion would be signed with {} ([keys] algorithm), which the provider does not list in \
                     token_endpoint_auth_signing_alg_values_supported ({})",
                    alg.as_str(),
                    m.token_endpoint_auth_algorithms
                        .as_deref()
                        .unwrap_or_default()
                        .join(", "),
                ));
            }
        }
        Ok(())
    }

    /// Exchanges an authorization code at the token endpoint (RFC 6749
    /// §4.1.3) with the PKCE verifier, authenticated by
    /// `source.oidc.client_auth` (`keys` signs a `private_key_jwt`
    /// assertion). The answer is checked by [`parse_token_response`];
    /// errors never contain a token or a secret.
    pub async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        keys: Option<&KeyRing>,
    ) -> Result<TokenResponse, String> {
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            form(code),
            form(&self.login.redirect_url.to_string()),
            form(verifier),
        );
        let (status, body) = self.token_request(body, keys).await?;
        // §5.2: errors come as 400 (or 401) with a JSON body, which the
        // parser turns into `Provider(error)`.
        let parsed = parse_token_response(&body).map_err(|e| e.to_string())?;
        if status != http::StatusCode::OK {
            return Err(format!("the token endpoint answered {status}"));
        }
        Ok(parsed)
    }

    /// Refreshes a session's tokens (RFC 6749 §6, OIDC Core §12), with
    /// the same client authentication. `Refused` for an error answer
    /// (§5.2: `invalid_grant` when the grant or the user is no longer
    /// valid) or a 400/401; `Unreachable` for anything else that is not a
    /// 200 with a usable body.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        keys: Option<&KeyRing>,
    ) -> Asked<RefreshResponse> {
        let body = format!(
            "grant_type=refresh_token&refresh_token={}",
            form(refresh_token)
        );
        let (status, body) = match self.token_request(body, keys).await {
            Ok(r) => r,
            Err(e) => return Asked::Unreachable(e),
        };
        let parsed = parse_refresh_response(&body);
        match (status.as_u16(), parsed) {
            (200, Ok(r)) => Asked::Vouched(r),
            // The decision is core's (`ends_the_grant`): an error about our
            // client or the provider's health is treated as unreachable.
            (_, Err(e @ TokenResponseError::Provider(_))) if !e.ends_the_grant() => {
                Asked::Unreachable(format!("the token endpoint answered {status}: {e}"))
            }
            (_, Err(TokenResponseError::Provider(code))) => {
                Asked::Refused(format!("the token endpoint answered {status} `{code}`"))
            }
            (400 | 401, _) => Asked::Refused(format!("the token endpoint answered {status}")),
            (_, Err(e)) => Asked::Unreachable(format!("the token endpoint answered {status}: {e}")),
            (_, Ok(_)) => Asked::Unreachable(format!("the token endpoint answered {status}")),
        }
    }

    /// Asks the userinfo endpoint (OIDC Core §5.3) with a session's access
    /// token: `Vouched` when it answers for `subject` (§5.3.4), `Refused`
    /// for a 401 or 403 (the token is no longer valid, RFC 6750 §3.1) or
    /// another subject, `Unreachable` otherwise.
    pub async fn userinfo(&self, access_token: &str, subject: &str) -> Asked<()> {
        let m = match self.metadata().await {
            Ok(m) => m,
            Err(e) => return Asked::Unreachable(e),
        };
        let Some(endpoint) = m.userinfo_endpoint.as_deref() else {
            return Asked::Unreachable(
                "no refresh token, and the provider has no userinfo endpoint".into(),
            );
        };
        let Ok(url) = endpoint.parse::<http::Uri>() else {
            return Asked::Unreachable("userinfo_endpoint is not a URL".into());
        };
        let bearer = format!("Bearer {access_token}");
        let answer = tokio::time::timeout(
            TIMEOUT,
            request(
                &url,
                &self.tls,
                http::Method::GET,
                &[
                    (http::header::ACCEPT, "application/json"),
                    (http::header::AUTHORIZATION, &bearer),
                ],
                Bytes::new(),
                MAX_USERINFO_BYTES,
            ),
        )
        .await;
        let (status, body) = match answer {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Asked::Unreachable(e),
            Err(_) => return Asked::Unreachable(format!("{url}: no answer within {TIMEOUT:?}")),
        };
        match status.as_u16() {
            200 => match check_userinfo(&body, subject) {
                Ok(()) => Asked::Vouched(()),
                Err(e @ UserinfoError::WrongSubject) => Asked::Refused(e.to_string()),
                Err(e) => Asked::Unreachable(e.to_string()),
            },
            401 | 403 => Asked::Refused(format!("userinfo answered {status}")),
            _ => Asked::Unreachable(format!("userinfo answered {status}")),
        }
    }

    /// POSTs a form to the token endpoint, authenticated by
    /// `source.oidc.client_auth` (checked against the provider's
    /// discovery first): the status and the body (errors never contain a
    /// token or a secret).
    async fn token_request(
        &self,
        mut body: String,
        keys: Option<&KeyRing>,
    ) -> Result<(http::StatusCode, Vec<u8>), String> {
        let m = self.metadata().await?;
        self.check_client_auth(&m, keys)?;
        let url: http::Uri = m
            .token_endpoint
            .parse()
            .map_err(|_| "token_endpoint is not a URL".to_owned())?;
        let secret = || {
            self.login
                .client_secret
                .as_ref()
                .map(|s| s.expose())
                .ok_or_else(|| "no client secret".to_owned())
        };
        let mut authorization = None;
        match self.login.client_auth {
            ClientAuthMethod::ClientSecretBasic => {
                // RFC 6749 §2.3.1: the id and secret are form-encoded, then
                // joined with a colon and base64-encoded.
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    form(&self.login.client_id),
                    form(secret()?)
                ));
                authorization = Some(format!("Basic {basic}"));
            }
            ClientAuthMethod::ClientSecretPost => {
                body.push_str(&format!(
                    "&client_id={}&client_secret={}",
                    form(&self.login.client_id),
                    form(secret()?)
                ));
            }
            ClientAuthMethod::PrivateKeyJwt => {
                let keys = keys.ok_or("private_key_jwt needs the signing keys")?;
                let now = i64::try_from(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs(),
                )
                .unwrap_or(0);
                let claims = client_assertion_claims(
                    &self.login.client_id,
                    &m.token_endpoint,
                    now,
                    &random_jti(),
                );
                let jwt = keys
                    .current()
                    .sign(Some("JWT"), claims.to_string().as_bytes())
                    .map_err(|e| format!("the client assertion could not be signed: {e}"))?;
                // RFC 7523 §2.2; `client_id` too, which RFC 7521 §4.2 makes
                // optional and some providers (authentik) look for.
                body.push_str(&format!(
                    "&client_id={}&client_assertion_type={}&client_assertion={}",
                    form(&self.login.client_id),
                    form(JWT_BEARER_ASSERTION),
                    form(&jwt)
                ));
            }
        }
        let mut headers = vec![
            (
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            ),
            (http::header::ACCEPT, "application/json"),
        ];
        if let Some(a) = &authorization {
            headers.push((http::header::AUTHORIZATION, a));
        }
        tokio::time::timeout(
            TIMEOUT,
            request(
                &url,
                &self.tls,
                http::Method::POST,
                &headers,
                Bytes::from(body),
                MAX_TOKEN_RESPONSE_BYTES,
            ),
        )
        .await
        .map_err(|_| format!("{url}: no answer within {TIMEOUT:?}"))?
    }
}

/// `application/x-www-form-urlencoded` value encoding.
fn form(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vestibule_core::jwt::ClaimMapping;
    use vestibule_core::oidc::parse_discovery;

    const ISS: &str = "https://sso.example.com";

    fn upstream(client_auth: ClientAuthMethod) -> Upstream {
        Upstream::new(OidcLogin {
            preset: "generic",
            issuer: ISS.into(),
            discovery_url: "https://sso.example.com/.well-known/openid-configuration"
                .parse()
                .unwrap(),
            client_id: "gate".into(),
            client_auth,
            client_secret: None,
            scopes: vec!["openid".into()],
            redirect_url: "https://gate.example.com/.vestibule/oidc/callback"
                .parse()
                .unwrap(),
            post_logout_redirect_url: None,
            allowed_groups: Vec::new(),
            algorithms: vestibule_core::jwt::Algorithm::ALL.to_vec(),
            leeway_secs: 60,
            logout_token_max_age_secs: 120,
            strict_logout_tokens: false,
            ca: None,
            mapping: ClaimMapping::oidc(),
            provisioning: vestibule_core::policy::Provisioning::Approval,
            recheck_every: Duration::from_secs(300),
            recheck_grace: Duration::from_secs(900),
        })
        .unwrap()
    }

    fn metadata(methods: Option<&[&str]>) -> ProviderMetadata {
        let mut d = serde_json::json!({
            "issuer": ISS,
            "authorization_endpoint": "https://sso.example.com/auth",
            "token_endpoint": "https://sso.example.com/token",
            "jwks_uri": "https://sso.example.com/jwks",
            "response_types_supported": ["code"],
        });
        if let Some(m) = methods {
            d["token_endpoint_auth_methods_supported"] = serde_json::json!(m);
        }
        parse_discovery(d.to_string().as_bytes(), ISS).unwrap()
    }

    #[test]
    fn the_method_must_be_one_the_provider_lists() {
        let basic_only = metadata(Some(&["client_secret_basic"]));
        assert!(
            upstream(ClientAuthMethod::ClientSecretBasic)
                .check_client_auth(&basic_only, None)
                .is_ok()
        );
        let e = upstream(ClientAuthMethod::ClientSecretPost)
            .check_client_auth(&basic_only, None)
            .unwrap_err();
        // The error names ours and what the provider offers.
        assert!(
            e.contains("client_secret_post") && e.contains("it lists client_secret_basic"),
            "{e}"
        );
        // Not listed: the token endpoint decides.
        assert!(
            upstream(ClientAuthMethod::ClientSecretPost)
                .check_client_auth(&metadata(None), None)
                .is_ok()
        );
        // private_key_jwt needs the signing keys (the store).
        let listed = metadata(Some(&["private_key_jwt"]));
        let e = upstream(ClientAuthMethod::PrivateKeyJwt)
            .check_client_auth(&listed, None)
            .unwrap_err();
        assert!(e.contains("signing keys"), "{e}");
    }

    #[test]
    fn the_assertion_names_the_client_and_the_token_endpoint() {
        let c = client_assertion_claims("gate", "https://sso.example.com/token", 1_000, "j");
        assert_eq!(c["iss"], "gate");
        assert_eq!(c["sub"], "gate");
        assert_eq!(c["aud"], "https://sso.example.com/token");
        assert_eq!(c["jti"], "j");
        assert_eq!(c["iat"], 1_000);
        assert_eq!(c["exp"], 1_060);
        assert_eq!(random_jti().len(), 43);
        assert_ne!(random_jti(), random_jti());
    }
}
