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
    /// Roles allowed.
    pub allow_roles: Vec<String>,
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
        if self.allow_users.is_empty()
            && self.allow_groups.is_empty()
            && self.allow_roles.is_empty()
        {
            return true;
        }
        self.allow_users
            .iter()
            .any(|u| *u == id.username || *u == id.subject)
            || self.allow_groups.iter().any(|g| id.in_group(g))
            || self
                .allow_roles
                .iter()
                .any(|r| id.roles.iter().any(|x| x == r))
    }

    /// Whether `self` is at least as strict as `other`: every request
    /// `self` lets pass, `other` lets pass too (anonymous or as any
    /// identity). A partial order, judged on the configuration alone:
    ///
    /// - anonymous requests: `public` and `optional` let them pass,
    ///   `required` does not;
    /// - identities: `public` lets every one pass, and so does a route with
    ///   no allow lists; otherwise only those in the lists. So `self` is at
    ///   least as strict when `other` lets every identity pass, or when
    ///   `self` is not `public`, has lists, and each of its users, groups
    ///   and roles is also in `other`'s lists.
    ///
    /// Two policies may be incomparable (`allow_groups = ["a"]` and
    /// `["b"]`); route matching then refuses the request rather than pick
    /// one (see [`crate::route`]).
    pub fn at_least_as_strict_as(&self, other: &Self) -> bool {
        let admits_anonymous = |p: &Self| p.auth != AuthMode::Required;
        let has_lists = |p: &Self| {
            !(p.allow_users.is_empty() && p.allow_groups.is_empty() && p.allow_roles.is_empty())
        };
        let admits_every_identity = |p: &Self| p.auth == AuthMode::Public || !has_lists(p);
        let subset = |a: &[String], b: &[String]| a.iter().all(|x| b.contains(x));
        let anonymous_ok = !admits_anonymous(self) || admits_anonymous(other);
        let identities_ok = admits_every_identity(other)
            || (self.auth != AuthMode::Public
                && has_lists(self)
                && subset(&self.allow_users, &other.allow_users)
                && subset(&self.allow_groups, &other.allow_groups)
                && subset(&self.allow_roles, &other.allow_roles));
        anonymous_ok && identities_ok
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

/// What happens the first time an identity is seen (no account yet).
///
/// An account is never found by email or username: a new (source, subject)
/// is a new person until an admin links it (the Cloudflare "Sign in with
/// Apple" takeover started with an email match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    /// Only identities that already have an account may pass.
    ExistingOnly,
    /// Create an active account.
    Auto,
    /// Create an active account if the identity is in one of these groups.
    AutoIfGroup(Vec<String>),
    /// Create a pending account; nobody passes until an admin approves.
    Approval,
}

/// The outcome of [`Provisioning::first_sighting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstSighting {
    /// Create the account, active.
    CreateActive,
    /// Create the account, pending approval.
    CreatePending,
    /// Create nothing and refuse the request.
    Refuse,
}

impl Provisioning {
    /// Decides what to do with an identity that has no account.
    pub fn first_sighting(&self, id: &Identity) -> FirstSighting {
        match self {
            Self::ExistingOnly => FirstSighting::Refuse,
            Self::Auto => FirstSighting::CreateActive,
            Self::AutoIfGroup(groups) if groups.iter().any(|g| id.in_group(g)) => {
                FirstSighting::CreateActive
            }
            Self::AutoIfGroup(_) => FirstSighting::Refuse,
            Self::Approval => FirstSighting::CreatePending,
        }
    }
}

/// The roles `groups` grant under `mapping` (role → groups that grant it),
/// in the mapping's order, each once.
pub fn roles_for(groups: &[String], mapping: &[(String, Vec<String>)]) -> Vec<String> {
    mapping
        .iter()
        .filter(|(_, granting)| granting.iter().any(|g| groups.contains(g)))
        .map(|(role, _)| role.clone())
        .collect()
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
            allow_roles: vec![],
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
            allow_roles: vec![],
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
    fn roles_from_the_group_mapping_count() {
        let p = RoutePolicy {
            allow_roles: vec!["admin".into()],
            ..Default::default()
        };
        let mut i = id("dora", &["ops"]);
        assert_eq!(p.evaluate(Some(&i)), Decision::Forbidden);
        i.roles = vec!["admin".into()];
        assert!(matches!(p.evaluate(Some(&i)), Decision::Allow { .. }));
    }

    #[test]
    fn provisioning() {
        let ops = id("e", &["ops"]);
        assert_eq!(
            Provisioning::ExistingOnly.first_sighting(&ops),
            FirstSighting::Refuse
        );
        assert_eq!(
            Provisioning::Auto.first_sighting(&ops),
            FirstSighting::CreateActive
        );
        assert_eq!(
            Provisioning::AutoIfGroup(vec!["ops".into()]).first_sighting(&ops),
            FirstSighting::CreateActive
        );
        assert_eq!(
            Provisioning::AutoIfGroup(vec!["admins".into()]).first_sighting(&ops),
            FirstSighting::Refuse
        );
        assert_eq!(
            Provisioning::Approval.first_sighting(&ops),
            FirstSighting::CreatePending
        );
    }

    #[test]
    fn role_mapping() {
        let mapping = vec![
            (
                "admin".to_owned(),
                vec!["admins".to_owned(), "root".to_owned()],
            ),
            ("viewer".to_owned(), vec!["users".to_owned()]),
        ];
        assert_eq!(
            roles_for(&["root".into(), "users".into()], &mapping),
            ["admin", "viewer"]
        );
        assert!(roles_for(&["guests".into()], &mapping).is_empty());
    }

    fn policy(auth: AuthMode, users: &[&str], groups: &[&str], roles: &[&str]) -> RoutePolicy {
        let v = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect();
        RoutePolicy {
            auth,
            allow_users: v(users),
            allow_groups: v(groups),
            allow_roles: v(roles),
        }
    }

    #[test]
    fn strictness_orders_public_authenticated_and_restricted() {
        let public = policy(AuthMode::Public, &[], &[], &[]);
        let optional = policy(AuthMode::Optional, &[], &[], &[]);
        let required = policy(AuthMode::Required, &[], &[], &[]);
        let admins = policy(AuthMode::Required, &[], &["admins"], &[]);
        let admins_or_ops = policy(AuthMode::Required, &[], &["admins", "ops"], &[]);
        let ops = policy(AuthMode::Required, &[], &["ops"], &[]);
        let carol = policy(AuthMode::Required, &["carol"], &[], &[]);
        // Public and optional (without lists) admit the same requests.
        assert!(public.at_least_as_strict_as(&optional) && optional.at_least_as_strict_as(&public));
        let chain = [&public, &required, &admins_or_ops, &admins];
        for (i, a) in chain.iter().enumerate() {
            for (j, b) in chain.iter().enumerate() {
                assert_eq!(a.at_least_as_strict_as(b), i >= j, "{i} vs {j}");
            }
        }
        // Incomparable: neither's allowed set contains the other's.
        assert!(!admins.at_least_as_strict_as(&ops) && !ops.at_least_as_strict_as(&admins));
        assert!(!admins.at_least_as_strict_as(&carol) && !carol.at_least_as_strict_as(&admins));
        // Optional with lists still admits anonymous requests.
        let optional_admins = policy(AuthMode::Optional, &[], &["admins"], &[]);
        assert!(!optional_admins.at_least_as_strict_as(&required));
        assert!(admins.at_least_as_strict_as(&optional_admins));
        // Roles count like groups.
        let admin_role = policy(AuthMode::Required, &[], &[], &["admin"]);
        assert!(admin_role.at_least_as_strict_as(&required));
        assert!(!admin_role.at_least_as_strict_as(&admins));
    }

    proptest::proptest! {
        /// The order is sound: whenever `a` is at least as strict as `b`,
        /// no request passes `a` and fails `b`.
        #[test]
        fn stricter_never_admits_more(
            auths in proptest::collection::vec(0u8..3, 2),
            lists in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..3), 6),
            who in proptest::collection::vec(0u8..3, 0..3),
            anonymous: bool,
        ) {
            let mode = |m: u8| [AuthMode::Public, AuthMode::Optional, AuthMode::Required][m as usize];
            let names = |l: &[u8]| l.iter().map(|n| format!("n{n}")).collect::<Vec<_>>();
            let mk = |i: usize| RoutePolicy {
                auth: mode(auths[i]),
                allow_users: names(&lists[3 * i]),
                allow_groups: names(&lists[3 * i + 1]),
                allow_roles: names(&lists[3 * i + 2]),
            };
            let (a, b) = (mk(0), mk(1));
            let identity = (!anonymous).then(|| Identity {
                subject: "s".into(),
                username: format!("n{}", who.first().copied().unwrap_or(9)),
                groups: names(&who),
                roles: names(&who),
                ..Default::default()
            });
            let passes = |p: &RoutePolicy| matches!(p.evaluate(identity.as_ref()), Decision::Allow { .. });
            if a.at_least_as_strict_as(&b) {
                proptest::prop_assert!(!passes(&a) || passes(&b));
            }
            proptest::prop_assert!(a.at_least_as_strict_as(&a));
        }
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
