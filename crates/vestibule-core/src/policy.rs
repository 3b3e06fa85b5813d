//! Route policy: may this identity (or nobody) pass?

use crate::identity::Identity;

/// How much identity a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// An identity is required; anonymous requests get 401 (or a login redirect).
    #[default]
    Required,
    /// An identity is forwarded when present; anonymous requests pass too.
    Optional,
    /// Nobody's identity is forwarded, even when one was sent.
    Public,
}

/// A route's access rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePolicy {
    /// See [`AuthMode`].
    pub auth: AuthMode,
    /// Usernames (or subjects) allowed; with `allow_groups`, an empty pair
    /// allows every authenticated identity.
    pub allow_users: Vec<String>,
    /// Groups allowed.
    pub allow_groups: Vec<String>,
}

/// The outcome of [`RoutePolicy::evaluate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Pass; `forward_identity` says whether the identity goes to the app.
    Allow {
        /// Whether to inject the identity (false on public routes and for anonymous requests).
        forward_identity: bool,
    },
    /// No identity, and the route needs one: 401 or a login redirect.
    Unauthenticated,
    /// An identity the route does not allow: 403.
    Forbidden,
}

impl RoutePolicy {
    /// Whether `id` passes the allow lists (exact, case-sensitive matches).
    pub fn allows(&self, id: &Identity) -> bool {
        if self.allow_users.is_empty() && self.allow_groups.is_empty() {
            return true;
        }
        self.allow_users
            .iter()
            .any(|u| *u == id.username || *u == id.subject)
            || self.allow_groups.iter().any(|g| id.in_group(g))
    }

    /// Decides a request.
    pub fn evaluate(&self, identity: Option<&Identity>) -> Decision {
        match (self.auth, identity) {
            (AuthMode::Public, _) => Decision::Allow {
                forward_identity: false,
            },
            (AuthMode::Optional, None) => Decision::Allow {
                forward_identity: false,
            },
            (AuthMode::Required, None) => Decision::Unauthenticated,
            (_, Some(id)) if self.allows(id) => Decision::Allow {
                forward_identity: true,
            },
            (_, Some(_)) => Decision::Forbidden,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, groups: &[&str]) -> Identity {
        Identity {
            subject: format!("sub-{user}"),
            username: user.into(),
            groups: groups.iter().map(|g| (*g).into()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn required_without_identity_is_unauthenticated() {
        let p = RoutePolicy::default();
        assert_eq!(p.evaluate(None), Decision::Unauthenticated);
        assert_eq!(
            p.evaluate(Some(&id("bob", &[]))),
            Decision::Allow {
                forward_identity: true
            }
        );
    }

    #[test]
    fn allow_lists() {
        let p = RoutePolicy {
            auth: AuthMode::Required,
            allow_users: vec!["carol".into()],
            allow_groups: vec!["admins".into()],
        };
        assert_eq!(
            p.evaluate(Some(&id("alice", &["admins"]))),
            Decision::Allow {
                forward_identity: true
            }
        );
        assert!(matches!(
            p.evaluate(Some(&id("carol", &[]))),
            Decision::Allow { .. }
        ));
        assert_eq!(
            p.evaluate(Some(&id("bob", &["users"]))),
            Decision::Forbidden
        );
        // Case matters: "Admins" is not "admins".
        assert_eq!(
            p.evaluate(Some(&id("bob", &["Admins"]))),
            Decision::Forbidden
        );
        // Subjects count as users.
        assert!(matches!(
            RoutePolicy {
                allow_users: vec!["sub-bob".into()],
                ..Default::default()
            }
            .evaluate(Some(&id("bob", &[]))),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn optional_passes_anonymous_but_still_enforces_lists() {
        let p = RoutePolicy {
            auth: AuthMode::Optional,
            allow_users: vec![],
            allow_groups: vec!["admins".into()],
        };
        assert_eq!(
            p.evaluate(None),
            Decision::Allow {
                forward_identity: false
            }
        );
        assert_eq!(p.evaluate(Some(&id("bob", &[]))), Decision::Forbidden);
    }

    #[test]
    fn public_never_forwards_identity() {
        let p = RoutePolicy {
            auth: AuthMode::Public,
            ..Default::default()
        };
        for i in [None, Some(id("alice", &["admins"]))] {
            assert_eq!(
                p.evaluate(i.as_ref()),
                Decision::Allow {
                    forward_identity: false
                }
            );
        }
    }
}
