//! The provider's metadata (OpenID Connect Discovery 1.0 §3) and the
//! authorization response at the callback (RFC 6749 §4.1.2, RFC 9207).

use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;

/// The longest discovery document read, in bytes.
pub const MAX_DISCOVERY_BYTES: usize = 64 * 1024;

/// What vestibule uses of a provider's discovery document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// `issuer`, equal to the configured one (Discovery §4.3).
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `userinfo_endpoint`, when offered.
    pub userinfo_endpoint: Option<String>,
    /// `end_session_endpoint` (RP-Initiated Logout 1.0 §2.1), when offered.
    pub end_session_endpoint: Option<String>,
    /// `authorization_response_iss_parameter_supported` (RFC 9207 §3):
    /// when true, a callback without `iss` is refused.
    pub sends_iss_in_response: bool,
    /// `backchannel_logout_supported` (Back-Channel Logout §2.1).
    pub backchannel_logout_supported: bool,
    /// `id_token_signing_alg_values_supported`, as listed.
    pub id_token_algorithms: Vec<String>,
    /// `token_endpoint_auth_methods_supported`, when listed (Discovery §3).
    pub token_endpoint_auth_methods: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported`, when listed
    /// (Discovery §3: the algorithms a `private_key_jwt` assertion may be
    /// signed with).
    pub token_endpoint_auth_algorithms: Option<Vec<String>>,
}

impl ProviderMetadata {
    /// Whether the provider takes `method` at its token endpoint: when it
    /// lists its methods, `method` must be among them. When it lists none
    /// (Discovery §3 then implies `client_secret_basic`, but providers
    /// that take more often omit the member), the token endpoint decides.
    pub fn accepts_client_auth(&self, method: &str) -> bool {
        self.token_endpoint_auth_methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m == method))
    }

    /// Whether a client assertion signed with `alg` is accepted, by the
    /// same rule: listed means `alg` must be in the list.
    pub fn accepts_client_assertion_alg(&self, alg: &str) -> bool {
        self.token_endpoint_auth_algorithms
            .as_ref()
            .is_none_or(|a| a.iter().any(|a| a == alg))
    }
}

/// Why a discovery document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryError {
    /// Not a JSON object, too long, or a member twice.
    Malformed,
    /// `issuer` is not exactly the configured issuer (§4.3: this stops a
    /// provider impersonating another).
    IssuerMismatch,
    /// A required endpoint is missing, or an endpoint is not `https`
    /// (`http` only to a loopback host).
    BadEndpoint(&'static str),
    /// `response_types_supported` lacks `code`, or
    /// `code_challenge_methods_supported` is listed without `S256`.
    Unsupported(&'static str),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("the discovery document is not a JSON object"),
            Self::IssuerMismatch => f.write_str("the discovery document names another issuer"),
            Self::BadEndpoint(m) => write!(f, "`{m}` is missing or not an https URL"),
            Self::Unsupported(m) => write!(f, "`{m}` does not list what vestibule needs"),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// An absolute `https` URL with a host, or `http` to a loopback host.
pub fn is_secure_url(s: &str) -> bool {
    let Ok(u) = s.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = u.host().filter(|h| !h.is_empty()) else {
        return false;
    };
    if s.contains('#') || u.authority().is_some_and(|a| a.as_str().contains('@')) {
        return false;
    }
    match u.scheme_str() {
        Some("https") => true,
        Some("http") => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost")
                || bare
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| crate::net::canonical_ip(ip).is_loopback())
        }
        _ => false,
    }
}

/// Reads a discovery document fetched from
/// `<issuer>/.well-known/openid-configuration` (Discovery §4).
pub fn parse_discovery(json: &[u8], issuer: &str) -> Result<ProviderMetadata, DiscoveryError> {
    if json.len() > MAX_DISCOVERY_BYTES {
        return Err(DiscoveryError::Malformed);
    }
    let doc: Map<String, Value> =
        vestibule_jose::unique_json_object(json).ok_or(DiscoveryError::Malformed)?;
    // §4.3: "MUST be identical", so byte for byte, trailing slash included.
    match doc.get("issuer") {
        Some(Value::String(i)) if !issuer.is_empty() && i == issuer => {}
        _ => return Err(DiscoveryError::IssuerMismatch),
    }
    let endpoint = |name: &'static str, required: bool| -> Result<Option<String>, DiscoveryError> {
        match doc.get(name) {
            None | Some(Value::Null) if !required => Ok(None),
            Some(Value::String(s)) if is_secure_url(s) => Ok(Some(s.clone())),
            _ => Err(DiscoveryError::BadEndpoint(name)),
        }
    };
    let strings = |name: &'static str| -> Result<Option<Vec<String>>, DiscoveryError> {
        match doc.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or(DiscoveryError::Malformed),
            Some(_) => Err(DiscoveryError::Malformed),
        }
    };
    let flag = |name: &'static str| -> Result<bool, DiscoveryError> {
        match doc.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(DiscoveryError::Malformed),
        }
    };
    // §3: REQUIRED; the code flow needs `code`.
    if !strings("response_types_supported")?.is_some_and(|t| t.iter().any(|t| t == "code")) {
        return Err(DiscoveryError::Unsupported("response_types_supported"));
    }
    // RFC 8414 §2: absent means the provider did not say; vestibule sends
    // PKCE S256 anyway. Listed without S256, the provider would ignore it.
    if strings("code_challenge_methods_supported")?.is_some_and(|m| !m.iter().any(|m| m == "S256"))
    {
        return Err(DiscoveryError::Unsupported(
            "code_challenge_methods_supported",
        ));
    }
    Ok(ProviderMetadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: endpoint("authorization_endpoint", true)?.unwrap_or_default(),
        token_endpoint: endpoint("token_endpoint", true)?.unwrap_or_default(),
        jwks_uri: endpoint("jwks_uri", true)?.unwrap_or_default(),
        userinfo_endpoint: endpoint("userinfo_endpoint", false)?,
        end_session_endpoint: endpoint("end_session_endpoint", false)?,
        sends_iss_in_response: flag("authorization_response_iss_parameter_supported")?,
        backchannel_logout_supported: flag("backchannel_logout_supported")?,
        id_token_algorithms: strings("id_token_signing_alg_values_supported")?.unwrap_or_default(),
        token_endpoint_auth_methods: strings("token_endpoint_auth_methods_supported")?,
        token_endpoint_auth_algorithms: strings(
            "token_endpoint_auth_signing_alg_values_supported",
        )?,
    })
}

/// Why an authorization response at the callback was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallbackError {
    /// Not `application/x-www-form-urlencoded` UTF-8, or a parameter twice
    /// (RFC 6749 §3.1).
    Malformed,
    /// `iss` differs from the issuer, or is missing while the provider
    /// says it sends it (RFC 9207 §2.4): a mix-up attack.
    WrongIssuer,
    /// `state` is missing or not the one this browser was given
    /// (RFC 6749 §10.12, RFC 9700 §4.7.1).
    WrongState,
    /// The provider answered with `error` (RFC 6749 §4.1.2.1); the value,
    /// cut to 64 printable ASCII characters.
    Provider(String),
    /// Neither `code` nor `error`.
    MissingCode,
}

/// Checks the query of the redirect back from the provider: `iss` first
/// (RFC 9207 §2.4 makes it the first check), then `state` in constant
/// time, then `error` or `code`. Returns the authorization code.
pub fn check_callback(
    query: &str,
    expected_state: &str,
    issuer: &str,
    provider_sends_iss: bool,
) -> Result<String, CallbackError> {
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (form_decode(k)?, form_decode(v)?);
        if params.iter().any(|(n, _)| *n == k) {
            return Err(CallbackError::Malformed);
        }
        params.push((k, v));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match get("iss") {
        Some(iss) if iss == issuer && !issuer.is_empty() => {}
        None if !provider_sends_iss => {}
        _ => return Err(CallbackError::WrongIssuer),
    }
    let state_ok = get("state").is_some_and(|s| {
        !expected_state.is_empty() && bool::from(s.as_bytes().ct_eq(expected_state.as_bytes()))
    });
    if !state_ok {
        return Err(CallbackError::WrongState);
    }
    if let Some(e) = get("error") {
        let shown: String = e
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect();
        return Err(CallbackError::Provider(shown));
    }
    match get("code") {
        Some(code) if !code.is_empty() => Ok(code.to_owned()),
        _ => Err(CallbackError::MissingCode),
    }
}

/// One `application/x-www-form-urlencoded` name or value: `+` is a space,
/// `%XX` a byte, the result UTF-8.
fn form_decode(s: &str) -> Result<String, CallbackError> {
    let spaced = s.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| CallbackError::Malformed)
}

/// The PKCE `S256` challenge of a verifier (RFC 7636 §4.2):
/// `BASE64URL(SHA256(ASCII(code_verifier)))`.
pub fn pkce_challenge(verifier: &str) -> String {
    use base64::Engine as _;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// The longest token endpoint response read, in bytes.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// What vestibule takes of a successful token response (RFC 6749 §5.1,
/// OIDC Core §3.1.3.3). No `Debug`: every field is a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// `access_token`, only for the ID token's `at_hash`.
    pub access_token: String,
    /// `id_token`: OIDC Core §3.1.3.3 makes it REQUIRED.
    pub id_token: String,
    /// `refresh_token`, when the provider issued one.
    pub refresh_token: Option<String>,
    /// `expires_in`, the access token's lifetime in seconds, when given
    /// (RFC 6749 §5.1 RECOMMENDED).
    pub expires_in: Option<i64>,
}

/// What vestibule takes of the answer to a refresh (RFC 6749 §6, OIDC
/// Core §12.2): a token response "except that it might not contain an
/// `id_token`". No `Debug`: every field is a credential.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshResponse {
    /// `access_token`, for userinfo and a new ID token's `at_hash`.
    pub access_token: String,
    /// `id_token`, when the provider sent a new one (checked by
    /// [`crate::oidc::verify_refreshed_id_token`]).
    pub id_token: Option<String>,
    /// `refresh_token`: a new one when the provider rotates them (RFC
    /// 9700 §4.14.2), absent when the old one stays valid (RFC 6749 §6).
    pub refresh_token: Option<String>,
    /// `expires_in`, seconds, when given.
    pub expires_in: Option<i64>,
}

/// Why a token endpoint response was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenResponseError {
    /// Not a JSON object, too long, or a member twice.
    Malformed,
    /// The provider answered an error (RFC 6749 §5.2): its `error` code,
    /// cut to 64 printable ASCII characters.
    Provider(String),
    /// `token_type` is not `Bearer` (§5.1; OIDC Core §3.1.3.3).
    NotBearer,
    /// A required member (`access_token`, `id_token`) is missing or not a
    /// non-empty string, or an optional one has the wrong type.
    Missing(&'static str),
}

impl std::fmt::Display for TokenResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("the token response is not a JSON object"),
            Self::Provider(e) => write!(f, "the token endpoint answered `{e}`"),
            Self::NotBearer => f.write_str("the token type is not Bearer"),
            Self::Missing(m) => write!(f, "`{m}` is missing or not a string"),
        }
    }
}

impl std::error::Error for TokenResponseError {}

impl TokenResponseError {
    /// Whether a refused refresh says the user's grant is over, so a
    /// re-checked session must end at once. RFC 6749 §5.2: `invalid_client`,
    /// `unauthorized_client` and `unsupported_grant_type` are about our
    /// client (a rotated secret, a changed registration), and
    /// `server_error` / `temporarily_unavailable` about the provider; a
    /// mistake of ours must not sign everyone out, so those are treated like
    /// an unreachable provider (the grace applies, then the session ends).
    /// Every other code (`invalid_grant` first of all: "expired, revoked",
    /// the user disabled) ends the session. Not a provider error: `false`.
    pub fn ends_the_grant(&self) -> bool {
        match self {
            Self::Provider(code) => !matches!(
                code.as_str(),
                "invalid_client"
                    | "unauthorized_client"
                    | "unsupported_grant_type"
                    | "server_error"
                    | "temporarily_unavailable"
            ),
            _ => false,
        }
    }
}

/// Reads the token endpoint's JSON answer to an authorization-code grant.
/// An `error` member wins over everything else (RFC 6749 §5.2).
pub fn parse_token_response(json: &[u8]) -> Result<TokenResponse, TokenResponseError> {
    let r = parse_refresh_response(json)?;
    Ok(TokenResponse {
        access_token: r.access_token,
        id_token: r.id_token.ok_or(TokenResponseError::Missing("id_token"))?,
        refresh_token: r.refresh_token,
        expires_in: r.expires_in,
    })
}

/// Reads the token endpoint's JSON answer to a refresh (RFC 6749 §6,
/// §5.1; OIDC Core §12.2): `access_token` and a Bearer `token_type`
/// required, `id_token` and `refresh_token` optional, `expires_in` a
/// non-negative integer when present. An `error` member wins over
/// everything else (§5.2).
pub fn parse_refresh_response(json: &[u8]) -> Result<RefreshResponse, TokenResponseError> {
    if json.len() > MAX_TOKEN_RESPONSE_BYTES {
        return Err(TokenResponseError::Malformed);
    }
    let doc: Map<String, Value> =
        vestibule_jose::unique_json_object(json).ok_or(TokenResponseError::Malformed)?;
    if let Some(e) = doc.get("error") {
        let shown: String = e
            .as_str()
            .unwrap_or("?")
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_graphic() { c } else { '?' })
            .collect();
        return Err(TokenResponseError::Provider(shown));
    }
    let string = |name: &'static str| match doc.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        None | Some(Value::Null) => Ok(None),
        Some(_) => Err(TokenResponseError::Missing(name)),
    };
    // §5.1: "The value is case insensitive."
    match string("token_type")? {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        _ => return Err(TokenResponseError::NotBearer),
    }
    let expires_in = match doc.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|n| *n >= 0)
                .ok_or(TokenResponseError::Missing("expires_in"))?,
        ),
    };
    Ok(RefreshResponse {
        access_token: string("access_token")?.ok_or(TokenResponseError::Missing("access_token"))?,
        id_token: string("id_token")?,
        refresh_token: string("refresh_token")?,
        expires_in,
    })
}

/// The longest userinfo answer read, in bytes.
pub const MAX_USERINFO_BYTES: usize = 64 * 1024;

/// Why a userinfo answer does not vouch for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserinfoError {
    /// Not a JSON object (a signed or encrypted answer included: vestibule
    /// never registers for those), too long, or a member twice.
    Malformed,
    /// `sub` is missing or is not the session's subject (OIDC Core §5.3.4:
    /// "the UserInfo Response values MUST NOT be used").
    WrongSubject,
}

impl std::fmt::Display for UserinfoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("the userinfo answer is not a JSON object"),
            Self::WrongSubject => f.write_str("the userinfo answer is for another subject"),
        }
    }
}

impl std::error::Error for UserinfoError {}

/// Checks a userinfo answer (OIDC Core §5.3.2) against the session's
/// subject: its `sub` is REQUIRED and "MUST exactly match the sub Claim
/// in the ID Token" (§5.3.4, token substitution).
pub fn check_userinfo(json: &[u8], subject: &str) -> Result<(), UserinfoError> {
    if json.len() > MAX_USERINFO_BYTES {
        return Err(UserinfoError::Malformed);
    }
    let doc: Map<String, Value> =
        vestibule_jose::unique_json_object(json).ok_or(UserinfoError::Malformed)?;
    match doc.get("sub") {
        Some(Value::String(s)) if !subject.is_empty() && s == subject => Ok(()),
        _ => Err(UserinfoError::WrongSubject),
    }
}
