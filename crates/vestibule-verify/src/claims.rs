//! The assertion profile: which claims, which values, which times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::Error;
use crate::jwk::Jwks;
use crate::jws::{self, Algorithm};

/// What a valid assertion must say: who issued it, for whom, which
/// algorithms may sign it, and how much clock skew is tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    issuer: String,
    audience: String,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
}

impl Policy {
    /// Assertions issued by `issuer` (the gateway's `[assertions] issuer`)
    /// for `audience` (the route's `assertion_audience`, by default its
    /// host, lower case). Leeway 30 s; algorithms ES256, EdDSA and RS256.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway: Duration::from_secs(30),
            algorithms: Algorithm::ALL.to_vec(),
        }
    }

    /// The clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s).
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The algorithms accepted (default: all of [`Algorithm::ALL`]). Pin
    /// the one your gateway signs with (`ES256` unless configured).
    #[must_use]
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Verifies `token` against `keys` at `now` (Unix seconds): the whole
    /// check, with no I/O and no clock.
    ///
    /// # Errors
    /// The first check that failed, in this order: framing and header
    /// (`typ`, `crit`, `alg`, `kid`), key, signature, claims, issuer,
    /// audience, times.
    pub fn verify_at(&self, token: &str, keys: &Jwks, now: i64) -> Result<Identity, Error> {
        let payload = jws::verify(token, keys, &self.algorithms)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|_| Error::MalformedClaims)?;
        self.check(claims, now)
    }

    fn check(&self, c: Claims, now: i64) -> Result<Identity, Error> {
        // RFC 7519 §4.1.1: a case-sensitive string comparison.
        if c.iss != self.issuer {
            return Err(Error::WrongIssuer);
        }
        // RFC 7519 §4.1.3: a string or an array of strings, one of which
        // must identify this app.
        let for_us = match &c.aud {
            Audience::One(a) => *a == self.audience,
            Audience::Many(list) => list.contains(&self.audience),
        };
        if !for_us {
            return Err(Error::WrongAudience);
        }
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        // RFC 7519 §4.1.4: the current time must be before `exp`.
        if now >= c.exp.saturating_add(leeway) {
            return Err(Error::Expired);
        }
        // RFC 7519 §4.1.5, and an `iat` in the future is as suspect.
        if c.nbf.max(c.iat) > now.saturating_add(leeway) {
            return Err(Error::NotYetValid);
        }
        let auth_method = AuthMethod::from_claim(&c.auth_method);
        // The device id comes with a device credential, and only then.
        if (auth_method == AuthMethod::Device) != c.device_id.is_some() {
            return Err(Error::MalformedClaims);
        }
        Ok(Identity {
            subject: c.sub,
            username: c.preferred_username,
            email: c.email,
            name: c.name,
            groups: c.groups,
            auth_method,
            device_id: c.device_id,
            issued_at: unix(c.iat)?,
            expires_at: unix(c.exp)?,
        })
    }
}

fn unix(secs: i64) -> Result<SystemTime, Error> {
    let secs = u64::try_from(secs).map_err(|_| Error::MalformedClaims)?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or(Error::MalformedClaims)
}

/// The claims of an assertion. serde's derive refuses a duplicate member
/// and a member of the wrong type; `email` and `name` may be `null`.
/// NumericDates must be integers (the gateway writes whole seconds).
#[derive(Deserialize)]
struct Claims {
    iss: String,
    aud: Audience,
    sub: String,
    preferred_username: String,
    email: Option<String>,
    name: Option<String>,
    #[serde(default)]
    groups: Vec<String>,
    iat: i64,
    nbf: i64,
    exp: i64,
    auth_method: String,
    device_id: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// How the gateway established the identity: the `auth_method` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// Identity headers from the SSO front (`header`).
    Header,
    /// A signed assertion from the SSO front (`jwt`).
    Jwt,
    /// A vestibule session (`session`).
    Session,
    /// A device credential (`device`); [`Identity::device_id`] says which.
    Device,
    /// An OAuth login (`oauth`).
    OAuth,
    /// A method this version does not know, as the claim spells it.
    Other(String),
}

impl AuthMethod {
    fn from_claim(s: &str) -> Self {
        match s {
            "header" => Self::Header,
            "jwt" => Self::Jwt,
            "session" => Self::Session,
            "device" => Self::Device,
            "oauth" => Self::OAuth,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// Who the gateway vouches for, from a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// `sub`: the stable identifier at the SSO front.
    pub subject: String,
    /// `preferred_username`.
    pub username: String,
    /// `email`, when the front provided one.
    pub email: Option<String>,
    /// `name`, the display name, when the front provided one.
    pub name: Option<String>,
    /// `groups`.
    pub groups: Vec<String>,
    /// `auth_method`.
    pub auth_method: AuthMethod,
    /// `device_id`: the device credential used, with [`AuthMethod::Device`].
    pub device_id: Option<i64>,
    /// `iat`.
    pub issued_at: SystemTime,
    /// `exp`.
    pub expires_at: SystemTime,
}
