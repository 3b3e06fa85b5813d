//! Signed identity assertions for apps: a compact JWS per (identity,
//! audience), cached until shortly before it expires so that signing does
//! not dominate the hot path.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use http::HeaderValue;
use serde_json::json;
use vestibule_core::identity::Identity;

use super::KeyRing;
use crate::config::AssertionSettings;

/// The JWS `typ` of an assertion: an explicit type, so that no other JWT
/// this key could sign passes for one (RFC 8725 §3.11).
pub const ASSERTION_TYP: &str = "vestibule-id+jwt";

/// Most assertions kept in the cache; when full, expired ones are dropped,
/// and if that is not enough, all of them.
pub const CACHE_CAPACITY: usize = 10_000;

/// A cached assertion is reused until this long before its `exp`, so that
/// an app never receives one about to expire.
pub const REUSE_MARGIN_SECS: i64 = 10;

/// How the identity was established: the `auth_method` claim. The five
/// values are the ones issue 13 fixes and docs/assertions.md lists; a
/// value appears only once a request can carry that kind of identity to an
/// app route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// `header`: identity headers from the SSO front (`[source.headers]`).
    Header,
    /// `jwt`: a signed assertion from the SSO front (`[source.jwt]`).
    Jwt,
    /// `device`: a device credential; the claim `device_id` holds its id.
    Device(i64),
    /// `session`: vestibule's own login session, opened by the OIDC login
    /// of `[source.oidc]` (issue 15).
    Session,
    /// `oauth`: an OAuth access token vestibule issued, on a route with
    /// `[route.access_tokens]` (`provider/gate.rs`).
    OAuth,
}

impl AuthMethod {
    /// The claim's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Header => "header",
            Self::Jwt => "jwt",
            Self::Device(_) => "device",
            Self::Session => "session",
            Self::OAuth => "oauth",
        }
    }
}

/// Signs assertions, and caches them.
#[derive(Debug)]
pub struct Assertions {
    settings: AssertionSettings,
    /// Keyed by a keyed hash (SipHash, random keys: a client cannot aim
    /// collisions) of what the token says; an entry is used only when it
    /// says exactly that, so a collision is a miss, never another's token.
    cache: Mutex<HashMap<u64, Cached>>,
    hasher: RandomState,
}

/// One signed assertion and everything it says but the times.
#[derive(Debug)]
struct Cached {
    kid: String,
    audience: String,
    subject: String,
    username: String,
    email: Option<String>,
    name: Option<String>,
    groups: Vec<String>,
    method: AuthMethod,
    value: HeaderValue,
    exp: i64,
}

impl Cached {
    fn says(&self, kid: &str, audience: &str, id: &Identity, method: AuthMethod) -> bool {
        self.kid == kid
            && self.audience == audience
            && self.subject == id.subject
            && self.username == id.username
            && self.email == id.email
            && self.name == id.display_name
            && self.groups == id.groups
            && self.method == method
    }
}

impl Assertions {
    /// Assertions as `settings` say.
    pub fn new(settings: AssertionSettings) -> Self {
        Self {
            settings,
            cache: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        }
    }

    /// The header the assertion is sent in.
    pub fn header(&self) -> &http::HeaderName {
        &self.settings.header
    }

    /// The assertion for `identity` towards `audience`, at `now_secs`
    /// (unix seconds), signed by the ring's current key: a cached one when
    /// it has more than [`REUSE_MARGIN_SECS`] left. A cache hit allocates
    /// nothing.
    pub fn assertion(
        &self,
        ring: &KeyRing,
        identity: &Identity,
        method: AuthMethod,
        audience: &str,
        now_secs: i64,
    ) -> Result<HeaderValue, String> {
        let set = ring.current();
        let key = set.current();
        let hash = self.hasher.hash_one((
            key.kid(),
            audience,
            &identity.subject,
            &identity.username,
            &identity.email,
            &identity.display_name,
            &identity.groups,
            method,
        ));
        let margin = REUSE_MARGIN_SECS.min(self.lifetime_secs() / 2);
        {
            let cache = self
                .cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = cache.get(&hash)
                && now_secs < c.exp - margin
                && c.says(key.kid(), audience, identity, method)
            {
                return Ok(c.value.clone());
            }
        }
        let exp = now_secs + self.lifetime_secs();
        // RFC 7519 §4.1.4-6: NumericDate seconds.
        let mut claims = json!({
            "iss": self.settings.issuer,
            "aud": audience,
            "sub": identity.subject,
            "preferred_username": identity.username,
            "email": identity.email,
            "name": identity.display_name,
            "groups": identity.groups,
            "auth_method": method.as_str(),
            "iat": now_secs,
            "nbf": now_secs,
            "exp": exp,
        });
        if let AuthMethod::Device(id) = method {
            claims["device_id"] = json!(id);
        }
        let token = key
            .sign(Some(ASSERTION_TYP), claims.to_string().as_bytes())
            .map_err(|e| format!("cannot sign an assertion: {e}"))?;
        let value = HeaderValue::from_str(&token)
            .map_err(|_| "a signed assertion is not a header value".to_owned())?;
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, c| now_secs < c.exp - margin);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            hash,
            Cached {
                kid: key.kid().to_owned(),
                audience: audience.to_owned(),
                subject: identity.subject.clone(),
                username: identity.username.clone(),
                email: identity.email.clone(),
                name: identity.display_name.clone(),
                groups: identity.groups.clone(),
                method,
                value: value.clone(),
                exp,
            },
        );
        Ok(value)
    }

    fn lifetime_secs(&self) -> i64 {
        i64::try_from(self.settings.lifetime.as_secs()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::config::{KeySettings, SigningAlgorithm};

    async fn ring(dir: &tempfile::TempDir) -> KeyRing {
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let store: Arc<dyn vestibule_store::Store> =
            vestibule_store::open(&vestibule_store::StoreConfig::new(url))
                .await
                .unwrap();
        let settings = KeySettings {
            algorithm: SigningAlgorithm::EdDsa,
            rotate_every: Duration::from_secs(86_400),
            publish_ahead: Duration::from_secs(3600),
            reload_every: Duration::from_secs(60),
            kek: None,
        };
        KeyRing::open(store, settings).await.unwrap()
    }

    fn assertions() -> Assertions {
        Assertions::new(AssertionSettings {
            header: http::HeaderName::from_static("x-vestibule-assertion"),
            lifetime: Duration::from_secs(60),
            issuer: "https://sso".into(),
        })
    }

    fn alice() -> Identity {
        Identity {
            source: "headers".into(),
            subject: "a-1".into(),
            username: "alice".into(),
            groups: vec!["users".into()],
            ..Identity::default()
        }
    }

    fn claims(v: &HeaderValue) -> serde_json::Value {
        let token = v.to_str().unwrap();
        let payload = token.split('.').nth(1).unwrap();
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_assertion_is_reused_until_shortly_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(&dir).await;
        let a = assertions();
        let t = 1_000_000;
        let first = a
            .assertion(&ring, &alice(), AuthMethod::Header, "app", t)
            .unwrap();
        assert_eq!(claims(&first)["exp"], t + 60);
        // Reused while more than REUSE_MARGIN_SECS are left.
        let later = t + 60 - REUSE_MARGIN_SECS - 1;
        assert_eq!(
            a.assertion(&ring, &alice(), AuthMethod::Header, "app", later)
                .unwrap(),
            first
        );
        // Then a fresh one.
        let fresh = a
            .assertion(&ring, &alice(), AuthMethod::Header, "app", later + 1)
            .unwrap();
        assert_ne!(fresh, first);
        assert_eq!(claims(&fresh)["iat"], later + 1);
        // Anything the token says makes another entry.
        let other_aud = a
            .assertion(&ring, &alice(), AuthMethod::Header, "other", t)
            .unwrap();
        assert_eq!(claims(&other_aud)["aud"], "other");
        let mut admin = alice();
        admin.groups.push("admins".into());
        let more_groups = a
            .assertion(&ring, &admin, AuthMethod::Header, "app", t)
            .unwrap();
        assert_eq!(
            claims(&more_groups)["groups"],
            serde_json::json!(["users", "admins"])
        );
        let device = a
            .assertion(&ring, &alice(), AuthMethod::Device(7), "app", t)
            .unwrap();
        assert_eq!(claims(&device)["device_id"], 7);
        assert_eq!(claims(&device)["auth_method"], "device");
    }

    #[test]
    fn auth_method_has_the_five_documented_values() {
        let all = [
            AuthMethod::Header,
            AuthMethod::Jwt,
            AuthMethod::Device(1),
            AuthMethod::Session,
            AuthMethod::OAuth,
        ];
        assert_eq!(
            all.map(AuthMethod::as_str),
            ["header", "jwt", "device", "session", "oauth"]
        );
        // docs/assertions.md lists each value it may carry.
        let doc = include_str!("../../../../docs/assertions.md");
        for v in all.map(AuthMethod::as_str) {
            assert!(doc.contains(&format!("`{v}`")), "docs/assertions.md: `{v}`");
        }
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ring = ring(&dir).await;
        let a = assertions();
        for i in 0..=CACHE_CAPACITY {
            a.assertion(&ring, &alice(), AuthMethod::Header, &i.to_string(), 10)
                .unwrap();
        }
        let held = a.cache.lock().unwrap().len();
        assert!(held <= CACHE_CAPACITY, "{held}");
        assert!(held >= 1);
    }
}
