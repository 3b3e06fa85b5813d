//! Linking a second source without takeover (issue 15): whether the
//! callback of a login started in link mode may attach the provider's
//! identity to the account that asked. Pure: the caller reads the store.
//!
//! The rule: the browser at the callback presents the very session that
//! asked (its id's SHA-256, compared in constant time), that session is
//! still the asking account's, live and not idle, and the account is
//! active. Anything else (another browser, signed out since, signed in as
//! someone else since, expired, disabled) links nothing.

use subtle::ConstantTimeEq;

/// What the store says of the session that asked, as read at the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskingSession {
    /// The account the session belongs to.
    pub account_id: i64,
    /// Unix ms.
    pub expires_at: i64,
    /// Unix ms.
    pub last_seen_at: i64,
}

/// Why a link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The browser presents no session, or another one than the one that
    /// asked.
    NotTheAskingSession,
    /// That session is gone, expired, idle, or no longer that account's.
    SessionEnded,
    /// The account is not active (disabled, pending, deleted).
    AccountInactive,
}

/// Whether the provider's identity may be linked to `asked_account`, which
/// asked from the session whose id hashes to `asked_session`.
/// `presented` is the hash of the session id the browser presents at the
/// callback; `session` what the store holds for `asked_session`.
pub fn may_link(
    presented: Option<&[u8; 32]>,
    asked_session: &[u8; 32],
    asked_account: i64,
    session: Option<AskingSession>,
    account_active: bool,
    now: i64,
    idle_ms: i64,
) -> Result<(), LinkRefusal> {
    let same = presented.is_some_and(|p| bool::from(p.ct_eq(asked_session)));
    if !same {
        return Err(LinkRefusal::NotTheAskingSession);
    }
    let live = session.is_some_and(|s| {
        s.account_id == asked_account
            && now < s.expires_at
            && now.saturating_sub(s.last_seen_at) < idle_ms
    });
    if !live {
        return Err(LinkRefusal::SessionEnded);
    }
    if !account_active {
        return Err(LinkRefusal::AccountInactive);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIVE: AskingSession = AskingSession {
        account_id: 7,
        expires_at: 1_000,
        last_seen_at: 500,
    };

    #[test]
    fn each_refusal() {
        let asked = [1u8; 32];
        let ok = |p: Option<&[u8; 32]>, s, active, now| may_link(p, &asked, 7, s, active, now, 100);
        assert_eq!(ok(Some(&asked), Some(LIVE), true, 550), Ok(()));
        assert_eq!(
            ok(None, Some(LIVE), true, 550),
            Err(LinkRefusal::NotTheAskingSession)
        );
        assert_eq!(
            ok(Some(&[2; 32]), Some(LIVE), true, 550),
            Err(LinkRefusal::NotTheAskingSession)
        );
        assert_eq!(
            ok(Some(&asked), None, true, 550),
            Err(LinkRefusal::SessionEnded)
        );
        assert_eq!(
            ok(Some(&asked), Some(LIVE), true, 600),
            Err(LinkRefusal::SessionEnded),
            "idle"
        );
        let late = AskingSession {
            last_seen_at: 990,
            ..LIVE
        };
        assert_eq!(
            ok(Some(&asked), Some(late), true, 1_000),
            Err(LinkRefusal::SessionEnded),
            "expired"
        );
        let other = AskingSession {
            account_id: 8,
            ..LIVE
        };
        assert_eq!(
            ok(Some(&asked), Some(other), true, 550),
            Err(LinkRefusal::SessionEnded)
        );
        assert_eq!(
            ok(Some(&asked), Some(LIVE), false, 550),
            Err(LinkRefusal::AccountInactive)
        );
    }

    proptest! {
        /// A link is allowed only with the asking session presented, and
        /// only for its own account.
        #[test]
        fn only_the_asking_session_of_the_asking_account_links(
            presented in proptest::option::of(any::<[u8; 32]>()),
            asked in any::<[u8; 32]>(),
            asked_account in any::<i64>(),
            owner in any::<i64>(),
            expires_at in any::<i64>(),
            last_seen_at in any::<i64>(),
            active in any::<bool>(),
            now in any::<i64>(),
            idle in 0i64..i64::MAX,
        ) {
            let s = AskingSession { account_id: owner, expires_at, last_seen_at };
            if may_link(presented.as_ref(), &asked, asked_account, Some(s), active, now, idle).is_ok() {
                prop_assert_eq!(presented, Some(asked));
                prop_assert_eq!(owner, asked_account);
                prop_assert!(active && now < expires_at);
            }
            prop_assert!(may_link(presented.as_ref(), &asked, asked_account, None, active, now, idle).is_err());
        }
    }
}
