//! What the OpenID Connect provider's token and userinfo endpoints read
//! from a client (issue 14), and what they derive from it: the
//! `application/x-www-form-urlencoded` body (RFC 6749 §3.2), client
//! credentials in `Authorization: Basic` (RFC 6749 §2.3.1), a Bearer token
//! (RFC 6750 §2.1), scopes (RFC 6749 §3.3), the claims a set of scopes
//! releases (OIDC Core §5.4) and `at_hash` (OIDC Core §3.1.3.6). Pure and
//! I/O-free: every input here is untrusted.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

/// The largest form body read (a token request is a few hundred bytes).
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// The most parameters a form may have.
pub const MAX_PARAMS: usize = 32;

/// The parameters of a form body, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// The value of `name`; `None` when absent or sent empty (RFC 6749
    /// §3.1: "Parameters sent without a value MUST be treated as if they
    /// were omitted from the request").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Whether `name` was sent with a value.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Why a form body is refused (all `invalid_request`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormError {
    /// Over [`MAX_FORM_BYTES`].
    TooLarge,
    /// Over [`MAX_PARAMS`] parameters.
    TooMany,
    /// A bad `%` escape, or a name or value that is not UTF-8.
    BadEncoding,
    /// A parameter sent twice (RFC 6749 §3.1, §3.2: "MUST NOT be included
    /// more than once"): which one counts would be a guess.
    Repeated,
}

/// Parses an `application/x-www-form-urlencoded` body (WHATWG URL §5.1:
/// `&`-separated `name=value`, `+` is a space, `%XX` a byte; the result
/// must be UTF-8). Empty segments are skipped; a repeated name, even one
/// sent empty once, is refused.
pub fn parse_form(body: &[u8]) -> Result<Params, FormError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(FormError::TooLarge);
    }
    let mut out = BTreeMap::new();
    for segment in body.split(|&b| b == b'&').filter(|s| !s.is_empty()) {
        if out.len() == MAX_PARAMS {
            return Err(FormError::TooMany);
        }
        let (name, value) = match segment.iter().position(|&b| b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &[][..]),
        };
        let name = form_decode(name)?;
        let value = form_decode(value)?;
        if out.insert(name, value).is_some() {
            return Err(FormError::Repeated);
        }
    }
    Ok(Params(out))
}

/// One form-urlencoded component, decoded.
pub fn form_decode(raw: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    raw.get(i + 1).copied().and_then(hex),
                    raw.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(FormError::BadEncoding);
                };
                // Two hex digits: at most 255.
                out.push(u8::try_from(h * 16 + l).map_err(|_| FormError::BadEncoding)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::BadEncoding)
}

/// Client credentials read from `Authorization: Basic` (RFC 6749 §2.3.1).
#[derive(Clone, PartialEq, Eq)]
pub struct BasicClient {
    /// The `client_id`.
    pub client_id: String,
    /// The client secret, as sent.
    pub secret: String,
}

impl std::fmt::Debug for BasicClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicClient")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The scheme of an `Authorization` value, lowercased, and what follows it
/// after exactly one space (RFC 9110 §11.4: `auth-scheme [ 1*SP token68 ]`;
/// one space is what every client sends, anything else is refused).
pub fn auth_scheme(value: &[u8]) -> Option<(String, &[u8])> {
    let sp = value.iter().position(|&b| b == b' ')?;
    let scheme = std::str::from_utf8(&value[..sp]).ok()?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), &value[sp + 1..]))
}

/// Reads client credentials from an `Authorization: Basic` value: the
/// token68 is standard base64 (RFC 7617 §2) of `id:secret`, split at the
/// first colon, where id and secret are each form-urlencoded (RFC 6749
/// §2.3.1, which Basic's own rules do not say). `None` for any other
/// scheme or anything malformed, an empty client id included.
pub fn basic_client(value: &[u8]) -> Option<BasicClient> {
    let (scheme, rest) = auth_scheme(value)?;
    if scheme != "basic" {
        return None;
    }
    let decoded = STANDARD.decode(rest).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let client_id = form_decode(&decoded[..colon]).ok()?;
    let secret = form_decode(&decoded[colon + 1..]).ok()?;
    (!client_id.is_empty()).then_some(BasicClient { client_id, secret })
}

/// The token of an `Authorization: Bearer` value (RFC 6750 §2.1:
/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
/// *"="`); `None` for another scheme or a malformed token.
pub fn bearer_token(value: &[u8]) -> Option<&str> {
    let (scheme, rest) = auth_scheme(value)?;
    if scheme != "bearer" {
        return None;
    }
    let body_len = rest
        .iter()
        .take_while(|&&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
        .count();
    if body_len == 0 || !rest[body_len..].iter().all(|&b| b == b'=') {
        return None;
    }
    std::str::from_utf8(rest).ok()
}

/// Why a `scope` is refused (`invalid_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeError {
    /// Not a list of scope tokens separated by single spaces (RFC 6749
    /// §3.3).
    Malformed,
    /// A scope that was not granted (RFC 6749 §6: the refreshed scope
    /// "MUST NOT include any scope not originally granted").
    Widened,
}

/// The scope tokens of `s` (RFC 6749 §3.3: `scope-token *( SP scope-token
/// )`, `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`), as a set.
pub fn parse_scope(s: &str) -> Result<BTreeSet<String>, ScopeError> {
    let token_ok = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
    };
    s.split(' ')
        .map(|t| {
            token_ok(t)
                .then(|| t.to_owned())
                .ok_or(ScopeError::Malformed)
        })
        .collect()
}

/// A set of scopes as the store and responses write it: sorted, single
/// spaces.
pub fn scope_string(scopes: &BTreeSet<String>) -> String {
    scopes
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scopes of a refreshed access token: `requested` when it is a subset
/// of `granted` (narrowing is allowed, RFC 6749 §6), all of `granted` when
/// no scope is requested ("treated as equal to the scope originally
/// granted").
pub fn narrow_scope(granted: &str, requested: Option<&str>) -> Result<String, ScopeError> {
    let granted = parse_scope(granted)?;
    let Some(requested) = requested else {
        return Ok(scope_string(&granted));
    };
    let requested = parse_scope(requested)?;
    if requested.is_subset(&granted) {
        Ok(scope_string(&requested))
    } else {
        Err(ScopeError::Widened)
    }
}

/// What is known about the user, for claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserClaims<'a> {
    /// Display name.
    pub name: Option<&'a str>,
    /// Login name.
    pub preferred_username: &'a str,
    /// Email address.
    pub email: Option<&'a str>,
    /// Whether the identity source vouches for the address.
    pub email_verified: bool,
    /// Groups.
    pub groups: &'a [String],
}

/// The claims `scopes` release about `user` (OIDC Core §5.4): `profile`
/// gives `name` (when known) and `preferred_username`; `email` gives
/// `email` (when known) and always a boolean `email_verified`, `true`
/// only when the source vouches; `groups` gives `groups`, always an array
/// of strings. The same claims go in the ID token and at userinfo: RPs
/// that read only one of them (Grafana, MinIO) must not miss any.
pub fn scoped_claims(scopes: &BTreeSet<String>, user: &UserClaims<'_>) -> Map<String, Value> {
    let mut out = Map::new();
    if scopes.contains("profile") {
        if let Some(name) = user.name {
            out.insert("name".into(), name.into());
        }
        out.insert("preferred_username".into(), user.preferred_username.into());
    }
    if scopes.contains("email") {
        if let Some(email) = user.email {
            out.insert("email".into(), email.into());
        }
        out.insert("email_verified".into(), user.email_verified.into());
    }
    if scopes.contains("groups") {
        out.insert(
            "groups".into(),
            Value::Array(
                user.groups
                    .iter()
                    .map(|g| Value::from(g.as_str()))
                    .collect(),
            ),
        );
    }
    out
}

/// The hash of a JWS algorithm, for `at_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHash {
    /// RS256, ES256.
    Sha256,
    /// RS384, ES384.
    Sha384,
    /// RS512, ES512, and EdDSA over Ed25519 (OIDC Core 1.0 errata set 2,
    /// §3.1.3.6: "If the ID Token is signed with EdDSA using Ed25519, the
    /// hash algorithm is SHA-512").
    Sha512,
}

/// `at_hash` (OIDC Core §3.1.3.6): the left half of the hash of the ASCII
/// access token, base64url without padding.
pub fn at_hash(hash: TokenHash, access_token: &str) -> String {
    let alg = match hash {
        TokenHash::Sha256 => &digest::SHA256,
        TokenHash::Sha384 => &digest::SHA384,
        TokenHash::Sha512 => &digest::SHA512,
    };
    let d = digest::digest(alg, access_token.as_bytes());
    let bytes = d.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

// ---- who may use a client; which tokens are active --------------------

/// Whether an account may get or keep tokens for a client: `active` (not
/// pending, not disabled), and in one of the client's `allowed_groups`
/// when it names some (exact names). The one rule of the provider, used
/// at authorization, at every code and device code exchange, at every
/// refresh, at userinfo and at introspection: a check that does not look
/// keeps deleted users alive (oauth2-proxy #1354).
pub fn account_may_use_client(active: bool, groups: &[String], allowed_groups: &[String]) -> bool {
    active && (allowed_groups.is_empty() || groups.iter().any(|g| allowed_groups.contains(g)))
}

/// The kinds of token revocation and introspection look up (RFC 7009
/// §2.1, RFC 7662 §2.1: the "OAuth Token Type Hints" registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `access_token`.
    Access,
    /// `refresh_token`.
    Refresh,
}

impl TokenKind {
    /// The `token_type_hint` of a request (untrusted): exactly
    /// `access_token` or `refresh_token`; absent, unknown or differently
    /// spelled values give `None`, since a hint only orders the lookups
    /// (RFC 7009 §2.1: "If the server is unable to locate the token using
    /// the given hint, it MUST extend its search across all of its
    /// supported token types").
    pub fn from_hint(value: Option<&str>) -> Option<Self> {
        match value {
            Some("access_token") => Some(Self::Access),
            Some("refresh_token") => Some(Self::Refresh),
            _ => None,
        }
    }

    /// The kinds to try, in order: the hinted one first, then the other.
    /// Without a hint, refresh tokens first: they carry the most, and the
    /// refresh lookup is as cheap as the other.
    pub fn lookup_order(hint: Option<Self>) -> [Self; 2] {
        match hint {
            Some(Self::Access) => [Self::Access, Self::Refresh],
            _ => [Self::Refresh, Self::Access],
        }
    }
}

/// The account behind a token, as the store has it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenAccount<'a> {
    /// A token of the client itself (`client_credentials`).
    ClientItself,
    /// The account was deleted.
    Gone,
    /// The account: whether it is active, and its groups.
    Present {
        /// `AccountStatus::Active`.
        active: bool,
        /// Its groups.
        groups: &'a [String],
    },
}

/// What the store says of a token found by its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFacts<'a> {
    /// The client it was issued to.
    pub issued_to: &'a str,
    /// Unix ms: the earliest of the token's and (refresh) its family's
    /// expiry.
    pub expires_at: i64,
    /// Rotated away, or of a revoked family.
    pub retired: bool,
    /// Its account.
    pub account: TokenAccount<'a>,
}

/// Whether introspection answers `active: true` for a token `asker`
/// presents (RFC 7662 §2.2). Only the asker's own tokens (§4: a client
/// must not learn about tokens of others, so one app cannot probe
/// another's), unexpired, not retired, of an account that may still use
/// the client (`allowed_groups` of the asker), or of the client itself.
/// Anything else is `false`, which the endpoint answers as a bare
/// `{"active":false}`.
pub fn introspection_active(
    token: &TokenFacts<'_>,
    asker: &str,
    allowed_groups: &[String],
    now: i64,
) -> bool {
    token.issued_to == asker
        && now < token.expires_at
        && !token.retired
        && match token.account {
            TokenAccount::ClientItself => true,
            TokenAccount::Gone => false,
            TokenAccount::Present { active, groups } => {
                account_may_use_client(active, groups, allowed_groups)
            }
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms_per_rfc_6749_section_3() {
        let p = parse_form(b"grant_type=authorization_code&code=a%2Bb+c&redirect_uri=&&x").unwrap();
        assert_eq!(p.get("grant_type"), Some("authorization_code"));
        assert_eq!(p.get("code"), Some("a+b c"));
        // Empty means omitted.
        assert_eq!(p.get("redirect_uri"), None);
        assert_eq!(p.get("x"), None);
        assert!(!p.has("x"));
        assert_eq!(parse_form(b"a=1&a=1"), Err(FormError::Repeated));
        assert_eq!(parse_form(b"a=&a=1"), Err(FormError::Repeated));
        assert_eq!(parse_form(b"a=%zz"), Err(FormError::BadEncoding));
        assert_eq!(parse_form(b"a=%4"), Err(FormError::BadEncoding));
        assert_eq!(parse_form(b"a=%ff"), Err(FormError::BadEncoding));
        assert_eq!(parse_form(b"a=%C3%BC").unwrap().get("a"), Some("ü"));
        let big = vec![b'a'; MAX_FORM_BYTES + 1];
        assert_eq!(parse_form(&big), Err(FormError::TooLarge));
        let many: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert_eq!(
            parse_form(many.join("&").as_bytes()),
            Err(FormError::TooMany)
        );
        assert_eq!(parse_form(b"").unwrap(), Params::default());
    }

    #[test]
    fn basic_client_credentials_are_form_encoded_inside() {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before Basic.
        let v = format!("Basic {}", STANDARD.encode("my%3Aapp:s%2Bcr+t:x"));
        let c = basic_client(v.as_bytes()).unwrap();
        assert_eq!(c.client_id, "my:app");
        assert_eq!(c.secret, "s+cr t:x");
        assert!(!format!("{c:?}").contains("cr"));
        let v = format!("basic {}", STANDARD.encode("app:"));
        assert_eq!(basic_client(v.as_bytes()).unwrap().secret, "");
        for bad in [
            format!("Basic {}", STANDARD.encode(":secret")),
            format!("Basic {}", STANDARD.encode("nocolon")),
            format!("Basic  {}", STANDARD.encode("a:b")),
            format!("Bearer {}", STANDARD.encode("a:b")),
            "Basic !!!".to_owned(),
            "Basic".to_owned(),
            format!("Basic {}", STANDARD.encode(b"a:\xff")),
        ] {
            assert_eq!(basic_client(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_per_rfc_6750() {
        assert_eq!(bearer_token(b"Bearer abc-._~+/=="), Some("abc-._~+/=="));
        assert_eq!(bearer_token(b"bearer x"), Some("x"));
        for bad in [
            &b"Bearer "[..],
            b"Bearer a b",
            b"Bearer =a",
            b"Bearer a=b",
            b"Bearer  a",
            b"Basic a",
            b"Bearera",
            b"Bearer \xff",
        ] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn scopes_narrow_but_never_widen() {
        assert_eq!(
            narrow_scope("openid profile email", None),
            Ok("email openid profile".into())
        );
        assert_eq!(
            narrow_scope("openid profile email", Some("openid email")),
            Ok("email openid".into())
        );
        assert_eq!(
            narrow_scope("openid profile", Some("openid groups")),
            Err(ScopeError::Widened)
        );
        assert_eq!(
            narrow_scope("openid", Some("openid  profile")),
            Err(ScopeError::Malformed)
        );
        assert_eq!(parse_scope("a \"b"), Err(ScopeError::Malformed));
        assert_eq!(parse_scope(""), Err(ScopeError::Malformed));
    }

    #[test]
    fn claims_follow_the_scopes() {
        let groups = vec!["admins".to_owned()];
        let user = UserClaims {
            name: Some("Ann"),
            preferred_username: "ann",
            email: Some("ann@example.com"),
            email_verified: false,
            groups: &groups,
        };
        let only_openid = parse_scope("openid").unwrap();
        assert!(scoped_claims(&only_openid, &user).is_empty());
        let all = parse_scope("openid profile email groups").unwrap();
        let c = scoped_claims(&all, &user);
        assert_eq!(c["name"], "Ann");
        assert_eq!(c["preferred_username"], "ann");
        assert_eq!(c["email"], "ann@example.com");
        assert_eq!(c["email_verified"], false);
        assert_eq!(c["groups"], serde_json::json!(["admins"]));
        let none = UserClaims {
            name: None,
            email: None,
            groups: &[],
            ..user
        };
        let c = scoped_claims(&all, &none);
        assert!(c.get("name").is_none() && c.get("email").is_none());
        assert_eq!(c["email_verified"], false);
        assert_eq!(c["groups"], serde_json::json!([]));
    }

    #[test]
    fn at_hash_of_the_oidc_core_example() {
        // OIDC Core Appendix A.3 (errata): the access token
        // "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y" has at_hash
        // "77QmUPtjPfzWtF2AnpK9RQ" with RS256.
        assert_eq!(
            at_hash(
                TokenHash::Sha256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash(TokenHash::Sha384, "x").len(), 32);
        assert_eq!(at_hash(TokenHash::Sha512, "x").len(), 43);
    }

    proptest! {
        /// Whatever a form holds, encoding it and parsing it gives it back.
        #[test]
        fn forms_round_trip(params in proptest::collection::btree_map("[a-z_]{1,12}", "\\PC{1,20}", 0..8)) {
            let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
            let body = params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
            let parsed = parse_form(body.as_bytes()).unwrap();
            for (k, v) in &params {
                prop_assert_eq!(parsed.get(k), Some(v.as_str()));
            }
        }

        /// Basic credentials round-trip through their double encoding.
        #[test]
        fn basic_round_trip(id in "\\PC{1,20}", secret in "\\PC{0,40}") {
            let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
            let v = format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(&id), enc(&secret))));
            let c = basic_client(v.as_bytes()).unwrap();
            prop_assert_eq!(c.client_id, id);
            prop_assert_eq!(c.secret, secret);
        }

        /// A narrowed scope is always within the grant; a widened one never
        /// passes.
        #[test]
        fn narrowing(granted in proptest::collection::btree_set("[a-z]{1,6}", 1..6), asked in proptest::collection::btree_set("[a-z]{1,6}", 1..6)) {
            let g = scope_string(&granted);
            let a = scope_string(&asked);
            match narrow_scope(&g, Some(&a)) {
                Ok(s) => {
                    prop_assert!(asked.is_subset(&granted));
                    prop_assert_eq!(s, a);
                }
                Err(e) => {
                    prop_assert_eq!(e, ScopeError::Widened);
                    prop_assert!(!asked.is_subset(&granted));
                }
            }
        }

        /// Claims never exceed what the scopes release.
        #[test]
        fn claims_within_scopes(scopes in proptest::collection::btree_set("openid|profile|email|groups|offline_access", 0..5)) {
            let groups = vec!["g".to_owned()];
            let user = UserClaims { name: Some("n"), preferred_username: "u", email: Some("e@x"), email_verified: true, groups: &groups };
            let c = scoped_claims(&scopes, &user);
            let allowed = |k: &str| match k {
                "name" | "preferred_username" => scopes.contains("profile"),
                "email" | "email_verified" => scopes.contains("email"),
                "groups" => scopes.contains("groups"),
                _ => false,
            };
            for k in c.keys() {
                prop_assert!(allowed(k), "{k}");
            }
        }
    }

    #[test]
    fn token_type_hints_only_order_the_lookups() {
        use TokenKind::{Access, Refresh};
        assert_eq!(TokenKind::from_hint(Some("access_token")), Some(Access));
        assert_eq!(TokenKind::from_hint(Some("refresh_token")), Some(Refresh));
        for unknown in [
            None,
            Some(""),
            Some("id_token"),
            Some("ACCESS_TOKEN"),
            Some(" access_token"),
        ] {
            assert_eq!(TokenKind::from_hint(unknown), None);
            assert_eq!(
                TokenKind::lookup_order(TokenKind::from_hint(unknown)),
                [Refresh, Access]
            );
        }
        assert_eq!(TokenKind::lookup_order(Some(Access)), [Access, Refresh]);
    }

    #[test]
    fn who_may_use_a_client() {
        let g = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(account_may_use_client(true, &g(&[]), &g(&[])));
        assert!(!account_may_use_client(false, &g(&["a"]), &g(&[])));
        assert!(account_may_use_client(true, &g(&["b", "a"]), &g(&["a"])));
        assert!(!account_may_use_client(true, &g(&["A"]), &g(&["a"])));
        assert!(!account_may_use_client(true, &g(&[]), &g(&["a"])));
    }

    #[test]
    fn introspection_examples() {
        let groups = vec!["staff".to_owned()];
        let base = TokenFacts {
            issued_to: "app",
            expires_at: 100,
            retired: false,
            account: TokenAccount::Present {
                active: true,
                groups: &groups,
            },
        };
        assert!(introspection_active(&base, "app", &[], 99));
        assert!(!introspection_active(&base, "other", &[], 99));
        assert!(!introspection_active(&base, "app", &[], 100));
        assert!(!introspection_active(
            &TokenFacts {
                retired: true,
                ..base
            },
            "app",
            &[],
            1
        ));
        assert!(!introspection_active(
            &TokenFacts {
                account: TokenAccount::Gone,
                ..base
            },
            "app",
            &[],
            1
        ));
        assert!(introspection_active(
            &TokenFacts {
                account: TokenAccount::ClientItself,
                ..base
            },
            "app",
            &["x".into()],
            1
        ));
        assert!(!introspection_active(&base, "app", &["x".into()], 1));
    }

    proptest::proptest! {
        #[test]
        fn the_client_rule(
            active: bool,
            groups in proptest::collection::vec("[a-c]{1,2}", 0..4),
            allowed in proptest::collection::vec("[a-c]{1,2}", 0..4),
        ) {
            let ok = account_may_use_client(active, &groups, &allowed);
            // Never an inactive account; any active one when no groups are
            // named; else exactly when the sets meet.
            proptest::prop_assert!(!ok || active);
            if active && allowed.is_empty() {
                proptest::prop_assert!(ok);
            }
            if active && !allowed.is_empty() {
                proptest::prop_assert_eq!(ok, groups.iter().any(|g| allowed.contains(g)));
            }
        }

        #[test]
        fn active_only_when_every_condition_holds(
            mine: bool,
            expires_at in -5i64..5,
            now in -5i64..5,
            retired: bool,
            account in 0u8..4,
            allowed in proptest::collection::vec("[a-c]", 0..3),
        ) {
            let groups = vec!["a".to_owned()];
            let acc = match account {
                0 => TokenAccount::ClientItself,
                1 => TokenAccount::Gone,
                2 => TokenAccount::Present { active: false, groups: &groups },
                _ => TokenAccount::Present { active: true, groups: &groups },
            };
            let t = TokenFacts {
                issued_to: if mine { "app" } else { "other" },
                expires_at,
                retired,
                account: acc,
            };
            let got = introspection_active(&t, "app", &allowed, now);
            let account_ok = match account {
                0 => true,
                1 | 2 => false,
                _ => allowed.is_empty() || allowed.iter().any(|g| g == "a"),
            };
            proptest::prop_assert_eq!(got, mine && now < expires_at && !retired && account_ok);
        }

        #[test]
        fn any_hint_gives_both_kinds(hint in proptest::option::of(".{0,20}")) {
            let kind = TokenKind::from_hint(hint.as_deref());
            let order = TokenKind::lookup_order(kind);
            proptest::prop_assert_ne!(order[0], order[1]);
            if let Some(k) = kind {
                proptest::prop_assert_eq!(order[0], k);
            }
        }
    }
}
