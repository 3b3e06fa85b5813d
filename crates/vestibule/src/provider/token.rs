//! The token endpoint (RFC 6749 §3.2, §4.1.3, §4.4, §5, §6; OIDC Core
//! §3.1.3): `POST` of a form, answered in JSON with `Cache-Control:
//! no-store`, errors included.
//!
//! - **authorization_code**: the code (looked up by its SHA-256) must be
//!   this client's, unexpired and unredeemed; `redirect_uri` identical to
//!   the authorization request's; PKCE as [`check_pkce`] says. A redeemed
//!   code presented again revokes the grant its first redemption created,
//!   with every token issued from it (RFC 6749 §4.1.2, RFC 9700 §4.5.3.1).
//! - **refresh_token**: rotation (RFC 9700 §4.14.2). A rotated token
//!   presented again within `refresh_grace` gets the same successor tokens
//!   (a lost response, parallel refreshes); later, it revokes the whole
//!   family and is logged as a security event and counted. Scopes may be
//!   narrowed, never widened (RFC 6749 §6).
//! - **client_credentials**: confidential clients with that grant only; no
//!   ID token, no refresh token (RFC 6749 §4.4.3).
//!
//! ## When a refresh token is issued
//!
//! With a code exchange, when the client has the `refresh_token` grant
//! **and** the granted scopes include `offline_access` (OIDC Core §11).
//! Apps that want one (Grafana's `use_refresh_token`, Vaultwarden) ask for
//! `offline_access`; the default client scopes allow it.
//!
//! Every access token and refresh token is 256 random bits (opaque access
//! tokens) or a signed JWT (RFC 9068), stored as its SHA-256 so userinfo,
//! revocation and replay detection see both kinds the same way.

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use vestibule_core::oidc_provider::verifier_matches;
use vestibule_core::oidc_token::{Params, narrow_scope, parse_scope};
use vestibule_store::Account;
use vestibule_store::provider::{
    CodeExchange, CodeTokens, NewToken, OidcGrant, RefreshOutcome, Rotation,
};

use super::id_token::{self, IdToken};
use super::{Provider, account_allowed, oauth_error, random_token, secs, sha256};
use crate::accounts::now_ms;
use crate::config::{AccessTokenFormat, ClientKind, GrantType, OidcClientSettings};
use crate::state::AppState;

/// Prefix of opaque access tokens (secret scanners spot it).
pub const ACCESS_PREFIX: &str = "vat_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "vrt_";

pub(super) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(super) fn bad_request(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

pub(super) fn invalid_grant(description: &str) -> Response {
    bad_request("invalid_grant", description)
}

pub(super) fn server_error(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "token endpoint failed");
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        "the provider could not complete the request",
    )
}

/// `POST /.vestibule/oidc/token`.
pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let super::ClientRequest {
        provider: p,
        params,
        client,
        ..
    } = match super::client_request(&state, &headers, &body).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    // The client's ID token and JWT access token algorithm has a key
    // family, made now if none was opened for it at start (a client of
    // the store, or added by `vestibule clients` while this runs).
    if let Err(e) = p.keys.ensure_family(client.id_token_alg.jose()).await {
        return server_error(e);
    }
    let allowed = |g: GrantType| client.grants.contains(&g);
    match params.get("grant_type") {
        None => bad_request("invalid_request", "grant_type is missing"),
        Some("authorization_code") if allowed(GrantType::AuthorizationCode) => {
            authorization_code(&p, &client, &params).await
        }
        Some("refresh_token") if allowed(GrantType::RefreshToken) => {
            refresh(&state, &p, &client, &params).await
        }
        Some("client_credentials")
            if allowed(GrantType::ClientCredentials) && client.kind == ClientKind::Confidential =>
        {
            client_credentials(&p, &client, &params).await
        }
        // RFC 8628 §3.4.
        Some(super::device::DEVICE_CODE_GRANT) if allowed(GrantType::DeviceCode) => {
            super::device::token(&p, &client, &params).await
        }
        Some(
            "authorization_code"
            | "refresh_token"
            | "client_credentials"
            | super::device::DEVICE_CODE_GRANT,
        ) => bad_request(
            "unauthorized_client",
            "this client may not use this grant type",
        ),
        Some(_) => bad_request(
            "unsupported_grant_type",
            "grant types: authorization_code, refresh_token, client_credentials, \
             urn:ietf:params:oauth:grant-type:device_code",
        ),
    }
}

/// Why a PKCE check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceRefusal {
    /// The code has a challenge and no verifier came (RFC 7636 §4.5).
    MissingVerifier,
    /// The verifier does not answer the challenge (RFC 7636 §4.6).
    WrongVerifier,
    /// A verifier came for a code without a challenge: a PKCE downgrade
    /// (RFC 9700 §2.1.1, "authorization servers MUST ensure that if there
    /// was no code_challenge in the authorization request ..., a request
    /// to the token endpoint containing a code_verifier is rejected").
    VerifierWithoutChallenge,
    /// The client must use PKCE and the code has no challenge.
    Required,
}

/// The PKCE rule at the token endpoint: a code with a challenge always
/// needs its verifier; a verifier without a challenge is refused.
pub fn check_pkce(
    challenge: Option<&str>,
    verifier: Option<&str>,
    required: bool,
) -> Result<(), PkceRefusal> {
    match (challenge, verifier) {
        (Some(_), None) => Err(PkceRefusal::MissingVerifier),
        (Some(c), Some(v)) if verifier_matches(v, c) => Ok(()),
        (Some(_), Some(_)) => Err(PkceRefusal::WrongVerifier),
        (None, Some(_)) => Err(PkceRefusal::VerifierWithoutChallenge),
        (None, None) if required => Err(PkceRefusal::Required),
        (None, None) => Ok(()),
    }
}

/// An access token just made: its value, and what the store keeps.
pub(super) struct Access {
    pub(super) value: String,
    pub(super) stored: NewToken,
}

/// Makes an access token for `client`: opaque, or a JWT (RFC 9068).
#[allow(clippy::too_many_arguments)]
pub(super) fn new_access_token(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    subject: &str,
    scope: &str,
    auth_time_ms: Option<i64>,
    now: i64,
) -> Result<Access, String> {
    let expires_at = now + ms(client.access_token_lifetime);
    let value = match client.access_token_format {
        AccessTokenFormat::Opaque => random_token(ACCESS_PREFIX),
        AccessTokenFormat::Jwt => id_token::mint_access_token(
            p.keys,
            client.id_token_alg.jose(),
            &p.settings.issuer,
            subject,
            &client.client_id,
            scope,
            auth_time_ms,
            secs(now),
            client.access_token_lifetime,
        )?,
    };
    let stored = NewToken {
        token_hash: sha256(&value),
        expires_at,
    };
    Ok(Access { value, stored })
}

/// What the token response says.
pub(super) struct Issued<'a> {
    pub(super) access: &'a str,
    pub(super) expires_at: i64,
    pub(super) refresh: Option<&'a str>,
    pub(super) id_token: Option<String>,
    pub(super) scope: &'a str,
}

pub(super) fn respond(i: &Issued<'_>, now: i64) -> Response {
    let mut body = json!({
        "access_token": i.access,
        "token_type": "Bearer",
        "expires_in": secs(i.expires_at - now).max(0),
        "scope": i.scope,
    });
    if let Some(r) = i.refresh {
        body["refresh_token"] = r.into();
    }
    if let Some(t) = &i.id_token {
        body["id_token"] = t.as_str().into();
    }
    super::no_store_json(StatusCode::OK, &body)
}

/// The account a grant is for, if it may still get tokens for `client`.
pub(super) async fn allowed_account(
    p: &Provider<'_>,
    account_id: i64,
    client: &OidcClientSettings,
) -> Result<Option<Account>, Response> {
    match p.store.account(account_id).await {
        Ok(Some(a)) if account_allowed(&a, client) => Ok(Some(a)),
        Ok(_) => Ok(None),
        Err(e) => Err(server_error(e)),
    }
}

/// RFC 6749 §4.1.3.
async fn authorization_code(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    params: &Params,
) -> Response {
    let (Some(code), Some(redirect_uri)) = (params.get("code"), params.get("redirect_uri")) else {
        return bad_request("invalid_request", "code and redirect_uri are required");
    };
    let code_hash = sha256(code);
    let now = now_ms();
    let stored = match p.store.authorization_code(&code_hash).await {
        Ok(Some(c)) => c,
        Ok(None) => return invalid_grant("unknown authorization code"),
        Err(e) => return server_error(e),
    };
    let c = &stored.code;
    if stored.redeemed_at.is_some() {
        // Presented again, by whoever: the exchange revokes what the first
        // redemption issued (it stores none of the tokens passed here).
        let unused = CodeTokens {
            access: NewToken {
                token_hash: sha256(&random_token("")),
                expires_at: now,
            },
            refresh: None,
        };
        return match p
            .store
            .exchange_code(&code_hash, &client.client_id, now, &unused)
            .await
        {
            Ok(CodeExchange::Replayed { revoked_grant }) => {
                replay_logged(p, client, c.account_id, revoked_grant).await
            }
            Ok(_) => invalid_grant("invalid authorization code"),
            Err(e) => server_error(e),
        };
    }
    {
        // Checks that do not consume the code: a mistaken request leaves
        // it for the right one.
        if c.client_id != client.client_id {
            return invalid_grant("the code was issued to another client");
        }
        if now >= c.expires_at {
            return invalid_grant("the code has expired");
        }
        // RFC 6749 §4.1.3: "identical"; no loopback port leeway here, the
        // request's own URI was stored.
        if c.redirect_uri != redirect_uri {
            return invalid_grant("redirect_uri differs from the authorization request's");
        }
        if let Err(why) = check_pkce(
            c.code_challenge.as_deref(),
            params.get("code_verifier"),
            client.require_pkce,
        ) {
            return invalid_grant(match why {
                PkceRefusal::MissingVerifier => "code_verifier is required",
                PkceRefusal::WrongVerifier => "code_verifier does not match the code_challenge",
                PkceRefusal::VerifierWithoutChallenge => {
                    "code_verifier sent for a code issued without code_challenge"
                }
                PkceRefusal::Required => "this client must use PKCE",
            });
        }
    }
    let account = match allowed_account(p, c.account_id, client).await {
        Ok(Some(a)) => a,
        Ok(None) => return invalid_grant("the account may not sign in to this client"),
        Err(r) => return r,
    };
    let minted = match mint_tokens(p, client, &account, &c.scopes, c.auth_time, now) {
        Ok(m) => m,
        Err(e) => return server_error(e),
    };
    let exchanged = match p
        .store
        .exchange_code(&code_hash, &client.client_id, now, &minted.stored)
        .await
    {
        Ok(x) => x,
        Err(e) => return server_error(e),
    };
    let code = match exchanged {
        CodeExchange::Issued { code, .. } => code,
        // Another request redeemed it between the lookup and now.
        CodeExchange::Replayed { revoked_grant } => {
            return replay_logged(p, client, c.account_id, revoked_grant).await;
        }
        CodeExchange::Invalid => return invalid_grant("invalid authorization code"),
    };
    minted.respond(
        p,
        client,
        &account,
        &IdTokenContext {
            nonce: code.nonce.as_deref(),
            auth_time: code.auth_time,
            session_ref: code.session_ref.as_deref(),
            amr: &code.amr,
        },
        now,
    )
}

/// Tokens minted for a grant about to be stored (a code exchange, a
/// device code redemption): the access token, the refresh token when the
/// client has the `refresh_token` grant and `offline_access` was granted
/// (OIDC Core §11), and what the store keeps of them. The ID token is
/// minted by [`Minted::respond`] once the store has taken the grant.
pub(super) struct Minted {
    access: Access,
    refresh: Option<String>,
    scope: String,
    scopes: BTreeSet<String>,
    /// What the store keeps: digests and expiries.
    pub(super) stored: CodeTokens,
}

/// What the ID token of a new grant says besides the account.
pub(super) struct IdTokenContext<'a> {
    pub(super) nonce: Option<&'a str>,
    pub(super) auth_time: i64,
    pub(super) session_ref: Option<&'a str>,
    pub(super) amr: &'a [String],
}

/// The access token and refresh family of a new grant for `account` at
/// `client`, of `scope`, authenticated at `auth_time` (the refresh
/// family's absolute lifetime counts from then).
pub(super) fn mint_tokens(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    account: &Account,
    scope: &str,
    auth_time: i64,
    now: i64,
) -> Result<Minted, String> {
    let scopes = parse_scope(scope).unwrap_or_default();
    let subject = id_token::subject(account.id);
    let access = new_access_token(p, client, &subject, scope, Some(auth_time), now)?;
    let refresh = (client.grants.contains(&GrantType::RefreshToken)
        && scopes.contains("offline_access"))
    .then(|| random_token(REFRESH_PREFIX));
    let family_expires_at = auth_time.saturating_add(ms(client.refresh_token_absolute));
    let stored = CodeTokens {
        access: access.stored,
        refresh: refresh.as_ref().map(|r| {
            (
                NewToken {
                    token_hash: sha256(r),
                    expires_at: (now + ms(client.refresh_token_idle)).min(family_expires_at),
                },
                family_expires_at,
            )
        }),
    };
    Ok(Minted {
        access,
        refresh,
        scope: scope.to_owned(),
        scopes,
        stored,
    })
}

impl Minted {
    /// The token response of a grant the store has taken: with an ID
    /// token when `openid` was granted (OIDC Core §3.1.3.3).
    pub(super) fn respond(
        &self,
        p: &Provider<'_>,
        client: &OidcClientSettings,
        account: &Account,
        ctx: &IdTokenContext<'_>,
        now: i64,
    ) -> Response {
        let id_token = if self.scopes.contains("openid") {
            let t = IdToken {
                issuer: &p.settings.issuer,
                client_id: &client.client_id,
                alg: client.id_token_alg.jose(),
                account,
                scopes: &self.scopes,
                nonce: ctx.nonce,
                auth_time_ms: ctx.auth_time,
                session_ref: ctx.session_ref,
                amr: ctx.amr,
                access_token: &self.access.value,
                now: secs(now),
                lifetime: p.settings.id_token_lifetime,
            };
            match id_token::mint(p.keys, &t) {
                Ok(t) => Some(t),
                Err(e) => return server_error(e),
            }
        } else {
            None
        };
        respond(
            &Issued {
                access: &self.access.value,
                expires_at: self.access.stored.expires_at,
                refresh: self.refresh.as_deref(),
                id_token,
                scope: &self.scope,
            },
            now,
        )
    }
}

/// A replayed code: logged and audited as a security event,
/// `invalid_grant`.
async fn replay_logged(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    account_id: i64,
    revoked_grant: Option<i64>,
) -> Response {
    tracing::warn!(
        security_event = "code_replay",
        client_id = %client.client_id,
        account_id,
        revoked_grant,
        "authorization code presented again: the grant it created is revoked"
    );
    audit_security(
        p,
        "oidc.code-replay",
        client,
        account_id,
        format!("grant {revoked_grant:?} revoked"),
    )
    .await;
    invalid_grant("the code was already used")
}

/// Appends a security event to the audit log (actor: the client; subject:
/// the account). A failure to write it is logged, never a reason to answer
/// differently.
async fn audit_security(
    p: &Provider<'_>,
    action: &str,
    client: &OidcClientSettings,
    account_id: i64,
    detail: String,
) {
    let e = vestibule_store::AuditEntry::new(
        now_ms(),
        format!("client:{}", client.client_id),
        action,
        format!("account:{account_id}"),
    )
    .with_outcome("denied")
    .with_detail(detail);
    if let Err(err) = p.store.append_audit(&e).await {
        tracing::warn!(error = %err, action, "could not write the audit entry");
    }
}

/// The successor tokens of a rotation, sealed for a grace retry.
#[derive(Serialize, Deserialize)]
struct Successors {
    refresh: String,
    access: String,
    access_expires_at: i64,
    scope: String,
}

/// The AEAD key for the successors of the refresh token `presented`:
/// HKDF-SHA256 of the token under a label of its own (so it is unrelated
/// to the SHA-256 the store keys the row by). Only a holder of the token
/// can open what the store keeps.
fn successor_key(presented: &str) -> LessSafeKey {
    let prk =
        hkdf::Salt::new(hkdf::HKDF_SHA256, b"vestibule oidc refresh").extract(presented.as_bytes());
    let info: &[&[u8]] = &[b"successor tokens"];
    // Expanding 32 bytes from SHA-256 cannot fail (at most 255 blocks).
    let okm = prk
        .expand(info, &AES_256_GCM)
        .unwrap_or_else(|_| unreachable!("HKDF output of one AES key"));
    LessSafeKey::new(UnboundKey::from(okm))
}

fn seal(presented: &str, s: &Successors) -> Result<Vec<u8>, String> {
    let key = successor_key(presented);
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut buf = serde_json::to_vec(s).map_err(|e| e.to_string())?;
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
        .map_err(|_| "cannot seal the successor tokens".to_owned())?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

fn open(presented: &str, sealed: &[u8]) -> Option<Successors> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = ct.to_vec();
    let plain = successor_key(presented)
        .open_in_place(nonce, Aad::empty(), &mut buf)
        .ok()?;
    serde_json::from_slice(plain).ok()
}

/// RFC 6749 §6 with rotation (RFC 9700 §4.14.2).
async fn refresh(
    state: &AppState,
    p: &Provider<'_>,
    client: &OidcClientSettings,
    params: &Params,
) -> Response {
    let Some(presented) = params.get("refresh_token") else {
        return bad_request("invalid_request", "refresh_token is required");
    };
    let hash = sha256(presented);
    let now = now_ms();
    let record = match p.store.refresh_token(&hash).await {
        Ok(Some(r)) if r.grant.client_id == client.client_id => r,
        Ok(_) => return invalid_grant("unknown refresh token"),
        Err(e) => return server_error(e),
    };
    let scope = match narrow_scope(&record.grant.scopes, params.get("scope")) {
        Ok(s) => s,
        Err(_) => {
            return bad_request(
                "invalid_scope",
                "the scope must be within the scopes granted",
            );
        }
    };
    // Every refresh re-checks the account (oauth2-proxy #1354).
    let account = match allowed_account(p, record.grant.account_id, client).await {
        Ok(Some(a)) => a,
        Ok(None) => return invalid_grant("the account may not sign in to this client"),
        Err(r) => return r,
    };
    // SSO freshness bounds refresh tokens as it bounds device credentials
    // (`max_sso_age`): an account nobody has seen through the front for
    // that long gets no new tokens, whatever the refresh lifetimes say.
    if let Some(max) = p.settings.max_sso_age {
        let last_seen = state
            .accounts()
            .and_then(|a| a.last_sighting(account.id))
            .unwrap_or(0)
            .max(account.last_seen_at);
        let max_ms = i64::try_from(max.as_millis()).unwrap_or(i64::MAX);
        if !vestibule_core::credential::sso_fresh(last_seen, Some(max_ms), now) {
            tracing::info!(
                client = %client.client_id,
                account = account.id,
                "refresh refused: the account has not signed in through SSO within max_sso_age"
            );
            return invalid_grant("the account has not signed in recently enough");
        }
    }
    let subject = id_token::subject(account.id);
    let access = match new_access_token(
        p,
        client,
        &subject,
        &scope,
        Some(record.grant.auth_time),
        now,
    ) {
        Ok(a) => a,
        Err(e) => return server_error(e),
    };
    let successor = random_token(REFRESH_PREFIX);
    let sealed = match seal(
        presented,
        &Successors {
            refresh: successor.clone(),
            access: access.value.clone(),
            access_expires_at: access.stored.expires_at,
            scope: scope.clone(),
        },
    ) {
        Ok(s) => s,
        Err(e) => return server_error(e),
    };
    let rotation = Rotation {
        refresh: NewToken {
            token_hash: sha256(&successor),
            expires_at: now + ms(client.refresh_token_idle),
        },
        access: access.stored,
        sealed,
        grace_ms: ms(p.settings.refresh_grace),
        access_scopes: (scope != record.grant.scopes).then(|| scope.clone()),
    };
    let outcome = match p
        .store
        .rotate_refresh(&hash, &client.client_id, now, &rotation)
        .await
    {
        Ok(o) => o,
        Err(e) => return server_error(e),
    };
    let (grant, tokens) = match outcome {
        RefreshOutcome::Rotated { grant, .. } => (
            grant,
            Successors {
                refresh: successor,
                access: access.value,
                access_expires_at: access.stored.expires_at,
                scope,
            },
        ),
        RefreshOutcome::GraceRetry { grant, sealed } => match open(presented, &sealed) {
            Some(s) => (grant, s),
            None => return server_error("a sealed successor does not open"),
        },
        RefreshOutcome::Reused { family_id, grant } => {
            state.metrics.oidc_refresh_reuse.inc();
            tracing::warn!(
                security_event = "refresh_token_reuse",
                client_id = %client.client_id,
                account_id = grant.account_id,
                grant_id = grant.id,
                family_id,
                "refresh token reuse: a rotated refresh token came back after the grace window; its family is revoked"
            );
            audit_security(
                p,
                "oidc.refresh-reuse",
                client,
                grant.account_id,
                format!("refresh family {family_id} of grant {} revoked", grant.id),
            )
            .await;
            return invalid_grant("the refresh token was already used");
        }
        RefreshOutcome::Invalid => return invalid_grant("invalid refresh token"),
    };
    let id_token = match refreshed_id_token(p, client, &grant, &account, &tokens, now) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    respond(
        &Issued {
            access: &tokens.access,
            expires_at: tokens.access_expires_at,
            refresh: Some(&tokens.refresh),
            id_token,
            scope: &tokens.scope,
        },
        now,
    )
}

/// A refreshed ID token (OIDC Core §12.2): the same `iss`, `sub`, `aud`,
/// `auth_time` and `sid`, no `nonce`; only when `openid` is in scope.
fn refreshed_id_token(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    grant: &OidcGrant,
    account: &Account,
    tokens: &Successors,
    now: i64,
) -> Result<Option<String>, String> {
    let scopes: BTreeSet<String> = parse_scope(&tokens.scope).unwrap_or_default();
    if !scopes.contains("openid") {
        return Ok(None);
    }
    let t = IdToken {
        issuer: &p.settings.issuer,
        client_id: &client.client_id,
        alg: client.id_token_alg.jose(),
        account,
        scopes: &scopes,
        nonce: None,
        auth_time_ms: grant.auth_time,
        session_ref: grant.session_ref.as_deref(),
        amr: &[],
        access_token: &tokens.access,
        now: secs(now),
        lifetime: p.settings.id_token_lifetime,
    };
    id_token::mint(p.keys, &t).map(Some)
}

/// Scopes that concern a user, which a token without one cannot carry.
const USER_SCOPES: &[&str] = &["openid", "offline_access", "profile", "email", "groups"];

/// RFC 6749 §4.4: a token for the client itself.
async fn client_credentials(
    p: &Provider<'_>,
    client: &OidcClientSettings,
    params: &Params,
) -> Response {
    let allowed: BTreeSet<String> = client
        .scopes
        .iter()
        .filter(|s| !USER_SCOPES.contains(&s.as_str()))
        .cloned()
        .collect();
    let scope = match params.get("scope") {
        None => vestibule_core::oidc_token::scope_string(&allowed),
        Some(asked) => match parse_scope(asked) {
            Ok(asked) if asked.is_subset(&allowed) => {
                vestibule_core::oidc_token::scope_string(&asked)
            }
            _ => {
                return bad_request(
                    "invalid_scope",
                    "client_credentials gets only the client's own (non-user) scopes",
                );
            }
        },
    };
    let now = now_ms();
    let access = match new_access_token(p, client, &client.client_id, &scope, None, now) {
        Ok(a) => a,
        Err(e) => return server_error(e),
    };
    if let Err(e) = p
        .store
        .create_client_access_token(&client.client_id, &scope, &access.stored, now)
        .await
    {
        return server_error(e);
    }
    respond(
        &Issued {
            access: &access.value,
            expires_at: access.stored.expires_at,
            refresh: None,
            id_token: None,
            scope: &scope,
        },
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_at_the_token_endpoint() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_pkce(Some(c), Some(v), true), Ok(()));
        assert_eq!(check_pkce(Some(c), Some(v), false), Ok(()));
        assert_eq!(
            check_pkce(Some(c), None, false),
            Err(PkceRefusal::MissingVerifier)
        );
        assert_eq!(
            check_pkce(Some(c), Some(c), false),
            Err(PkceRefusal::WrongVerifier)
        );
        assert_eq!(
            check_pkce(None, Some(v), false),
            Err(PkceRefusal::VerifierWithoutChallenge)
        );
        assert_eq!(check_pkce(None, None, true), Err(PkceRefusal::Required));
        assert_eq!(check_pkce(None, None, false), Ok(()));
    }

    #[test]
    fn successors_open_only_with_the_presented_token() {
        let s = Successors {
            refresh: "r".into(),
            access: "a".into(),
            access_expires_at: 5,
            scope: "openid".into(),
        };
        let sealed = seal("vrt_one", &s).unwrap();
        let opened = open("vrt_one", &sealed).unwrap();
        assert_eq!((opened.refresh, opened.access), ("r".into(), "a".into()));
        assert!(open("vrt_two", &sealed).is_none());
        assert!(open("vrt_one", &sealed[..5]).is_none());
        assert!(!sealed.windows(2).any(|w| w == b"r\""));
    }
}
