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
use vestibule_core::credential::{Carrier, Presented, device_token};
use vestibule_core::secret::hash_token;
use vestibule_store::{AccountStatus, IdentityKey, NewAccount, NewDevice, Store, StoreConfig};

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
    for chunk in new_accounts.chunks(1000) {
        bulk.create_accounts_bulk(chunk).await.unwrap();
    }
    let new_devices: Vec<NewDevice> = (0..devices)
        .map(|i| NewDevice {
            // Ids from 1 in a fresh database.
            account_id: (i % accounts) as i64 + 1,
            name: format!("bench device {i}"),
            kind: "token".into(),
            routes: vec!["bench".into()],
            secret_hash: hash_token(device_token(secret(i)).expose()),
            basic_user: Some(format!("bench-{}", i % accounts)),
            created_at: 1,
            expires_at: None,
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
