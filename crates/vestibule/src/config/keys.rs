//! `[keys]`: the keys vestibule signs identity assertions with, their
//! rotation, and the key-encryption key that seals them in the store.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::HumanDuration;
use super::diagnostic::Collector;

/// Default `keys.rotate_every`.
pub const DEFAULT_ROTATE_EVERY: &str = "30d";
/// Default `keys.publish_ahead`.
pub const DEFAULT_PUBLISH_AHEAD: &str = "1h";
/// Default `keys.reload_every`.
pub const DEFAULT_RELOAD_EVERY: &str = "60s";

/// The shortest `publish_ahead`: verifiers cache the key set for half of
/// it, and under 2 minutes a new key could sign before they see it.
pub(crate) const MIN_PUBLISH_AHEAD: Duration = Duration::from_secs(120);

/// TEST ONLY. In a debug build (never in a release build, where it is
/// ignored), this environment variable set to `1` lowers the floor on
/// `publish_ahead` from [`MIN_PUBLISH_AHEAD`] to
/// [`TEST_MIN_PUBLISH_AHEAD`], so that the integration tests can watch
/// scheduled and commanded rotations between real gateways happen in
/// seconds. `check` warns while it is in effect.
pub const TEST_SHORT_KEY_SCHEDULE_ENV: &str = "VESTIBULE_TEST_ONLY_SHORT_KEY_SCHEDULE";
/// The floor on `publish_ahead` under [`TEST_SHORT_KEY_SCHEDULE_ENV`].
pub(crate) const TEST_MIN_PUBLISH_AHEAD: Duration = Duration::from_secs(2);

/// The shortest `reload_every`: each reload reads the key table.
pub(crate) const MIN_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Whether the test-only short schedule is in effect: a debug build, and
/// [`TEST_SHORT_KEY_SCHEDULE_ENV`] is `1`.
fn short_schedule_for_tests() -> bool {
    cfg!(debug_assertions) && std::env::var(TEST_SHORT_KEY_SCHEDULE_ENV).is_ok_and(|v| v == "1")
}

/// The algorithms vestibule signs assertions with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4): small, fast, everywhere.
    #[default]
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (RFC 8037 §3.1).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), 2048-bit keys, for
    /// verifiers that know nothing else.
    #[serde(rename = "RS256")]
    Rs256,
}

impl SigningAlgorithm {
    /// The JOSE algorithm.
    pub fn jose(self) -> vestibule_jose::Algorithm {
        match self {
            Self::Es256 => vestibule_jose::Algorithm::ES256,
            Self::EdDsa => vestibule_jose::Algorithm::EdDSA,
            Self::Rs256 => vestibule_jose::Algorithm::RS256,
        }
    }
}

/// `[keys]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The algorithm of new keys. Default `"ES256"`; `"EdDSA"` and
    /// `"RS256"` are selectable. Keys made before a change keep theirs.
    #[serde(default)]
    pub algorithm: SigningAlgorithm,
    /// A new signing key is made this often. Default `"30d"`.
    #[serde(default = "default_rotate_every")]
    pub rotate_every: HumanDuration,
    /// A new key is published this long before it signs anything, so that
    /// verifiers' cached key sets hold it first. The key set is served
    /// with `Cache-Control: max-age` of half of it. Default `"1h"`.
    #[serde(default = "default_publish_ahead")]
    pub publish_ahead: HumanDuration,
    /// How often every gateway reloads the keys from the store (and rotates
    /// when due, and drops keys past their last token's expiry). A key added
    /// elsewhere (another instance, `vestibule keys rotate`) is published
    /// by this gateway within this time; at most half of `publish_ahead`.
    /// Default `"60s"`.
    #[serde(default = "default_reload_every")]
    pub reload_every: HumanDuration,
    /// A file holding the key-encryption key: 32 random bytes, base64
    /// (standard alphabet, padded; surrounding whitespace ignored), e.g.
    /// from `openssl rand -base64 32`. Private keys are then sealed in the
    /// store with AES-256-GCM. Default none.
    pub kek_file: Option<PathBuf>,
    /// The name of an environment variable holding the key-encryption key,
    /// in the same form, instead of `kek_file`. Default none.
    pub kek_env: Option<String>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::default(),
            rotate_every: default_rotate_every(),
            publish_ahead: default_publish_ahead(),
            reload_every: default_reload_every(),
            kek_file: None,
            kek_env: None,
        }
    }
}

fn default_rotate_every() -> HumanDuration {
    HumanDuration::parse(DEFAULT_ROTATE_EVERY).unwrap_or_default()
}
fn default_publish_ahead() -> HumanDuration {
    HumanDuration::parse(DEFAULT_PUBLISH_AHEAD).unwrap_or_default()
}
fn default_reload_every() -> HumanDuration {
    HumanDuration::parse(DEFAULT_RELOAD_EVERY).unwrap_or_default()
}

/// Where the key-encryption key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// A file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
}

/// Signing keys, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// The algorithm of new keys.
    pub algorithm: SigningAlgorithm,
    /// How often a new key is made.
    pub rotate_every: Duration,
    /// How long a new key is published before it signs.
    pub publish_ahead: Duration,
    /// How often the keys are reloaded from the store.
    pub reload_every: Duration,
    /// The key-encryption key's source; `None`: keys are stored plain.
    pub kek: Option<KekSource>,
}

impl KeySettings {
    /// The `max-age` the key set is served with: half of `publish_ahead`,
    /// so that a verifier's cached set holds a new key before it signs.
    pub fn jwks_max_age(&self) -> Duration {
        self.publish_ahead / 2
    }
}

impl KeysConfig {
    /// Checks `[keys]`. `postgres`: the store is a PostgreSQL database
    /// (reachable over the network, and backed up elsewhere), where plain
    /// private keys deserve a warning.
    pub(super) fn validate(&self, c: &mut Collector, postgres: bool) -> KeySettings {
        let keys = KeySettings {
            algorithm: self.algorithm,
            rotate_every: self.rotate_every.0,
            publish_ahead: self.publish_ahead.0,
            reload_every: self.reload_every.0,
            kek: match (&self.kek_file, &self.kek_env) {
                (Some(file), _) => Some(KekSource::File(file.clone())),
                (None, Some(var)) => Some(KekSource::Env(var.clone())),
                (None, None) => None,
            },
        };
        let floor = if short_schedule_for_tests() {
            c.warn(
                "keys.publish_ahead",
                "TEST ONLY: the floor on `publish_ahead` is lowered by \
                 VESTIBULE_TEST_ONLY_SHORT_KEY_SCHEDULE (debug build)",
                "unset VESTIBULE_TEST_ONLY_SHORT_KEY_SCHEDULE outside the test suite",
            );
            TEST_MIN_PUBLISH_AHEAD
        } else {
            MIN_PUBLISH_AHEAD
        };
        if keys.publish_ahead < floor {
            c.error(
                "keys.publish_ahead",
                "verifiers cache the key set for half of this: under 2 minutes a new key \
                 could sign before they see it",
                "keep the default, \"1h\"",
            );
        }
        if keys.rotate_every < keys.publish_ahead * 2 {
            c.error(
                "keys.rotate_every",
                "keys must be rotated at least twice as far apart as `publish_ahead`, \
                 or a key would be replaced before it ever signed",
                "keep the default, \"30d\"",
            );
        }
        if keys.reload_every < MIN_RELOAD_EVERY {
            c.error(
                "keys.reload_every",
                "each reload reads the key table: under a second is load for nothing",
                "keep the default, \"60s\"",
            );
        } else if keys.publish_ahead >= floor && keys.reload_every > keys.publish_ahead / 2 {
            c.error(
                "keys.reload_every",
                "a new key must be published by every gateway for at least the key set's \
                 cache time (half of `publish_ahead`) before it signs, so gateways must \
                 reload within the other half",
                "keep the default, \"60s\", or lengthen `publish_ahead`",
            );
        }
        if self.kek_file.is_some() && self.kek_env.is_some() {
            c.error(
                "keys.kek_env",
                "`kek_file` and `kek_env` are both set: the key-encryption key must have one source",
                "remove one of them",
            );
        }
        if let Some(var) = &self.kek_env
            && (var.is_empty() || var.starts_with(super::ENV_PREFIX) || var.contains('='))
        {
            c.error(
                "keys.kek_env",
                "must name an environment variable outside the `VESTIBULE_` overlay",
                "e.g. `kek_env = \"VESTIBULE_KEK\"` is refused; use `\"KEK\"`",
            );
        }
        if postgres && keys.kek.is_none() {
            c.warn(
                "keys.kek_file",
                "signing keys are kept in PostgreSQL unencrypted: anyone who can read the \
                 database or its backups can sign identities",
                "set `kek_file` (or `kek_env`) to 32 random bytes in base64 \
                 (`openssl rand -base64 32`)",
            );
        }
        keys
    }
}

#[cfg(test)]
// Alike every config section's tests: each checks its own defaults and
// overlay from the same empty file.
mod tests {
    use super::*;
    use crate::config::parse_for_test as parse;

    #[test]
    fn defaults_apply() {
        let f = parse("", &[]).unwrap();
        let mut c = Collector::default();
        let k = f.keys.validate(&mut c, false);
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        assert_eq!(k.algorithm, SigningAlgorithm::Es256);
        assert_eq!(k.rotate_every, Duration::from_secs(30 * 86_400));
        assert_eq!(k.publish_ahead, Duration::from_secs(3600));
        assert_eq!(k.jwks_max_age(), Duration::from_secs(1800));
        assert_eq!(k.reload_every, Duration::from_secs(60));
        assert_eq!(k.kek, None);
    }

    #[test]
    fn env_overlay_and_choices_apply() {
        let f = parse(
            "[keys]\nalgorithm = \"RS256\"",
            &[
                ("VESTIBULE_KEYS__ALGORITHM", "EdDSA"),
                ("VESTIBULE_KEYS__KEK_ENV", "MY_KEK"),
            ],
        )
        .unwrap();
        let k = f.keys.validate(&mut Collector::default(), true);
        assert_eq!(k.algorithm.jose(), vestibule_jose::Algorithm::EdDSA);
        assert_eq!(k.kek, Some(KekSource::Env("MY_KEK".into())));
        assert!(parse("[keys]\nalgorithm = \"HS256\"", &[]).is_err());
        assert!(parse("[keys]\nalgorithm = \"es256\"", &[]).is_err());
    }

    fn errors_at(toml: &str, postgres: bool) -> Vec<(String, bool)> {
        let f = parse(toml, &[]).unwrap();
        let mut c = Collector::default();
        f.keys.validate(&mut c, postgres);
        c.diags
            .iter()
            .map(|d| (d.key.clone(), d.severity == crate::config::Severity::Error))
            .collect()
    }

    #[test]
    fn bad_schedules_and_kek_sources_are_refused() {
        assert_eq!(
            errors_at("[keys]\npublish_ahead = \"1m\"", false),
            vec![("keys.publish_ahead".into(), true)]
        );
        assert_eq!(
            errors_at("[keys]\nrotate_every = \"1h\"", false),
            vec![("keys.rotate_every".into(), true)]
        );
        assert_eq!(
            errors_at("[keys]\nreload_every = \"500ms\"", false),
            vec![("keys.reload_every".into(), true)]
        );
        assert_eq!(
            errors_at(
                "[keys]\npublish_ahead = \"3m\"\nreload_every = \"2m\"",
                false
            ),
            vec![("keys.reload_every".into(), true)]
        );
        assert!(errors_at("[keys]\nreload_every = \"5s\"", false).is_empty());
        assert_eq!(
            errors_at("[keys]\nkek_file = \"/k\"\nkek_env = \"K\"", false),
            vec![("keys.kek_env".into(), true)]
        );
        assert_eq!(
            errors_at("[keys]\nkek_env = \"VESTIBULE_KEK\"", false),
            vec![("keys.kek_env".into(), true)]
        );
    }

    #[test]
    fn plain_keys_in_postgres_are_a_warning() {
        assert_eq!(errors_at("", true), vec![("keys.kek_file".into(), false)]);
        assert!(errors_at("", false).is_empty());
        assert!(errors_at("[keys]\nkek_file = \"/k\"", true).is_empty());
    }
}
