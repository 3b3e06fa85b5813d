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
//! - The code is exchanged with `client_secret_basic` (RFC 6749 §2.3.1,
//!   OIDC Core §9), the PKCE verifier with it (RFC 7636 §4.5).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use vestibule_core::jwt::{Jwks, JwtError};
use vestibule_core::oidc::{
    MAX_DISCOVERY_BYTES, MAX_TOKEN_RESPONSE_BYTES, MAX_USERINFO_BYTES, OidcTokenError,
    ProviderMetadata, RefreshResponse, TokenResponse, TokenResponseError, UserinfoError,
    check_userinfo, parse_discovery, parse_refresh_response, parse_token_response,
};

use crate::config::OidcLogin;
use crate::identity::jwks::request;

/// How long a discovery document is used before it is fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(3600);
/// The shortest time between two key fetches caused by unknown key ids.
pub const MIN_REFETCH: Duration = Duration::from_secs(10);
/// Time allowed for one request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWK Set read.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// What the provider said to a re-check of a session.
#[derive(Debug)]
pub enum Asked<T> {
    /// It vouched for the session.
    Vouched(T),
    /// It refused (RFC 6749 §5.2 `invalid_grant`, a 400 or 401, an answer
    /// for another subject): the session must end now.
    Refused(String),
    /// It could not be reached or gave no usable answer (a timeout, a 5xx,
    /// a malformed body): the session may live on within the grace.
    Unreachable(String),
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
    /// have (rotation, OIDC Core §10.1.1).
    pub async fn verify_with_keys<T>(
        &self,
        check: impl Fn(&Jwks) -> Result<T, OidcTokenError>,
    ) -> Result<T, String> {
        let keys = self.keys().await?;
        match check(&keys) {
            Err(OidcTokenError::Jwt(JwtError::UnknownKey { kid: Some(_) })) => {
                match self.refetch_keys().await {
                    Some(keys) => check(&keys),
                    None => Err(OidcTokenError::Jwt(JwtError::UnknownKey { kid: None })),
                }
            }
            other => other,
        }
        .map_err(|e| e.to_string())
    }

    /// Exchanges an authorization code at the token endpoint (RFC 6749
    /// §4.1.3) with the PKCE verifier, authenticated with
    /// `client_secret_basic`. The answer is checked by
    /// [`parse_token_response`]; errors never contain a token.
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<TokenResponse, String> {
        let body = format!(
            "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={}",
            form(code),
            form(&self.login.redirect_url.to_string()),
            form(verifier),
        );
        let (status, body) = self.token_request(body).await?;
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
    pub async fn refresh(&self, refresh_token: &str) -> Asked<RefreshResponse> {
        let body = format!(
            "grant_type=refresh_token&refresh_token={}",
            form(refresh_token)
        );
        let (status, body) = match self.token_request(body).await {
            Ok(r) => r,
            Err(e) => return Asked::Unreachable(e),
        };
        let parsed = parse_refresh_response(&body);
        match (status.as_u16(), parsed) {
            (200, Ok(r)) => Asked::Vouched(r),
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

    /// POSTs a form to the token endpoint with `client_secret_basic`:
    /// the status and the body (errors never contain a token).
    async fn token_request(&self, body: String) -> Result<(http::StatusCode, Vec<u8>), String> {
        let m = self.metadata().await?;
        let url: http::Uri = m
            .token_endpoint
            .parse()
            .map_err(|_| "token_endpoint is not a URL".to_owned())?;
        // RFC 6749 §2.3.1: the id and secret are form-encoded, then joined
        // with a colon and base64-encoded.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form(&self.login.client_id),
            form(self.login.client_secret.expose())
        ));
        let authorization = format!("Basic {basic}");
        tokio::time::timeout(
            TIMEOUT,
            request(
                &url,
                &self.tls,
                http::Method::POST,
                &[
                    (
                        http::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    ),
                    (http::header::ACCEPT, "application/json"),
                    (http::header::AUTHORIZATION, &authorization),
                ],
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
