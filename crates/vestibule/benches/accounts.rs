//! The lookups on the hot path, on a cache hit (no database round trip),
//! against a real SQLite store: a known identity's account, and a device
//! credential (SHA-256 of the secret, then the cache). See BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vestibule::accounts::{Accounts, Resolution};
use vestibule_core::policy::{Provisioning, RoutePolicy};
use vestibule_store::StoreConfig;

mod support;
use support::alice;

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
            black_box(policy.evaluate(Some(&*identity)))
        })
    });
}

fn device_cache_hit(c: &mut Criterion) {
    use vestibule::devices::{Devices, Verdict};
    use vestibule_core::credential::{Carrier, Presented, device_token};
    use vestibule_core::secret::hash_token;
    use vestibule_store::{AccountStatus, IdentityKey, NewAccount, NewDevice};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let token = device_token([7u8; 32]);
    let devices = rt.block_on(async {
        let store = vestibule_store::open(&StoreConfig::new(url)).await.unwrap();
        let owner = store
            .create_account(NewAccount {
                key: IdentityKey::new("authelia", "alice"),
                username: "alice".into(),
                email: Some("alice@example.com".into()),
                display_name: Some("Alice Liddell".into()),
                groups: vec!["admins".into(), "users".into()],
                org: None,
                status: AccountStatus::Active,
                now: vestibule::accounts::now_ms(),
            })
            .await
            .unwrap();
        store
            .create_device(&NewDevice {
                account_id: owner.id,
                name: "phone".into(),
                kind: "token".into(),
                routes: vec!["photos".into()],
                secret_hash: hash_token(token.expose()),
                basic_user: Some("alice".into()),
                created_at: 0,
                expires_at: None,
            })
            .await
            .unwrap();
        let roles = vec![("admin".to_owned(), vec!["admins".to_owned()])];
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            Duration::from_secs(3600),
            roles.clone(),
        ));
        Arc::new(Devices::new(
            store,
            accounts,
            Duration::from_secs(3600),
            roles,
            10,
        ))
    });
    let presented = Presented {
        carrier: Carrier::Bearer,
        token,
        basic_user: None,
    };
    let verify = || async {
        devices
            .verify(black_box(&presented), "photos", None, None)
            .await
            .unwrap()
    };
    // The first use fills the cache.
    assert!(matches!(rt.block_on(verify()), Verdict::Allowed { .. }));
    c.bench_function("device credential lookup on a cache hit", |b| {
        b.to_async(&rt).iter(|| async {
            let v = verify().await;
            assert!(matches!(v, Verdict::Allowed { .. }));
            black_box(v)
        })
    });
}

/// A `[source.jwt]` assertion seen before: SHA-256 of the token and a map
/// lookup instead of the signature check (22–69 µs, core `hot_path`).
fn remembered_assertion(c: &mut Criterion) {
    use vestibule::config::{JwksLocation, JwtSettings};
    use vestibule::identity::jwks::SigningKeys;
    use vestibule_core::jwt::testing::TestSigner;
    use vestibule_core::jwt::{Algorithm, ClaimMapping};
    let signer = TestSigner::es256("es");
    let keys = SigningKeys::new(JwtSettings {
        preset: "authentik".into(),
        header: http::HeaderName::from_static("x-authentik-jwt"),
        issuer: "https://sso.example.com/".into(),
        audiences: vec!["vestibule".into()],
        jwks: JwksLocation::File("unused.json".into()),
        jwks_ca: None,
        refresh: Duration::from_secs(3600),
        algorithms: Algorithm::ALL.to_vec(),
        leeway_secs: 60,
        mapping: ClaimMapping::authentik(),
    })
    .unwrap();
    let token = signer.sign(&serde_json::json!({
        "iss": "https://sso.example.com/", "aud": "vestibule", "sub": "7f3a2c",
        "exp": 4_000_000_000_i64, "preferred_username": "alice",
        "email": "alice@example.com", "name": "Alice Liddell",
        "groups": ["family", "admins", "photos"],
    }));
    let now = 1_800_000_000;
    keys.remember(
        vestibule_core::secret::hash_token(&token),
        &alice(),
        4_000_000_000,
        now,
        0,
    );
    c.bench_function(
        "remembered assertion lookup (SHA-256 of the token + map)",
        |b| {
            b.iter(|| {
                let hash = vestibule_core::secret::hash_token(black_box(&token));
                keys.remembered(&hash, now).unwrap()
            })
        },
    );
}

criterion_group!(benches, cache_hit, device_cache_hit, remembered_assertion);
criterion_main!(benches);
