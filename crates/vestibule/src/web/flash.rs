//! Flash messages: one fixed sentence that confirms a POST worked, shown
//! once on the page the POST redirected to (POST/redirect/GET).
//!
//! The POST's 303 sets a short-lived cookie holding a [`Notice`] *code*
//! (never text from the request, so nothing can be reflected); the next
//! page that takes the [`Flash`] extractor shows the notice's sentence and
//! clears the cookie. The cookie's path is `/.vestibule/`, so apps behind
//! the gateway never see it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{HeaderValue, header};
use vestibule_core::secret::find_cookie;

use super::extract::{Client, CookieSlot, PageError, cookie_slot};
use super::session::https;
use crate::state::AppState;

/// The flash cookie's name.
const NAME: &str = super::cookies::FLASH_NAME;

/// How long a flash waits for the next page, in seconds.
const MAX_AGE_SECS: u32 = 60;

/// What a POST did, as its flash message says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// An admin approved an account.
    Approved,
    /// An admin enabled an account.
    Enabled,
    /// An admin disabled an account.
    Disabled,
    /// A device credential was revoked.
    DeviceRevoked,
    /// One session was ended.
    SessionEnded,
    /// A pairing was confirmed.
    PairingConfirmed,
    /// A pairing was refused.
    PairingRefused,
    /// The account was already active.
    Unchanged,
    /// An app's grant was revoked.
    GrantRevoked,
    /// The OIDC provider's identity was linked to the account.
    IdentityLinked,
    /// An identity was unlinked from the account.
    IdentityUnlinked,
}

impl Notice {
    const ALL: [Self; 11] = [
        Self::Approved,
        Self::Enabled,
        Self::Disabled,
        Self::DeviceRevoked,
        Self::SessionEnded,
        Self::PairingConfirmed,
        Self::PairingRefused,
        Self::Unchanged,
        Self::GrantRevoked,
        Self::IdentityLinked,
        Self::IdentityUnlinked,
    ];

    /// The cookie's value.
    fn code(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::DeviceRevoked => "device-revoked",
            Self::SessionEnded => "session-ended",
            Self::PairingConfirmed => "pairing-confirmed",
            Self::PairingRefused => "pairing-refused",
            Self::Unchanged => "unchanged",
            Self::GrantRevoked => "grant-revoked",
            Self::IdentityLinked => "identity-linked",
            Self::IdentityUnlinked => "identity-unlinked",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.code() == code)
    }

    /// The sentence shown.
    pub fn text(self) -> &'static str {
        match self {
            Self::Approved => "The account is approved: its owner can sign in now.",
            Self::Enabled => "The account is enabled again.",
            Self::Disabled => {
                "The account is disabled and its sessions are ended. Its devices are refused until it is enabled again."
            }
            Self::DeviceRevoked => "The device is revoked: its credential no longer works.",
            Self::SessionEnded => "The session is ended.",
            Self::PairingConfirmed => {
                "The device is confirmed; it collects its credential in a moment."
            }
            Self::PairingRefused => "The pairing is refused; nothing was issued.",
            Self::Unchanged => "Nothing to change: the account was already active.",
            Self::GrantRevoked => {
                "The app's access is revoked: its tokens no longer work, and it must ask for consent again."
            }
            Self::IdentityLinked => {
                "Your account at the sign-in provider is linked: signing in there now reaches this account."
            }
            Self::IdentityUnlinked => {
                "The sign-in is unlinked: it no longer reaches this account, and its sessions are ended."
            }
        }
    }

    /// Sets this notice for the next page.
    pub fn set(self, slot: &CookieSlot, https: bool) {
        let secure = if https { "; Secure" } else { "" };
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{NAME}={}; Path=/.vestibule/; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE_SECS}{secure}",
            self.code()
        )) {
            slot.set(v);
        }
    }
}

/// The notice a page shows, if the last POST left one; taking it clears
/// the cookie.
pub struct Flash(pub Option<Notice>);

// Alike extract.rs SignedIn, Identified: the axum extractor shape.
impl FromRequestParts<Arc<AppState>> for Flash {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, PageError> {
        let Some(code) = find_cookie(
            parts
                .headers
                .get_all(header::COOKIE)
                .iter()
                .map(|v| v.as_bytes()),
            NAME,
        ) else {
            return Ok(Self(None));
        };
        let notice = Notice::parse(code);
        let Ok(Client { ctx, .. }) = Client::from_request_parts(parts, state).await;
        let secure = if https(&ctx, &parts.headers) {
            "; Secure"
        } else {
            ""
        };
        let slot = cookie_slot(parts)?;
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{NAME}=; Path=/.vestibule/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
        )) {
            slot.set(v);
        }
        Ok(Self(notice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_nothing_else_parses() {
        for n in Notice::ALL {
            assert_eq!(Notice::parse(n.code()), Some(n));
            assert!(!n.text().is_empty());
        }
        assert_eq!(Notice::parse("<script>"), None);
        assert_eq!(Notice::parse(""), None);
    }
}
