//! What every page's frame needs (`templates/base.html`): the stylesheet,
//! the nav with the current page marked, and the flash message.

use super::assets::stylesheet_href;
use super::flash::Flash;

/// A nav entry, to mark the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/.vestibule/account`.
    Account,
    /// `/.vestibule/devices` and the pages under it.
    Devices,
    /// `/.vestibule/apps`: apps with access.
    Apps,
    /// `/.vestibule/admin` and the pages under it.
    Admin,
    /// None of them (refusal pages, the pairing page a device opens).
    None,
}

/// The frame of a page.
pub struct Chrome {
    /// Which nav entry is marked.
    pub current: Nav,
    /// Whether the nav shows "Admin".
    pub is_admin: bool,
    /// The flash message to show, if any.
    pub notice: Option<&'static str>,
    /// The stylesheet's address.
    pub css: &'static str,
}

impl Chrome {
    /// The frame of a signed-in page.
    pub fn new(current: Nav, is_admin: bool, flash: Flash) -> Self {
        Self {
            current,
            is_admin,
            notice: flash.0.map(super::flash::Notice::text),
            css: stylesheet_href(),
        }
    }

    /// The frame of a page shown without a session (refusals).
    pub fn bare() -> Self {
        Self {
            current: Nav::None,
            is_admin: false,
            notice: None,
            css: stylesheet_href(),
        }
    }

    /// `aria-current="page"` on the current entry.
    pub fn mark(&self, entry: &str) -> &'static str {
        let is = match self.current {
            Nav::Account => entry == "account",
            Nav::Devices => entry == "devices",
            Nav::Apps => entry == "apps",
            Nav::Admin => entry == "admin",
            Nav::None => false,
        };
        if is { " aria-current=\"page\"" } else { "" }
    }
}
