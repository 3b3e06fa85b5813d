//! Who a request is from, once authenticated.

/// An authenticated person, as a source described them.
///
/// `subject` is the stable key (authentik's uid, geOrchestra's provider id,
/// or the username where the source has nothing better). Everything else is
/// descriptive and may change between requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// Which configured source vouched for this identity (e.g. `headers`).
    pub source: String,
    /// The stable subject within that source.
    pub subject: String,
    /// The login name shown to apps.
    pub username: String,
    /// Email address, if the source sent one.
    pub email: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Given (first) name, where the source sends it separately.
    pub given_name: Option<String>,
    /// Family (last) name, where the source sends it separately.
    pub family_name: Option<String>,
    /// Group or role names. Never contain `,`, `;` or `|`.
    pub groups: Vec<String>,
    /// Organisation.
    pub org: Option<String>,
    /// Upstream identity provider name (geOrchestra `preauth-provider`).
    pub provider: Option<String>,
    /// Roles granted by the operator's group-to-role mapping.
    pub roles: Vec<String>,
}

impl Identity {
    /// Whether the identity is in `group` (exact, case-sensitive match).
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The best name to show a person: display name, else given and family
    /// names, else the username.
    pub fn name_for_display(&self) -> String {
        self.name_for_display_ref().into_owned()
    }

    /// [`Identity::name_for_display`], borrowed unless it has to join the
    /// given and family names (the per-request path compares and renders
    /// it without allocating).
    pub fn name_for_display_ref(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        if let Some(d) = &self.display_name {
            return Cow::Borrowed(d);
        }
        match (&self.given_name, &self.family_name) {
            (Some(g), Some(f)) => Cow::Owned(format!("{g} {f}")),
            (Some(g), None) => Cow::Borrowed(g),
            (None, Some(f)) => Cow::Borrowed(f),
            (None, None) => Cow::Borrowed(&self.username),
        }
    }
}
