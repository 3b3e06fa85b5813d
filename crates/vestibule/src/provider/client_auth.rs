//! Client authentication at the token endpoint (and, later, revocation and
//! introspection): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` for clients registered with a `jwks_uri`, and `none`
//! for public clients (RFC 6749 §2.3, OIDC Core §9).
//!
//! `private_key_jwt` (RFC 7523 §2.2): `client_assertion_type` is the JWT
//! bearer type and `client_assertion` a JWT the client signed with a key
//! of its JWK Set; `client_id`, when sent, must be the assertion's `sub`
//! (RFC 7521 §4.2). The rules are vestibule-core's
//! ([`vestibule_core::oidc::verify_client_assertion`]): `iss` = `sub` =
//! the client, `aud` this provider's issuer or token endpoint URL and
//! nothing else, `exp` within [`MAX_ASSERTION_LIFETIME`], a `jti` used
//! once ([`super::client_keys`]). A client with a `jwks_uri` has no secret,
//! so a secret it sends is refused like a wrong one; a client with a
//! secret has no keys, so an assertion it sends is refused.
//!
//! A confidential client may use either secret method (Jellyfin's plugin
//! mixes them; a strict check broke it with Authelia). Using both at once is
//! ambiguous and refused (RFC 6749 §2.3: "MUST NOT use more than one
//! authentication method in each request"). The secret is compared as its
//! SHA-256 in constant time; the store and the config hold only that.

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;
use vestibule_core::jwt::JwtError;
use vestibule_core::oidc::{
    ClientAssertionExpectations, JWT_BEARER_ASSERTION, OidcTokenError, unverified_assertion_client,
    verify_client_assertion,
};
use vestibule_core::oidc_token::{Params, basic_client};

use std::sync::Arc;

use super::client_keys::Use;
use super::{Provider, TOKEN_PATH, find_client, issuer_origin, oauth_error, sha256};

/// The longest a client assertion may live from now (`exp - now`): long
/// enough for a client's clock skew, short enough that remembering its
/// `jti` costs little.
pub const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Clock skew allowed on an assertion's `exp`, `nbf` and `iat`, seconds.
const ASSERTION_LEEWAY: i64 = 60;
/// The longest client assertion read.
const MAX_ASSERTION_BYTES: usize = 8 * 1024;
use crate::config::{ClientKind, OidcClientSettings};

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    SecretBasic,
    /// `client_id` and `client_secret` in the body (RFC 6749 §2.3.1).
    SecretPost,
    /// A JWT signed with one of the client's keys (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A public client naming itself (RFC 6749 §2.1, §3.2.1).
    None,
}

/// Why a client is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The request is ambiguous (two methods, two client ids): 400
    /// `invalid_request`.
    InvalidRequest(&'static str),
    /// Unknown client, wrong or missing secret, a secret from a public
    /// client: 401 `invalid_client`, with `WWW-Authenticate: Basic` when
    /// the client tried Basic (RFC 6749 §5.2).
    InvalidClient {
        /// The client sent an `Authorization` header.
        basic_tried: bool,
    },
    /// The store could not be read to find the client: 503, nothing
    /// decided (RFC 6749 §5.2 has no code for it; `temporarily_unavailable`
    /// is §4.1.2.1's).
    Unavailable,
}

impl AuthError {
    /// The RFC 6749 §5.2 response.
    pub fn response(&self) -> Response {
        match self {
            Self::InvalidRequest(why) => {
                oauth_error(StatusCode::BAD_REQUEST, "invalid_request", why)
            }
            Self::InvalidClient { basic_tried } => {
                let mut resp = oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication failed",
                );
                if *basic_tried {
                    resp.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"vestibule\", charset=\"UTF-8\""),
                    );
                }
                resp
            }
            Self::Unavailable => oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the client registry cannot be read; try again",
            ),
        }
    }
}

/// Authenticates the client of a token-endpoint request: its
/// registration, and how it proved it.
pub(crate) async fn authenticate(
    p: &Provider<'_>,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Arc<OidcClientSettings>, Method), AuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        return Err(AuthError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    if params.has("client_assertion") || params.has("client_assertion_type") {
        // RFC 6749 §2.3: one method per request.
        if first.is_some() || params.has("client_secret") {
            return Err(AuthError::InvalidRequest(
                "a client assertion and a client secret in one request (RFC 6749 §2.3)",
            ));
        }
        return assertion(p, params).await;
    }
    let (client_id, secret, method) = match first {
        Some(value) => {
            // Anything in Authorization is an attempt at Basic: a value we
            // cannot read is a failed authentication, never ignored.
            let Some(basic) = basic_client(value.as_bytes()) else {
                return Err(AuthError::InvalidClient { basic_tried: true });
            };
            if params.has("client_secret") {
                return Err(AuthError::InvalidRequest(
                    "client_secret_basic and client_secret_post in one request (RFC 6749 §2.3)",
                ));
            }
            if params
                .get("client_id")
                .is_some_and(|id| id != basic.client_id)
            {
                return Err(AuthError::InvalidRequest(
                    "client_id differs from the Basic credentials",
                ));
            }
            (basic.client_id, Some(basic.secret), Method::SecretBasic)
        }
        None => {
            let Some(id) = params.get("client_id") else {
                return Err(AuthError::InvalidClient { basic_tried: false });
            };
            match params.get("client_secret") {
                Some(secret) => (id.to_owned(), Some(secret.to_owned()), Method::SecretPost),
                None => (id.to_owned(), None, Method::None),
            }
        }
    };
    let basic_tried = method == Method::SecretBasic;
    let refused = AuthError::InvalidClient { basic_tried };
    // Hashed before the lookup, so an unknown client costs what a known
    // one does.
    let presented = secret.as_deref().map(sha256);
    let client = match find_client(p, &client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(refused),
        Err(e) => {
            tracing::error!(error = %e, "client authentication: the store failed");
            return Err(AuthError::Unavailable);
        }
    };
    match (client.kind, presented, client.secret_hash) {
        (ClientKind::Confidential, Some(presented), Some(expected))
            if bool::from(presented.ct_eq(&expected)) =>
        {
            Ok((client, method))
        }
        // A public client has no secret; one that sends a secret (or a
        // Basic header) is refused rather than half-trusted.
        (ClientKind::Public, None, _) => Ok((client, method)),
        _ => Err(refused),
    }
}

/// `private_key_jwt` (see the module documentation).
async fn assertion(
    p: &Provider<'_>,
    params: &Params,
) -> Result<(Arc<OidcClientSettings>, Method), AuthError> {
    let refused = AuthError::InvalidClient { basic_tried: false };
    // RFC 7521 §4.2: the type says how to read the assertion; another
    // type is not one this provider reads.
    if params.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
        return Err(refused);
    }
    let Some(token) = params.get("client_assertion") else {
        return Err(AuthError::InvalidRequest("client_assertion is missing"));
    };
    let Some(claimed) = unverified_assertion_client(token, MAX_ASSERTION_BYTES) else {
        return Err(refused);
    };
    // §4.2: `client_id` is optional; when present it names the same client.
    if params.get("client_id").is_some_and(|id| id != claimed) {
        return Err(refused);
    }
    let client = match find_client(p, &claimed).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(refused),
        Err(e) => {
            tracing::error!(error = %e, "client authentication: the store failed");
            return Err(AuthError::Unavailable);
        }
    };
    let (ClientKind::Confidential, Some(jwks_uri)) = (client.kind, client.jwks_uri.as_deref())
    else {
        return Err(refused);
    };
    let issuer = p.settings.issuer.clone();
    let audiences = [
        issuer.clone(),
        format!("{}{TOKEN_PATH}", issuer_origin(&issuer)),
    ];
    let now = crate::accounts::now_ms() / 1000;
    let expect = ClientAssertionExpectations {
        client_id: &client.client_id,
        audiences: &audiences,
        algorithms: &vestibule_jose::Algorithm::ALL,
        now,
        leeway: ASSERTION_LEEWAY,
        max_lifetime: MAX_ASSERTION_LIFETIME,
        max_token_bytes: MAX_ASSERTION_BYTES,
    };
    let keys = &p.clients.assertions;
    let jwks = keys.keys(jwks_uri).await.map_err(|e| {
        tracing::warn!(client_id = %client.client_id, error = %e, "a client's keys could not be fetched");
        AuthError::InvalidClient { basic_tried: false }
    })?;
    let verified = match verify_client_assertion(token, &jwks, &expect) {
        Err(OidcTokenError::Jwt(JwtError::UnknownKey { kid: Some(_) })) => {
            match keys.refetch(jwks_uri).await {
                Some(jwks) => verify_client_assertion(token, &jwks, &expect),
                None => Err(OidcTokenError::Jwt(JwtError::UnknownKey { kid: None })),
            }
        }
        other => other,
    };
    let verified = verified.map_err(|e| {
        tracing::info!(client_id = %client.client_id, error = %e, "a client assertion was refused");
        AuthError::InvalidClient { basic_tried: false }
    })?;
    // This instance's memory first (a replay here costs no write), then
    // the database, shared by every instance: accepted once among all.
    let first = match keys.first_use(
        &client.client_id,
        &verified.token_id,
        verified.replay_until,
        now,
    ) {
        Use::First => p
            .store
            .remember_client_assertion(
                &client.client_id,
                &verified.token_id,
                verified.replay_until,
                now,
            )
            .await
            .map(|first| if first { Use::First } else { Use::Replay })
            .map_err(|e| {
                tracing::error!(error = %e, "client authentication: the store failed");
                AuthError::Unavailable
            })?,
        other => other,
    };
    match first {
        Use::First => Ok((client, Method::PrivateKeyJwt)),
        Use::Replay => {
            tracing::warn!(client_id = %client.client_id, "a client assertion was used twice (RFC 7523 §3 item 7)");
            Err(AuthError::InvalidClient { basic_tried: false })
        }
        Use::Full => {
            tracing::error!(
                "too many client assertions remembered; refusing new ones until some expire"
            );
            Err(AuthError::Unavailable)
        }
    }
}
