//! Secrets the pages show after a redirect, kept in memory for minutes
//! (POST/redirect/GET without a second device on reload):
//!
//! - a new device's secret, for the one page that reveals it: bound to the
//!   browser session that created it, taken (and so forgotten) by the
//!   first GET, gone after [`REVEAL_TTL_MS`] otherwise;
//! - a pairing's code, so the pairing page can show it again until the
//!   pairing expires (only its hash is in the database), and so the
//!   devices page can list pairings in progress.
//!
//! In memory on purpose: a restart forgets them, which costs at most a
//! new credential or pairing, and no secret is ever written to disk. Both
//! maps are pruned of expired entries on every insert, so they stay small.

use std::collections::HashMap;
use std::sync::Mutex;

use vestibule_core::secret::Secret;

/// How long a created device's secret waits for its page.
pub const REVEAL_TTL_MS: i64 = 10 * 60 * 1000;

/// A created device, waiting to be shown once.
pub struct Created {
    /// The browser session (SHA-256 of its id) that created it.
    pub session: [u8; 32],
    /// What kind of credential it is (it decides how it may be sent).
    pub kind: vestibule_core::credential::CredentialKind,
    /// The device's name.
    pub name: String,
    /// Its routes.
    pub routes: Vec<String>,
    /// Its secret.
    pub secret: Secret,
    /// When the entry is dropped unseen.
    pub expires_at: i64,
}

/// A pairing's code, for its owner's pages.
#[derive(Clone)]
pub struct PairingCode {
    /// The owner's account.
    pub account_id: i64,
    /// The code, canonical (`XXXXX-XXXXX`).
    pub code: String,
    /// When the pairing expires.
    pub expires_at: i64,
}

/// The two maps; see the module docs.
#[derive(Default)]
pub struct Reveals {
    created: Mutex<HashMap<String, Created>>,
    pairings: Mutex<HashMap<i64, PairingCode>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Reveals {
    /// Keeps `c` under the one-time id `id` (random, from the caller).
    pub fn put_created(&self, id: String, c: Created, now: i64) {
        let mut m = lock(&self.created);
        m.retain(|_, v| v.expires_at > now);
        m.insert(id, c);
    }

    /// Takes the entry `id` if `session` created it and it has not
    /// expired; any later call gets `None`. Another session's call leaves
    /// it in place.
    pub fn take_created(&self, id: &str, session: &[u8; 32], now: i64) -> Option<Created> {
        let mut m = lock(&self.created);
        match m.get(id) {
            Some(c) if &c.session == session && c.expires_at > now => m.remove(id),
            _ => None,
        }
    }

    /// Keeps a pairing's code until it expires.
    pub fn put_pairing(&self, id: i64, p: PairingCode, now: i64) {
        let mut m = lock(&self.pairings);
        m.retain(|_, v| v.expires_at > now);
        m.insert(id, p);
    }

    /// The code of pairing `id`, for its owner, while it lasts.
    pub fn pairing_code(&self, id: i64, account_id: i64, now: i64) -> Option<String> {
        lock(&self.pairings)
            .get(&id)
            .filter(|p| p.account_id == account_id && p.expires_at > now)
            .map(|p| p.code.clone())
    }

    /// The owner's unexpired pairings, newest first.
    pub fn pairings_of(&self, account_id: i64, now: i64) -> Vec<i64> {
        let mut ids: Vec<i64> = lock(&self.pairings)
            .iter()
            .filter(|(_, p)| p.account_id == account_id && p.expires_at > now)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(session: u8, expires_at: i64) -> Created {
        Created {
            session: [session; 32],
            kind: vestibule_core::credential::CredentialKind::Token,
            name: "Phone".into(),
            routes: vec!["api".into()],
            secret: Secret::from_exposed("vst_x".into()),
            expires_at,
        }
    }

    #[test]
    fn a_secret_is_taken_once_by_its_session_only() {
        let r = Reveals::default();
        r.put_created("a".into(), created(1, 100), 0);
        assert!(
            r.take_created("a", &[2; 32], 1).is_none(),
            "another session"
        );
        assert!(r.take_created("a", &[1; 32], 1).is_some());
        assert!(r.take_created("a", &[1; 32], 1).is_none(), "only once");
        r.put_created("b".into(), created(1, 100), 0);
        assert!(r.take_created("b", &[1; 32], 100).is_none(), "expired");
    }

    #[test]
    fn pairing_codes_are_for_their_owner_until_expiry() {
        let r = Reveals::default();
        let p = |account_id, expires_at| PairingCode {
            account_id,
            code: "ABCDE-FGHJK".into(),
            expires_at,
        };
        r.put_pairing(1, p(7, 100), 0);
        r.put_pairing(2, p(7, 200), 0);
        r.put_pairing(3, p(8, 200), 0);
        assert_eq!(r.pairing_code(1, 7, 50).as_deref(), Some("ABCDE-FGHJK"));
        assert_eq!(r.pairing_code(1, 8, 50), None);
        assert_eq!(r.pairing_code(1, 7, 100), None);
        assert_eq!(r.pairings_of(7, 50), [2, 1]);
        assert_eq!(r.pairings_of(7, 150), [2]);
        // Inserting prunes what has expired.
        r.put_pairing(4, p(9, 300), 250);
        assert_eq!(r.pairings_of(7, 0), Vec::<i64>::new());
    }
}
