//! Heap bytes per cached device credential (issue 17: "caching all of 1M
//! device credentials: ≤ 300 MB RSS"), counted by dhat's global allocator
//! while a real SQLite store's credentials are used once each: what the
//! cache keeps (its entries, its two index tables, the shared owners and
//! route lists), nothing else. SQLite's own memory is C `malloc`, not
//! counted here; the scale section of bench/run.sh measures the RSS.
//!
//! A binary of its own, since the counting allocator is process-wide.
//! `cargo test -p vestibule --test credential_memory -- --nocapture`
//! prints the figure; the test fails when it rises above the ceiling.

use std::time::Duration;

use vestibule::devices::Verdict;

#[path = "../benches/support/credentials.rs"]
mod credentials;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Ten credentials per account, as the 1M row of the scale section
/// (1M credentials, 100k accounts).
const ACCOUNTS: usize = 500;
const DEVICES: usize = 5_000;

/// The most heap bytes one cached credential may hold, its share of its
/// owner included: what the cache holds today (BENCHMARKS.md, issue 17),
/// with room for the tables' growth steps (they double; the figure
/// depends on where N falls between two powers of two).
const CEILING: f64 = 260.0;

#[test]
fn a_cached_credential_holds_no_more_than_its_ceiling() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let (_store, devices) = rt.block_on(credentials::seeded(&url, ACCOUNTS, DEVICES));
    let _profiler = dhat::Profiler::builder().testing().build();
    let verify = |i: usize| {
        rt.block_on(async {
            let v = devices
                .verify(&credentials::presented(i), "bench", None, None)
                .await
                .unwrap();
            assert!(matches!(v, Verdict::Allowed { .. }), "{v:?}");
            // The "last used" write each first use spawns, done, so its
            // bytes are not counted as the cache's.
            tokio::time::sleep(Duration::ZERO).await;
        });
    };
    // The first use opens connections and prepares the statement.
    verify(0);
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    let before = dhat::HeapStats::get();
    for i in 1..DEVICES {
        verify(i);
    }
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(500)).await });
    let after = dhat::HeapStats::get();
    assert_eq!(devices.cached_len(), DEVICES);
    let per = (after.curr_bytes as f64 - before.curr_bytes as f64) / (DEVICES - 1) as f64;
    println!(
        "{DEVICES} credentials of {ACCOUNTS} accounts cached: {per:.0} heap bytes each \
         (ceiling {CEILING})"
    );
    assert!(
        per <= CEILING,
        "a cached credential holds {per:.0} bytes, above {CEILING}"
    );
}
