//! A device credential that is not cached (issue 17: "a cache miss on
//! SQLite ≤ 50 µs, one indexed query"), against a real SQLite file seeded
//! with 100k devices of 10k accounts (as `vestibule bench-seed` does):
//!
//! - `verify` on a cache miss: the cache is emptied before every call, so
//!   each one reads the device with its owner from the store (one query,
//!   `Store::device_with_owner`) and caches it;
//! - that query alone, through the store;
//! - the floor under any query: a primary-key probe that finds nothing
//!   (`Store::account` of an id never handed out), i.e. sqlx's round trip
//!   to its SQLite worker thread and back, plus SQLite's statement step.
//!
//! `cargo bench -p vestibule --bench credential_miss`; see BENCHMARKS.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vestibule::devices::Verdict;
use vestibule_core::credential::Presented;
use vestibule_core::secret::hash_token;

#[path = "support/credentials.rs"]
mod credentials;

const ACCOUNTS: usize = 10_000;
const DEVICES: usize = 100_000;

fn credential_miss(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (store, devices) = rt.block_on(credentials::seeded(&url, ACCOUNTS, DEVICES));
    let presented: Vec<Presented> = (0..DEVICES).map(credentials::presented).collect();
    let hashes: Vec<[u8; 32]> = presented
        .iter()
        .map(|p| hash_token(p.token.expose()))
        .collect();

    let mut g = c.benchmark_group("credential miss (SQLite, 100k devices)");
    g.sample_size(30).measurement_time(Duration::from_secs(8));
    let mut i = 0usize;
    g.bench_function("verify on a cache miss", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % DEVICES;
            let p = &presented[i];
            let devices = &devices;
            async move {
                devices.forget_all();
                let v = devices.verify(p, "bench", None, None).await.unwrap();
                assert!(matches!(v, Verdict::Allowed { .. }), "{v:?}");
                black_box(v)
            }
        })
    });
    let mut j = 0usize;
    g.bench_function("Store::device_with_owner alone", |b| {
        b.to_async(&rt).iter(|| {
            j = (j + 7919) % DEVICES;
            let h = &hashes[j];
            let store = &store;
            async move { black_box(store.device_with_owner(h).await.unwrap().unwrap()) }
        })
    });
    g.bench_function("floor: a primary-key probe finding nothing", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.account(-1).await.unwrap()) })
    });
    g.finish();
    assert!(devices.cached_len() <= 1);
}

criterion_group!(benches, credential_miss);
criterion_main!(benches);
