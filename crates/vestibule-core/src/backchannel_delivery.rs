//! When a back-channel logout notification (OpenID Connect Back-Channel
//! Logout 1.0) is sent again after a failure, and when it is given up.
//!
//! §2.8 leaves retries to the provider ("the OP MAY retry"); an RP that
//! is down for a while must still hear of the logout when it comes back,
//! or its session outlives ours. Each failed attempt waits twice as long
//! as the one before, from [`FIRST_RETRY_MS`] up to [`MAX_RETRY_MS`], and
//! a notification still undelivered [`GIVE_UP_AFTER_MS`] after it was
//! queued is dropped (and audited): by then the RP's own session lifetime
//! has normally ended it, and retrying forever would keep rows of clients
//! that are gone for good.
//!
//! Which rows are due is [`is_due`]: the store's claim does the same test
//! in SQL (`next_attempt_at <= now AND (lease_until IS NULL OR
//! lease_until <= now)`), this is its statement in one place.

/// The wait after the first failed attempt (ms).
pub const FIRST_RETRY_MS: i64 = 1_000;
/// The longest wait between two attempts (ms): five minutes.
pub const MAX_RETRY_MS: i64 = 300_000;
/// How long after it was queued a notification is given up (ms): 24 h.
pub const GIVE_UP_AFTER_MS: i64 = 86_400_000;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Try again at this time (unix ms).
    RetryAt(i64),
    /// Past the horizon: drop it.
    GiveUp,
}

/// The wait after `failed` failed attempts (`failed >= 1`; 0 is treated
/// as 1): `FIRST_RETRY_MS * 2^(failed-1)`, capped at [`MAX_RETRY_MS`].
pub fn backoff_ms(failed: u32) -> i64 {
    let doublings = failed.saturating_sub(1).min(30);
    FIRST_RETRY_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_MS)
}

/// After attempt number `failed` (counting from 1) failed at `now`, for a
/// notification queued at `created_at`: when to retry, or give up. A retry
/// that would fall past the horizon is not scheduled.
pub fn after_failure(created_at: i64, failed: u32, now: i64) -> AfterFailure {
    let horizon = created_at.saturating_add(GIVE_UP_AFTER_MS);
    let at = now.saturating_add(backoff_ms(failed));
    if now >= horizon || at > horizon {
        AfterFailure::GiveUp
    } else {
        AfterFailure::RetryAt(at)
    }
}

/// Whether a queued notification may be claimed at `now`: its time has
/// come and nobody holds a live lease on it.
pub fn is_due(next_attempt_at: i64, lease_until: Option<i64>, now: i64) -> bool {
    next_attempt_at <= now && lease_until.is_none_or(|l| l <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_schedule_doubles_from_one_second_up_to_five_minutes() {
        let waits: Vec<i64> = (1..=11).map(backoff_ms).collect();
        assert_eq!(
            waits,
            [
                1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000,
                300_000
            ]
        );
        assert_eq!(backoff_ms(0), 1_000);
        assert_eq!(backoff_ms(u32::MAX), MAX_RETRY_MS);
    }

    #[test]
    fn gives_up_at_the_horizon() {
        let t0 = 1_000_000;
        assert_eq!(after_failure(t0, 1, t0), AfterFailure::RetryAt(t0 + 1_000));
        let late = t0 + GIVE_UP_AFTER_MS - 1_000;
        assert_eq!(
            after_failure(t0, 1, late),
            AfterFailure::RetryAt(late + 1_000)
        );
        assert_eq!(after_failure(t0, 2, late), AfterFailure::GiveUp);
        assert_eq!(
            after_failure(t0, 1, t0 + GIVE_UP_AFTER_MS),
            AfterFailure::GiveUp
        );
    }

    #[test]
    fn due_when_its_time_came_and_no_live_lease() {
        assert!(is_due(10, None, 10));
        assert!(!is_due(11, None, 10));
        assert!(!is_due(10, Some(11), 10));
        assert!(is_due(10, Some(10), 10));
    }

    proptest! {
        #[test]
        fn waits_never_shrink_and_stay_bounded(n in 0u32..u32::MAX) {
            let (a, b) = (backoff_ms(n), backoff_ms(n.saturating_add(1)));
            prop_assert!(a <= b);
            prop_assert!((FIRST_RETRY_MS..=MAX_RETRY_MS).contains(&a));
        }

        #[test]
        fn a_retry_is_never_past_the_horizon_nor_in_the_past(
            created in 0i64..1 << 45, failed in 0u32..64, since in 0i64..2 * GIVE_UP_AFTER_MS,
        ) {
            let now = created + since;
            match after_failure(created, failed, now) {
                AfterFailure::RetryAt(at) => {
                    prop_assert!(at > now);
                    prop_assert!(at <= created + GIVE_UP_AFTER_MS);
                }
                AfterFailure::GiveUp => prop_assert!(now + backoff_ms(failed) > created + GIVE_UP_AFTER_MS),
            }
        }
    }
}
