//! Accounts on PostgreSQL, shared by several gateways: how fast a change
//! made anywhere reaches every instance (the cache is long, the change
//! feed is what drops it), and what happens while the database is down.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vestibule_store::testkit::{self, PgCluster};
use vestibule_store::{AccountStatus, IdentityKey, Store, StoreConfig};

use crate::support::*;

/// Rounds per measurement.
const ROUNDS: usize = 5;

fn source(url: &str, cache_ttl: &str) -> String {
    format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\nurl = \"{url}\"\n\n[accounts]\ncache_ttl = \"{cache_ttl}\"\n"
    )
}

async fn gateway(url: &str, cache_ttl: &str) -> Gateway {
    let up = start_whoami().await;
    let cfg = config(&source(url, cache_ttl), &route("app", "/", up, ""));
    Gateway::start_in(tempfile::tempdir().unwrap(), &cfg, &[]).await
}

fn who(uid: &str) -> Vec<(String, String)> {
    vec![
        ("X-authentik-uid".into(), uid.into()),
        ("X-authentik-username".into(), format!("user-{uid}")),
        ("X-authentik-groups".into(), "users".into()),
    ]
}

async fn get(gw: &Gateway, id: &[(String, String)]) -> Raw {
    let h: Vec<(&str, &str)> = id.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    Raw::get(gw.addr, TRUSTED, "/", &h).await
}

fn key(uid: &str) -> IdentityKey {
    IdentityKey::new("authentik", uid)
}

/// Polls `gw` as `id` until `done(status)`; how long that took.
async fn until(gw: &Gateway, id: &[(String, String)], done: impl Fn(u16) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let s = get(gw, id).await.status;
        if done(s) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {s} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn summary(what: &str, mut v: Vec<Duration>) -> Duration {
    v.sort();
    let median = v[v.len() / 2];
    let max = *v.last().unwrap();
    eprintln!(
        "postgres: {what}: median {median:?}, max {max:?} over {} rounds ({v:?})",
        v.len()
    );
    max
}

/// Both instances serve `uid` from their caches.
async fn warm_both(a: &Gateway, b: &Gateway, uid: &str) {
    assert_eq!(get(a, &who(uid)).await.status, 200);
    assert_eq!(get(b, &who(uid)).await.status, 200);
    assert_eq!(get(a, &who(uid)).await.status, 200);
    assert_eq!(get(b, &who(uid)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_every_instance_within_a_second() {
    let url = tokio::task::spawn_blocking(testkit::postgres_url)
        .await
        .unwrap();
    let a = gateway(&url, "60s").await;
    let b = gateway(&url, "60s").await;
    let store: Arc<dyn Store> = vestibule_store::open(&StoreConfig::new(url.clone()))
        .await
        .unwrap();

    // Disable through the store: B (and A) refuse although cached for 60 s.
    let mut disable = Vec::new();
    for round in 0..ROUNDS {
        let uid = format!("dis-{round}");
        warm_both(&a, &b, &uid).await;
        let id = store
            .account_by_identity(&key(&uid))
            .await
            .unwrap()
            .unwrap()
            .id;
        assert!(
            store
                .set_status(id, AccountStatus::Disabled, 0)
                .await
                .unwrap()
        );
        let took = until(&b, &who(&uid), |s| s == 403).await;
        disable.push(took);
        // A hears of it on its own connection to the feed: within the same
        // second, though not necessarily before B.
        let a_took = until(&a, &who(&uid), |s| s == 403).await;
        assert!(a_took <= Duration::from_secs(1), "instance A: {a_took:?}");
    }
    let max = summary("disable -> instance B refuses", disable);
    assert!(max <= Duration::from_secs(1), "{max:?}");

    // Delete: B stops using the account. With `auto` it provisions the
    // identity again, as a new account: that is what is measured.
    let mut delete = Vec::new();
    for round in 0..ROUNDS {
        let uid = format!("del-{round}");
        warm_both(&a, &b, &uid).await;
        let id = store
            .account_by_identity(&key(&uid))
            .await
            .unwrap()
            .unwrap()
            .id;
        assert!(store.delete_account(id).await.unwrap());
        let started = Instant::now();
        loop {
            assert_eq!(get(&b, &who(&uid)).await.status, 200);
            let now = store.account_by_identity(&key(&uid)).await.unwrap();
            if now.is_some_and(|n| n.id != id) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "B kept the deleted account"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        delete.push(started.elapsed());
    }
    let max = summary("delete -> instance B provisions anew", delete);
    assert!(max <= Duration::from_secs(1), "{max:?}");

    // The CLI with instance A's configuration: disable, then B refuses.
    let cfg: PathBuf = a._dir.path().join("vestibule.toml");
    let mut cli_disable = Vec::new();
    for round in 0..ROUNDS {
        let uid = format!("cli-{round}");
        warm_both(&a, &b, &uid).await;
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["users", "disable", &format!("authentik:{uid}"), "--config"])
            .arg(&cfg)
            .env("USER", "tester")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        cli_disable.push(until(&b, &who(&uid), |s| s == 403).await);
    }
    let max = summary(
        "`vestibule users disable` exits -> instance B refuses",
        cli_disable,
    );
    assert!(max <= Duration::from_secs(1), "{max:?}");
}

/// One observed request during the outage.
#[derive(Debug)]
struct Seen {
    who: &'static str,
    /// When it was sent, from when the cached identity was first seen.
    sent: Duration,
    took: Duration,
    status: u16,
    retry_after: Option<String>,
}

async fn observe(gw: &Gateway, uid: &str, label: &'static str, t0: Instant) -> Seen {
    let sent = t0.elapsed();
    let started = Instant::now();
    let r = get(gw, &who(uid)).await;
    let seen = Seen {
        who: label,
        sent,
        took: started.elapsed(),
        status: r.status,
        retry_after: r.header("retry-after").map(str::to_owned),
    };
    eprintln!("postgres outage: {seen:?}");
    seen
}

/// Drops the cluster off the async runtime: stopping it waits for the
/// server to exit.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_fails_closed_and_recovers_by_itself() {
    const TTL: Duration = Duration::from_secs(3);
    let cluster = blocking(PgCluster::start).await;
    let (cluster, url) = blocking(move || {
        let url = cluster.create_database();
        (cluster, url)
    })
    .await;
    let gw = gateway(&url, "3s").await;

    // Warm one identity: its account is cached from the first request.
    let t0 = Instant::now();
    assert_eq!(get(&gw, &who("warm")).await.status, 200);
    let warmed = t0.elapsed();

    let mut cluster = blocking(move || {
        let mut c = cluster;
        c.stop();
        c
    })
    .await;
    let stopped = t0.elapsed();
    eprintln!("postgres outage: warmed in {warmed:?}, cluster stopped at {stopped:?}");

    // Right away: the cached identity, and a new one, at the same time.
    let (cached, new) = tokio::join!(
        observe(&gw, "warm", "cached identity", t0),
        observe(&gw, "new-1", "new identity", t0),
    );
    // The cached identity until it is refused.
    let mut cached_seen = vec![cached];
    while cached_seen.last().unwrap().status == 200 {
        assert!(
            t0.elapsed() < TTL + Duration::from_secs(10),
            "{cached_seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        cached_seen.push(observe(&gw, "warm", "cached identity", t0).await);
    }

    // Now the change feed knows the database is gone: a new identity is
    // refused at once instead of after the pool's acquire timeout.
    let fast = observe(&gw, "new-fast", "new identity, feed down", t0).await;

    // Back up: requests pass again without restarting vestibule.
    let mut cluster = blocking(move || {
        cluster.start_again();
        cluster
    })
    .await;
    let restarted = Instant::now();
    let back_cached = until(&gw, &who("warm"), |s| s == 200).await;
    let back_new = until(&gw, &who("new-2"), |s| s == 200).await;
    let since_restart = restarted.elapsed();
    eprintln!(
        "postgres outage: after start_again the cached identity passed after {back_cached:?}, \
         a new identity after {since_restart:?} ({back_new:?} for its own request)"
    );
    blocking(move || cluster.stop()).await;

    // A new identity needs the database: 503 with Retry-After, after at
    // most the store's acquire timeout.
    assert_eq!(new.status, 503, "{new:?}");
    assert!(new.retry_after.is_some(), "{new:?}");
    assert!(
        new.took <= vestibule_store::ACQUIRE_TIMEOUT + Duration::from_secs(2),
        "{new:?}"
    );
    assert_eq!(fast.status, 503, "{fast:?}");
    assert!(fast.retry_after.is_some(), "{fast:?}");
    assert!(
        fast.took < Duration::from_millis(500),
        "the known outage still cost {:?}",
        fast.took
    );
    // Nothing passes on a cache entry older than cache_ttl.
    for s in &cached_seen {
        if s.status == 200 {
            assert!(s.sent < warmed + TTL, "passed after cache_ttl: {s:?}");
        }
    }
    let refused = cached_seen.last().unwrap();
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.retry_after.is_some());
    assert!(
        refused.sent <= TTL + Duration::from_millis(500),
        "the cached identity was still served at {:?}",
        refused.sent
    );
    assert!(
        back_cached + back_new <= Duration::from_secs(10),
        "no recovery: {back_cached:?} + {back_new:?}"
    );
    // Whether the cached identity passed at all depends on a race: the
    // change feed notices the lost connection and empties the cache
    // (fail closed: revocations sent meanwhile would be missed), usually
    // before the first request. Either way, nothing passed after cache_ttl
    // (checked above), and the first refusal is a clear 503.
    assert!(
        cached_seen
            .iter()
            .all(|s| s.status == 200 || s.status == 503),
        "{cached_seen:?}"
    );
}

/// Two gateways starting together on one fresh PostgreSQL database make
/// one signing key between them and publish the same set; with the keys
/// unencrypted there, `check` warns.
#[tokio::test]
async fn gateways_on_one_database_share_one_signing_key() {
    let url = testkit::postgres_url();
    let (a, b) = tokio::join!(gateway(&url, "60s"), gateway(&url, "60s"));
    let jwks = |gw: &Gateway| {
        let addr = gw.addr;
        async move {
            let r = Raw::get(addr, TRUSTED, "/.vestibule/jwks.json", &[]).await;
            assert_eq!(r.status, 200);
            r.body
        }
    };
    let (from_a, from_b) = (jwks(&a).await, jwks(&b).await);
    assert_eq!(from_a, from_b);
    assert_eq!(vestibule_jose::Jwks::parse(&from_a).unwrap().len(), 1);

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["check", "--config"])
        .arg(a._dir.path().join("vestibule.toml"))
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("keys.kek_file"), "{text}");
}
