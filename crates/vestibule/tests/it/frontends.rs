//! The real fronts in front of vestibule's forward-auth endpoint: nginx
//! (`auth_request`), Caddy (`forward_auth`) and HAProxy (a Lua action), each
//! run with the configuration its page in `docs/integrations/` shows, byte
//! for byte, so the documentation cannot drift from what works.
//!
//! Topology (the one the pages describe): the HTTP client here plays the SSO
//! hop (authentik, `X-authentik-*`), the front asks vestibule about each
//! request, and a `vestibule whoami` app reports what reached it. Every front
//! has its own fixed loopback ports (the configurations are complete files
//! with real addresses), and all of a front's cases run in one test, in
//! order.
//!
//! The fronts are Debian packages that `.ci/run` installs; a missing one is a
//! failure that names the package, never a skip.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child as StdChild, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vestibule::config;

use crate::support::*;

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/integrations");

/// The SSO hop's headers for bob, who is not an admin.
const BOB: [(&str, &str); 5] = [
    ("X-authentik-uid", "5f1c0e7a"),
    ("X-authentik-username", "bob"),
    ("X-authentik-email", "bob@example.com"),
    ("X-authentik-name", "Bob"),
    ("X-authentik-groups", "users|media"),
];

/// The SSO hop's headers for alice, an admin.
const ALICE: [(&str, &str); 3] = [
    ("X-authentik-uid", "9a2b7c4d"),
    ("X-authentik-username", "alice"),
    ("X-authentik-groups", "admins|users"),
];

/// A client's attempts at supplying its own identity.
const SPOOFS: [(&str, &str); 5] = [
    ("Remote-User", "admin"),
    ("Remote_User", "admin"),
    ("REMOTE-USER", "admin"),
    ("Remote-User", "admin"),
    ("Remote-Groups", "admins"),
];

/// Addresses of one front's stack.
#[derive(Debug, Clone, Copy)]
struct Ports {
    front: u16,
    vestibule: u16,
    app: u16,
}

/// How a front is started from its page.
enum Kind {
    Nginx,
    Caddy,
    Haproxy,
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Caddy => "Caddy",
            Self::Haproxy => "HAProxy",
        }
    }

    fn page(&self) -> &'static str {
        match self {
            Self::Nginx => "nginx.md",
            Self::Caddy => "caddy.md",
            Self::Haproxy => "haproxy.md",
        }
    }

    /// Executable and the Debian package that provides it.
    fn binary(&self) -> (&'static str, &'static str) {
        match self {
            Self::Nginx => ("nginx", "nginx"),
            Self::Caddy => ("caddy", "caddy"),
            Self::Haproxy => ("haproxy", "haproxy"),
        }
    }
}

fn read_page(page: &str) -> String {
    let path = format!("{DOCS}/{page}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every fenced block of `doc` as (info string, body), the body byte for
/// byte (each line with its `\n`).
fn fenced_blocks(doc: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let Some(info) = line.trim_end().strip_prefix("```") else {
            continue;
        };
        let mut body = String::new();
        let mut closed = false;
        for l in lines.by_ref() {
            if l.trim_end() == "```" {
                closed = true;
                break;
            }
            body.push_str(l);
        }
        assert!(closed, "unclosed ```{info} block");
        blocks.push((info.trim().to_owned(), body));
    }
    blocks
}

/// The one block of `lang` on `page`.
fn block(page: &str, doc: &str, lang: &str) -> String {
    let mut found: Vec<String> = fenced_blocks(doc)
        .into_iter()
        .filter(|(info, _)| info == lang)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "docs/integrations/{page} must have exactly one ```{lang} block (the complete file)"
    );
    found.remove(0)
}

/// Finds a front's executable (nginx and haproxy live in /usr/sbin, which is
/// not on every PATH), or fails naming the package to install.
fn find_binary(front: &str, name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = [
        "/usr/sbin",
        "/sbin",
        "/usr/local/sbin",
        "/usr/bin",
        "/usr/local/bin",
    ];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{front}: `{name}` was not found on PATH or in /usr/sbin. Install the Debian \
                 package `{package}` (apt-get install --no-install-recommends {package}); \
                 .ci/run installs it on CI."
            )
        })
}

/// Fails clearly when a fixed port is taken (usually a leftover of an
/// interrupted run), instead of testing whatever answers there.
fn assert_port_free(front: &str, port: u16) {
    if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
        panic!(
            "{front}: 127.0.0.1:{port} is already in use ({e}). A process from an interrupted \
             run? Find it with `ss -ltnp | grep :{port}` and stop it."
        );
    }
}

/// A started front, stopped by PID on drop: SIGTERM (nginx's master then
/// stops its workers), SIGKILL if it is still there after 5 s.
struct FrontProcess {
    name: &'static str,
    child: StdChild,
    dir: tempfile::TempDir,
}

impl FrontProcess {
    /// The front's own output and logs, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for f in ["front.log", "error.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join(f)) {
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                out.push_str(&format!("--- {} {f} (last lines) ---\n", self.name));
                for l in tail.into_iter().rev() {
                    out.push_str(l);
                    out.push('\n');
                }
            }
        }
        out
    }
}

impl Drop for FrontProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = StdCommand::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One front with vestibule and the app behind it, as its page shows.
struct Stack {
    name: &'static str,
    addr: SocketAddr,
    // Dropped in this order: the front first, then vestibule, then the app.
    front: FrontProcess,
    gateway: Gateway,
    _app: Child,
}

impl Stack {
    async fn start(kind: Kind, ports: Ports) -> Self {
        let name = kind.name();
        let page = kind.page();
        let (exe, package) = kind.binary();
        let exe = find_binary(name, exe, package);
        for port in [ports.front, ports.vestibule, ports.app] {
            assert_port_free(name, port);
        }
        let doc = read_page(page);
        let toml = block(page, &doc, "toml");

        let app = start_whoami_process(name, ports.app).await;
        let gateway = Gateway::start_in(tempfile::tempdir().unwrap(), &toml, &[]).await;
        assert_eq!(
            gateway.addr.port(),
            ports.vestibule,
            "{name}: the vestibule config on {page} should listen on 127.0.0.1:{}",
            ports.vestibule
        );

        let dir = tempfile::tempdir().unwrap();
        // nginx workers run as an unprivileged user when started as root;
        // they must be able to reach their temporary directories here.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let log = std::fs::File::create(dir.path().join("front.log")).unwrap();
        let mut cmd = StdCommand::new(&exe);
        cmd.current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        match kind {
            Kind::Nginx => {
                let conf = dir.path().join("nginx.conf");
                std::fs::write(&conf, block(page, &doc, "nginx")).unwrap();
                let prefix = format!("{}/", dir.path().display());
                cmd.arg("-p").arg(prefix).arg("-c").arg(&conf);
            }
            Kind::Caddy => {
                let conf = dir.path().join("Caddyfile");
                std::fs::write(&conf, block(page, &doc, "caddyfile")).unwrap();
                // Caddy keeps state (autosave.json, certificates) under these.
                cmd.env("HOME", dir.path())
                    .env("XDG_CONFIG_HOME", dir.path().join("config"))
                    .env("XDG_DATA_HOME", dir.path().join("data"))
                    .arg("run")
                    .arg("--config")
                    .arg(&conf)
                    .arg("--adapter")
                    .arg("caddyfile");
            }
            Kind::Haproxy => {
                let cfg_text = block(page, &doc, "haproxy");
                let lua_name = cfg_text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("lua-load "))
                    .map(|rest| rest.trim().to_owned())
                    .unwrap_or_else(|| {
                        panic!("{name}: no `lua-load` line in the ```haproxy block")
                    });
                assert!(
                    !lua_name.contains('/'),
                    "{name}: `lua-load {lua_name}` should be relative to the config (default-path config)"
                );
                std::fs::write(dir.path().join(&lua_name), block(page, &doc, "lua")).unwrap();
                let conf = dir.path().join("haproxy.cfg");
                std::fs::write(&conf, cfg_text).unwrap();
                cmd.arg("-db").arg("-f").arg(&conf);
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {}: {e}", exe.display()));
        let mut front = FrontProcess { name, child, dir };
        wait_for_port(&mut front, ports.front).await;
        Self {
            name,
            addr: SocketAddr::from(([127, 0, 0, 1], ports.front)),
            front,
            gateway,
            _app: app,
        }
    }

    /// The front's and vestibule's logs, for failure messages.
    fn logs(&self) -> String {
        format!(
            "{}--- vestibule stderr ---\n{}",
            self.front.logs(),
            self.gateway.stderr()
        )
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Raw {
        Raw::get(self.addr, TRUSTED, path, headers).await
    }

    /// A request that must reach the app: 200 with whoami's JSON.
    async fn app_sees(&self, what: &str, path: &str, headers: &[(&str, &str)]) -> Seen {
        let r = self.get(path, headers).await;
        self.expect_app(what, r)
    }

    fn expect_app(&self, what: &str, r: Raw) -> Seen {
        assert_eq!(
            r.status,
            200,
            "{}: {what}: expected the app's 200, got {} {}\n{}",
            self.name,
            r.status,
            r.text(),
            self.logs()
        );
        let json = r.json();
        Seen {
            front: self.name,
            what: what.to_owned(),
            uri: json["uri"].as_str().unwrap_or_default().to_owned(),
            method: json["method"].as_str().unwrap_or_default().to_owned(),
            headers: r.seen_headers(),
        }
    }

    /// A request that must be answered with `status` by the front.
    async fn expect_status(
        &self,
        what: &str,
        path: &str,
        headers: &[(&str, &str)],
        status: u16,
    ) -> Raw {
        let r = self.get(path, headers).await;
        assert_eq!(
            r.status,
            status,
            "{}: {what}: expected {status}, got {} {}\n{}",
            self.name,
            r.status,
            r.text(),
            self.logs()
        );
        r
    }
}

/// What whoami saw.
struct Seen {
    front: &'static str,
    what: String,
    uri: String,
    method: String,
    headers: HashMap<String, Vec<String>>,
}

impl Seen {
    /// Every value of every header whose name reads as `name` once
    /// lowercased with `_` as `-` (how CGI, PHP and WSGI apps read them).
    fn all(&self, name: &str) -> Vec<&str> {
        let mut names: Vec<&String> = self
            .headers
            .keys()
            .filter(|n| n.replace('_', "-").eq_ignore_ascii_case(name))
            .collect();
        names.sort();
        names
            .into_iter()
            .flat_map(|n| self.headers[n].iter().map(String::as_str))
            .collect()
    }

    fn assert_identity(&self, name: &str, want: &str) {
        assert_eq!(
            self.all(name),
            [want],
            "{}: {}: the app must see exactly one {name}, vestibule's ({:?})",
            self.front,
            self.what,
            self.headers
        );
    }

    /// No identity: every `remote-*` header absent or empty.
    fn assert_anonymous(&self) {
        for (name, values) in &self.headers {
            if name
                .replace('_', "-")
                .to_ascii_lowercase()
                .starts_with("remote-")
            {
                assert!(
                    values.iter().all(String::is_empty),
                    "{}: {}: the app must see no identity, got {name}: {values:?}",
                    self.front,
                    self.what
                );
            }
        }
    }

    fn assert_no_sso_headers(&self) {
        let leaked: Vec<&String> = self
            .headers
            .keys()
            .filter(|n| {
                n.replace('_', "-")
                    .to_ascii_lowercase()
                    .starts_with("x-authentik-")
            })
            .collect();
        assert!(
            leaked.is_empty(),
            "{}: {}: the SSO hop's headers must not reach the app, got {leaked:?}",
            self.front,
            self.what
        );
    }
}

/// `vestibule whoami` as a child process, killed on drop.
async fn start_whoami_process(front: &str, port: u16) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("whoami")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("{front}: whoami did not start on 127.0.0.1:{port}"))
        .unwrap();
    if !line.is_some_and(|l| l.starts_with("whoami: listening on")) {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut err).await;
        }
        panic!("{front}: whoami did not start on 127.0.0.1:{port}: {err}");
    }
    // Keep draining its output so it never blocks on a full pipe.
    if let Some(err) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(err).lines();
            while let Ok(Some(_)) = lines.next_line().await {}
        });
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// Waits until the front accepts connections, or fails with its logs.
async fn wait_for_port(front: &mut FrontProcess, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = front.child.try_wait() {
            panic!(
                "{}: exited ({status}) before listening on 127.0.0.1:{port}\n{}",
                front.name,
                front.logs()
            );
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: not listening on 127.0.0.1:{port} after 30 s\n{}",
            front.name,
            front.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn with<'a>(a: &[(&'a str, &'a str)], b: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    a.iter().chain(b).copied().collect()
}

/// Every case, in order, through one front.
async fn exercise(s: &Stack) {
    let name = s.name;

    // (1) An authenticated request reaches the app with vestibule's
    // identity, and without the SSO hop's headers.
    let seen = s.app_sees("authenticated GET /app", "/app", &BOB).await;
    assert_eq!(
        seen.uri, "/app",
        "{name}: the app must get the path as sent"
    );
    seen.assert_identity("remote-user", "bob");
    seen.assert_identity("remote-groups", "users,media");
    seen.assert_identity("remote-email", "bob@example.com");
    seen.assert_identity("remote-name", "Bob");
    seen.assert_no_sso_headers();
    // The app's own credentials are not vestibule's: they reach the app
    // unchanged (nginx forwards what vestibule's X-Vestibule-Authorization
    // says, which is the client's own value here).
    let seen = s
        .app_sees(
            "authenticated GET /app with the app's own token",
            "/app",
            &with(&BOB, &[("Authorization", "Bearer app-own-token")]),
        )
        .await;
    assert_eq!(
        seen.all("authorization"),
        ["Bearer app-own-token"],
        "{name}: the app's own Authorization must pass"
    );
    // Another method: the verify call itself must stay a GET.
    let mut post = String::from(
        "POST /app/form HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: 5\r\n",
    );
    for (n, v) in BOB {
        post.push_str(&format!("{n}: {v}\r\n"));
    }
    post.push_str("\r\nhello");
    let r = Raw::send(s.addr, TRUSTED, post.as_bytes()).await;
    let seen = s.expect_app("authenticated POST /app/form", r);
    assert_eq!(seen.method, "POST", "{name}: the app must get the POST");
    seen.assert_identity("remote-user", "bob");

    // (2) Anonymous on a required route: browsers go to the SSO login, API
    // clients get a 401.
    let r = s
        .expect_status(
            "anonymous browser on /app",
            "/app?x=1",
            &[("Accept", "text/html")],
            302,
        )
        .await;
    assert_eq!(
        r.header("location"),
        Some("https://sso.example.com/?rd=http%3A%2F%2Fapp.test%2Fapp%3Fx%3D1"),
        "{name}: the login redirect must carry the original URL"
    );
    let r = s
        .expect_status(
            "anonymous API client on /app",
            "/app",
            &[("Accept", "application/json")],
            401,
        )
        .await;
    assert_eq!(
        r.header("location"),
        None,
        "{name}: no redirect for API clients"
    );

    // (3) A client's own identity headers never reach the app, in any
    // spelling or number.
    let seen = s
        .app_sees(
            "bob with spoofed Remote-* headers",
            "/app",
            &with(&BOB, &SPOOFS),
        )
        .await;
    seen.assert_identity("remote-user", "bob");
    seen.assert_identity("remote-groups", "users,media");
    seen.assert_no_sso_headers();
    let seen = s
        .app_sees(
            "anonymous with spoofed Remote-* headers on /public",
            "/public",
            &SPOOFS,
        )
        .await;
    seen.assert_anonymous();
    s.expect_status(
        "bob with a spoofed Remote-Groups: admins on /admins",
        "/admins",
        &with(&BOB, &SPOOFS),
        403,
    )
    .await;

    // (4) A public route carries no identity, even for a signed-in user.
    let seen = s
        .app_sees("signed-in user on /public", "/public/page", &BOB)
        .await;
    seen.assert_anonymous();
    seen.assert_no_sso_headers();

    // (5) The route's policy: bob is not an admin, alice is.
    s.expect_status("bob on /admins", "/admins", &BOB, 403)
        .await;
    s.expect_status("bob on /admins/x", "/admins/x", &BOB, 403)
        .await;
    let seen = s.app_sees("alice on /admins", "/admins", &ALICE).await;
    seen.assert_identity("remote-user", "alice");

    // (6) Path tricks that read as /public somewhere must not get an
    // anonymous client into /app, nor bob into /admins. A front refusing
    // the request itself (400) fails closed too.
    s.app_sees("anonymous on /public/x (control)", "/public/x", &[])
        .await
        .assert_anonymous();
    for path in [
        "/app?/public",
        "/app?x=/public",
        "/app%23/public",
        "/app#/public",
        "/public/../app",
        "/public/%2e%2e/app",
        "/public/..;/app",
        "/public/..%2Fapp",
        "/public/..%2fapp",
        "/public//../app",
    ] {
        let r = s.get(path, &[]).await;
        assert!(
            r.status >= 400,
            "{name}: anonymous {path} must be refused, got {} {}",
            r.status,
            r.text()
        );
    }
    for path in [
        "/admins?/public",
        "/public/../admins",
        "/public/%2e%2e/admins",
        "/public/..;/admins",
        "/public/..%2Fadmins",
    ] {
        let r = s.get(path, &BOB).await;
        assert!(
            r.status >= 400,
            "{name}: bob on {path} must be refused, got {} {}",
            r.status,
            r.text()
        );
    }

    // (7) The client cannot describe the request to vestibule itself.
    let forged = [
        ("Accept", "text/html"),
        ("X-Original-URI", "/public"),
        ("X-Forwarded-Uri", "/public"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Method", "GET"),
    ];
    let r = s.get("/app", &forged).await;
    assert!(
        r.status == 302 || r.status >= 400,
        "{name}: a forged X-Original-URI/X-Forwarded-Uri must not open /app, got {} {}",
        r.status,
        r.text()
    );
    if r.status == 302 {
        assert_eq!(
            r.header("location"),
            Some("https://sso.example.com/?rd=http%3A%2F%2Fapp.test%2Fapp"),
            "{name}: the original URL must be the front's, not the client's X-Forwarded-Host"
        );
    }
}

#[tokio::test]
async fn nginx_auth_request_as_documented() {
    let ports = Ports {
        front: 18480,
        vestibule: 18481,
        app: 18482,
    };
    let stack = Stack::start(Kind::Nginx, ports).await;
    exercise(&stack).await;
}

#[tokio::test]
async fn caddy_forward_auth_as_documented() {
    let ports = Ports {
        front: 18580,
        vestibule: 18581,
        app: 18582,
    };
    let stack = Stack::start(Kind::Caddy, ports).await;
    exercise(&stack).await;
}

#[tokio::test]
async fn haproxy_lua_auth_as_documented() {
    let ports = Ports {
        front: 18680,
        vestibule: 18681,
        app: 18682,
    };
    let stack = Stack::start(Kind::Haproxy, ports).await;
    exercise(&stack).await;
}

/// Every integration page's vestibule config passes `vestibule check
/// --strict`, including the Traefik page CI cannot run, which must say so.
#[test]
fn integration_pages_have_clean_vestibule_configs() {
    for page in ["nginx.md", "caddy.md", "haproxy.md", "traefik.md"] {
        let doc = read_page(page);
        let toml = block(page, &doc, "toml");
        let file = config::parse_with_env(&toml, Vec::<(String, String)>::new())
            .unwrap_or_else(|e| panic!("docs/integrations/{page}: the ```toml block: {e}"));
        let (settings, diags) = config::validate(&file);
        assert!(
            settings.is_some() && diags.is_empty(),
            "docs/integrations/{page}: the ```toml block must check clean: {:?}",
            diags.iter().map(ToString::to_string).collect::<Vec<_>>()
        );
    }
    let traefik = read_page("traefik.md");
    let head: String = traefik.lines().take(8).collect::<Vec<_>>().join("\n");
    assert!(
        head.contains("Traefik is not packaged in Debian, so this page is NOT tested by CI"),
        "docs/integrations/traefik.md must open with the notice that CI does not test it"
    );
    assert_eq!(
        fenced_blocks(&traefik)
            .iter()
            .filter(|(info, _)| info == "yaml")
            .count(),
        2,
        "docs/integrations/traefik.md: static and dynamic configuration"
    );
}
