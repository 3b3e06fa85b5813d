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
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vestibule::accounts::Accounts;
use vestibule::devices::{Devices, Verdict};
use vestibule_core::credential::{Carrier, Presented, device_token};
use vestibule_core::secret::hash_token;
use vestibule_store::{AccountStatus, IdentityKey, NewAccount, NewDevice, StoreConfig};

const ACCOUNTS: usize = 10_000;
const DEVICES: usize = 100_000;

/// The secret of device `i`: distinct, and cheap to make again.
fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
    s[8] = 0xa5;
    s
}

fn credential_miss(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (store, devices) = rt.block_on(async {
        let bulk = vestibule_store::open_for_bulk_load(&StoreConfig::new(url.clone()))
            .await
            .unwrap();
        let accounts: Vec<NewAccount> = (0..ACCOUNTS)
            .map(|i| NewAccount {
                key: IdentityKey::new("authelia", format!("bench-{i}")),
                username: format!("bench-{i}"),
                email: Some(format!("bench-{i}@example.com")),
                display_name: Some(format!("Bench User {i}")),
                groups: vec!["users".into()],
                org: None,
                status: AccountStatus::Active,
                now: 1,
            })
            .collect();
        for chunk in accounts.chunks(1000) {
            bulk.create_accounts_bulk(chunk).await.unwrap();
        }
        let devices: Vec<NewDevice> = (0..DEVICES)
            .map(|i| NewDevice {
                // Ids from 1 in a fresh database.
                account_id: (i % ACCOUNTS) as i64 + 1,
                name: format!("bench device {i}"),
                kind: "token".into(),
                routes: vec!["bench".into()],
                secret_hash: hash_token(device_token(secret(i)).expose()),
                basic_user: Some(format!("bench-{}", i % ACCOUNTS)),
                created_at: 1,
                expires_at: None,
            })
            .collect();
        for chunk in devices.chunks(1000) {
            bulk.create_devices_bulk(chunk).await.unwrap();
        }
        drop(bulk);
        let store = vestibule_store::open(&StoreConfig::new(url)).await.unwrap();
        let ttl = Duration::from_secs(3600);
        let accounts = Arc::new(Accounts::new(store.clone(), ttl, vec![]));
        let devices = Arc::new(Devices::new(store.clone(), accounts, ttl, vec![], 10));
        (store, devices)
    });
    let presented: Vec<Presented> = (0..DEVICES)
        .map(|i| Presented {
            carrier: Carrier::Bearer,
            token: device_token(secret(i)),
            basic_user: None,
        })
        .collect();
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
