//! Device credentials: what non-browser clients (mobile apps, Subsonic and
//! WebDAV clients, `curl`) send instead of a session cookie, and the pairing
//! codes a person types to enrol a device.
//!
//! - A device credential is a token like a session token ([`crate::secret`]):
//!   256 random bits the caller passes in, written `vst_` + 43 base64url
//!   characters. The prefix lets secret scanners spot a leaked one and lets
//!   this module tell ours from the application's own credentials.
//! - Each route says where a client may put it ([`Carriers`]): `Authorization`
//!   as Basic (the password) or Bearer, `Proxy-Authorization`, a custom
//!   header, or a query parameter (opt-in: URLs end up in logs and
//!   `Referer`, RFC 6750 §5.3).
//! - **We do not steal the application's own authentication.** An
//!   `Authorization: Bearer eyJ…` or a Basic password without the `vst_`
//!   prefix is not ours: [`find_credential`] ignores it and the caller
//!   forwards it untouched.
//! - **What is ours fails closed.** A carrier holding something with our
//!   prefix (or a custom header or query parameter, which are ours by
//!   configuration) must hold a well-formed credential, or the request is
//!   refused with [`CarrierError::Malformed`] (HTTP 401).
//! - **Ambiguity is an error** ([`CarrierError::Ambiguous`], HTTP 400): two
//!   carriers, or one header on two lines, each possibly holding a
//!   credential. vestibule would authenticate one while the application
//!   might read the other.
//! - The carrier that held the credential is stripped before the request is
//!   forwarded ([`strip_credential_headers`], [`remove_query_param`]), so
//!   the application never sees it.

use std::fmt;

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::header::{AUTHORIZATION, PROXY_AUTHORIZATION};
use http::{HeaderMap, HeaderName};

use crate::decode::trim_ows;
use crate::secret::{Secret, is_prefixed_token, prefixed_token};

/// Prefix of device credentials.
pub const DEVICE_PREFIX: &str = "vst_";

/// A new device credential from 32 random bytes: `vst_` + 43 base64url (no
/// padding) characters.
pub fn device_token(random: [u8; 32]) -> Secret {
    prefixed_token(DEVICE_PREFIX, random)
}

/// Shape check: the prefix, then 43 base64url characters that decode to
/// exactly 32 bytes (in their one canonical spelling). Anything else is
/// never looked up.
pub fn is_device_token(s: &str) -> bool {
    is_prefixed_token(s, DEVICE_PREFIX)
}

/// Prefix of the claim secret a device polls a pairing with.
pub const PAIRING_CLAIM_PREFIX: &str = "vsp_";

/// A new pairing claim secret from 32 random bytes: `vsp_` + 43 base64url
/// characters. The device that redeemed a code proves it is the one polling
/// with it.
pub fn pairing_claim_token(random: [u8; 32]) -> Secret {
    prefixed_token(PAIRING_CLAIM_PREFIX, random)
}

/// Shape check of a claim secret, as [`is_device_token`]: anything else is
/// never looked up.
pub fn is_pairing_claim_token(s: &str) -> bool {
    is_prefixed_token(s, PAIRING_CLAIM_PREFIX)
}

/// Where a client may put its credential; configured per route. Everything
/// off (the default) means the route takes no device credentials.
///
/// The custom header must not be `Authorization`, `Proxy-Authorization` or
/// `Cookie`, and the query parameter name must not be empty: the
/// configuration layer refuses those (here they would make every request
/// ambiguous, or read the application's credentials as ours).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
// Alike identity.rs Identity in shape only: documented public fields.
pub struct Carriers {
    /// `Authorization: Basic base64(user:vst_…)`: the only thing many
    /// Subsonic, WebDAV and CalDAV clients can send.
    pub basic: bool,
    /// `Authorization: Bearer vst_…` (RFC 6750 §2.1).
    pub bearer: bool,
    /// `Proxy-Authorization: Bearer vst_…` or `Basic base64(user:vst_…)`,
    /// for clients whose `Authorization` belongs to the application.
    pub proxy_authorization: bool,
    /// A custom header whose whole value is `vst_…`.
    pub header: Option<HeaderName>,
    /// A query parameter name (opt-in, for media URLs a player fetches
    /// without headers), compared exactly: `%74oken` is not `token`.
    pub query: Option<String>,
}

impl Carriers {
    /// Whether any carrier is enabled.
    pub fn any(&self) -> bool {
        self.basic
            || self.bearer
            || self.proxy_authorization
            || self.header.is_some()
            || self.query.is_some()
    }

    /// Whether a credential of `kind` can be sent on one of these carriers
    /// ([`CredentialKind`]): an app password needs Basic (in `Authorization`
    /// or `Proxy-Authorization`), a token anything but `basic`.
    pub fn take(&self, kind: CredentialKind) -> bool {
        match kind {
            CredentialKind::AppPassword => self.basic || self.proxy_authorization,
            CredentialKind::Token => {
                self.bearer
                    || self.proxy_authorization
                    || self.header.is_some()
                    || self.query.is_some()
            }
            // A certificate travels in TLS, not in a route's carriers: the
            // device's route list decides where it is good.
            CredentialKind::Certificate => true,
        }
    }
}

/// One place a credential can be carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// `Authorization: Basic`, the credential as the password.
    Basic,
    /// `Authorization: Bearer`.
    Bearer,
    /// `Proxy-Authorization`, Basic or Bearer.
    ProxyAuthorization,
    /// The configured custom header.
    Header,
    /// The configured query parameter.
    Query,
    /// A TLS client certificate (issue 18): presented in vestibule's own
    /// handshake, or forwarded by a trusted front; the "token" is the
    /// leaf's SHA-256, lowercase hex ([`crate::client_cert`]). Never found
    /// by [`find_credential`].
    ClientCertificate,
}

impl Carrier {
    /// The name used in configuration, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Bearer => "bearer",
            Self::ProxyAuthorization => "proxy-authorization",
            Self::Header => "header",
            Self::Query => "query",
            Self::ClientCertificate => "client-certificate",
        }
    }
}

/// A credential found in a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// Where it was found.
    pub carrier: Carrier,
    /// The `vst_…` value (well-formed: [`is_device_token`] holds).
    pub token: Secret,
    /// The user-id when sent as Basic (in `Authorization` or
    /// `Proxy-Authorization`): UTF-8 without `:` or control characters,
    /// possibly empty. Clients make one up; it is for logs and for checking
    /// against the device's owner, never for identity on its own.
    pub basic_user: Option<String>,
}

/// Why the credential carriers of a request were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarrierError {
    /// More than one credential (two carriers, repeated header lines,
    /// repeated query parameter): HTTP 400.
    Ambiguous,
    /// A carrier that is ours held something that is not a well-formed
    /// credential: HTTP 401.
    Malformed {
        /// The carrier.
        carrier: Carrier,
        /// What was wrong, for logs (never the value itself).
        reason: &'static str,
    },
}

impl fmt::Display for CarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ambiguous => f.write_str(
                "the request carries more than one device credential \
                 (two carriers, a repeated header or a repeated query parameter)",
            ),
            Self::Malformed { carrier, reason } => write!(
                f,
                "the {} carrier holds a malformed device credential: {reason}",
                carrier.as_str()
            ),
        }
    }
}

impl std::error::Error for CarrierError {}

const NOT_A_TOKEN: &str = "not a well-formed vst_ token";
const NOT_UTF8: &str = "not valid UTF-8";
const USER_NOT_UTF8: &str = "the Basic user-id is not valid UTF-8";
const USER_CONTROL: &str = "the Basic user-id contains a control character";

/// Finds the one device credential in a request, looking only at the
/// carriers enabled. `query` is the raw query string (without `?`), if any.
///
/// Every enabled carrier is read before deciding, so the answer does not
/// depend on an order: more than one carrier holding something of ours is
/// [`CarrierError::Ambiguous`] even if one of them is malformed.
pub fn find_credential(
    headers: &HeaderMap,
    query: Option<&str>,
    carriers: &Carriers,
) -> Result<Option<Presented>, CarrierError> {
    let outcomes = [
        if carriers.basic || carriers.bearer {
            from_auth_header(headers, &AUTHORIZATION, |scheme| match scheme {
                Scheme::Basic => carriers.basic.then_some(Carrier::Basic),
                Scheme::Bearer => carriers.bearer.then_some(Carrier::Bearer),
            })
        } else {
            Ok(None)
        },
        if carriers.proxy_authorization {
            from_auth_header(headers, &PROXY_AUTHORIZATION, |_| {
                Some(Carrier::ProxyAuthorization)
            })
        } else {
            Ok(None)
        },
        match &carriers.header {
            Some(name) => from_custom_header(headers, name),
            None => Ok(None),
        },
        match (&carriers.query, query) {
            (Some(name), Some(query)) => from_query(query, name),
            _ => Ok(None),
        },
    ];
    let mut found = None;
    for outcome in outcomes {
        match outcome {
            Ok(None) => {}
            Err(CarrierError::Ambiguous) => return Err(CarrierError::Ambiguous),
            ours => {
                if found.replace(ours).is_some() {
                    return Err(CarrierError::Ambiguous);
                }
            }
        }
    }
    found.unwrap_or(Ok(None))
}

/// Removes the carrier that held a credential from the request before it is
/// forwarded: the `Authorization`, `Proxy-Authorization` or custom header,
/// all lines of it. (A credential is only found when its header has one
/// line.) [`Carrier::Query`] is not a header: use [`remove_query_param`].
pub fn strip_credential_headers(headers: &mut HeaderMap, carrier: Carrier, carriers: &Carriers) {
    match carrier {
        Carrier::Basic | Carrier::Bearer => {
            headers.remove(AUTHORIZATION);
        }
        Carrier::ProxyAuthorization => {
            headers.remove(PROXY_AUTHORIZATION);
        }
        Carrier::Header => {
            if let Some(name) = &carriers.header {
                headers.remove(name);
            }
        }
        // Not a header: the query has its own remover, and a forwarded
        // certificate header is an identity header, stripped always.
        Carrier::Query | Carrier::ClientCertificate => {}
    }
}

/// The path-and-query with every occurrence of query parameter `name`
/// removed (with or without `=`; other parameters kept byte for byte, in
/// order; the `?` dropped if nothing is left). Returns the input unchanged
/// when the parameter is absent. Names are compared exactly, as
/// [`find_credential`] compares them.
pub fn remove_query_param(path_and_query: &str, name: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return path_and_query.to_owned();
    };
    if !query.split('&').any(|pair| param_name(pair) == name) {
        return path_and_query.to_owned();
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| param_name(pair) != name)
        .collect();
    let kept = kept.join("&");
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{kept}")
    }
}

/// The name part of one `name=value` query pair (all of it without `=`).
fn param_name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name)
}

/// The authentication schemes that can carry a device credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Basic,
    Bearer,
}

/// Reads `Authorization` or `Proxy-Authorization` (`name`); `carrier_of`
/// says which schemes are enabled and as what carrier.
///
/// Neither header is a list (RFC 9110 §11.6.2, §11.7.2), so one on two
/// lines is malformed; it is only ours to refuse when a line holds
/// something of ours, otherwise it is the application's business.
fn from_auth_header(
    headers: &HeaderMap,
    name: &HeaderName,
    carrier_of: impl Fn(Scheme) -> Option<Carrier>,
) -> Result<Option<Presented>, CarrierError> {
    let mut lines = 0usize;
    let mut ours = None;
    for value in headers.get_all(name) {
        lines += 1;
        if let Some((scheme, read)) = read_credentials(value.as_bytes())
            && let Some(carrier) = carrier_of(scheme)
        {
            ours = Some((carrier, read));
        }
    }
    let Some((carrier, read)) = ours else {
        return Ok(None);
    };
    if lines > 1 {
        return Err(CarrierError::Ambiguous);
    }
    presented(carrier, read)
}

/// One carrier's reading, as what was presented or why it is malformed.
fn presented(
    carrier: Carrier,
    read: Result<(Option<String>, Secret), &'static str>,
) -> Result<Option<Presented>, CarrierError> {
    match read {
        Ok((basic_user, token)) => Ok(Some(Presented {
            carrier,
            token,
            basic_user,
        })),
        Err(reason) => Err(CarrierError::Malformed { carrier, reason }),
    }
}

/// What one line of credentials (RFC 9110 §11.4) holds, if it is ours:
/// the scheme, then the Basic user-id and the token, or why it is malformed.
/// `None` when it is not ours, whatever it is.
type ReadCredentials = Option<(Scheme, Result<(Option<String>, Secret), &'static str>)>;

/// `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, with the
/// scheme compared case-insensitively (RFC 9110 §11.1). Leniencies (OWS
/// around the value, HTAB as well as SP after the scheme) only make more
/// values ours, which is the safe direction: ours are checked and stripped,
/// while anything else reaches the application.
fn read_credentials(value: &[u8]) -> ReadCredentials {
    let value = trim_ows(value);
    let split = value.iter().position(|&b| b == b' ' || b == b'\t')?;
    let (scheme, rest) = value.split_at(split);
    let rest = trim_ows(rest);
    if scheme.eq_ignore_ascii_case(b"bearer") {
        // RFC 6750 §2.1: the token is the whole rest; ours by its prefix.
        if !rest.starts_with(DEVICE_PREFIX.as_bytes()) {
            return None;
        }
        let read = std::str::from_utf8(rest)
            .map_err(|_| NOT_UTF8)
            .and_then(token_from);
        Some((Scheme::Bearer, read.map(|token| (None, token))))
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        read_basic(rest).map(|read| (Scheme::Basic, read))
    } else {
        None
    }
}

/// Base64 as RFC 7617 §2 clients write it: the standard alphabet (RFC 4648
/// §4); padding and the unused trailing bits are not checked, since a
/// client that gets them wrong still sent us a credential.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// The token68 of a Basic credential (RFC 7617 §2): `base64(user-id ":"
/// password)`, split at the first `:` since the user-id cannot contain one.
/// Ours only when the password has our prefix.
fn read_basic(token68: &[u8]) -> Option<Result<(Option<String>, Secret), &'static str>> {
    let decoded = BASIC_BASE64.decode(token68).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = decoded.split_at(colon);
    let password = password.get(1..).unwrap_or_default();
    if !password.starts_with(DEVICE_PREFIX.as_bytes()) {
        return None;
    }
    Some(basic_user_and_token(user, password))
}

/// The user-id and password of a Basic credential that is ours.
fn basic_user_and_token(
    user: &[u8],
    password: &[u8],
) -> Result<(Option<String>, Secret), &'static str> {
    let user = std::str::from_utf8(user).map_err(|_| USER_NOT_UTF8)?;
    // RFC 7617 §2: no control characters in the user-id or password; the
    // user-id ends up in logs.
    if user.chars().any(char::is_control) {
        return Err(USER_CONTROL);
    }
    let password = std::str::from_utf8(password).map_err(|_| NOT_UTF8)?;
    Ok((Some(user.to_owned()), token_from(password)?))
}

/// A custom header is ours by configuration: present means it must hold a
/// credential, and only one.
fn from_custom_header(
    headers: &HeaderMap,
    name: &HeaderName,
) -> Result<Option<Presented>, CarrierError> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(CarrierError::Ambiguous);
    }
    let read = std::str::from_utf8(trim_ows(value.as_bytes()))
        .map_err(|_| NOT_UTF8)
        .and_then(token_from);
    presented(Carrier::Header, read.map(|token| (None, token)))
}

/// The query parameter is ours by configuration. Pairs are split on `&`
/// (RFC 3986 §3.4 leaves the syntax to the application; `&` is what every
/// client writes); a bare `name` without `=` counts, with an empty value.
fn from_query(query: &str, name: &str) -> Result<Option<Presented>, CarrierError> {
    let mut found = None;
    for pair in query.split('&') {
        if param_name(pair) != name {
            continue;
        }
        if found.is_some() {
            return Err(CarrierError::Ambiguous);
        }
        found = Some(pair.split_once('=').map_or("", |(_, value)| value));
    }
    let Some(raw) = found else {
        return Ok(None);
    };
    let decoded = percent_encoding::percent_decode_str(raw).collect::<Vec<u8>>();
    let read = String::from_utf8(decoded)
        .map_err(|_| NOT_UTF8)
        .and_then(|value| token_from(&value));
    presented(Carrier::Query, read.map(|token| (None, token)))
}

/// The value as a credential, if it is a well-formed one.
fn token_from(value: &str) -> Result<Secret, &'static str> {
    if is_device_token(value) {
        Ok(Secret::from_exposed(value.to_owned()))
    } else {
        Err(NOT_A_TOKEN)
    }
}

/// Crockford's base32 alphabet (<https://www.crockford.com/base32.html>):
/// digits and capitals without I, L, O (read as 1, 1, 0) and U.
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Symbols in a pairing code: 10 × 5 = 50 bits.
const PAIRING_SYMBOLS: usize = 10;

/// A pairing code: short enough for a person to type from another screen
/// (or scan), and only good for 5 minutes and one use (the caller enforces
/// both, and rate-limits attempts), so 50 bits leave an online guesser no
/// chance. 10 symbols of Crockford base32 from the first 50 bits of
/// `random`, shown as `XXXXX-XXXXX`.
pub fn pairing_code(random: [u8; 8]) -> Secret {
    let bits = u64::from_be_bytes(random) >> (64 - 5 * PAIRING_SYMBOLS);
    let mut code = String::with_capacity(PAIRING_SYMBOLS + 1);
    for i in 0..PAIRING_SYMBOLS {
        if i == PAIRING_SYMBOLS / 2 {
            code.push('-');
        }
        // Masked to 5 bits: always an index into the 32 symbols.
        let index = ((bits >> (5 * (PAIRING_SYMBOLS - 1 - i))) & 0x1f) as usize;
        code.push(char::from(CROCKFORD[index]));
    }
    Secret::from_exposed(code)
}

/// Normalises what a person typed: ASCII case-insensitive, spaces (any ASCII
/// whitespace) and `-` ignored, Crockford confusables mapped (O→0, I/L→1),
/// U refused; `None` unless exactly 10 valid symbols. The result is the
/// canonical `XXXXX-XXXXX` form, which is what gets hashed and stored.
pub fn normalize_pairing_code(input: &str) -> Option<String> {
    let mut symbols = Vec::with_capacity(PAIRING_SYMBOLS);
    for b in input.bytes() {
        let symbol = match b.to_ascii_uppercase() {
            b'-' => continue,
            s if s.is_ascii_whitespace() => continue,
            b'O' => b'0',
            b'I' | b'L' => b'1',
            s if CROCKFORD.contains(&s) => s,
            _ => return None,
        };
        if symbols.len() == PAIRING_SYMBOLS {
            return None;
        }
        symbols.push(symbol);
    }
    if symbols.len() != PAIRING_SYMBOLS {
        return None;
    }
    let (first, second) = symbols.split_at(PAIRING_SYMBOLS / 2);
    let mut code = String::with_capacity(PAIRING_SYMBOLS + 1);
    code.extend(first.iter().copied().map(char::from));
    code.push('-');
    code.extend(second.iter().copied().map(char::from));
    Some(code)
}

// ---- decisions about a credential that was found ------------------------

/// What a device credential is, chosen when it is created; it says how the
/// credential may be sent, so that the choice means something.
///
/// - An **app password** is a password: only as the password of HTTP Basic
///   (RFC 7617), in `Authorization` or `Proxy-Authorization`. A client that
///   only knows user name and password (Subsonic, WebDAV, CalDAV) sends
///   nothing else, and a leaked app password cannot be replayed as a bearer
///   token in a URL or a header.
/// - A **token** is a bearer value (RFC 6750): `Bearer` in `Authorization`
///   or `Proxy-Authorization`, the route's custom header, or its query
///   parameter; never as a Basic password. Paired devices get a token: they
///   speak vestibule's pairing protocol, so they can send a header.
///
/// A stored kind this version does not know ([`CredentialKind::from_stored`]
/// gives `None`) is accepted on no carrier: failing closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// A bearer value: `Bearer`, custom header or query parameter.
    Token,
    /// A password: HTTP Basic only.
    AppPassword,
    /// A TLS client certificate, identified by its SHA-256: only as
    /// [`Carrier::ClientCertificate`].
    Certificate,
}

impl CredentialKind {
    /// The kind a stored device record names: `token` and `paired` are
    /// tokens, `app-password` is an app password; anything else is unknown.
    pub fn from_stored(kind: &str) -> Option<Self> {
        match kind {
            "token" | "paired" => Some(Self::Token),
            "app-password" => Some(Self::AppPassword),
            "certificate" => Some(Self::Certificate),
            _ => None,
        }
    }

    /// The name stored and shown for this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::AppPassword => "app-password",
            Self::Certificate => "certificate",
        }
    }

    /// Whether a credential of this kind may be sent the way `presented`
    /// was: as a Basic password (an app password) or as a bearer value (a
    /// token).
    pub fn accepts(self, presented: &Presented) -> bool {
        self == Self::of_presentation(presented)
    }

    /// The kind of credential the way `presented` was sent is meant for.
    pub fn of_presentation(presented: &Presented) -> Self {
        let as_password = match presented.carrier {
            Carrier::ClientCertificate => return Self::Certificate,
            Carrier::Basic => true,
            Carrier::Bearer | Carrier::Header | Carrier::Query => false,
            // Either scheme: `basic_user` is set exactly when it was Basic.
            Carrier::ProxyAuthorization => presented.basic_user.is_some(),
        };
        if as_password {
            Self::AppPassword
        } else {
            Self::Token
        }
    }
}

/// What the store and the cache know about a presented credential's device
/// and owner: plain data, so that the decision below is a pure function.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFacts<'a> {
    /// The credential's kind; `None` when the stored kind is unknown.
    pub kind: Option<CredentialKind>,
    /// Unix ms; `None` never expires.
    pub expires_at: Option<i64>,
    /// The user name a Basic client must send (the device's, else its
    /// owner's username).
    pub basic_user: &'a str,
    /// The routes the device may reach, by name.
    pub routes: &'a [Box<str>],
    /// The owner's account standing.
    pub owner: OwnerStanding,
    /// Unix ms of the owner's latest sighting through the SSO front.
    pub owner_last_seen: i64,
}

/// An account's standing, as far as its credentials are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerStanding {
    /// May sign in.
    Active,
    /// Waits for an admin's approval.
    Pending,
    /// Disabled.
    Disabled,
}

/// What a known credential is worth on a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceJudgement {
    /// Act as the owner.
    Allowed,
    /// Past its expiry.
    Expired,
    /// Sent in a way its kind does not allow (a token as a Basic password,
    /// an app password as a bearer value), or of an unknown kind.
    WrongCarrier,
    /// Sent as Basic with a user name that is not the expected one.
    WrongUser,
    /// Not valid for this route.
    WrongRoute,
    /// The owner waits for approval.
    Pending,
    /// The owner is disabled.
    Disabled,
    /// The owner has not been seen through SSO within `max_sso_age_ms`.
    SsoStale,
}

/// Decides what a known credential is worth. Checked in this order, so
/// that the answer says the most useful thing first: expiry, the way it was
/// sent (its kind), the Basic user name, the route, the owner's standing,
/// then SSO freshness.
pub fn judge_device(
    facts: &DeviceFacts<'_>,
    presented: &Presented,
    route: &str,
    max_sso_age_ms: Option<i64>,
    now: i64,
) -> DeviceJudgement {
    if facts.expires_at.is_some_and(|t| now >= t) {
        return DeviceJudgement::Expired;
    }
    if !facts.kind.is_some_and(|k| k.accepts(presented)) {
        return DeviceJudgement::WrongCarrier;
    }
    // The user name is not secret: a plain comparison is fine.
    if presented
        .basic_user
        .as_deref()
        .is_some_and(|u| u != facts.basic_user)
    {
        return DeviceJudgement::WrongUser;
    }
    if !facts.routes.iter().any(|r| &**r == route) {
        return DeviceJudgement::WrongRoute;
    }
    match facts.owner {
        OwnerStanding::Pending => return DeviceJudgement::Pending,
        OwnerStanding::Disabled => return DeviceJudgement::Disabled,
        OwnerStanding::Active => {}
    }
    if !sso_fresh(facts.owner_last_seen, max_sso_age_ms, now) {
        return DeviceJudgement::SsoStale;
    }
    DeviceJudgement::Allowed
}

/// SSO freshness, the one rule for device credentials and the OIDC
/// provider's refresh tokens: with a `max_sso_age_ms`, the account must
/// have been seen through the SSO front (`last_seen`, unix ms) within it.
/// Without one, anything is fresh.
#[must_use]
pub fn sso_fresh(last_seen: i64, max_sso_age_ms: Option<i64>, now: i64) -> bool {
    max_sso_age_ms.is_none_or(|max| now.saturating_sub(last_seen) <= max)
}

/// Headers a device credential must never be read from: they carry
/// identity, cookies or routing, and one header must mean one thing.
const RESERVED_CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "host",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-uri",
    "x-original-uri",
    "forwarded",
];

/// The header a route's `header` carrier may read, normalised; `None` when
/// `name` is not a header name or already means something else (see
/// [`Carriers::header`]). vestibule's own `x-vestibule-` names are fine:
/// they are stripped like identity headers anyway; another dialect's
/// identity header is not.
pub fn credential_header_name(name: &str) -> Option<HeaderName> {
    let normalized = crate::headers::normalize_name(name);
    let h = HeaderName::from_bytes(normalized.as_bytes()).ok()?;
    let allowed = !RESERVED_CREDENTIAL_HEADERS.contains(&h.as_str())
        && (h.as_str().starts_with("x-vestibule-")
            || !crate::headers::IdentityHeaders::builtin().contains(h.as_str()));
    allowed.then_some(h)
}

/// Whether `name` may be a route's credential query parameter: a plain,
/// non-empty name (ASCII letters, digits, `_`, `-`).
pub fn is_credential_query_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The `Authorization` value a forward-auth proxy should send the app: the
/// client's own (exactly one line), or empty when the request's credential
/// was carried there and consumed. Empty also for repeated lines, which are
/// ambiguous.
pub fn authorization_to_forward(
    headers: &HeaderMap,
    consumed: Option<Carrier>,
) -> http::HeaderValue {
    let consumed = matches!(consumed, Some(Carrier::Basic | Carrier::Bearer));
    let mut lines = headers.get_all(AUTHORIZATION).iter();
    match (lines.next(), lines.next()) {
        (Some(v), None) if !consumed => v.clone(),
        _ => http::HeaderValue::from_static(""),
    }
}

#[cfg(test)]
mod tests {
    /// A presented credential: `user` set means it was sent as Basic.
    fn sent(carrier: Carrier, user: Option<&str>) -> Presented {
        Presented {
            carrier,
            token: device_token([3; 32]),
            basic_user: user.map(str::to_owned),
        }
    }

    #[test]
    fn judgement_order_and_each_refusal() {
        let routes: Vec<Box<str>> = vec!["api".into()];
        let ok = DeviceFacts {
            kind: Some(CredentialKind::AppPassword),
            expires_at: Some(1_000),
            basic_user: "alice",
            routes: &routes,
            owner: OwnerStanding::Active,
            owner_last_seen: 500,
        };
        let as_basic = |user: &str| sent(Carrier::Basic, Some(user));
        let alice = as_basic("alice");
        let j = |f: &DeviceFacts<'_>, p: &Presented, route: &str, age: Option<i64>| {
            judge_device(f, p, route, age, 900)
        };
        assert_eq!(j(&ok, &alice, "api", None), DeviceJudgement::Allowed);
        assert_eq!(j(&ok, &alice, "api", Some(400)), DeviceJudgement::Allowed);
        assert_eq!(
            judge_device(&ok, &alice, "api", None, 1_000),
            DeviceJudgement::Expired
        );
        assert_eq!(
            j(&ok, &as_basic("bob"), "api", None),
            DeviceJudgement::WrongUser
        );
        assert_eq!(j(&ok, &alice, "music", None), DeviceJudgement::WrongRoute);
        assert_eq!(j(&ok, &alice, "api", Some(399)), DeviceJudgement::SsoStale);
        let pending = DeviceFacts {
            owner: OwnerStanding::Pending,
            ..ok
        };
        assert_eq!(j(&pending, &alice, "api", None), DeviceJudgement::Pending);
        let disabled = DeviceFacts {
            owner: OwnerStanding::Disabled,
            ..ok
        };
        // Standing is judged before freshness.
        assert_eq!(
            j(&disabled, &alice, "api", Some(1)),
            DeviceJudgement::Disabled
        );
        // The way it was sent before the user name and everything after.
        let bearer = sent(Carrier::Bearer, None);
        assert_eq!(
            j(&disabled, &bearer, "music", None),
            DeviceJudgement::WrongCarrier
        );
        // Expiry first of all.
        let both = DeviceFacts {
            expires_at: Some(1),
            ..disabled
        };
        assert_eq!(
            j(&both, &as_basic("bob"), "music", None),
            DeviceJudgement::Expired
        );
        assert_eq!(j(&both, &bearer, "music", None), DeviceJudgement::Expired);
    }

    #[test]
    fn a_kind_is_accepted_only_the_way_it_is_meant_to_be_sent() {
        use CredentialKind::{AppPassword, Token};
        let cases = [
            (sent(Carrier::Basic, Some("alice")), AppPassword),
            (sent(Carrier::Basic, Some("")), AppPassword),
            (
                sent(Carrier::ProxyAuthorization, Some("alice")),
                AppPassword,
            ),
            (sent(Carrier::Bearer, None), Token),
            (sent(Carrier::ProxyAuthorization, None), Token),
            (sent(Carrier::Header, None), Token),
            (sent(Carrier::Query, None), Token),
        ];
        for (presented, meant_for) in &cases {
            assert_eq!(CredentialKind::of_presentation(presented), *meant_for);
            for kind in [AppPassword, Token] {
                assert_eq!(
                    kind.accepts(presented),
                    kind == *meant_for,
                    "{kind:?} {presented:?}"
                );
            }
        }
        for (stored, want) in [
            ("token", Some(Token)),
            ("paired", Some(Token)),
            ("app-password", Some(AppPassword)),
            ("Token", None),
            ("bearer", None),
            ("", None),
        ] {
            assert_eq!(CredentialKind::from_stored(stored), want, "{stored:?}");
        }
        for kind in [AppPassword, Token] {
            assert_eq!(CredentialKind::from_stored(kind.as_str()), Some(kind));
        }
        // An unknown kind is accepted nowhere.
        let routes: Vec<Box<str>> = vec!["api".into()];
        let unknown = DeviceFacts {
            kind: None,
            expires_at: None,
            basic_user: "alice",
            routes: &routes,
            owner: OwnerStanding::Active,
            owner_last_seen: 0,
        };
        for (presented, _) in &cases {
            assert_eq!(
                judge_device(&unknown, presented, "api", None, 0),
                DeviceJudgement::WrongCarrier
            );
        }
    }

    #[test]
    fn credential_header_names_that_mean_something_else_are_refused() {
        assert_eq!(
            credential_header_name("X-Vestibule-Token")
                .unwrap()
                .as_str(),
            "x-vestibule-token"
        );
        assert_eq!(
            credential_header_name("X_App_Key").unwrap().as_str(),
            "x-app-key"
        );
        for bad in [
            "Authorization",
            "proxy_authorization",
            "Cookie",
            "X-authentik-uid",
            "Remote-User",
            "bad header",
            "",
        ] {
            assert!(credential_header_name(bad).is_none(), "{bad}");
        }
        assert!(is_credential_query_name("vestibule_token"));
        assert!(!is_credential_query_name("a b") && !is_credential_query_name(""));
    }

    #[test]
    fn authorization_is_forwarded_unless_consumed_or_ambiguous() {
        let mut h = HeaderMap::new();
        assert_eq!(authorization_to_forward(&h, None), "");
        h.insert(AUTHORIZATION, http::HeaderValue::from_static("Bearer app"));
        assert_eq!(authorization_to_forward(&h, None), "Bearer app");
        assert_eq!(
            authorization_to_forward(&h, Some(Carrier::Header)),
            "Bearer app"
        );
        assert_eq!(authorization_to_forward(&h, Some(Carrier::Bearer)), "");
        assert_eq!(authorization_to_forward(&h, Some(Carrier::Basic)), "");
        h.append(
            AUTHORIZATION,
            http::HeaderValue::from_static("Bearer other"),
        );
        assert_eq!(authorization_to_forward(&h, None), "");
    }

    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use http::HeaderValue;
    use proptest::prelude::*;

    const CUSTOM: &str = "x-device-token";

    /// Header lines, `(name, value)`.
    type Lines<'a> = Vec<(&'a str, &'a [u8])>;
    type OwnedLines<'a> = Vec<(&'a str, Vec<u8>)>;

    fn all_carriers() -> Carriers {
        Carriers {
            basic: true,
            bearer: true,
            proxy_authorization: true,
            header: Some(HeaderName::from_static(CUSTOM)),
            query: Some("token".to_owned()),
        }
    }

    fn only(carrier: Carrier) -> Carriers {
        let all = all_carriers();
        Carriers {
            basic: carrier == Carrier::Basic,
            bearer: carrier == Carrier::Bearer,
            proxy_authorization: carrier == Carrier::ProxyAuthorization,
            header: (carrier == Carrier::Header).then_some(all.header).flatten(),
            query: (carrier == Carrier::Query).then_some(all.query).flatten(),
        }
    }

    fn token(n: u8) -> String {
        device_token([n; 32]).expose().to_owned()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    /// `Basic` with `user:password` given as raw bytes (not UTF-8 on purpose).
    fn basic_raw(user_password: &[u8]) -> Vec<u8> {
        format!("Basic {}", STANDARD.encode(user_password)).into_bytes()
    }

    fn headers(lines: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in lines {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        h
    }

    fn find(
        lines: &[(&str, &[u8])],
        query: Option<&str>,
    ) -> Result<Option<Presented>, CarrierError> {
        find_credential(&headers(lines), query, &all_carriers())
    }

    fn malformed(carrier: Carrier) -> impl Fn(&Result<Option<Presented>, CarrierError>) -> bool {
        move |r| matches!(r, Err(CarrierError::Malformed { carrier: c, .. }) if *c == carrier)
    }

    /// Every way to carry `token` (with user `user` for Basic).
    fn carried(token: &str, user: &str) -> Vec<(Carrier, HeaderMap, Option<String>)> {
        vec![
            (
                Carrier::Basic,
                headers(&[("authorization", basic(user, token).as_bytes())]),
                None,
            ),
            (
                Carrier::Bearer,
                headers(&[("authorization", format!("Bearer {token}").as_bytes())]),
                None,
            ),
            (
                Carrier::ProxyAuthorization,
                headers(&[("proxy-authorization", format!("Bearer {token}").as_bytes())]),
                None,
            ),
            (
                Carrier::ProxyAuthorization,
                headers(&[("proxy-authorization", basic(user, token).as_bytes())]),
                None,
            ),
            (
                Carrier::Header,
                headers(&[(CUSTOM, token.as_bytes())]),
                None,
            ),
            (
                Carrier::Query,
                HeaderMap::new(),
                Some(format!("a=1&token={token}&b")),
            ),
        ]
    }

    #[test]
    fn device_tokens_have_their_own_prefix_and_256_bits() {
        let t = device_token([7u8; 32]);
        assert!(t.expose().starts_with("vst_"));
        assert_eq!(t.expose().len(), 4 + 43);
        assert!(is_device_token(t.expose()));
        assert!(!crate::secret::is_session_token(t.expose()));
        let session = crate::secret::session_token([7u8; 32]);
        assert!(
            !is_device_token(session.expose()),
            "a session is not a device"
        );
        assert_eq!(format!("{t:?}"), "Secret(<redacted>)");
        let claim = pairing_claim_token([7u8; 32]);
        assert!(claim.expose().starts_with("vsp_"));
        assert!(is_pairing_claim_token(claim.expose()));
        assert!(!is_device_token(claim.expose()), "a claim is not a device");
        assert!(!is_pairing_claim_token(t.expose()));
        assert!(!is_pairing_claim_token("vsp_short"));
    }

    #[test]
    fn malformed_device_tokens_are_not_tokens() {
        let a43 = "A".repeat(43);
        for bad in [
            String::new(),
            "vst_".to_owned(),
            "vst_short".to_owned(),
            format!("vss_{a43}"),
            format!("VST_{a43}"),
            format!("vst_{a43}A"),
            format!("vst_!{}", &a43[1..]),
            format!("vst_{}=", &a43[1..]),
            // Non-zero trailing bits: a second spelling of the same bytes.
            format!("vst_{}B", &a43[1..]),
            format!(" vst_{a43}"),
        ] {
            assert!(!is_device_token(&bad), "{bad}");
        }
        assert!(is_device_token(&format!("vst_{a43}")));
    }

    #[test]
    fn each_carrier_finds_the_token() {
        let t = token(1);
        for (carrier, h, query) in carried(&t, "alice") {
            let got = find_credential(&h, query.as_deref(), &all_carriers())
                .unwrap()
                .unwrap();
            assert_eq!(got.carrier, carrier);
            assert_eq!(got.token.expose(), t);
            let via_basic = h.values().any(|v| v.as_bytes().starts_with(b"Basic"));
            assert_eq!(got.basic_user.as_deref(), via_basic.then_some("alice"));
            // Found the same way with only that carrier enabled...
            assert_eq!(
                find_credential(&h, query.as_deref(), &only(carrier)),
                Ok(Some(got))
            );
            // ...and not at all without it.
            let mut others = all_carriers();
            match carrier {
                Carrier::Basic => others.basic = false,
                Carrier::Bearer => others.bearer = false,
                Carrier::ProxyAuthorization => others.proxy_authorization = false,
                Carrier::Header => others.header = None,
                Carrier::Query => others.query = None,
                Carrier::ClientCertificate => {
                    panic!("find_credential found a client certificate in headers")
                }
            }
            assert_eq!(
                find_credential(&h, query.as_deref(), &others),
                Ok(None),
                "{carrier:?}"
            );
        }
    }

    #[test]
    fn basic_details() {
        let t = token(2);
        // Padding optional, UTF-8 user-id, empty user-id, ':' in a password
        // is not a token.
        let unpadded = format!("Basic {}", STANDARD_NO_PAD.encode(format!("zoë:{t}")));
        let got = find(&[("authorization", unpadded.as_bytes())], None)
            .unwrap()
            .unwrap();
        assert_eq!(got.basic_user.as_deref(), Some("zoë"));
        assert_eq!(got.token.expose(), t);
        let got = find(&[("authorization", basic("", &t).as_bytes())], None)
            .unwrap()
            .unwrap();
        assert_eq!(got.basic_user.as_deref(), Some(""));
        let r = find(
            &[("authorization", basic("a", &format!("{t}:x")).as_bytes())],
            None,
        );
        assert!(malformed(Carrier::Basic)(&r), "{r:?}");
    }

    #[test]
    fn schemes_are_case_insensitive() {
        let t = token(3);
        let b64 = STANDARD.encode(format!("u:{t}"));
        for v in [
            format!("bearer {t}"),
            format!("BEARER {t}"),
            format!("BeArEr   {t}"),
            format!("Bearer\t{t}"),
            format!("  Bearer {t}  "),
            format!("basic {b64}"),
            format!("BASIC  {b64}"),
            format!("bAsIc {b64}"),
        ] {
            let got = find(&[("authorization", v.as_bytes())], None);
            assert_eq!(got.unwrap().unwrap().token.expose(), t, "{v}");
            let got = find(&[("proxy-authorization", v.as_bytes())], None)
                .unwrap()
                .unwrap();
            assert_eq!(got.carrier, Carrier::ProxyAuthorization, "{v}");
        }
    }

    #[test]
    fn the_applications_own_credentials_are_not_ours() {
        let jwt = b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
        let app_basic = basic("alice", "hunter2");
        let vss = format!("Bearer {}", crate::secret::session_token([1; 32]).expose());
        for v in [
            &jwt[..],
            app_basic.as_bytes(),
            vss.as_bytes(),
            b"Digest username=\"vst_x\", realm=\"r\"",
            b"Negotiate vst_AAAA",
            b"Bearer",
            b"Bearer ",
            b"Basic",
            b"Basic !!!not-base64!!!",
            b"Basic dnN0X25vY29sb24=", // "vst_nocolon": no password
            b"Bearervst_AAAA",
            b"Bearer VST_AAAA",
            b"Basic \xff\xfe",
            b"",
        ] {
            for name in ["authorization", "proxy-authorization"] {
                assert_eq!(
                    find(&[(name, v)], None),
                    Ok(None),
                    "{}",
                    String::from_utf8_lossy(v)
                );
            }
        }
        // Two lines, neither ours: the application's problem, not ours.
        assert_eq!(
            find(
                &[
                    ("authorization", jwt),
                    ("authorization", app_basic.as_bytes())
                ],
                None
            ),
            Ok(None)
        );
        // Without the carrier enabled, even a vst_ value is left alone.
        let h = headers(&[("authorization", format!("Bearer {}", token(1)).as_bytes())]);
        let basic_only = Carriers {
            basic: true,
            ..Carriers::default()
        };
        assert_eq!(find_credential(&h, None, &basic_only), Ok(None));
        assert_eq!(
            find_credential(&h, Some("token=x"), &Carriers::default()),
            Ok(None)
        );
        // The query is only read when a parameter name is configured.
        let no_query = Carriers {
            query: None,
            ..all_carriers()
        };
        assert_eq!(
            find_credential(
                &HeaderMap::new(),
                Some(&format!("token={}", token(1))),
                &no_query
            ),
            Ok(None)
        );
        // Other parameters, and names that only look alike, are not ours.
        for q in [
            "tokens=1",
            "xtoken=vst_",
            "%74oken=garbage",
            "a=1&b=token",
            "",
        ] {
            assert_eq!(find(&[], Some(q)), Ok(None), "{q}");
        }
    }

    #[test]
    fn ambiguity_is_an_error() {
        let (t, u) = (token(1), token(2));
        let bearer = format!("Bearer {t}");
        let cases: Vec<(Lines<'_>, Option<String>)> = vec![
            // One header on two lines, one of them ours.
            (
                vec![
                    ("authorization", bearer.as_bytes()),
                    ("authorization", b"Bearer eyJ.x.y"),
                ],
                None,
            ),
            (
                vec![
                    ("authorization", b"Basic YTpi"),
                    ("authorization", bearer.as_bytes()),
                ],
                None,
            ),
            (
                vec![
                    ("proxy-authorization", bearer.as_bytes()),
                    ("proxy-authorization", bearer.as_bytes()),
                ],
                None,
            ),
            // Two carriers, even with the same token.
            (
                vec![("authorization", bearer.as_bytes()), (CUSTOM, t.as_bytes())],
                None,
            ),
            (
                vec![
                    ("authorization", bearer.as_bytes()),
                    ("proxy-authorization", bearer.as_bytes()),
                ],
                None,
            ),
            (
                vec![("authorization", bearer.as_bytes())],
                Some(format!("token={t}")),
            ),
            (vec![(CUSTOM, u.as_bytes())], Some(format!("token={t}"))),
            // The custom header or the query parameter repeated, whatever it holds.
            (vec![(CUSTOM, t.as_bytes()), (CUSTOM, t.as_bytes())], None),
            (vec![(CUSTOM, b"x"), (CUSTOM, b"")], None),
            (vec![], Some(format!("token={t}&token={t}"))),
            (vec![], Some(format!("token={t}&a=1&token"))),
            // Ambiguity wins over a malformed carrier, whatever the order.
            (
                vec![("authorization", b"Bearer vst_bad")],
                Some(format!("token={t}")),
            ),
            (
                vec![("authorization", bearer.as_bytes())],
                Some("token=bad".to_owned()),
            ),
        ];
        for (lines, query) in cases {
            assert_eq!(
                find(&lines, query.as_deref()),
                Err(CarrierError::Ambiguous),
                "{lines:?} {query:?}"
            );
        }
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let t = token(4);
        let cases: Vec<(Carrier, OwnedLines<'_>, Option<&str>)> = vec![
            (
                Carrier::Bearer,
                vec![("authorization", b"Bearer vst_short".to_vec())],
                None,
            ),
            (
                Carrier::Bearer,
                vec![("authorization", format!("Bearer {t} extra").into_bytes())],
                None,
            ),
            (
                Carrier::Bearer,
                vec![("authorization", format!("Bearer {t}=").into_bytes())],
                None,
            ),
            (
                Carrier::Bearer,
                vec![(
                    "authorization",
                    [b"Bearer vst_\xff".as_slice(), &[b'A'; 42]].concat(),
                )],
                None,
            ),
            (
                Carrier::Basic,
                vec![("authorization", basic("u", "vst_nope").into_bytes())],
                None,
            ),
            (
                Carrier::Basic,
                vec![(
                    "authorization",
                    basic_raw(&[b"\xffu:".as_slice(), t.as_bytes()].concat()),
                )],
                None,
            ),
            (
                Carrier::Basic,
                vec![(
                    "authorization",
                    basic_raw(&[b"u:".as_slice(), t.as_bytes(), b"\xff"].concat()),
                )],
                None,
            ),
            (
                Carrier::Basic,
                vec![("authorization", basic("a\u{7f}b", &t).into_bytes())],
                None,
            ),
            (
                Carrier::Basic,
                vec![("authorization", basic("a\nb", &t).into_bytes())],
                None,
            ),
            (
                Carrier::ProxyAuthorization,
                vec![("proxy-authorization", b"bearer vst_".to_vec())],
                None,
            ),
            (
                Carrier::ProxyAuthorization,
                vec![("proxy-authorization", basic("u", "vst_").into_bytes())],
                None,
            ),
            (Carrier::Header, vec![(CUSTOM, b"".to_vec())], None),
            (
                Carrier::Header,
                vec![(CUSTOM, format!("Bearer {t}").into_bytes())],
                None,
            ),
            (
                Carrier::Header,
                vec![(CUSTOM, [t.as_bytes(), b"\xff"].concat())],
                None,
            ),
            (Carrier::Query, vec![], Some("token=")),
            (Carrier::Query, vec![], Some("token")),
            (Carrier::Query, vec![], Some("a=1&token=vst_short")),
            (Carrier::Query, vec![], Some("token=vst_%FF")),
            (Carrier::Query, vec![], Some("token=vst_%")),
        ];
        for (carrier, lines, query) in cases {
            let lines: Lines<'_> = lines.iter().map(|(n, v)| (*n, v.as_slice())).collect();
            let r = find(&lines, query);
            assert!(
                malformed(carrier)(&r),
                "{carrier:?} {lines:?} {query:?}: {r:?}"
            );
        }
    }

    #[test]
    fn ows_and_percent_encoding_are_read_through() {
        let t = token(5);
        let padded = format!(" \t{t}\t ");
        let got = find(&[(CUSTOM, padded.as_bytes())], None).unwrap().unwrap();
        assert_eq!(got.token.expose(), t);
        let encoded = format!("token=vst%5F{}", &t[4..]);
        let got = find(&[], Some(&encoded)).unwrap().unwrap();
        assert_eq!(
            (got.carrier, got.token.expose()),
            (Carrier::Query, t.as_str())
        );
    }

    #[test]
    fn errors_say_what_and_where_but_not_the_value() {
        let r = find(&[("authorization", b"Bearer vst_secretish")], None).unwrap_err();
        let text = r.to_string();
        assert!(
            text.contains("bearer") && text.contains("malformed"),
            "{text}"
        );
        assert!(!text.contains("secretish"));
        assert!(
            CarrierError::Ambiguous
                .to_string()
                .contains("more than one")
        );
        let names: Vec<&str> = [
            Carrier::Basic,
            Carrier::Bearer,
            Carrier::ProxyAuthorization,
            Carrier::Header,
            Carrier::Query,
        ]
        .map(Carrier::as_str)
        .to_vec();
        assert_eq!(
            names,
            ["basic", "bearer", "proxy-authorization", "header", "query"]
        );
    }

    #[test]
    fn carriers_take_the_kinds_they_can_carry() {
        use CredentialKind::{AppPassword, Token};
        for (carrier, takes) in [
            (Carrier::Basic, [AppPassword].as_slice()),
            (Carrier::Bearer, &[Token]),
            (Carrier::ProxyAuthorization, &[AppPassword, Token]),
            (Carrier::Header, &[Token]),
            (Carrier::Query, &[Token]),
        ] {
            for kind in [AppPassword, Token] {
                assert_eq!(
                    only(carrier).take(kind),
                    takes.contains(&kind),
                    "{carrier:?} {kind:?}"
                );
            }
        }
        assert!(!Carriers::default().take(Token) && !Carriers::default().take(AppPassword));
    }

    #[test]
    fn carriers_any() {
        assert!(!Carriers::default().any());
        assert!(all_carriers().any());
        for c in [
            Carrier::Basic,
            Carrier::Bearer,
            Carrier::ProxyAuthorization,
            Carrier::Header,
            Carrier::Query,
        ] {
            assert!(only(c).any(), "{c:?}");
        }
    }

    #[test]
    fn stripping_removes_only_the_carrier() {
        let t = token(6);
        let mut h = headers(&[
            ("authorization", format!("Bearer {t}").as_bytes()),
            ("authorization", b"second line"),
            ("proxy-authorization", b"Basic YTpi"),
            (CUSTOM, b"x"),
            ("accept", b"*/*"),
        ]);
        let carriers = all_carriers();
        strip_credential_headers(&mut h, Carrier::Query, &carriers);
        assert_eq!(h.len(), 5);
        strip_credential_headers(&mut h, Carrier::Bearer, &carriers);
        assert!(h.get("authorization").is_none(), "every line");
        assert_eq!(h.len(), 3);
        strip_credential_headers(&mut h, Carrier::ProxyAuthorization, &carriers);
        assert!(h.get("proxy-authorization").is_none());
        strip_credential_headers(&mut h, Carrier::Header, &carriers);
        assert!(h.get(CUSTOM).is_none());
        assert_eq!(h.len(), 1);
        assert!(h.get("accept").is_some());
        // Basic is in Authorization too.
        let mut h = headers(&[("authorization", basic("u", &t).as_bytes())]);
        strip_credential_headers(&mut h, Carrier::Basic, &carriers);
        assert!(h.is_empty());
        // No custom header configured: nothing to strip.
        let mut h = headers(&[(CUSTOM, b"x")]);
        strip_credential_headers(&mut h, Carrier::Header, &Carriers::default());
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn query_removal_keeps_the_other_parameters() {
        for (input, want) in [
            ("/p?a=1&token=vst_x&b=%20+&c", "/p?a=1&b=%20+&c"),
            ("/p?token=1&a=1&token=2&token", "/p?a=1"),
            ("/p?token=vst_x", "/p"),
            ("/p?token", "/p"),
            ("/p?&token=x&", "/p?&"),
            ("/p?a=1&&token=x", "/p?a=1&"),
            ("/p?a==token=x&token==x", "/p?a==token=x"),
            // Absent: unchanged, byte for byte.
            ("/p", "/p"),
            ("/p?", "/p?"),
            ("/p?&&", "/p?&&"),
            (
                "/p?tokens=1&xtoken=2&%74oken=3&Token=4",
                "/p?tokens=1&xtoken=2&%74oken=3&Token=4",
            ),
            ("/p?a=token", "/p?a=token"),
            ("", ""),
            ("?token=1", ""),
        ] {
            assert_eq!(remove_query_param(input, "token"), want, "{input}");
        }
    }

    #[test]
    fn pairing_codes() {
        assert_eq!(pairing_code([0; 8]).expose(), "00000-00000");
        assert_eq!(pairing_code([0xff; 8]).expose(), "ZZZZZ-ZZZZZ");
        // Bit order: the first 50 bits, most significant first.
        let bits: u64 = (0..10u64).map(|i| i << (5 * (9 - i))).sum();
        assert_eq!(
            pairing_code((bits << 14).to_be_bytes()).expose(),
            "01234-56789"
        );
        let top: u64 = (0..10u64).map(|i| (31 - i) << (5 * (9 - i))).sum();
        assert_eq!(
            pairing_code((top << 14).to_be_bytes()).expose(),
            "ZYXWV-TSRQP"
        );
        // The last 14 bits are not used.
        assert_eq!(
            pairing_code([0, 0, 0, 0, 0, 0, 0x3f, 0xff]).expose(),
            "00000-00000"
        );
        assert_eq!(format!("{:?}", pairing_code([1; 8])), "Secret(<redacted>)");
    }

    #[test]
    fn pairing_code_normalisation() {
        for (typed, want) in [
            ("ABCDE-FGHJK", Some("ABCDE-FGHJK")),
            ("abcde-fghjk", Some("ABCDE-FGHJK")),
            ("abcdefghjk", Some("ABCDE-FGHJK")),
            (" ab cd e - fg-hj k ", Some("ABCDE-FGHJK")),
            ("ab-cd-ef-gh-jk", Some("ABCDE-FGHJK")),
            ("O0oIiLl1-23", Some("00011-11123")),
            ("01234\t56789\n", Some("01234-56789")),
            ("ZYXWV-TSRQP", Some("ZYXWV-TSRQP")),
            // Wrong length.
            ("", None),
            ("-----", None),
            ("ABCDE-FGHJ", None),
            ("ABCDE-FGHJKM", None),
            // U is not a symbol, nor is anything outside the alphabet.
            ("ABCDE-FGHJU", None),
            ("abcde-fghju", None),
            ("ABCDE_FGHJK", None),
            ("ABCDE-FGHJ*", None),
            ("ABCDE-FGHJ\u{ff2b}", None), // fullwidth K
            ("ABCDE-FGHJ\u{212a}", None), // Kelvin sign
        ] {
            assert_eq!(normalize_pairing_code(typed).as_deref(), want, "{typed:?}");
        }
    }

    /// A Basic user-id a client could send: no ':' and no control character.
    fn user_id() -> impl Strategy<Value = String> {
        "[^:\\p{Cc}]{0,24}"
    }

    proptest! {
        #[test]
        fn every_device_token_is_found_in_every_carrier(bytes: [u8; 32], user in user_id()) {
            let t = device_token(bytes);
            prop_assert!(is_device_token(t.expose()));
            // One spelling per 32 bytes.
            let decoded = URL_SAFE_NO_PAD.decode(&t.expose()[4..]).unwrap();
            prop_assert_eq!(decoded.as_slice(), bytes.as_slice());
            for (carrier, h, query) in carried(t.expose(), &user) {
                let got = find_credential(&h, query.as_deref(), &all_carriers());
                let got = got.unwrap().unwrap();
                prop_assert_eq!(got.carrier, carrier);
                prop_assert_eq!(&got.token, &t);
                if let Some(u) = &got.basic_user {
                    prop_assert_eq!(u, &user);
                }
                // Stripped, nothing is left to find.
                let mut h = h.clone();
                strip_credential_headers(&mut h, carrier, &all_carriers());
                let query = query.map(|q| remove_query_param(&format!("/?{q}"), "token"));
                let query = query.as_deref().and_then(|q| q.split_once('?')).map(|(_, q)| q);
                prop_assert_eq!(find_credential(&h, query, &all_carriers()), Ok(None));
            }
        }

        #[test]
        fn every_found_credential_is_accepted_by_exactly_one_kind(bytes: [u8; 32], user in user_id()) {
            let t = device_token(bytes);
            let routes: Vec<Box<str>> = vec!["api".into()];
            for (carrier, h, query) in carried(t.expose(), &user) {
                let p = find_credential(&h, query.as_deref(), &all_carriers()).unwrap().unwrap();
                let kinds: Vec<CredentialKind> = [CredentialKind::Token, CredentialKind::AppPassword]
                    .into_iter()
                    .filter(|k| k.accepts(&p))
                    .collect();
                prop_assert_eq!(kinds.len(), 1, "{:?}", carrier);
                // Basic in either header is a password; everything else a bearer value.
                let as_password = p.basic_user.is_some();
                prop_assert_eq!(kinds[0] == CredentialKind::AppPassword, as_password);
                let facts = |kind| DeviceFacts {
                    kind: Some(kind),
                    expires_at: None,
                    basic_user: &user,
                    routes: &routes,
                    owner: OwnerStanding::Active,
                    owner_last_seen: 0,
                };
                prop_assert_eq!(judge_device(&facts(kinds[0]), &p, "api", None, 0), DeviceJudgement::Allowed);
                let other = if kinds[0] == CredentialKind::Token { CredentialKind::AppPassword } else { CredentialKind::Token };
                prop_assert_eq!(judge_device(&facts(other), &p, "api", None, 0), DeviceJudgement::WrongCarrier);
            }
        }

        #[test]
        fn accepted_tokens_are_canonical(rest in "[A-Za-z0-9_-]{43}") {
            let s = format!("vst_{rest}");
            if is_device_token(&s) {
                let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(&rest).unwrap().try_into().unwrap();
                prop_assert_eq!(device_token(bytes).expose().to_owned(), s);
            }
        }

        #[test]
        fn find_credential_never_panics(
            lines in proptest::collection::vec((0usize..5, proptest::collection::vec(any::<u8>(), 0..80)), 0..5),
            query in proptest::option::of(any::<String>()),
        ) {
            let names = ["authorization", "proxy-authorization", CUSTOM, "cookie", "accept"];
            let mut h = HeaderMap::new();
            for (name, value) in &lines {
                let value = [b"Bearer vst_".as_slice(), b"Basic ", b""][value.len() % 3]
                    .iter()
                    .chain(value)
                    .copied()
                    .collect::<Vec<u8>>();
                if let Ok(v) = HeaderValue::from_bytes(&value) {
                    h.append(HeaderName::from_static(names[*name]), v);
                }
            }
            if let Ok(Some(p)) = find_credential(&h, query.as_deref(), &all_carriers()) {
                prop_assert!(is_device_token(p.token.expose()));
            }
        }

        #[test]
        fn other_bearer_tokens_and_passwords_are_never_ours(
            value in "[ -~]{0,60}",
            user in user_id(),
        ) {
            prop_assume!(!value.trim_start().starts_with("vst_"));
            let bearer = format!("Bearer {value}");
            let basic = basic(&user, &value);
            for v in [bearer, basic] {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    let h: HeaderMap = [(AUTHORIZATION, v.clone()), (PROXY_AUTHORIZATION, v)].into_iter().collect();
                    prop_assert_eq!(find_credential(&h, None, &all_carriers()), Ok(None));
                }
            }
        }

        #[test]
        fn query_removal_removes_every_occurrence_and_nothing_else(
            path in "/[a-z/]{0,8}",
            pairs in proptest::collection::vec("(token|tokens|a|%74oken|)(=[a-z%&=]{0,6})?", 0..6),
            name in "(token|a|)",
        ) {
            let query = pairs.join("&");
            let input = format!("{path}?{query}");
            let out = remove_query_param(&input, &name);
            let kept_query = out.split_once('?').map_or("", |(_, q)| q);
            prop_assert!(kept_query.is_empty() || kept_query.split('&').all(|p| param_name(p) != name));
            let with_value = format!("{name}=");
            prop_assert!(kept_query.split('&').all(|p| !p.starts_with(&with_value)));
            let original: Vec<&str> = query.split('&').collect();
            if original.iter().all(|p| param_name(p) != name) {
                prop_assert_eq!(&out, &input);
            } else {
                let want: Vec<&str> = original.into_iter().filter(|p| param_name(p) != name).collect();
                let got: Vec<&str> = if kept_query.is_empty() { Vec::new() } else { kept_query.split('&').collect() };
                let want_joined = want.join("&");
                let want: Vec<&str> = if want_joined.is_empty() { Vec::new() } else { want };
                prop_assert_eq!(got, want);
                prop_assert!(out.starts_with(&path));
            }
        }

        #[test]
        fn query_removal_never_panics(input in any::<String>(), name in any::<String>()) {
            let out = remove_query_param(&input, &name);
            if let Some((_, q)) = out.split_once('?') {
                prop_assert!(q.split('&').all(|p| param_name(p) != name));
            }
        }

        #[test]
        fn pairing_codes_round_trip(bytes: [u8; 8]) {
            let code = pairing_code(bytes);
            prop_assert_eq!(normalize_pairing_code(code.expose()), Some(code.expose().to_owned()));
            let typed = code.expose().to_lowercase().replace('-', " ").replace('0', "o").replace('1', "l");
            prop_assert_eq!(normalize_pairing_code(&typed), Some(code.expose().to_owned()));
        }

        #[test]
        fn pairing_normalisation_is_idempotent(typed in "[0-9A-Za-z \\-]{0,16}") {
            if let Some(code) = normalize_pairing_code(&typed) {
                prop_assert_eq!(code.len(), 11);
                prop_assert_eq!(normalize_pairing_code(&code), Some(code.clone()));
            }
        }

        #[test]
        fn pairing_normalisation_never_panics(typed in any::<String>()) {
            if let Some(code) = normalize_pairing_code(&typed) {
                prop_assert_eq!(normalize_pairing_code(&code), Some(code));
            }
        }
    }

    #[test]
    fn sso_freshness_is_inclusive_and_off_without_a_limit() {
        assert!(sso_fresh(0, None, i64::MAX));
        assert!(sso_fresh(1_000, Some(500), 1_500));
        assert!(!sso_fresh(1_000, Some(500), 1_501));
        // A sighting "in the future" (clock skew between instances) is fresh.
        assert!(sso_fresh(2_000, Some(500), 1_000));
    }
}
