//! The pure rules of the OAuth 2.0 Device Authorization Grant (RFC 8628)
//! on the provider's side: the shape of user codes, how a typed code is
//! read, and the polling rule behind `slow_down`.
//!
//! - **User codes** are 8 characters of the base-20 alphabet
//!   `BCDFGHJKLMNPQRSTVWXZ` (RFC 8628 §6.1: no vowels, so no words; no
//!   digits, so nothing to confuse with letters), about 34.5 bits, shown as
//!   `XXXX-XXXX`. [`user_code_from_bytes`] makes one from random bytes by
//!   rejection sampling, so every code is equally likely.
//! - **What the user types** is read by [`normalize_user_code`]: case,
//!   dashes and spaces are ignored (§6.1: "the characters of the user code
//!   [...] SHOULD be case-insensitive", "any punctuation [...] ignored");
//!   anything else outside the alphabet is an error, never dropped, and the
//!   input is bounded before it is looked at.
//! - **Polling** ([`poll_timing`]): a poll that comes sooner than the
//!   code's current interval after the previous one is answered
//!   `slow_down`, and the interval grows by 5 s "for this and all
//!   subsequent requests" (§3.5).

/// The base-20 user-code alphabet of RFC 8628 §6.1.
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Characters in a user code (20^8 ≈ 2^34.6 codes; §6.1's example).
pub const USER_CODE_LEN: usize = 8;

/// How much longer a client must wait after a `slow_down` (RFC 8628 §3.5:
/// "the interval MUST be increased by 5 seconds").
pub const SLOW_DOWN_STEP_MS: i64 = 5_000;

/// What a typed user code may be at most before it is read at all: the code
/// with a dash and generous spaces fits many times over.
pub const MAX_TYPED_LEN: usize = 64;

/// Why a typed user code was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCodeError {
    /// Longer than [`MAX_TYPED_LEN`] bytes.
    TooLong,
    /// A character that is neither in the alphabet (either case) nor a
    /// dash or a space.
    BadCharacter,
    /// Not [`USER_CODE_LEN`] characters once dashes and spaces are gone.
    WrongLength,
}

/// Reads what a user typed (or what `verification_uri_complete` carried)
/// as a user code: ASCII letters of the alphabet in either case, with any
/// dashes and spaces anywhere, ignored (RFC 8628 §6.1). Returns the
/// canonical form: [`USER_CODE_LEN`] upper-case letters, no dash.
pub fn normalize_user_code(typed: &str) -> Result<String, UserCodeError> {
    if typed.len() > MAX_TYPED_LEN {
        return Err(UserCodeError::TooLong);
    }
    let mut out = String::with_capacity(USER_CODE_LEN);
    for c in typed.chars() {
        if c == '-' || c == ' ' {
            continue;
        }
        let u = c.to_ascii_uppercase();
        if !u.is_ascii() || !USER_CODE_ALPHABET.contains(&(u as u8)) {
            return Err(UserCodeError::BadCharacter);
        }
        out.push(u);
    }
    if out.len() != USER_CODE_LEN {
        return Err(UserCodeError::WrongLength);
    }
    Ok(out)
}

/// A canonical user code as people read it: `XXXX-XXXX` (RFC 8628 §6.1,
/// "a dash [...] to make it easier to read"). Anything not canonical is
/// returned unchanged.
pub fn display_user_code(canonical: &str) -> String {
    if canonical.len() == USER_CODE_LEN && canonical.is_ascii() {
        let (a, b) = canonical.split_at(USER_CODE_LEN / 2);
        format!("{a}-{b}")
    } else {
        canonical.to_owned()
    }
}

/// A canonical user code from random bytes (the caller's CSPRNG): each
/// byte below 240 picks `byte % 20`, the others are skipped so that every
/// letter is equally likely. `None` when the bytes run out first (with 32
/// bytes, a chance below 10^-20); draw again then.
pub fn user_code_from_bytes(random: &[u8]) -> Option<String> {
    // 240 = 12 × 20: the largest multiple of 20 a byte can reach.
    let code: String = random
        .iter()
        .filter(|&&b| b < 240)
        .take(USER_CODE_LEN)
        .map(|&b| char::from(USER_CODE_ALPHABET[usize::from(b % 20)]))
        .collect();
    (code.len() == USER_CODE_LEN).then_some(code)
}

/// The verdict on one poll of the token endpoint with a device code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollTiming {
    /// The client waited long enough.
    OnTime,
    /// Too soon: answer `slow_down`; the code's interval is now
    /// `interval_ms` (RFC 8628 §3.5).
    SlowDown {
        /// The new interval, 5 s longer.
        interval_ms: i64,
    },
}

/// Whether a poll at `now` (unix ms) comes at least `interval_ms` after
/// the previous one (`None`: the first poll, always on time). The previous
/// poll counts whatever it was answered, so a client that keeps hammering
/// keeps being slowed down.
pub fn poll_timing(last_poll_at: Option<i64>, interval_ms: i64, now: i64) -> PollTiming {
    match last_poll_at {
        Some(last) if now.saturating_sub(last) < interval_ms => PollTiming::SlowDown {
            interval_ms: interval_ms.saturating_add(SLOW_DOWN_STEP_MS),
        },
        _ => PollTiming::OnTime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_people_type() {
        assert_eq!(normalize_user_code("WDJB-MJHT").unwrap(), "WDJBMJHT");
        assert_eq!(normalize_user_code("wdjbmjht").unwrap(), "WDJBMJHT");
        assert_eq!(normalize_user_code(" wdjb - mjht ").unwrap(), "WDJBMJHT");
        assert_eq!(
            normalize_user_code("WDJB-MJH"),
            Err(UserCodeError::WrongLength)
        );
        assert_eq!(
            normalize_user_code("WDJB-MJHTB"),
            Err(UserCodeError::WrongLength)
        );
        // Vowels and digits are not in the alphabet: an error, not dropped.
        assert_eq!(
            normalize_user_code("WDJA-MJHT"),
            Err(UserCodeError::BadCharacter)
        );
        assert_eq!(
            normalize_user_code("WDJB_MJHT"),
            Err(UserCodeError::BadCharacter)
        );
        assert_eq!(
            normalize_user_code("WDJB\tMJHT"),
            Err(UserCodeError::BadCharacter)
        );
        // A non-ASCII letter whose upper case is ASCII-looking is refused.
        assert_eq!(
            normalize_user_code("WDJBMJHſ"),
            Err(UserCodeError::BadCharacter)
        );
        assert_eq!(
            normalize_user_code(&" ".repeat(65)),
            Err(UserCodeError::TooLong)
        );
        assert_eq!(display_user_code("WDJBMJHT"), "WDJB-MJHT");
    }

    #[test]
    fn codes_from_bytes_are_unbiased_and_canonical() {
        assert_eq!(user_code_from_bytes(&[0; 8]).unwrap(), "BBBBBBBB");
        // 240..=255 are skipped.
        assert_eq!(
            user_code_from_bytes(&[255, 240, 19, 20, 39, 1, 2, 3, 4, 5]).unwrap(),
            "ZBZCDFGH"
        );
        assert_eq!(user_code_from_bytes(&[250; 32]), None);
        assert_eq!(user_code_from_bytes(&[1; 7]), None);
    }

    #[test]
    fn slow_down_grows_the_interval() {
        assert_eq!(poll_timing(None, 5_000, 0), PollTiming::OnTime);
        assert_eq!(poll_timing(Some(0), 5_000, 5_000), PollTiming::OnTime);
        assert_eq!(
            poll_timing(Some(0), 5_000, 4_999),
            PollTiming::SlowDown {
                interval_ms: 10_000
            }
        );
        assert_eq!(
            poll_timing(Some(0), i64::MAX, 1),
            PollTiming::SlowDown {
                interval_ms: i64::MAX
            }
        );
    }

    proptest! {
        #[test]
        fn generated_codes_read_back_in_any_spelling(
            bytes in proptest::collection::vec(any::<u8>(), 32),
            lower in proptest::collection::vec(any::<bool>(), 8),
            dash_at in 0usize..=8,
            spaces in 0usize..4,
        ) {
            let Some(code) = user_code_from_bytes(&bytes) else { return Ok(()) };
            prop_assert_eq!(normalize_user_code(&code).unwrap(), code.clone());
            prop_assert_eq!(normalize_user_code(&display_user_code(&code)).unwrap(), code.clone());
            let mut typed: String = code
                .chars()
                .zip(&lower)
                .map(|(c, &l)| if l { c.to_ascii_lowercase() } else { c })
                .collect();
            typed.insert(dash_at, '-');
            typed.push_str(&" ".repeat(spaces));
            prop_assert_eq!(normalize_user_code(&typed).unwrap(), code);
        }

        #[test]
        fn normalized_codes_are_canonical(s in "\\PC{0,80}") {
            if let Ok(n) = normalize_user_code(&s) {
                prop_assert_eq!(n.len(), USER_CODE_LEN);
                prop_assert!(n.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
                prop_assert_eq!(normalize_user_code(&n).unwrap(), n.clone());
                // Only dashes and spaces were dropped.
                let kept: String = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
                prop_assert_eq!(kept.to_ascii_uppercase(), n);
            }
        }

        #[test]
        fn polls_on_time_never_slow_down(last in 0i64..1_000_000, interval in 0i64..100_000, wait in 0i64..200_000) {
            let t = poll_timing(Some(last), interval, last + wait);
            if wait >= interval {
                prop_assert_eq!(t, PollTiming::OnTime);
            } else {
                prop_assert_eq!(t, PollTiming::SlowDown { interval_ms: interval + SLOW_DOWN_STEP_MS });
            }
        }
    }
}
