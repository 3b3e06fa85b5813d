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
//! Device credentials and signed assertions are checked through each front
//! too: after the page's cases, vestibule is restarted behind the running
//! front with the page's vestibule config merged with accounts, routes that
//! take credentials and a route that sends assertions ([`ACCOUNTS_CONFIG`]).
//! The credential must act as its owner and never reach the app, while an
//! app's own `Authorization` still does; the app must receive exactly one
//! `X-Vestibule-Assertion`, vestibule's, which verifies against
//! `/.vestibule/jwks.json`, and never a client's own.
//!
//! The fronts are Debian packages that `.ci/run` installs; a missing one is a
//! failure that names the package, never a skip.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child as StdChild, Command as StdCommand, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use vestibule::config;
use vestibule_core::credential::device_token;
use vestibule_core::secret::hash_token;
use vestibule_store::{IdentityKey, NewDevice, Store, StoreConfig};

use crate::careless_app::{CarelessApp, H2cAsk, try_h2c};
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

/// An app's own token (a JWT, as an OIDC app would get): not vestibule's,
/// so it must reach the app unchanged.
const APP_JWT: &str = "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.\
                       eyJzdWIiOiJib2IiLCJhdWQiOiJhcHAifQ.c2lnbmF0dXJlLW9mLXRoZS1hcHA";

/// Merged into a page's vestibule config ([`merge_config`]) for the
/// device-credential and assertion cases: accounts (auto-provisioned), their
/// database (which also holds the signing keys), routes that take
/// credentials, and a route that sends assertions. `{data_dir}` and `{app}`
/// are filled in.
const ACCOUNTS_CONFIG: &str = r#"
# Added by frontends.rs for the device-credential and assertion cases.
[source.headers]
provisioning = "auto"

[accounts]

[assertions]
issuer = "https://sso.example.test"

[database]
data_dir = "{data_dir}"

# Bearer, Proxy-Authorization and the custom header (X-Vestibule-Token).
[[route]]
name = "api"
path_prefix = "/api"
upstream = "http://{app}"
credentials = ["bearer", "proxy-authorization", "header"]

# Basic: user name and app password (Subsonic, WebDAV).
[[route]]
name = "music"
path_prefix = "/music"
upstream = "http://{app}"
credentials = ["basic"]

# The custom header only: Authorization is the app's own business here.
[[route]]
name = "tokens"
path_prefix = "/tokens"
upstream = "http://{app}"
credentials = ["header"]

# Signed assertions (docs/assertions.md), for the app to verify.
[[route]]
name = "signed"
path_prefix = "/signed"
upstream = "http://{app}"
assertion = true
assertion_audience = "urn:vestibule:frontends"
"#;

/// The audience of the `signed` route in [`ACCOUNTS_CONFIG`].
const SIGNED_AUDIENCE: &str = "urn:vestibule:frontends";

/// `extra` merged into `base` (both TOML documents): tables are merged key
/// by key, so that no table is ever declared twice (which TOML forbids, and
/// vestibule refuses); arrays of tables (`[[route]]`) are appended to; a key
/// set in both is a mistake in the test, never silently overridden.
fn merge_config(base: &str, extra: &str) -> String {
    fn merge(into: &mut toml::Table, from: toml::Table, at: &str) {
        for (key, value) in from {
            let path = format!("{at}{key}");
            match (into.get_mut(&key), value) {
                (None, value) => {
                    into.insert(key, value);
                }
                (Some(toml::Value::Table(a)), toml::Value::Table(b)) => {
                    merge(a, b, &format!("{path}."));
                }
                (Some(toml::Value::Array(a)), toml::Value::Array(b)) => a.extend(b),
                (Some(_), _) => panic!("`{path}` is set both by the page and by the test"),
            }
        }
    }
    let mut into: toml::Table = base.parse().expect("the page's vestibule config");
    let from: toml::Table = extra.parse().expect("the test's added config");
    merge(&mut into, from, "");
    toml::to_string(&into).unwrap()
}

/// Addresses of one front's stack.
#[derive(Debug, Clone, Copy)]
struct Ports {
    front: u16,
    vestibule: u16,
    app: u16,
}

/// How a front is started from its page.
#[derive(Debug, Clone, Copy)]
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

    /// Whether the front passes a client's `Proxy-Authorization` on to
    /// vestibule. Caddy's `reverse_proxy` (and so `forward_auth`) drops it as
    /// a hop-by-hop header, before vestibule and before the app, so that
    /// carrier cannot work behind Caddy; its page says so.
    fn passes_proxy_authorization(&self) -> bool {
        !matches!(self, Self::Caddy)
    }

    /// Whether a client's `X-Vestibule-Assertion` (that exact spelling)
    /// reaches vestibule, which refuses it with a 400. The Caddy page deletes
    /// it before `forward_auth` instead (with Caddy 2.10.0 up to the fix for
    /// GHSA-7r4p-vjf4-gxv4 `copy_headers` could otherwise leave it in
    /// place), so there the request goes on with vestibule's assertion only.
    fn asks_with_client_assertion(&self) -> bool {
        !matches!(self, Self::Caddy)
    }
}

fn read_page(page: &str) -> String {
    let path = format!("{DOCS}/{page}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Every fenced block of `doc` as (info string, body), the body byte for
/// byte (each line with its `\n`).
pub(crate) fn fenced_blocks(doc: &str) -> Vec<(String, String)> {
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
pub(crate) fn find_binary(front: &str, name: &str, package: &str) -> PathBuf {
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
pub(crate) fn assert_port_free(front: &str, port: u16) {
    if let Err(e) = TcpListener::bind(("127.0.0.1", port)) {
        panic!(
            "{front}: 127.0.0.1:{port} is already in use ({e}). A process from an interrupted \
             run? Find it with `ss -ltnp | grep :{port}` and stop it."
        );
    }
}

/// A started front, stopped by PID on drop: SIGTERM (nginx's master then
/// stops its workers), SIGKILL if it is still there after 5 s.
pub(crate) struct FrontProcess {
    pub(crate) name: &'static str,
    pub(crate) child: StdChild,
    pub(crate) dir: tempfile::TempDir,
}

impl FrontProcess {
    /// The front's own output and logs, for failure messages.
    pub(crate) fn logs(&self) -> String {
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
    kind: Kind,
    ports: Ports,
    /// The page's vestibule config.
    toml: String,
    addr: SocketAddr,
    // Dropped in this order: the front first, then vestibule, then the app.
    front: FrontProcess,
    gateway: Gateway,
    app: Child,
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
            kind,
            ports,
            toml,
            addr: SocketAddr::from(([127, 0, 0, 1], ports.front)),
            front,
            gateway,
            app,
        }
    }

    /// Restarts vestibule behind the running front (same address) with the
    /// page's config merged with [`ACCOUNTS_CONFIG`], and opens its database.
    async fn restart_vestibule_with_accounts(&mut self) -> Arc<dyn Store> {
        let name = self.name;
        self.gateway.child.kill().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpListener::bind(("127.0.0.1", self.ports.vestibule)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{name}: 127.0.0.1:{} still taken 10 s after stopping vestibule",
                self.ports.vestibule
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let extra = ACCOUNTS_CONFIG
            .replace("{data_dir}", &data.display().to_string())
            .replace("{app}", &format!("127.0.0.1:{}", self.ports.app));
        let toml = merge_config(&self.toml, &extra);
        let gateway = Gateway::start_in(dir, &toml, &[]).await;
        assert_eq!(gateway.addr.port(), self.ports.vestibule);
        self.gateway = gateway;
        vestibule_store::open(&StoreConfig::new(format!(
            "sqlite://{}",
            data.join("vestibule.db").display()
        )))
        .await
        .unwrap()
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

    /// No device credential, in any carrier: no `Authorization`, no
    /// `Proxy-Authorization`, no `X-Vestibule-Token`, no header at all whose
    /// value holds the secret; nor vestibule's answer to the front
    /// (`X-Vestibule-Authorization`, which Caddy copies onto the request).
    fn assert_no_credential(&self, secret: &str) {
        for name in [
            "authorization",
            "proxy-authorization",
            "x-vestibule-token",
            "x-vestibule-authorization",
        ] {
            assert!(
                self.all(name).is_empty(),
                "{}: {}: {name} must not reach the app, got {:?}",
                self.front,
                self.what,
                self.all(name)
            );
        }
        for (name, values) in &self.headers {
            assert!(
                values.iter().all(|v| !v.contains(secret)),
                "{}: {}: the device credential reached the app in {name}",
                self.front,
                self.what
            );
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
pub(crate) async fn start_whoami_process(front: &str, port: u16) -> Child {
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
pub(crate) async fn wait_for_port(front: &mut FrontProcess, port: u16) {
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

    // (3b) Nor does a client's own signed assertion header, in any
    // spelling (docs/assertions.md): the front overwrites or drops it, or
    // vestibule refuses the request.
    for spelling in [
        "X-Vestibule-Assertion",
        "x-vestibule-assertion",
        "X_Vestibule_Assertion",
    ] {
        for (who, path, id) in [("bob", "/app", &BOB[..]), ("anonymous", "/public", &[][..])] {
            let r = s
                .get(path, &with(id, &[(spelling, "eyJhbGciOiJub25lIn0.e30.")]))
                .await;
            if r.status == 200 {
                let seen = s.expect_app(&format!("{who} with a client's {spelling}"), r);
                assert!(
                    seen.all("x-vestibule-assertion").is_empty(),
                    "{name}: {who}'s own {spelling} reached the app: {:?}",
                    seen.headers
                );
            } else {
                assert!(
                    r.status >= 400,
                    "{name}: {who} with {spelling}: {} {}",
                    r.status,
                    r.text()
                );
            }
        }
    }

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

/// The bypasses of issue 21, each against a careless app
/// ([`CarelessApp`]) that replaces whoami on the app port: an h2c upgrade
/// tunnel, a `#` in the request target, and letter case. The front and
/// vestibule are the page's, as before.
async fn exercise_bypasses(s: &mut Stack) {
    let name = s.name;
    s.app.kill().await.unwrap();
    let app_addr = SocketAddr::from(([127, 0, 0, 1], s.ports.app));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpListener::bind(app_addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name}: {app_addr} still taken 10 s after stopping whoami"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let app = CarelessApp::start(app_addr).await;
    // Whether the app served a file for this exact target.
    let served_for = |target: &str| {
        app.served()
            .iter()
            .any(|r| r.target == target && r.file.is_some())
    };

    // Controls: the careless app serves through the front what it should.
    let r = s.get("/public/index.txt", &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "public index"),
        "{name}: anonymous /public/index.txt must be served\n{}",
        s.logs()
    );
    let r = s.get("/admins/secret", &ALICE).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ADMINS-SECRET"),
        "{name}: alice (an admin) on /admins/secret must be served\n{}",
        s.logs()
    );

    // (a) h2c upgrade: never a tunnel past vestibule, on a public route
    // (anonymous) or a signed-in one, and nothing forged through it.
    let forged = [
        ("remote-user", "alice"),
        ("remote-groups", "admins"),
        ("x-authentik-username", "alice"),
        ("x-authentik-groups", "admins"),
    ];
    for ask in [H2cAsk::WithSettings, H2cAsk::UpgradeOnly] {
        for (who, path, headers) in [
            ("anonymous", "/public/index.txt", &[][..]),
            ("bob", "/app", &BOB[..]),
        ] {
            let attempt = try_h2c(
                s.addr,
                TRUSTED,
                ask,
                path,
                headers,
                "/admins/secret",
                &forged,
            )
            .await;
            assert!(
                attempt.status != 101 && attempt.tunneled.is_none(),
                "{name}: {who} asking for an h2c upgrade ({ask:?}) of {path} got a tunnel: {:?}\n{}",
                attempt,
                s.logs()
            );
            assert!(
                (400..500).contains(&attempt.status) || attempt.status == 500,
                "{name}: {who}'s h2c upgrade ({ask:?}) of {path} must be refused, got {}",
                attempt.head
            );
        }
    }
    let served = app.served();
    assert!(
        !served.iter().any(|r| r.protocol == "h2"),
        "{name}: an HTTP/2 request reached the app through an h2c tunnel: {served:?}"
    );
    assert!(
        !served.iter().any(|r| !r.header("upgrade").is_empty()),
        "{name}: an Upgrade request reached the app: {served:?}"
    );
    // A WebSocket upgrade is not refused for being an upgrade (the careless
    // app does not speak WebSocket; reaching it is enough).
    let r = s
        .get(
            "/public/index.txt",
            &[
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "public index"),
        "{name}: a WebSocket upgrade request must reach the app\n{}",
        s.logs()
    );

    // (b) A `#` in the request target: vestibule must not judge the part
    // before it while the app reads the whole target.
    for (who, target, headers) in [
        ("anonymous", "/public#/../app/secret.txt", &[][..]),
        ("bob", "/public#/../admins/secret", &BOB[..]),
        ("bob", "/app#/../admins/secret", &BOB[..]),
    ] {
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let r = Raw::send(s.addr, TRUSTED, req.as_bytes()).await;
        assert!(
            r.status >= 400 && !served_for(target),
            "{name}: {who} on {target} must be refused, got {} {}; app served {:?}",
            r.status,
            r.text(),
            app.served()
        );
    }

    // (c) Letter case: `/ADMINS/secret` is `/admins/secret` to a
    // case-insensitive app, so the strictest policy of both readings (the
    // admins route's) applies.
    for path in ["/ADMINS/secret", "/Admins/secret", "/aDmInS/secret"] {
        let r = s.get(path, &BOB).await;
        assert!(
            r.status == 403 && !r.text().contains("ADMINS-SECRET"),
            "{name}: bob on {path} must be refused like on /admins, got {} {}",
            r.status,
            r.text()
        );
        let r = s.get(path, &[("Accept", "application/json")]).await;
        assert_eq!(
            r.status,
            401,
            "{name}: anonymous on {path} must be asked to sign in, got {} {}",
            r.status,
            r.text()
        );
        let r = s.get(path, &ALICE).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "ADMINS-SECRET"),
            "{name}: alice (an admin) on {path} passes the strictest policy\n{}",
            s.logs()
        );
    }
    let bob_got_it = app
        .served()
        .iter()
        .any(|r| r.file == Some("/admins/secret") && r.header("remote-user") != ["alice"]);
    assert!(
        !bob_got_it,
        "{name}: /admins/secret was served to someone other than alice: {:?}",
        app.served()
    );
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Device credentials through the front, with vestibule restarted with
/// [`ACCOUNTS_CONFIG`]: every carrier acts as the owner and never reaches the
/// app; an app's own `Authorization` still does.
async fn exercise_device_credentials(s: &mut Stack) {
    let name = s.name;
    let store = s.restart_vestibule_with_accounts().await;

    // bob signs in once through the SSO front (auto-provisioned), and makes
    // a device, as the devices page would.
    s.app_sees("bob signs in through SSO", "/app", &BOB)
        .await
        .assert_identity("remote-user", "bob");
    let bob = store
        .account_by_identity(&IdentityKey::new("authentik", BOB[0].1))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: bob has no account after signing in"))
        .id;
    let token = device_token(rand::random()).expose().to_owned();
    store
        .create_device(&NewDevice {
            account_id: bob,
            name: "bob's phone".into(),
            kind: "token".into(),
            routes: vec!["api".into(), "music".into(), "tokens".into()],
            secret_hash: hash_token(&token),
            basic_user: Some("bob".into()),
            created_at: 0,
            expires_at: None,
        })
        .await
        .unwrap();
    let app_password = device_token(rand::random()).expose().to_owned();
    store
        .create_device(&NewDevice {
            account_id: bob,
            name: "bob's music player".into(),
            kind: "app-password".into(),
            routes: vec!["music".into()],
            secret_hash: hash_token(&app_password),
            basic_user: Some("bob".into()),
            created_at: 0,
            expires_at: None,
        })
        .await
        .unwrap();

    // Each carrier, without any SSO header: the device acts as bob, and the
    // secret stays between the front and vestibule.
    let bearer = format!("Bearer {token}");
    let basic_app_password = basic("bob", &app_password);
    let lower_bearer = format!("bearer {token}");
    let cases: [(&str, &str, (&str, &str)); 5] = [
        ("Bearer", "/api/photos", ("Authorization", &bearer)),
        (
            "bearer, lowercase",
            "/api/photos",
            ("authorization", &lower_bearer),
        ),
        (
            "Basic app password",
            "/music/rest/ping",
            ("Authorization", &basic_app_password),
        ),
        (
            "custom header",
            "/api/photos",
            ("X-Vestibule-Token", &token),
        ),
        (
            "custom header, lowercase",
            "/api/photos",
            ("x-vestibule-token", &token),
        ),
    ];
    for (what, path, header) in cases {
        let seen = s
            .app_sees(&format!("device credential ({what})"), path, &[header])
            .await;
        seen.assert_identity("remote-user", "bob");
        seen.assert_identity("remote-email", "bob@example.com");
        seen.assert_no_credential(&token);
        seen.assert_no_credential(&app_password);
    }

    // Proxy-Authorization.
    let proxy = [("Proxy-Authorization", bearer.as_str())];
    if s.kind.passes_proxy_authorization() {
        let seen = s
            .app_sees(
                "device credential (Proxy-Authorization)",
                "/api/photos",
                &proxy,
            )
            .await;
        seen.assert_identity("remote-user", "bob");
        seen.assert_no_credential(&token);
    } else {
        // Dropped by the front before vestibule: no identity, and the app
        // is not reached at all.
        s.expect_status(
            "device credential (Proxy-Authorization), dropped by the front",
            "/api/photos",
            &proxy,
            401,
        )
        .await;
    }

    // A client's own X-Vestibule-Authorization cannot choose what the app
    // gets as Authorization. (nginx passes the header itself on, like any
    // header it does not name; Caddy and HAProxy remove it.)
    let seen = s
        .app_sees(
            "device credential with a forged X-Vestibule-Authorization",
            "/api/photos",
            &[
                ("Authorization", &bearer),
                ("X-Vestibule-Authorization", "Bearer forged-by-the-client"),
            ],
        )
        .await;
    seen.assert_identity("remote-user", "bob");
    assert!(
        seen.all("authorization").is_empty(),
        "{name}: a forged X-Vestibule-Authorization must not become Authorization, got {:?}",
        seen.all("authorization")
    );
    assert!(
        !seen.headers.values().flatten().any(|v| v.contains(&token)),
        "{name}: the device credential reached the app: {:?}",
        seen.headers
    );

    // The SSO front's identity wins over a credential, which is still kept
    // from the app.
    let seen = s
        .app_sees(
            "SSO identity and a device credential",
            "/api/photos",
            &with(&BOB, &[("Authorization", &bearer)]),
        )
        .await;
    seen.assert_identity("remote-user", "bob");
    seen.assert_no_sso_headers();
    seen.assert_no_credential(&token);

    // A wrong or revoked credential opens nothing.
    s.expect_status(
        "unknown device credential",
        "/api/photos",
        &[(
            "Authorization",
            "Bearer vst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )],
        401,
    )
    .await;
    s.expect_status(
        "device credential on a route without credentials",
        "/app",
        &[("Authorization", &bearer), ("Accept", "application/json")],
        401,
    )
    .await;

    // The app's own token (a JWT) is not vestibule's: it reaches the app
    // unchanged, whether the route takes no credentials, takes them in
    // Authorization (not ours, so forwarded), or in the custom header.
    for (what, path) in [
        ("no credentials", "/app"),
        ("credentials in Authorization", "/api/photos"),
        ("credentials in the custom header", "/tokens"),
    ] {
        let seen = s
            .app_sees(
                &format!("SSO identity with the app's own JWT, route with {what}"),
                path,
                &with(&BOB, &[("Authorization", APP_JWT)]),
            )
            .await;
        seen.assert_identity("remote-user", "bob");
        assert_eq!(
            seen.all("authorization"),
            [APP_JWT],
            "{name}: {path}: the app's own Authorization must pass unchanged"
        );
    }
    // And next to a device credential in the custom header, which alone is
    // removed.
    let seen = s
        .app_sees(
            "device credential in the custom header and the app's own JWT",
            "/tokens/sync",
            &[("X-Vestibule-Token", &token), ("Authorization", APP_JWT)],
        )
        .await;
    seen.assert_identity("remote-user", "bob");
    assert_eq!(
        seen.all("authorization"),
        [APP_JWT],
        "{name}: the app's own Authorization must pass next to a custom-header credential"
    );
    assert!(
        seen.all("x-vestibule-token").is_empty(),
        "{name}: the custom credential header must not reach the app"
    );
}

/// Signed assertions through the front, with vestibule restarted with
/// [`ACCOUNTS_CONFIG`] (run after [`exercise_device_credentials`]): on the
/// `signed` route the app receives exactly one `X-Vestibule-Assertion`,
/// vestibule's, which verifies against `/.vestibule/jwks.json` with the
/// route's audience and bob's identity; on other routes and without an
/// identity it receives none; a client's own copy, in any spelling, never
/// reaches it.
async fn exercise_assertions(s: &Stack) {
    let name = s.name;
    // The published keys, from vestibule itself (the front sends every path
    // to the app).
    let keys = crate::assertions_out::jwks(&s.gateway).await;
    let check = |seen: &Seen| -> serde_json::Value {
        let tokens = seen.all("x-vestibule-assertion");
        assert_eq!(
            tokens.len(),
            1,
            "{name}: {}: the app must get exactly one X-Vestibule-Assertion, got {:?}\n{}",
            seen.what,
            seen.headers,
            s.logs()
        );
        assert!(
            seen.headers.contains_key("x-vestibule-assertion"),
            "{name}: {}: the assertion must arrive as X-Vestibule-Assertion, got {:?}",
            seen.what,
            seen.headers.keys().collect::<Vec<_>>()
        );
        // Signature, `alg` and `typ: vestibule-id+jwt` (required).
        let (_kid, claims) = crate::assertions_out::verify(tokens[0], &keys);
        assert_eq!(claims["iss"], "https://sso.example.test", "{name}");
        assert_eq!(claims["aud"], SIGNED_AUDIENCE, "{name}");
        assert_eq!(claims["sub"], BOB[0].1, "{name}: sub is bob's SSO id");
        assert_eq!(claims["preferred_username"], "bob", "{name}");
        assert_eq!(claims["email"], "bob@example.com", "{name}");
        assert_eq!(
            claims["groups"],
            serde_json::json!(["users", "media"]),
            "{name}"
        );
        claims
    };

    let seen = s
        .app_sees("bob on a route with assertions", "/signed/page", &BOB)
        .await;
    seen.assert_identity("remote-user", "bob");
    seen.assert_no_sso_headers();
    check(&seen);

    // Routes without assertions, and no identity: no assertion header at
    // all (not an empty one, nor Caddy 2.6's literal placeholder).
    for (what, path, headers) in [
        ("bob on a route without assertions", "/app", &BOB[..]),
        ("anonymous on a public route", "/public/page", &[][..]),
        ("bob on a public route", "/public/page", &BOB[..]),
    ] {
        let seen = s.app_sees(what, path, headers).await;
        assert!(
            seen.all("x-vestibule-assertion").is_empty(),
            "{name}: {what}: no X-Vestibule-Assertion must reach the app, got {:?}",
            seen.all("x-vestibule-assertion")
        );
    }

    // A client's own copy, in any spelling, on the signed route and on
    // others: refused (vestibule's 400 at /.vestibule/verify), or the app
    // gets vestibule's assertion (signed route) or none, never the client's.
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for spelling in [
        "X-Vestibule-Assertion",
        "x-vestibule-assertion",
        "X_Vestibule_Assertion",
        "x_vestibule_assertion",
    ] {
        for (path, signed) in [("/signed/page", true), ("/app", false)] {
            let what = format!("bob with a client's {spelling} on {path}");
            let before = s.gateway.stderr();
            let r = s.get(path, &with(&BOB, &[(spelling, forged)])).await;
            let refused_by_vestibule = s.gateway.stderr()[before.len()..]
                .contains("the assertion header only vestibule sends");
            if r.status == 200 {
                let seen = s.expect_app(&what, r);
                assert!(
                    !seen.headers.values().flatten().any(|v| v == forged),
                    "{name}: {what}: the client's assertion reached the app: {:?}",
                    seen.headers
                );
                if signed {
                    check(&seen);
                } else {
                    assert!(
                        seen.all("x-vestibule-assertion").is_empty(),
                        "{name}: {what}: {:?}",
                        seen.all("x-vestibule-assertion")
                    );
                }
            } else {
                // nginx turns the 400 into a 500 (auth_request passes only
                // 2xx, 401 and 403); Caddy and HAProxy pass the 400 on.
                assert!(
                    matches!(r.status, 400 | 500) && refused_by_vestibule,
                    "{name}: {what}: expected vestibule's 400 at verify, got {} {}\n{}",
                    r.status,
                    r.text(),
                    s.logs()
                );
            }
            if spelling.eq_ignore_ascii_case("x-vestibule-assertion")
                && s.kind.asks_with_client_assertion()
            {
                assert!(
                    refused_by_vestibule,
                    "{name}: {what}: the front must pass the client's copy to vestibule, \
                     which refuses it\n{}",
                    s.logs()
                );
            }
        }
    }
}

/// docs/assertions.md shows, for each front, the lines that forward
/// vestibule's assertion and keep a client's off the app (a
/// ```<lang>-fragment block): each is a line of the page's config that the
/// test then runs, so the two pages cannot drift apart.
fn assert_assertion_lines_run(kind: Kind) {
    let page = kind.page();
    // The block the lines are in: for HAProxy, the Lua script.
    let lang = match kind {
        Kind::Nginx => "nginx",
        Kind::Caddy => "caddyfile",
        Kind::Haproxy => "lua",
    };
    let conf = block(page, &read_page(page), lang);
    let assertions_doc = read_page("../assertions.md");
    let fragment = fenced_blocks(&assertions_doc)
        .into_iter()
        .find(|(info, _)| *info == format!("{lang}-fragment"))
        .unwrap_or_else(|| {
            panic!("docs/assertions.md shows the {lang} lines for the assertion header")
        })
        .1;
    for line in fragment.lines() {
        assert!(
            conf.lines().any(|l| l.trim() == line.trim()),
            "docs/assertions.md shows `{line}`, which docs/integrations/{page} does not run"
        );
    }
}

/// Every case of this file through one front, its pages' lines first.
async fn run_front(kind: Kind, base: u16) {
    let ports = Ports {
        front: base,
        vestibule: base + 1,
        app: base + 2,
    };
    assert_assertion_lines_run(kind);
    let mut stack = Stack::start(kind, ports).await;
    exercise(&stack).await;
    exercise_device_credentials(&mut stack).await;
    exercise_assertions(&stack).await;
    exercise_bypasses(&mut stack).await;
}

#[tokio::test]
async fn nginx_auth_request_as_documented() {
    run_front(Kind::Nginx, 18480).await;
}

#[tokio::test]
async fn caddy_forward_auth_as_documented() {
    run_front(Kind::Caddy, 18580).await;
}

#[tokio::test]
async fn haproxy_lua_auth_as_documented() {
    run_front(Kind::Haproxy, 18680).await;
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
