//! Client authentication at the token endpoint (and, later, revocation and
//! introspection): `client_secret_basic`, `client_secret_post`, and
//! `none` for public clients (RFC 6749 §2.3, OIDC Core §9).
//!
//! A confidential client may use either secret method (Jellyfin's plugin
//! mixes them; a strict check broke it with Authelia). Using both at once is
//! ambiguous and refused (RFC 6749 §2.3: "MUST NOT use more than one
//! authentication method in each request"). The secret is compared as its
//! SHA-256 in constant time; the store and the config hold only that.

use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use subtle::ConstantTimeEq;
use vestibule_core::oidc_token::{Params, basic_client};

use std::sync::Arc;

use super::{Provider, find_client, oauth_error, sha256};
use crate::config::{ClientKind, OidcClientSettings};

/// How the client authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `Authorization: Basic` (RFC 6749 §2.3.1).
    SecretBasic,
    /// `client_id` and `client_secret` in the body (RFC 6749 §2.3.1).
    SecretPost,
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
