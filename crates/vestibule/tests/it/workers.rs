//! `server.workers`: one current-thread runtime per worker thread, each
//! with its own `SO_REUSEPORT` socket on the same address; the real binary,
//! real sockets, the kernel's own tables.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

/// The listening sockets on `port` in the kernel's table (`/proc/net/tcp`,
/// state `0A` is LISTEN).
fn listening_sockets(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "0A"
        })
        .count()
}

/// The names of the gateway's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

fn with_workers(cfg: String, n: usize) -> String {
    cfg.replacen("[server]\n", &format!("[server]\nworkers = {n}\n"), 1)
}

async fn sigterm(pid: u32) {
    let status = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn two_workers_each_listen_and_all_connections_are_served() {
    let up = start_whoami().await;
    let cfg = with_workers(
        config(&authelia(), &route("app", "/", up, "auth = \"public\"")),
        2,
    )
    .replace("level = \"warn\"", "level = \"info\"");
    let gw = Gateway::start(&cfg).await;
    // One socket per worker in the kernel, on the one port reported.
    assert_eq!(listening_sockets(gw.addr.port()), 2);
    let names = thread_names(gw.pid());
    for w in ["vestibule-w0", "vestibule-w1"] {
        assert!(names.iter().any(|n| n == w), "no thread {w} in {names:?}");
    }
    // The address is reported once, whatever the number of workers.
    let logged = gw
        .stderr()
        .lines()
        .filter(|l| l.contains("listening") && l.contains(&gw.addr.to_string()))
        .count();
    assert_eq!(logged, 1, "{}", gw.stderr());
    // SO_REUSEPORT lets a process of the same user join the address; the
    // probe bind without it keeps a second gateway from doing so.
    let second = vestibule::http::workers::bind_tcp(gw.addr, 2);
    assert!(second.is_err(), "a second group joined {}", gw.addr);
    assert_eq!(listening_sockets(gw.addr.port()), 2);
    // Many connections at once, each from its own port: the kernel spreads
    // them over both sockets; every one is answered.
    let answered = futures_util::future::join_all((0..64).map(|i| async move {
        Raw::get(gw.addr, TRUSTED, &format!("/n{i}"), &[])
            .await
            .status
    }))
    .await;
    assert!(answered.iter().all(|s| *s == 200), "{answered:?}");
}

#[tokio::test]
async fn workers_zero_is_refused_by_check() {
    let cfg = with_workers(config(&authelia(), ""), 0);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vestibule.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("server.workers"), "{text}");
    assert!(text.contains("0 is outside 1..=1024"), "{text}");
}

/// An app that answers each request `delay` after reading its head.
async fn slow_app(delay: Duration) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                if read_request_head(&mut s).await.is_none() {
                    return;
                }
                tokio::time::sleep(delay).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow",
                    )
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn sigterm_drains_the_requests_in_flight_on_every_worker() {
    let up = slow_app(Duration::from_millis(1500)).await;
    let cfg = with_workers(
        config(&authelia(), &route("app", "/", up, "auth = \"public\"")),
        2,
    );
    let mut gw = Gateway::start(&cfg).await;
    let addr = gw.addr;
    // 32 connections (spread over both workers by the kernel), each with a
    // request the app holds; SIGTERM while all are in flight.
    let mut conns = Vec::new();
    for i in 0..32 {
        let mut c = Raw::connect(addr, TRUSTED).await;
        c.write_all(&request("GET", &format!("/slow{i}"), &[]))
            .await
            .unwrap();
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(gw.pid()).await;
    // New connections are refused once the listeners are closed...
    let closed = async {
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(closed.await, "still accepting after SIGTERM");
    // ...while every request already in flight is answered in full.
    for mut c in conns {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), c.read_to_end(&mut buf))
            .await
            .expect("an in-flight request was not answered")
            .unwrap();
        let r = Raw::parse(&buf);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"slow");
    }
    let status = tokio::time::timeout(Duration::from_secs(10), gw.child.wait())
        .await
        .expect("the gateway did not exit after draining")
        .unwrap();
    assert!(status.success(), "{status:?}: {}", gw.stderr());
}
