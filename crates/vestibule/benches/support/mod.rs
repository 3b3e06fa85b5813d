//! What the benches share: the identity they measure with.

use vestibule_core::identity::Identity;

/// Alice, as Authelia's headers describe her.
pub(crate) fn alice() -> Identity {
    Identity {
        source: "authelia".into(),
        subject: "alice".into(),
        username: "alice".into(),
        email: Some("alice@example.com".into()),
        display_name: Some("Alice Liddell".into()),
        groups: vec!["admins".into(), "users".into()],
        ..Default::default()
    }
}
