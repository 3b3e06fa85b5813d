//! RP-initiated logout at vestibule's provider (OpenID Connect
//! RP-Initiated Logout 1.0): reading the end-session request and deciding
//! where the browser may go afterwards. Pure rules; the caller verifies the
//! `id_token_hint`'s signature and issuer and ends the session.
//!
//! ## Rules
//!
//! - The request comes as a query (GET) or a form body (POST), both
//!   `application/x-www-form-urlencoded` (§2); a parameter sent twice is
//!   refused (which one counts would be a guess), as at the token endpoint.
//! - The client is named by the hint's `aud` or by `client_id`; when both
//!   are present they must agree (§2: "the OP MUST verify that it matches
//!   the Client Identifier used when issuing the ID Token").
//! - `post_logout_redirect_uri` is followed only when the client is
//!   identified and the URI is one of its registered ones, byte for byte
//!   (§3: "MUST NOT perform post-logout redirection unless ... it was
//!   previously registered"; §3.1 simple string comparison). Otherwise the
//!   browser gets vestibule's own "signed out" page: a mismatch never
//!   redirects.
//! - `state` is echoed on the redirect (§3).

use crate::oidc_provider::response_url;
use crate::oidc_token::{FormError, parse_form};

/// An end-session request's parameters (§2), empty values read as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndSessionRequest {
    /// An ID token we issued to the client (verified by the caller).
    pub id_token_hint: Option<String>,
    /// The client's id.
    pub client_id: Option<String>,
    /// Where the client wants the browser back.
    pub post_logout_redirect_uri: Option<String>,
    /// Echoed on the redirect.
    pub state: Option<String>,
}

/// Why an end-session request is refused (answered with a 400 page, never
/// a redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSessionError {
    /// The query or body is not a readable form (too large, bad escape,
    /// a parameter repeated).
    Form(FormError),
    /// `client_id` and the hint's `aud` name different clients (§2).
    ClientMismatch,
}

impl std::fmt::Display for EndSessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Form(FormError::Repeated) => f.write_str("a parameter was sent more than once"),
            Self::Form(_) => f.write_str("the request's parameters could not be read"),
            Self::ClientMismatch => {
                f.write_str("client_id does not name the client the ID token was issued to")
            }
        }
    }
}

/// Reads an end-session request from a query string or a form body.
/// Unknown parameters (`logout_hint`, `ui_locales`) are ignored (§2: they
/// are OPTIONAL hints).
pub fn parse_end_session(raw: &[u8]) -> Result<EndSessionRequest, EndSessionError> {
    let form = parse_form(raw).map_err(EndSessionError::Form)?;
    let get = |n: &str| form.get(n).map(str::to_owned);
    Ok(EndSessionRequest {
        id_token_hint: get("id_token_hint"),
        client_id: get("client_id"),
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        state: get("state"),
    })
}

/// The client the request comes from: the verified hint's audience, or
/// `client_id`; they must agree when both are there (§2).
pub fn requesting_client<'a>(
    hint_audience: Option<&'a str>,
    client_id: Option<&'a str>,
) -> Result<Option<&'a str>, EndSessionError> {
    match (hint_audience, client_id) {
        (Some(a), Some(c)) if a != c => Err(EndSessionError::ClientMismatch),
        (Some(a), _) => Ok(Some(a)),
        (None, c) => Ok(c),
    }
}

/// Where to send the browser after logout: the requested URI with `state`
/// when it is one of the identified client's `registered` URIs exactly
/// (§3); `None` (vestibule's "signed out" page) otherwise.
pub fn post_logout_redirect(
    registered: &[String],
    requested: Option<&str>,
    state: Option<&str>,
) -> Option<String> {
    let uri = requested?;
    if !registered.iter().any(|r| r == uri) {
        return None;
    }
    let params: Vec<(&str, &str)> = state.map(|s| ("state", s)).into_iter().collect();
    Some(response_url(uri, &params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parameters_are_read_once_each() {
        let r = parse_end_session(
            b"id_token_hint=a.b.c&client_id=app&post_logout_redirect_uri=https%3A%2F%2Fapp%2Fbye&state=s+1&ui_locales=fr",
        )
        .unwrap();
        assert_eq!(r.id_token_hint.as_deref(), Some("a.b.c"));
        assert_eq!(r.client_id.as_deref(), Some("app"));
        assert_eq!(
            r.post_logout_redirect_uri.as_deref(),
            Some("https://app/bye")
        );
        assert_eq!(r.state.as_deref(), Some("s 1"));
        assert_eq!(
            parse_end_session(b"state=a&state=b"),
            Err(EndSessionError::Form(FormError::Repeated))
        );
        assert_eq!(
            parse_end_session(b"").unwrap(),
            EndSessionRequest::default()
        );
        assert_eq!(parse_end_session(b"client_id=").unwrap().client_id, None);
    }

    #[test]
    fn the_hint_and_client_id_must_agree() {
        assert_eq!(requesting_client(Some("a"), Some("a")), Ok(Some("a")));
        assert_eq!(requesting_client(Some("a"), None), Ok(Some("a")));
        assert_eq!(requesting_client(None, Some("b")), Ok(Some("b")));
        assert_eq!(requesting_client(None, None), Ok(None));
        assert_eq!(
            requesting_client(Some("a"), Some("b")),
            Err(EndSessionError::ClientMismatch)
        );
    }

    #[test]
    fn redirects_only_to_a_registered_uri_exactly() {
        let reg = vec!["https://app.example/bye".to_owned()];
        assert_eq!(
            post_logout_redirect(&reg, Some("https://app.example/bye"), Some("x y")).as_deref(),
            Some("https://app.example/bye?state=x%20y")
        );
        assert_eq!(
            post_logout_redirect(&reg, Some("https://app.example/bye"), None).as_deref(),
            Some("https://app.example/bye")
        );
        for other in [
            "https://app.example/bye/",
            "https://APP.example/bye",
            "https://app.example/bye?x=1",
            "https://app.example/by",
        ] {
            assert_eq!(
                post_logout_redirect(&reg, Some(other), None),
                None,
                "{other}"
            );
        }
        assert_eq!(post_logout_redirect(&reg, None, Some("s")), None);
        assert_eq!(
            post_logout_redirect(&[], Some("https://app.example/bye"), None),
            None
        );
    }

    proptest! {
        /// A redirect happens only to a registered URI, and starts with it.
        #[test]
        fn never_redirects_elsewhere(
            reg in proptest::collection::vec("[a-z:/.?=&]{0,12}", 0..4),
            asked in "[a-z:/.?=&]{0,12}",
            state in proptest::option::of(".{0,8}"),
        ) {
            if let Some(url) = post_logout_redirect(&reg, Some(&asked), state.as_deref()) {
                prop_assert!(reg.contains(&asked));
                prop_assert!(url.starts_with(&asked));
            } else {
                prop_assert!(!reg.contains(&asked));
            }
        }

        /// Parsing never panics, and what it reads is never empty.
        #[test]
        fn parsing_is_total(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = parse_end_session(&raw) {
                for v in [&r.id_token_hint, &r.client_id, &r.post_logout_redirect_uri, &r.state]
                    .into_iter()
                    .flatten()
                {
                    prop_assert!(!v.is_empty());
                }
            }
        }
    }
}
