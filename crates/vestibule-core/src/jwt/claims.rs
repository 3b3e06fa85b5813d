//! Verifying an assertion: the JWS through vestibule-jose, then the claims
//! (RFC 7519 §4.1) against what the operator expects.

use serde_json::{Map, Value};
use vestibule_jose::{Algorithm, Compact, Jwks, Policy};

use super::JwtError;

/// What the operator expects of every assertion.
#[derive(Clone, Copy, Debug)]
pub struct Expectations<'a> {
    /// The exact `iss` (RFC 7519 §4.1.1), compared byte for byte. An empty
    /// issuer matches nothing.
    pub issuer: &'a str,
    /// `aud` (a string or an array of strings, RFC 7519 §4.1.3) must
    /// contain at least one of these. Empty means `aud` is not checked:
    /// whether that is allowed is the binary's decision.
    pub audiences: &'a [String],
    /// The algorithms accepted. A key must also fit the algorithm (its
    /// type and curve, and its JWK `alg` if any). Empty refuses everything.
    pub algorithms: &'a [Algorithm],
    /// The current time, in Unix seconds.
    pub now: i64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds (negative
    /// counts as zero).
    pub leeway: i64,
    /// The longest token accepted, in bytes.
    pub max_token_bytes: usize,
}

/// The claims of a verified assertion that vestibule uses, plus the whole
/// claims object for [`ClaimMapping`](super::ClaimMapping)'s configured names.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// `iss`, equal to [`Expectations::issuer`].
    pub issuer: String,
    /// `sub`, never empty.
    pub subject: String,
    /// `aud`, as a list (empty when absent).
    pub audiences: Vec<String>,
    /// `exp`, Unix seconds (a fractional value is rounded down).
    pub expires_at: i64,
    /// `nbf`, Unix seconds (a fractional value is rounded up).
    pub not_before: Option<i64>,
    /// `iat`, Unix seconds (a fractional value is rounded up).
    pub issued_at: Option<i64>,
    raw: Map<String, Value>,
}

impl Claims {
    /// The claim `name` if it is a string.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.raw.get(name).and_then(Value::as_str)
    }

    /// The claim `name` if it is a string (a list of one) or an array of
    /// strings only.
    pub fn get_str_list(&self, name: &str) -> Option<Vec<&str>> {
        match self.raw.get(name)? {
            Value::String(s) => Some(vec![s.as_str()]),
            Value::Array(items) => items.iter().map(Value::as_str).collect(),
            _ => None,
        }
    }

    /// The whole verified claims object.
    pub(crate) fn raw(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// The claim `name`, `null` read as absent.
    pub(super) fn present(&self, name: &str) -> Option<&Value> {
        self.raw.get(name).filter(|v| !v.is_null())
    }
}

/// Parses and verifies a compact JWS assertion (RFC 7515 §7.1) and its
/// claims (RFC 7519 §7.2), in the order the [module docs](super) give.
///
/// Key selection: with a header `kid`, the key with that `kid`
/// ([`JwtError::UnknownKey`] if none, so the caller can refetch the JWKS;
/// [`JwtError::KeyMismatch`] if it does not fit the algorithm); without
/// one, the only key that fits the algorithm ([`JwtError::UnknownKey`] if
/// none, [`JwtError::AmbiguousKey`] if several). A token with a `kid` never
/// falls back to a key without one.
///
/// `typ`: absent, `JWT` or `application/jwt`, in any case (media types are
/// case-insensitive, RFC 7515 §4.1.9). Anything else, `at+jwt` included,
/// is [`JwtError::WrongType`].
pub fn verify(token: &str, jwks: &Jwks, expect: &Expectations<'_>) -> Result<Claims, JwtError> {
    if token.len() > expect.max_token_bytes {
        return Err(JwtError::TooLong);
    }
    let policy = Policy {
        algorithms: expect.algorithms,
        types: ASSERTION_TYPES,
        type_required: false,
    };
    let verified = Compact::parse(token)?.verify(jwks, &policy)?;
    check_claims(verified.claims_object()?, expect)
}

/// The `typ` an identity assertion may have, when it has one: `JWT`
/// (RFC 7519 §5.1), compared as a media type. An access token (`at+jwt`),
/// a logout token or another kind of JWT is not an assertion (RFC 8725
/// §3.11).
const ASSERTION_TYPES: &[&str] = &["JWT"];

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional. Fractions are
/// rounded towards refusal: `exp` down, `nbf` and `iat` up.
pub(crate) fn numeric_date(
    claims: &Map<String, Value>,
    name: &str,
    up: bool,
) -> Result<Option<i64>, JwtError> {
    let bad = || JwtError::BadClaim {
        claim: name.to_owned(),
        reason: "is not a NumericDate",
    };
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(bad());
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    let f = n.as_f64().filter(|f| f.is_finite()).ok_or_else(bad)?;
    let f = if up { f.ceil() } else { f.floor() };
    // i64::MAX is not exactly representable; stay strictly inside.
    if (-9.2e18..=9.2e18).contains(&f) {
        Ok(Some(f as i64))
    } else {
        Err(bad())
    }
}

/// `iss`, exactly `expected` (RFC 7519 §4.1.1, RFC 8725 §3.8); an empty
/// one matches nothing.
pub(crate) fn issuer_is(raw: &Map<String, Value>, expected: &str) -> Result<String, JwtError> {
    match raw.get("iss") {
        Some(Value::String(iss)) if !iss.is_empty() && iss == expected => Ok(iss.clone()),
        _ => Err(JwtError::WrongIssuer),
    }
}

/// `aud` as a list: a string or an array of strings (RFC 7519 §4.1.3),
/// empty when absent.
pub(crate) fn audiences_of(raw: &Map<String, Value>) -> Result<Vec<String>, JwtError> {
    let bad = || JwtError::BadClaim {
        claim: "aud".to_owned(),
        reason: "is not a string or an array of strings",
    };
    match raw.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(a)) => Ok(vec![a.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

pub(crate) fn check_claims(
    raw: Map<String, Value>,
    expect: &Expectations<'_>,
) -> Result<Claims, JwtError> {
    let leeway = expect.leeway.max(0);
    let now = expect.now;

    let issuer = issuer_is(&raw, expect.issuer)?;
    let audiences = audiences_of(&raw)?;
    if !expect.audiences.is_empty() && !audiences.iter().any(|a| expect.audiences.contains(a)) {
        return Err(JwtError::WrongAudience);
    }

    // RFC 7519 §4.1.4: not accepted "on or after" exp.
    let expires_at = numeric_date(&raw, "exp", false)?.ok_or(JwtError::MissingExpiry)?;
    if now >= expires_at.saturating_add(leeway) {
        return Err(JwtError::Expired);
    }
    // §4.1.5: not accepted "before" nbf.
    let not_before = numeric_date(&raw, "nbf", true)?;
    if not_before.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(JwtError::NotYetValid);
    }
    let issued_at = numeric_date(&raw, "iat", true)?;
    if issued_at.is_some_and(|iat| iat > now.saturating_add(leeway)) {
        return Err(JwtError::IssuedInFuture);
    }

    let subject = match raw.get("sub") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | Some(Value::Null) | None => {
            return Err(JwtError::MissingSubject);
        }
        Some(_) => {
            return Err(JwtError::BadClaim {
                claim: "sub".to_owned(),
                reason: "is not a string",
            });
        }
    };

    Ok(Claims {
        issuer,
        subject,
        audiences,
        expires_at,
        not_before,
        issued_at,
        raw,
    })
}
