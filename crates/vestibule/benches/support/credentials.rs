//! A real SQLite file seeded with device credentials (each account
//! `bench-<i>` of source `authelia`, device `i` owned by account
//! `i % accounts`, on route `bench`), as `vestibule bench-seed` lays them
//! out but with secrets made again from their index: shared by the
//! criterion bench of a cache miss (`benches/credential_miss.rs`) and the
//! heap count per cached credential (`tests/credential_memory.rs`).

use std::sync::Arc;
use std::time::Duration;

use vestibule::accounts::Accounts;
use vestibule::devices::Devices;
use vestibule::tools::bench_seed::{bench_account, bench_device};
use vestibule_core::credential::{Carrier, Presented, device_token};
use vestibule_core::secret::hash_token;
use vestibule_store::{NewAccount, NewDevice, Store, StoreConfig};

/// The secret of device `i`: distinct, and cheap to make again.
pub(crate) fn secret(i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&(i as u64).to_le_bytes());
    s[8] = 0xa5;
    s
}

/// Device `i`'s credential as a client sends it (Bearer).
pub(crate) fn presented(i: usize) -> Presented {
    Presented {
        carrier: Carrier::Bearer,
        token: device_token(secret(i)),
        basic_user: None,
    }
}

/// Seeds the SQLite file at `url` (fresh) with `accounts` accounts and
/// `devices` devices, then opens it as the gateway does: the store, and
/// the device service over it (cache TTL one hour, nothing cached yet).
pub(crate) async fn seeded(
    url: &str,
    accounts: usize,
    devices: usize,
) -> (Arc<dyn Store>, Arc<Devices>) {
    let bulk = vestibule_store::open_for_bulk_load(&StoreConfig::new(url.to_owned()))
        .await
        .unwrap();
    let new_accounts: Vec<NewAccount> = (0..accounts)
        .map(|i| bench_account("authelia", i, 1))
        .collect();
    for chunk in new_accounts.chunks(1000) {
        bulk.create_accounts_bulk(chunk).await.unwrap();
    }
    let new_devices: Vec<NewDevice> = (0..devices)
        .map(|i| {
            let owner = i % accounts;
            // Ids from 1 in a fresh database.
            let account_id = owner as i64 + 1;
            let hash = hash_token(device_token(secret(i)).expose());
            bench_device(i, owner, account_id, "bench", hash, 1)
        })
        .collect();
    for chunk in new_devices.chunks(1000) {
        bulk.create_devices_bulk(chunk).await.unwrap();
    }
    drop(bulk);
    let store = vestibule_store::open(&StoreConfig::new(url.to_owned()))
        .await
        .unwrap();
    let ttl = Duration::from_secs(3600);
    let accounts = Arc::new(Accounts::new(store.clone(), ttl, vec![]));
    let devices = Arc::new(Devices::new(store.clone(), accounts, ttl, vec![], 10));
    (store, devices)
}
