//! The account lookup on the hot path: a known identity on a cache hit
//! (no database round trip), against a real SQLite store. See BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vestibule::accounts::{Accounts, Resolution};
use vestibule_core::identity::Identity;
use vestibule_core::policy::{Provisioning, RoutePolicy};
use vestibule_store::StoreConfig;

fn alice() -> Identity {
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

fn cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let accounts = rt.block_on(async {
        let store = vestibule_store::open(&StoreConfig::new(url)).await.unwrap();
        let a = Arc::new(Accounts::new(
            store,
            Duration::from_secs(3600),
            vec![("admin".into(), vec!["admins".into()])],
        ));
        // First sighting: provisions the account and fills the cache.
        let r = a
            .resolve(alice(), &Provisioning::Auto, false, None)
            .await
            .unwrap();
        assert!(matches!(r, Resolution::Active { .. }));
        a
    });
    let policy = RoutePolicy {
        allow_roles: vec!["admin".into()],
        ..Default::default()
    };
    c.bench_function("account lookup + policy on a cache hit", |b| {
        b.to_async(&rt).iter(|| async {
            let r = accounts
                .resolve(black_box(alice()), &Provisioning::Auto, false, None)
                .await
                .unwrap();
            let Resolution::Active { identity, .. } = r else {
                panic!("not active")
            };
            black_box(policy.evaluate(Some(&identity)))
        })
    });
}

criterion_group!(benches, cache_hit);
criterion_main!(benches);
