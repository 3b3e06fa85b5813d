//! An acknowledged write is durable: a burst of first sightings with
//! `provisioning = "auto"`, the server killed with SIGKILL mid-burst, then
//! restarted on the same data directory. Every identity that got a 200
//! (its account was committed before the response) must still have its
//! account, and the restarted gateway must let it in without provisioning
//! it again.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use vestibule_store::{AuditFilter, IdentityKey, StoreConfig};

use crate::support::*;

/// Workers firing requests at once.
const WORKERS: u32 = 32;
/// 200s to collect before the kill.
const ACKED_BEFORE_KILL: usize = 150;

/// The status line of a response from a trusted peer as identity `n`, or
/// `None` when the connection failed before one arrived. Never panics: the
/// server dies under it.
async fn try_get(addr: SocketAddr, n: u32) -> Option<u16> {
    let uid = format!("d-{n}");
    let user = format!("user{n}");
    let req = request(
        "GET",
        "/",
        &[("X-authentik-uid", &uid), ("X-authentik-username", &user)],
    );
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(TRUSTED.parse().ok()?, 0)).ok()?;
    let mut s = tokio::time::timeout(Duration::from_secs(10), sock.connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(&req).await.ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Keep what arrived even if the connection is then reset: a status
    // line is only sent after the decision (and the account) was made.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let line = head.lines().next()?;
    line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn source(data: &std::path::Path) -> String {
    format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\ncache_ttl = \"60s\"\n",
        data.display()
    )
}

async fn provisioned_subjects(store: &dyn vestibule_store::Store) -> Vec<String> {
    store
        .audit(&AuditFilter {
            since: None,
            action: Some("provision".into()),
            subject: None,
            limit: u32::MAX,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.subject)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_accounts_survive_kill_9() {
    let up = start_whoami().await;
    // The data outlives both gateway processes (each has its own config dir).
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().join("data");
    let cfg = config(&source(&data), &route("app", "/", up, ""));
    let mut gw = Gateway::start_in(tempfile::tempdir().unwrap(), &cfg, &[]).await;
    let addr = gw.addr;

    let acked = Arc::new(Mutex::new(Vec::<u32>::new()));
    let next = Arc::new(AtomicU32::new(0));
    let refused = Arc::new(AtomicU32::new(0));
    let failed = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (acked, next, refused, failed, stop) = (
            acked.clone(),
            next.clone(),
            refused.clone(),
            failed.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match try_get(addr, n).await {
                    Some(200) => acked.lock().unwrap().push(n),
                    Some(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    None => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        // The server is gone: no point hammering the port.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    while acked.lock().unwrap().len() < ACKED_BEFORE_KILL {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} 200s in 120 s; refused {}, failed {}\n{}",
            acked.lock().unwrap().len(),
            refused.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // SIGKILL, with requests in flight.
    let in_flight_at_kill = next.load(Ordering::Relaxed) as usize - acked.lock().unwrap().len();
    gw.child.start_kill().unwrap();
    let exit = gw.child.wait().await.unwrap();
    let burst = started.elapsed();
    // Let the workers see the dead server, then stop them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let acked: Vec<u32> = acked.lock().unwrap().clone();
    let sent = next.load(Ordering::Relaxed);

    // A second handle on the same file (as the CLI would open it).
    let store = vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        data.join("vestibule.db").display()
    )))
    .await
    .unwrap();
    let mut lost = Vec::new();
    let mut ids = Vec::new();
    for n in &acked {
        match store
            .account_by_identity(&IdentityKey::new("authentik", format!("d-{n}")))
            .await
            .unwrap()
        {
            Some(a) => ids.push(a.id),
            None => lost.push(*n),
        }
    }
    let on_disk = store.accounts(None, u32::MAX).await.unwrap().len();
    let provisioned = provisioned_subjects(&*store).await;
    let audited: HashSet<&str> = provisioned.iter().map(String::as_str).collect();
    eprintln!(
        "durability: {sent} requests in {burst:?} from {WORKERS} workers, {} got 200 before/around \
         SIGKILL ({in_flight_at_kill} not acknowledged when it was sent; exit {exit}), {} refused, {} \
         failed; {on_disk} accounts on disk ({} created without a 200 reaching the client), \
         {} acknowledged accounts lost",
        acked.len(),
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        on_disk - acked.len().min(on_disk),
        lost.len(),
    );
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "only 200s or dead connections"
    );
    for n in &acked {
        assert!(
            audited.contains(format!("authentik:d-{n}").as_str()),
            "d-{n} got a 200 without its provisioning audit entry"
        );
    }

    // Restart on the same data: every acknowledged identity passes as the
    // same account, with no new provisioning.
    let gw = Gateway::start_in(tempfile::tempdir().unwrap(), &cfg, &[]).await;
    for n in &acked {
        let uid = format!("d-{n}");
        let user = format!("user{n}");
        let r = Raw::get(
            gw.addr,
            TRUSTED,
            "/",
            &[("X-authentik-uid", &uid), ("X-authentik-username", &user)],
        )
        .await;
        assert_eq!(r.status, 200, "{uid}: {}", r.text());
    }
    let after = provisioned_subjects(&*store).await;
    assert_eq!(
        after.len(),
        provisioned.len(),
        "the restarted gateway provisioned known identities again"
    );
    for (n, id) in acked.iter().zip(&ids) {
        let a = store
            .account_by_identity(&IdentityKey::new("authentik", format!("d-{n}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.id, *id);
    }
    eprintln!(
        "durability: after restart all {} acknowledged identities passed as their own \
         accounts, no new provisioning entry ({} in the log)",
        acked.len(),
        after.len()
    );
}
