//! Test support: the real binary, a real upstream, and a raw HTTP client
//! that can bind its source address (127.0.0.2 is a peer 127.0.0.1/32 does
//! not trust) and send what a polite client would refuse to.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::process::{Child, Command};

pub const TRUSTED: &str = "127.0.0.1";
pub const UNTRUSTED: &str = "127.0.0.2";

/// The whoami app, in this process, on a real socket.
pub async fn start_whoami() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(vestibule::tools::whoami::serve(l));
    addr
}

/// Where a head ends: the index of its blank line's `\r\n\r\n`.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// For raw test apps: reads from `s` until a whole request head has
/// arrived, and returns everything read so far (the head, and whatever of
/// the body came with it); `None` when the peer closed first.
pub async fn read_request_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while head_end(&buf).is_none() {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    Some(buf)
}

/// A port nothing listens on, for a server started later with it in its
/// configuration.
///
/// Taken below Linux's ephemeral range (32768–60999 by default), from a
/// per-process run of ports: a port the kernel handed out for `:0` and
/// released could be handed out again, to the next outgoing connection of
/// any test running in parallel, before the gateway binds it (a gateway
/// that then exits with "address in use"). Ports under 32768 are never
/// handed out that way; the counter keeps two tests in this process apart,
/// and each candidate is still tried. The fixed ports of the bench and e2e
/// scripts are outside 20000–28999 (18780–19343, and 29200 for
/// `bench/cpu_per_request.sh`).
pub async fn closed_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 9_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // A different starting point for each test binary's process.
    let start = (std::process::id() % 45) * 200;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = FIRST + (start + n) % SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if let Ok(l) = TcpListener::bind(addr).await {
            drop(l);
            return addr;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN);
}

/// The real `vestibule serve`, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub _dir: tempfile::TempDir,
    pub stderr_path: PathBuf,
}

impl Gateway {
    pub async fn start(config: &str) -> Self {
        Self::start_with_env(config, &[]).await
    }

    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), config, env).await
    }

    pub async fn start_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Self {
        let path = dir.path().join("vestibule.toml");
        std::fs::write(&path, config).unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vestibule"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut addr = None;
        let mut admin = None;
        let mut tls = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while addr.is_none() || (admin.is_none() && !config.contains("admin_listen = \"\"")) {
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "gateway did not start: {}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    )
                })
                .unwrap();
            let Some(line) = line else {
                panic!(
                    "gateway exited: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            };
            if let Some(a) = line.strip_prefix("vestibule: listening on http://") {
                addr.get_or_insert(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("vestibule: listening on https://") {
                tls = Some(a.parse().unwrap());
            } else if let Some(a) = line.strip_prefix("vestibule: admin on http://") {
                admin = Some(a.parse().unwrap());
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            addr: addr.unwrap(),
            admin,
            tls,
            _dir: dir,
            stderr_path,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        let r = Raw::get(self.admin.unwrap(), TRUSTED, "/metrics", &[]).await;
        String::from_utf8(r.body).unwrap()
    }
}

/// A parsed response.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): status {} body {}",
                self.status,
                self.text()
            )
        })
    }

    /// Header pairs whoami reported, lowercased names.
    pub fn seen_headers(&self) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for pair in self.json()["headers"].as_array().unwrap() {
            let n = pair[0].as_str().unwrap().to_owned();
            let v = pair[1].as_str().unwrap().to_owned();
            m.entry(n).or_default().push(v);
        }
        m
    }

    /// Connects from `from` (a loopback address) to `addr`.
    pub async fn connect(addr: SocketAddr, from: &str) -> TcpStream {
        let from: IpAddr = from.parse().unwrap();
        let sock = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .unwrap();
        sock.bind(SocketAddr::new(from, 0)).unwrap();
        sock.connect(addr).await.unwrap()
    }

    /// Sends raw bytes and reads the whole response (`Connection: close`).
    pub async fn send(addr: SocketAddr, from: &str, request: &[u8]) -> Raw {
        let mut s = Self::connect(addr, from).await;
        s.write_all(request).await.unwrap();
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
            .await
            .expect("response timed out")
            .unwrap();
        Self::parse(&buf)
    }

    /// A GET with extra header lines, sent verbatim.
    pub async fn get(addr: SocketAddr, from: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
        Self::send(addr, from, &request("GET", path, headers)).await
    }

    pub fn parse(buf: &[u8]) -> Raw {
        let end = head_end(buf)
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(buf)));
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let raw_body = &buf[end + 4..];
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(raw_body)
        } else {
            raw_body.to_vec()
        };
        Raw {
            status,
            headers,
            body,
        }
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&b[..eol])
                .split(';')
                .next()
                .unwrap()
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + size]);
        b = &b[eol + 2 + size + 2..];
    }
}

/// An HTTP/1.1 request with `Connection: close`, header lines verbatim.
pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// A minimal gateway config with one header source and the given routes.
pub fn config(dialect_block: &str, routes: &str) -> String {
    format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"warn\"\n\n{dialect_block}\n{routes}"
    )
}

pub fn authelia() -> String {
    "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n".to_owned()
}

pub fn route(name: &str, prefix: &str, upstream: SocketAddr, extra: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nupstream = \"http://{upstream}\"\n{extra}\n"
    )
}

/// Polls (for at most 5 s) until `f` gives the status `want`, returning how long that took.
pub async fn until_status(want: u16, mut f: impl AsyncFnMut() -> u16) -> Duration {
    let started = Instant::now();
    loop {
        let got = f().await;
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still {got} after 5 s (want {want})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SHA-256 of `s`, lower-case hex (a client's `secret_sha256`).
pub fn sha256_hex(s: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
