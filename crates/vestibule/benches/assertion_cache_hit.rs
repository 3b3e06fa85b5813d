//! The signed assertion on the hot path (bench scenario 8): what a request
//! costs when its assertion is in the cache (the common case: one signature
//! per identity and audience serves every request until shortly before it
//! expires), and, for scale, a cache miss (an ES256 signature). Against a
//! real key ring in a SQLite store. See BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vestibule::config::{AssertionSettings, KeySettings, SigningAlgorithm};
use vestibule::keys::KeyRing;
use vestibule::keys::assertion::{Assertions, AuthMethod};
use vestibule_store::StoreConfig;

mod support;
use support::alice;

/// The gateway's defaults: ES256 keys, 60-second assertions.
fn setup(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> (KeyRing, Assertions) {
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let ring = rt.block_on(async {
        let store: Arc<dyn vestibule_store::Store> =
            vestibule_store::open(&StoreConfig::new(url)).await.unwrap();
        KeyRing::open(
            store,
            KeySettings {
                algorithm: SigningAlgorithm::Es256,
                rotate_every: Duration::from_secs(30 * 86_400),
                publish_ahead: Duration::from_secs(3600),
                reload_every: Duration::from_secs(60),
                kek: None,
            },
        )
        .await
        .unwrap()
    });
    let assertions = Assertions::new(AssertionSettings {
        header: http::HeaderName::from_static("x-vestibule-assertion"),
        lifetime: Duration::from_secs(60),
        issuer: "https://sso.example.com".into(),
    });
    (ring, assertions)
}

fn assertion(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ring, assertions) = setup(&rt, &dir);
    let id = alice();
    // The assertion for alice towards the wiki at `now` (unix seconds).
    let assertion = |now: i64| {
        assertions
            .assertion(
                &ring,
                black_box(&id),
                AuthMethod::Header,
                black_box("wiki.example.com"),
                black_box(now),
            )
            .unwrap()
    };
    let now = 1_800_000_000;
    // Fills the cache; every call below is a hit (same identity, audience
    // and second).
    let first = assertion(now);
    assert_eq!(
        assertion(now),
        first,
        "the second call must be served from the cache"
    );
    c.bench_function("assertion_cache_hit", |b| {
        b.iter(|| black_box(assertion(now)))
    });

    // Each call a minute after the last: the cached one is too old, so
    // every call signs.
    let mut later = now;
    c.bench_function("assertion_cache_miss_es256", |b| {
        b.iter(|| {
            later += 60;
            black_box(assertion(later))
        })
    });
}

criterion_group!(benches, assertion);
criterion_main!(benches);
