//! Trust decisions of the OpenID Connect provider (issue 14) on what a
//! client sends: whether a presented `redirect_uri` is one the client
//! registered, whether a PKCE `code_verifier` answers the
//! `code_challenge` of the authorization request, and what an
//! authorization request asks for (its parameters, `scope`, `prompt`,
//! `max_age`), how its response URL is built, and whether a request's
//! `Host` is the issuer's. Pure and I/O-free.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Whether `presented` matches the registered `registered` redirect URI.
///
/// Exact, byte for byte (RFC 9700 §4.1.3: "exact string matching"), with
/// one exception: for a registered loopback IP literal redirect
/// (`http://127.0.0.1…` or `http://[::1]…`) the port may differ, or be
/// absent in either (RFC 8252 §7.3: "MUST allow any port to be specified
/// at the time of the request for loopback IP redirect URIs"). `localhost`
/// gets no such exception (RFC 8252 §8.3: NOT RECOMMENDED).
pub fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    for host in ["http://127.0.0.1", "http://[::1]"] {
        if let (Some(reg), Some(pre)) =
            (registered.strip_prefix(host), presented.strip_prefix(host))
            && let (Some(reg_rest), Some(pre_rest)) = (after_port(reg), after_port(pre))
        {
            return reg_rest == pre_rest;
        }
    }
    false
}

/// What follows the authority of a loopback URI whose host was stripped:
/// `rest` without an optional `:port` (1 to 65535, digits only), which
/// must be followed by the end, `/` or `?`. `None` if `rest` is anything
/// else (`127.0.0.1.evil.example`, `127.0.0.1@evil`, `:0`, `:+80`).
fn after_port(rest: &str) -> Option<&str> {
    let tail = match rest.strip_prefix(':') {
        Some(port_and_tail) => {
            let digits = port_and_tail.bytes().take_while(u8::is_ascii_digit).count();
            let port = &port_and_tail[..digits];
            // At most 5 digits and a valid non-zero port.
            if digits == 0 || digits > 5 || !matches!(port.parse::<u32>(), Ok(1..=65_535)) {
                return None;
            }
            &port_and_tail[digits..]
        }
        None => rest,
    };
    (tail.is_empty() || tail.starts_with(['/', '?'])).then_some(tail)
}

/// Why a PKCE parameter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PkceError {
    /// `code_challenge_method` other than `S256` (`plain` included, and
    /// absent, which RFC 7636 §4.3 defines as `plain`).
    MethodNotS256,
    /// The challenge is not 43 base64url characters (the size of an S256
    /// challenge, RFC 7636 §4.2).
    MalformedChallenge,
}

/// Checks an authorization request's PKCE parameters: only `S256`
/// (RFC 9700 §2.1.1: `plain` is not to be used; RFC 7636 §4.3: an absent
/// method means `plain`, so it is refused too).
pub fn check_challenge(challenge: &str, method: Option<&str>) -> Result<(), PkceError> {
    if method != Some("S256") {
        return Err(PkceError::MethodNotS256);
    }
    let base64url = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if challenge.len() != 43 || !challenge.bytes().all(base64url) {
        return Err(PkceError::MalformedChallenge);
    }
    Ok(())
}

/// Whether `verifier` answers the S256 `challenge` (RFC 7636 §4.6:
/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge`),
/// compared in constant time. A verifier outside the syntax of RFC 7636
/// §4.1 (43 to 128 characters of `[A-Za-z0-9-._~]`) never matches.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(unreserved) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

// ---- the authorization request (OIDC Core §3.1.2.1, RFC 6749 §4.1.1) ----

/// The prefix of an authorization code: `voc_` and 43 base64url
/// characters (256 random bits), the shape of every token vestibule issues.
pub const CODE_PREFIX: &str = "voc_";

/// A new authorization code from 32 random bytes (RFC 6749 §10.10: the
/// probability of guessing it must be negligible; RFC 9700 §4.5).
pub fn authorization_code(random: [u8; 32]) -> crate::secret::Secret {
    crate::secret::prefixed_token(CODE_PREFIX, random)
}

/// Whether `s` has the shape of an authorization code; anything else is
/// never looked up.
pub fn is_authorization_code(s: &str) -> bool {
    crate::secret::is_prefixed_token(s, CODE_PREFIX)
}

/// The longest value of any one authorization request parameter taken.
/// Real values are short (a `state` of a few hundred bytes at most); a
/// longer one is refused, not truncated.
pub const MAX_PARAM_LEN: usize = 2048;

/// An error code of the authorization endpoint (RFC 6749 §4.1.2.1, OIDC
/// Core §3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthzErrorCode {
    /// `invalid_request`.
    InvalidRequest,
    /// `unauthorized_client`.
    UnauthorizedClient,
    /// `access_denied`.
    AccessDenied,
    /// `unsupported_response_type`.
    UnsupportedResponseType,
    /// `invalid_scope`.
    InvalidScope,
    /// `server_error`.
    ServerError,
    /// `login_required` (OIDC Core §3.1.2.6).
    LoginRequired,
    /// `consent_required` (OIDC Core §3.1.2.6).
    ConsentRequired,
    /// `request_not_supported` (OIDC Core §6.1).
    RequestNotSupported,
    /// `request_uri_not_supported` (OIDC Core §6.2).
    RequestUriNotSupported,
}

impl AuthzErrorCode {
    /// The `error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
        }
    }
}

/// An authorization error to send back to the (validated) redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzError {
    /// `error`.
    pub code: AuthzErrorCode,
    /// `error_description`: fixed text, never an echo of the request.
    pub description: &'static str,
}

impl AuthzError {
    fn new(code: AuthzErrorCode, description: &'static str) -> Self {
        Self { code, description }
    }
}

/// The parameters of an authorization request as sent (query or form),
/// before the client is known. Unknown parameters are ignored (RFC 6749
/// §3.1: "MUST ignore unrecognized request parameters").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationParams {
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `response_type`.
    pub response_type: Option<String>,
    /// `response_mode`.
    pub response_mode: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `nonce`.
    pub nonce: Option<String>,
    /// `prompt`.
    pub prompt: Option<String>,
    /// `max_age`.
    pub max_age: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// Whether a `request` object was sent (not supported).
    pub request: bool,
    /// Whether a `request_uri` was sent (not supported).
    pub request_uri: bool,
    /// The first recognised parameter sent more than once, or longer than
    /// [`MAX_PARAM_LEN`] (RFC 6749 §3.1: "MUST NOT be included more than
    /// once"): the request is refused once the redirect is known good.
    pub malformed: Option<&'static str>,
}

/// The parameters the provider reads, in the order of
/// [`AuthorizationParams`].
const PARAM_NAMES: [&str; 13] = [
    "client_id",
    "redirect_uri",
    "response_type",
    "response_mode",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "code_challenge",
    "code_challenge_method",
    "request",
    "request_uri",
];

impl AuthorizationParams {
    /// Reads decoded `(name, value)` pairs, in order. An empty value is
    /// taken as absent (RFC 6749 §3.1: "Parameters sent without a value
    /// MUST be treated as if they were omitted").
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut p = Self::default();
        let mut seen = [false; PARAM_NAMES.len()];
        for (name, value) in pairs {
            let Some(i) = PARAM_NAMES.iter().position(|n| *n == name) else {
                continue;
            };
            if value.is_empty() {
                continue;
            }
            if seen[i] || value.len() > MAX_PARAM_LEN {
                p.malformed.get_or_insert(PARAM_NAMES[i]);
                // The first value stays; the request is refused anyway.
                continue;
            }
            seen[i] = true;
            let v = Some(value.to_owned());
            match i {
                0 => p.client_id = v,
                1 => p.redirect_uri = v,
                2 => p.response_type = v,
                3 => p.response_mode = v,
                4 => p.scope = v,
                5 => p.state = v,
                6 => p.nonce = v,
                7 => p.prompt = v,
                8 => p.max_age = v,
                9 => p.code_challenge = v,
                10 => p.code_challenge_method = v,
                11 => p.request = true,
                _ => p.request_uri = true,
            }
        }
        p
    }

    /// The request as `(name, value)` pairs again, without `prompt` and
    /// `max_age` when `drop_reauth` (the return address after a forced
    /// re-login, which must not ask for it once more).
    pub fn to_pairs(&self, drop_reauth: bool) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        let fields = [
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("response_type", &self.response_type),
            ("response_mode", &self.response_mode),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("prompt", &self.prompt),
            ("max_age", &self.max_age),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ];
        for (name, value) in fields {
            if drop_reauth && matches!(name, "prompt" | "max_age") {
                continue;
            }
            if let Some(v) = value {
                out.push((name, v.as_str()));
            }
        }
        out
    }
}

/// A scope token (RFC 6749 §3.3: `1*( %x21 / %x23-5B / %x5D-7E )`).
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Parses a `scope` value (RFC 6749 §3.3: `scope-token *( SP scope-token
/// )`): exactly one space between tokens, none before or after. Repeats
/// are dropped; the order of first appearance is kept. `None` if the value
/// is not in the grammar.
pub fn parse_scope(s: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ') {
        if !is_scope_token(token) {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

/// Whether every scope of `requested` is in the space-separated
/// `granted` (a remembered consent covers a later request for a subset).
pub fn scopes_covered(requested: &[String], granted: &str) -> bool {
    requested.iter().all(|r| granted.split(' ').any(|g| g == r))
}

/// `prompt` (OIDC Core §3.1.2.1), as understood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: re-authenticate.
    pub login: bool,
    /// `consent`: ask for consent even when remembered.
    pub consent: bool,
}

/// Parses `prompt`: space-separated `none`, `login`, `consent`,
/// `select_account` (accepted and ignored: one browser has one identity
/// here). `none` with any other value is an error (§3.1.2.1: "If this
/// parameter contains none with any other value, an error is returned");
/// so is an unknown value.
pub fn parse_prompt(s: &str) -> Result<Prompt, AuthzError> {
    let mut p = Prompt::default();
    let mut others = false;
    for v in s.split(' ') {
        match v {
            "none" => p.none = true,
            "login" => (p.login, others) = (true, true),
            "consent" => (p.consent, others) = (true, true),
            "select_account" => others = true,
            _ => {
                return Err(AuthzError::new(
                    AuthzErrorCode::InvalidRequest,
                    "prompt has a value that is not none, login, consent or select_account",
                ));
            }
        }
    }
    if p.none && others {
        return Err(AuthzError::new(
            AuthzErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    Ok(p)
}

/// The longest `max_age` taken, in seconds (ten years): a larger one is
/// refused rather than overflowing a clock computation.
pub const MAX_MAX_AGE: u64 = 10 * 366 * 86_400;

/// Parses `max_age` (OIDC Core §3.1.2.1: seconds, a non-negative integer):
/// ASCII digits only, no sign, at most [`MAX_MAX_AGE`].
pub fn parse_max_age(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|n| *n <= MAX_MAX_AGE)
}

/// What the provider knows of a client, for [`check_authorization`].
#[derive(Debug, Clone, Copy)]
pub struct ClientRules<'a> {
    /// A public client (RFC 6749 §2.1).
    pub public: bool,
    /// PKCE required (always for public clients).
    pub require_pkce: bool,
    /// Whether the client may use the authorization code grant.
    pub code_grant: bool,
    /// Scopes the client may ask for.
    pub scopes: &'a [String],
}

/// An authorization request whose client and redirect URI are good, and
/// whose other parameters passed [`check_authorization`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedRequest {
    /// Requested scopes, repeats dropped. Without `openid` this is a plain
    /// OAuth 2.0 request (no ID token).
    pub scopes: Vec<String>,
    /// `nonce`, to be put in the ID token.
    pub nonce: Option<String>,
    /// The S256 `code_challenge`, if one was sent.
    pub code_challenge: Option<String>,
    /// `prompt`.
    pub prompt: Prompt,
    /// `max_age`, seconds.
    pub max_age: Option<u64>,
}

impl CheckedRequest {
    /// Whether this is an OpenID Connect request (`openid` scope).
    pub fn is_oidc(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }
}

/// Checks the parameters of an authorization request once its client and
/// redirect URI are known good: everything refused here goes back to the
/// redirect URI as an error (RFC 6749 §4.1.2.1).
pub fn check_authorization(
    p: &AuthorizationParams,
    client: ClientRules<'_>,
) -> Result<CheckedRequest, AuthzError> {
    use AuthzErrorCode as E;
    let err = AuthzError::new;
    if p.malformed.is_some() {
        return Err(err(
            E::InvalidRequest,
            "a parameter was sent more than once, or is too long",
        ));
    }
    // OIDC Core §6: request objects are not supported, and say so.
    if p.request {
        return Err(err(
            E::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if p.request_uri {
        return Err(err(
            E::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    // RFC 9700 §2.1.1: only the code flow; the implicit and hybrid flows
    // are refused.
    match p.response_type.as_deref() {
        None => return Err(err(E::InvalidRequest, "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(err(
                E::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    // The response goes in the query (the default of `code`, OAuth 2.0
    // Multiple Response Types §2.1); nothing else is offered.
    if p.response_mode.as_deref().is_some_and(|m| m != "query") {
        return Err(err(
            E::InvalidRequest,
            "only response_mode=query is supported",
        ));
    }
    if !client.code_grant {
        return Err(err(
            E::UnauthorizedClient,
            "this client may not use the authorization code grant",
        ));
    }
    // No scope is not a default scope: the request is refused.
    let Some(scopes) = p.scope.as_deref().and_then(parse_scope) else {
        return Err(err(E::InvalidScope, "scope is missing or malformed"));
    };
    if !scopes.iter().all(|s| client.scopes.contains(s)) {
        return Err(err(
            E::InvalidScope,
            "a requested scope is not allowed for this client",
        ));
    }
    // PKCE (RFC 7636, RFC 9700 §2.1.1): S256 only; required for public
    // clients and, unless opted out, for confidential ones. A challenge
    // sent by a client that opted out is still checked and kept: its
    // verifier is then required at the token endpoint.
    let code_challenge = match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (None, Some(_)) => {
            return Err(err(
                E::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if client.public || client.require_pkce => {
            return Err(err(
                E::InvalidRequest,
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
        (None, None) => None,
        (Some(c), method) => match check_challenge(c, method) {
            Ok(()) => Some(c.to_owned()),
            Err(PkceError::MethodNotS256) => {
                return Err(err(
                    E::InvalidRequest,
                    "code_challenge_method must be S256 (plain is not allowed)",
                ));
            }
            Err(PkceError::MalformedChallenge) => {
                return Err(err(E::InvalidRequest, "code_challenge is malformed"));
            }
        },
    };
    let prompt = match p.prompt.as_deref() {
        Some(v) => parse_prompt(v)?,
        None => Prompt::default(),
    };
    let max_age = match p.max_age.as_deref() {
        Some(v) => Some(
            parse_max_age(v)
                .ok_or_else(|| err(E::InvalidRequest, "max_age is not a number of seconds"))?,
        ),
        None => None,
    };
    Ok(CheckedRequest {
        scopes,
        nonce: p.nonce.clone(),
        code_challenge,
        prompt,
        max_age,
    })
}

/// Whether the person must sign in again: `prompt=login`, or a `max_age`
/// (seconds) older than the authentication at `auth_time_ms` (OIDC Core
/// §3.1.2.1). `now_ms` before `auth_time_ms` (a clock step) counts as
/// fresh.
pub fn needs_reauthentication(req: &CheckedRequest, auth_time_ms: i64, now_ms: i64) -> bool {
    if req.prompt.login {
        return true;
    }
    req.max_age.is_some_and(|max| {
        let age_ms = now_ms.saturating_sub(auth_time_ms).max(0);
        u64::try_from(age_ms).unwrap_or(u64::MAX) / 1000 > max
    })
}

/// Characters kept as-is in a query value: RFC 3986 §2.3 unreserved only.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The authorization response URL: `redirect_uri` (as validated) with
/// `params` added to its query component (RFC 6749 §4.1.2: "adding the
/// following parameters to the query component ... using the
/// application/x-www-form-urlencoded format"), after any query it has.
pub fn response_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = redirect_uri.to_owned();
    let mut sep = if redirect_uri.contains('?') {
        if redirect_uri.ends_with(['?', '&']) {
            ""
        } else {
            "&"
        }
    } else {
        "?"
    };
    for (name, value) in params {
        out.push_str(sep);
        out.push_str(name);
        out.push('=');
        out.extend(percent_encoding::utf8_percent_encode(value, QUERY_VALUE));
        sep = "&";
    }
    out
}

/// Whether a request's `Host` (or `:authority`) names the issuer's own
/// authority (`issuer` as configured, an `http`/`https` URL): host
/// compared ignoring ASCII case, the port with the scheme's default filled
/// in. Anything unreadable is not the issuer.
pub fn is_issuer_authority(issuer: &str, host: &str) -> bool {
    let Some((scheme, rest)) = issuer.split_once("://") else {
        return false;
    };
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return false,
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match (
        split_authority(authority, default_port),
        split_authority(host, default_port),
    ) {
        (Some((ih, ip)), Some((hh, hp))) => ih.eq_ignore_ascii_case(hh) && ip == hp,
        _ => false,
    }
}

/// `host[:port]` (or `[v6]:port`) into host and port; `None` if the port
/// is not 1 to 5 digits of a valid port, or the host is empty or holds a
/// character no host has.
fn split_authority(a: &str, default_port: u16) -> Option<(&str, u16)> {
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        let (inner, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (&a[..inner.len() + 2], port)
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    if !host_ok {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse().ok().filter(|n| *n != 0)?
        }
        Some(_) => return None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_7636_appendix_b_example() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_challenge(challenge, Some("S256")), Ok(()));
        assert!(verifier_matches(verifier, challenge));
        assert!(!verifier_matches(&verifier.replace('d', "e"), challenge));
        // `plain`, an absent method and a lowercase name are refused.
        assert_eq!(
            check_challenge(verifier, Some("plain")),
            Err(PkceError::MethodNotS256)
        );
        assert_eq!(
            check_challenge(challenge, None),
            Err(PkceError::MethodNotS256)
        );
        assert_eq!(
            check_challenge(challenge, Some("s256")),
            Err(PkceError::MethodNotS256)
        );
        assert_eq!(
            check_challenge(&challenge[1..], Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        assert_eq!(
            check_challenge(&challenge.replace('-', "+"), Some("S256")),
            Err(PkceError::MalformedChallenge)
        );
        // `plain` use of the challenge as its own verifier fails.
        assert!(!verifier_matches(challenge, challenge));
        // Too short or with a character outside the syntax.
        assert!(!verifier_matches("short", "short"));
        assert!(!verifier_matches(&format!("{verifier} "), challenge));
    }

    #[test]
    fn redirect_matching_is_exact_except_the_loopback_port() {
        let reg = "https://grafana.example.com/login/generic_oauth";
        assert!(redirect_uri_matches(reg, reg));
        for bad in [
            "https://grafana.example.com/login/generic_oauth/",
            "https://grafana.example.com/login/generic_oauth?x=1",
            "https://GRAFANA.example.com/login/generic_oauth",
            "https://grafana.example.com:443/login/generic_oauth",
            "https://grafana.example.com/login/generic_oauth#",
        ] {
            assert!(!redirect_uri_matches(reg, bad), "{bad}");
        }
        let lo = "http://127.0.0.1/callback";
        for ok in [
            "http://127.0.0.1/callback",
            "http://127.0.0.1:49152/callback",
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:65535/callback",
        ] {
            assert!(redirect_uri_matches(lo, ok), "{ok}");
        }
        assert!(redirect_uri_matches(
            "http://[::1]:8080/cb?a=1",
            "http://[::1]:3000/cb?a=1"
        ));
        for bad in [
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:080000/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:+80/callback",
            "http://127.0.0.1.evil.example/callback",
            "http://127.0.0.1@evil.example/callback",
            "http://127.0.0.1:80@evil.example/callback",
            "http://127.0.0.1:8080/callback/x",
            "http://[::1]:8080/callback",
            "https://127.0.0.1:8080/callback",
        ] {
            assert!(!redirect_uri_matches(lo, bad), "{bad}");
        }
        // `localhost` gets no port exception (RFC 8252 §8.3).
        assert!(!redirect_uri_matches(
            "http://localhost/cb",
            "http://localhost:8080/cb"
        ));
        // Private-use schemes: exact.
        let app = "app.immich:///oauth-callback";
        assert!(redirect_uri_matches(app, app));
        assert!(!redirect_uri_matches(app, "app.immich:///oauth-callback2"));
    }

    fn params(q: &[(&str, &str)]) -> AuthorizationParams {
        AuthorizationParams::from_pairs(q.iter().copied())
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn rules(scopes: &[String], public: bool, require_pkce: bool) -> ClientRules<'_> {
        ClientRules {
            public,
            require_pkce,
            code_grant: true,
            scopes,
        }
    }

    #[test]
    fn authorization_requests() {
        let scopes: Vec<String> = ["openid", "profile", "email"].map(String::from).to_vec();
        let good = [
            ("response_type", "code"),
            ("client_id", "c"),
            ("scope", "openid profile openid"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
            ("nonce", "n-1"),
            ("unknown", "ignored"),
            ("prompt", ""),
        ];
        let r = check_authorization(&params(&good), rules(&scopes, true, true)).unwrap();
        assert_eq!(r.scopes, ["openid", "profile"]);
        assert_eq!(r.nonce.as_deref(), Some("n-1"));
        assert_eq!(r.code_challenge.as_deref(), Some(CHALLENGE));
        assert!(r.is_oidc());
        assert_eq!(r.prompt, Prompt::default());
        let refused = |extra: &[(&str, &str)], drop: &[&str], public: bool, pkce: bool| {
            let mut q: Vec<(&str, &str)> = good
                .iter()
                .copied()
                .filter(|(n, _)| !drop.contains(n) && !extra.iter().any(|(e, _)| e == n))
                .collect();
            q.extend_from_slice(extra);
            check_authorization(&params(&q), rules(&scopes, public, pkce))
                .map(|_| ())
                .map_err(|e| e.code)
        };
        use AuthzErrorCode as E;
        assert_eq!(
            refused(&[("response_type", "token")], &[], true, true),
            Err(E::UnsupportedResponseType)
        );
        assert_eq!(
            refused(&[("response_type", "code id_token")], &[], true, true),
            Err(E::UnsupportedResponseType)
        );
        assert_eq!(
            refused(&[], &["response_type"], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[("response_mode", "fragment")], &[], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[("scope", "openid admin")], &[], true, true),
            Err(E::InvalidScope)
        );
        assert_eq!(
            refused(&[("scope", "openid  profile")], &[], true, true),
            Err(E::InvalidScope)
        );
        assert_eq!(refused(&[], &["scope"], true, true), Err(E::InvalidScope));
        assert_eq!(
            refused(&[("code_challenge_method", "plain")], &[], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[], &["code_challenge_method"], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(
                &[],
                &["code_challenge", "code_challenge_method"],
                true,
                true
            ),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(
                &[],
                &["code_challenge", "code_challenge_method"],
                false,
                true
            ),
            Err(E::InvalidRequest)
        );
        // A confidential client that opted out may send none...
        assert_eq!(
            refused(
                &[],
                &["code_challenge", "code_challenge_method"],
                false,
                false
            ),
            Ok(())
        );
        // ...but a challenge it sends is still checked.
        assert_eq!(
            refused(&[("code_challenge_method", "plain")], &[], false, false),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[("prompt", "none login")], &[], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[("prompt", "bogus")], &[], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[("max_age", "-1")], &[], true, true),
            Err(E::InvalidRequest)
        );
        assert_eq!(
            refused(&[("request", "eyJ")], &[], true, true),
            Err(E::RequestNotSupported)
        );
        assert_eq!(
            refused(&[("request_uri", "urn:x")], &[], true, true),
            Err(E::RequestUriNotSupported)
        );
        // Repeated parameters (RFC 6749 §3.1).
        assert_eq!(
            refused(&[("state", "a"), ("state", "b")], &[], true, true),
            Err(E::InvalidRequest)
        );
        let long = "x".repeat(MAX_PARAM_LEN + 1);
        assert_eq!(
            refused(&[("state", &long)], &[], true, true),
            Err(E::InvalidRequest)
        );
        let mut no_grant = rules(&scopes, true, true);
        no_grant.code_grant = false;
        assert_eq!(
            check_authorization(&params(&good), no_grant).map_err(|e| e.code),
            Err(E::UnauthorizedClient)
        );
        // Without openid: plain OAuth.
        let mut q = good.to_vec();
        q[2] = ("scope", "profile");
        assert!(
            !check_authorization(&params(&q), rules(&scopes, true, true))
                .unwrap()
                .is_oidc()
        );
    }

    #[test]
    fn prompt_and_max_age() {
        assert_eq!(
            parse_prompt("none").unwrap(),
            Prompt {
                none: true,
                ..Prompt::default()
            }
        );
        assert_eq!(
            parse_prompt("login consent").unwrap(),
            Prompt {
                login: true,
                consent: true,
                none: false
            }
        );
        assert!(parse_prompt("select_account").is_ok());
        assert!(parse_prompt("none consent").is_err());
        assert!(parse_prompt("").is_err());
        assert!(parse_prompt("login  consent").is_err());
        assert_eq!(parse_max_age("0"), Some(0));
        assert_eq!(parse_max_age("3600"), Some(3600));
        for bad in ["", "+1", "-1", "1.5", " 1", "99999999999999"] {
            assert_eq!(parse_max_age(bad), None, "{bad}");
        }
        let req = |login: bool, max_age: Option<u64>| CheckedRequest {
            scopes: vec![],
            nonce: None,
            code_challenge: None,
            prompt: Prompt {
                login,
                ..Prompt::default()
            },
            max_age,
        };
        assert!(needs_reauthentication(&req(true, None), 1000, 1000));
        assert!(!needs_reauthentication(&req(false, None), 0, i64::MAX));
        assert!(!needs_reauthentication(&req(false, Some(60)), 0, 60_999));
        assert!(needs_reauthentication(&req(false, Some(60)), 0, 61_000));
        assert!(!needs_reauthentication(&req(false, Some(0)), 5000, 4000));
    }

    #[test]
    fn response_urls_and_codes() {
        assert_eq!(
            response_url(
                "https://a.example/cb",
                &[("code", "x y"), ("state", "s&t=")]
            ),
            "https://a.example/cb?code=x%20y&state=s%26t%3D"
        );
        assert_eq!(
            response_url("https://a.example/cb?x=1", &[("code", "c")]),
            "https://a.example/cb?x=1&code=c"
        );
        assert_eq!(
            response_url("app.immich:///oauth-callback", &[("code", "c")]),
            "app.immich:///oauth-callback?code=c"
        );
        let c = authorization_code([7; 32]);
        assert!(is_authorization_code(c.expose()));
        assert!(!is_authorization_code(&c.expose()[1..]));
        assert!(!crate::secret::is_session_token(c.expose()));
    }

    #[test]
    fn issuer_authority() {
        let iss = "https://sso.example.com";
        for ok in ["sso.example.com", "SSO.example.com", "sso.example.com:443"] {
            assert!(is_issuer_authority(iss, ok), "{ok}");
        }
        for bad in [
            "sso.example.com:8443",
            "evil.example",
            "sso.example.com.evil",
            "",
            "sso.example.com:",
            "sso.example.com:0443x",
            "a b",
        ] {
            assert!(!is_issuer_authority(iss, bad), "{bad}");
        }
        assert!(is_issuer_authority(
            "http://127.0.0.1:8080/realm",
            "127.0.0.1:8080"
        ));
        assert!(!is_issuer_authority("http://127.0.0.1:8080", "127.0.0.1"));
        assert!(is_issuer_authority("http://[::1]:9000", "[::1]:9000"));
        assert!(!is_issuer_authority("http://[::1]:9000", "[::1]"));
    }

    #[test]
    fn scopes() {
        assert_eq!(parse_scope("openid").unwrap(), ["openid"]);
        for bad in ["", " openid", "openid ", "a\"b", "a\\b", "é", "a\tb"] {
            assert_eq!(parse_scope(bad), None, "{bad:?}");
        }
        let req = |s: &str| parse_scope(s).unwrap();
        assert!(scopes_covered(
            &req("openid profile"),
            "profile openid email"
        ));
        assert!(!scopes_covered(&req("openid groups"), "openid profile"));
    }

    proptest! {
        /// The fuzz target's invariants on generated requests built from
        /// the parameter names the provider reads (random bytes rarely
        /// form one).
        #[test]
        fn authorize_requests_fuzz_invariants(
            pairs in proptest::collection::vec(
                (proptest::sample::select(PARAM_NAMES.to_vec()), "[a-zA-Z0-9 _.~+-]{0,50}"),
                0..14,
            ),
            good in any::<bool>(),
        ) {
            let mut q: Vec<String> = Vec::new();
            if good {
                q.push("response_type=code&scope=openid&code_challenge_method=S256".into());
                q.push("code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into());
            }
            q.extend(pairs.iter().map(|(k, v)| format!("{k}={v}")));
            crate::fuzzing::oidc_authorize_request(q.join("&").as_bytes());
        }

        /// Scope parsing never panics; what it returns is made of scope
        /// tokens without repeats, and joining them parses back to itself.
        #[test]
        fn scope_grammar(s in "\\PC{0,40}") {
            if let Some(v) = parse_scope(&s) {
                prop_assert!(v.iter().all(|t| is_scope_token(t)));
                let joined = v.join(" ");
                prop_assert_eq!(parse_scope(&joined), Some(v.clone()));
                prop_assert!(scopes_covered(&v, &s));
            }
        }

        /// A response URL always starts with the redirect URI and carries
        /// each value so that decoding it gives it back.
        #[test]
        fn response_url_roundtrip(v in "\\PC{0,30}") {
            let url = response_url("https://a.example/cb", &[("state", &v)]);
            let q = url.strip_prefix("https://a.example/cb?state=").unwrap();
            prop_assert!(!q.contains(['&', '#', '?', ' ']));
            let back = percent_encoding::percent_decode_str(q).decode_utf8().unwrap();
            prop_assert_eq!(back.as_ref(), v.as_str());
        }

        /// Parameters: the first value of each is kept; a repeat marks the
        /// request malformed; prompt and max_age parse only their grammar.
        #[test]
        fn params_and_prompt(a in "[a-z]{1,8}", b in "[a-z]{1,8}", p in "[a-z_ ]{0,20}", m in "[0-9+-]{0,14}") {
            let once = AuthorizationParams::from_pairs([("state", a.as_str())]);
            prop_assert_eq!(once.state.as_deref(), Some(a.as_str()));
            prop_assert_eq!(once.malformed, None);
            let twice = AuthorizationParams::from_pairs([("state", a.as_str()), ("state", b.as_str())]);
            prop_assert_eq!(twice.malformed, Some("state"));
            if let Ok(pr) = parse_prompt(&p) {
                prop_assert!(!(pr.none && (pr.login || pr.consent)));
            }
            if let Some(n) = parse_max_age(&m) {
                let shown = n.to_string();
                prop_assert_eq!(shown.trim_start_matches('0'), m.trim_start_matches('0'));
            }
        }

        /// Exact strings always match; a loopback registration matches
        /// the same path on any valid port and nothing with another path.
        #[test]
        fn loopback_ports(port in 1u32..=65_535, path in "[a-z/?=]{0,20}", other in "[a-z/?=]{0,20}") {
            let reg = format!("http://127.0.0.1/{path}");
            prop_assert!(redirect_uri_matches(&reg, &reg));
            let same_path = format!("http://127.0.0.1:{port}/{path}");
            let other_path = format!("http://127.0.0.1:{port}/{other}");
            prop_assert!(redirect_uri_matches(&reg, &same_path));
            prop_assert_eq!(redirect_uri_matches(&reg, &other_path), other == path);
        }

        /// Outside loopback, matching is string equality.
        #[test]
        fn non_loopback_is_equality(a in "https://[a-z.]{1,12}(:[0-9]{1,5})?/[a-z]{0,8}", b in "https://[a-z.]{1,12}(:[0-9]{1,5})?/[a-z]{0,8}") {
            prop_assert_eq!(redirect_uri_matches(&a, &b), a == b);
        }

        /// A verifier matches its own S256 challenge and no other.
        #[test]
        fn verifiers(v in "[A-Za-z0-9._~-]{43,128}", w in "[A-Za-z0-9._~-]{43,128}") {
            let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, v.as_bytes()));
            prop_assert_eq!(check_challenge(&challenge, Some("S256")), Ok(()));
            prop_assert!(verifier_matches(&v, &challenge));
            prop_assert_eq!(verifier_matches(&w, &challenge), v == w);
        }
    }
}
