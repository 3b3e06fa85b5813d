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

    /// Whether `name` is [`Identity::name_for_display`], compared in
    /// place (the given and family names are not joined to compare them).
    pub fn is_name_for_display(&self, name: &str) -> bool {
        match (&self.display_name, &self.given_name, &self.family_name) {
            (None, Some(g), Some(f)) => name
                .strip_prefix(g.as_str())
                .and_then(|rest| rest.strip_prefix(' '))
                .is_some_and(|rest| rest == f),
            _ => *self.name_for_display_ref() == *name,
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn is_name_for_display_is_comparing_name_for_display(
            display in proptest::option::of("[a b]{0,3}"),
            given in proptest::option::of("[a b]{0,3}"),
            family in proptest::option::of("[a b]{0,3}"),
            username in "[a b]{0,3}",
            name in "[a b]{0,7}",
        ) {
            let id = Identity { display_name: display, given_name: given, family_name: family, username, ..Identity::default() };
            prop_assert_eq!(id.is_name_for_display(&name), id.name_for_display() == name);
            let own = id.name_for_display();
            prop_assert!(id.is_name_for_display(&own));
        }
    }
}
