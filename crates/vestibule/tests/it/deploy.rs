//! The deployment guides in `docs/deploy/`, run as written: each guide's
//! files (`docs/deploy/<guide>/…`) must appear in the guide verbatim, and
//! this test boots real Caddy, nginx and PostgreSQL with those very files.
//! Only paths are filled in (`/var/lib/vestibule`, the PostgreSQL URL, the
//! key-encryption key file); ports are the files' own: 193xx, apart from
//! `frontends.rs` (184xx–186xx) and the e2e tests (187xx).
//!
//! Authelia and authentik are not installed here: [`sso_standin`] answers
//! their forward-auth endpoints (`/api/authz/forward-auth`,
//! `/outpost.goauthentik.io/auth/nginx`) the way they do, with their real
//! header names, and takes the signed-in user from a cookie that names
//! them. The SSO front is simulated; the proxies, vestibule, the database
//! and the app are real. The guides say so.

use std::net::SocketAddr;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use vestibule_store::testkit;

use crate::frontends::{
    FrontProcess, assert_port_free, fenced_blocks, find_binary, start_whoami_process, wait_for_port,
};
use crate::support::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/deploy");

/// A guide and its files, each checked to be in the guide byte for byte.
struct Guide {
    name: &'static str,
    files: Vec<(String, String)>,
}

impl Guide {
    fn load(name: &'static str) -> Self {
        let doc_path = format!("{DEPLOY}/{name}.md");
        let doc = std::fs::read_to_string(&doc_path)
            .unwrap_or_else(|e| panic!("cannot read {doc_path}: {e}"));
        let blocks: Vec<String> = fenced_blocks(&doc).into_iter().map(|(_, b)| b).collect();
        let dir = format!("{DEPLOY}/{name}");
        let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
            .map(|e| e.unwrap().path())
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{dir} has no files");
        for (file, text) in &files {
            assert!(
                blocks.iter().any(|b| b == text),
                "docs/deploy/{name}.md does not show docs/deploy/{name}/{file} verbatim \
                 (one fenced block must equal the file, byte for byte)"
            );
        }
        Self { name, files }
    }

    fn file(&self, name: &str) -> &str {
        self.files
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("docs/deploy/{}/{name} is missing", self.name))
    }

    /// The guide's vestibule.toml with its paths filled in.
    fn vestibule_toml(&self, fill: &[(&str, &str)]) -> String {
        let mut text = self.file("vestibule.toml").to_owned();
        for (from, to) in fill {
            assert!(
                text.contains(from),
                "docs/deploy/{}/vestibule.toml no longer has `{from}`",
                self.name
            );
            text = text.replace(from, to);
        }
        text
    }
}

/// Starts nginx or Caddy on one of a guide's files, in a fresh directory.
fn start_front(guide: &Guide, front: &'static str, file: &str) -> FrontProcess {
    let (exe, package) = match front {
        "nginx" => ("nginx", "nginx"),
        _ => ("caddy", "caddy"),
    };
    let exe = find_binary(front, exe, package);
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let conf = dir.path().join(file);
    std::fs::write(&conf, guide.file(file)).unwrap();
    let log = std::fs::File::create(dir.path().join("front.log")).unwrap();
    let mut cmd = StdCommand::new(&exe);
    cmd.current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    if front == "nginx" {
        cmd.arg("-p")
            .arg(format!("{}/", dir.path().display()))
            .arg("-c")
            .arg(&conf);
    } else {
        cmd.env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_DATA_HOME", dir.path().join("data"))
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{front}: cannot start {}: {e}", exe.display()));
    FrontProcess {
        name: front,
        child,
        dir,
    }
}

/// The simulated SSO fronts.
mod sso_standin {
    use super::*;

    /// Who a stand-in session cookie names: (username, uid, groups, email, name).
    fn user(headers: &HeaderMap, cookie: &str) -> Option<[&'static str; 5]> {
        let cookies = headers.get("cookie")?.to_str().ok()?;
        let value = cookies
            .split(';')
            .find_map(|c| c.trim().strip_prefix(cookie)?.strip_prefix('='))?;
        match value {
            "alice" => Some([
                "alice",
                "9a2b7c4d",
                "admins,users",
                "alice@example.com",
                "Alice",
            ]),
            "bob" => Some(["bob", "5f1c0e7a", "users", "bob@example.com", "Bob"]),
            _ => None,
        }
    }

    fn answer(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
        let mut r = status.into_response();
        for (n, v) in headers {
            r.headers_mut()
                .insert(*n, HeaderValue::from_str(v).unwrap());
        }
        r
    }

    /// Authelia's `/api/authz/forward-auth` (its Caddy and Traefik
    /// endpoint): 200 with `Remote-User`, `Remote-Groups` (comma-separated),
    /// `Remote-Email`, `Remote-Name` for a session; 200 with nothing for a
    /// `bypass` rule (here `/share`); otherwise 302 to the portal with the
    /// original URL in `rd`, built from Caddy's `X-Forwarded-*`.
    async fn authelia(headers: HeaderMap) -> Response {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        let uri = h("x-forwarded-uri");
        if uri == "/share" || uri.starts_with("/share/") {
            return answer(StatusCode::OK, &[]);
        }
        match user(&headers, "authelia_session") {
            Some([username, _, groups, email, name]) => answer(
                StatusCode::OK,
                &[
                    ("remote-user", username.into()),
                    ("remote-groups", groups.into()),
                    ("remote-email", email.into()),
                    ("remote-name", name.into()),
                ],
            ),
            None => {
                let original = format!(
                    "{}://{}{uri}",
                    h("x-forwarded-proto"),
                    h("x-forwarded-host")
                );
                // Percent-encoded as a query value (RFC 3986 §2.1).
                let rd: String = original
                    .bytes()
                    .map(|b| match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                            char::from(b).to_string()
                        }
                        _ => format!("%{b:02X}"),
                    })
                    .collect();
                answer(
                    StatusCode::FOUND,
                    &[("location", format!("https://auth.example.com/?rd={rd}"))],
                )
            }
        }
    }

    /// The authentik proxy outpost's `/outpost.goauthentik.io/auth/nginx`:
    /// 200 with `X-authentik-uid`, `-username`, `-groups` (`|`-separated),
    /// `-email`, `-name` for a session, 401 otherwise.
    async fn authentik(headers: HeaderMap) -> Response {
        match user(&headers, "authentik_proxy_standin") {
            Some([username, uid, groups, email, name]) => answer(
                StatusCode::OK,
                &[
                    ("x-authentik-uid", uid.into()),
                    ("x-authentik-username", username.into()),
                    ("x-authentik-groups", groups.replace(',', "|")),
                    ("x-authentik-email", email.into()),
                    ("x-authentik-name", name.into()),
                ],
            ),
            None => answer(StatusCode::UNAUTHORIZED, &[]),
        }
    }

    /// Serves both on `port` (loopback), for the life of the test runtime.
    pub(super) async fn start(port: u16) {
        assert_port_free("SSO stand-in", port);
        let app = axum::Router::new()
            .route("/api/authz/forward-auth", axum::routing::any(authelia))
            .route(
                "/outpost.goauthentik.io/auth/nginx",
                axum::routing::any(authentik),
            )
            .route(
                "/outpost.goauthentik.io/start",
                axum::routing::get(|| async {
                    answer(
                        StatusCode::FOUND,
                        &[(
                            "location",
                            "https://authentik.example.com/flows/login".into(),
                        )],
                    )
                }),
            );
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    }
}

/// What the app saw, as header values whose name reads as `name`.
fn app_saw(r: &Raw, name: &str) -> Vec<String> {
    r.seen_headers()
        .into_iter()
        .filter(|(n, _)| n.replace('_', "-").eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v)
        .collect()
}

fn front_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn expect(
    front: &FrontProcess,
    port: u16,
    what: &str,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
) -> Raw {
    let r = Raw::get(front_addr(port), TRUSTED, path, headers).await;
    assert_eq!(
        r.status,
        status,
        "{what}: got {} {}\n{}",
        r.status,
        r.text(),
        front.logs()
    );
    r
}

/// Boots a one-instance guide: its ports are `base` (the front), `base + 1`
/// (vestibule), `+ 2` (the app), `+ 3` (the SSO stand-in), `+ 4` (admin).
/// Returns the front, vestibule and the app, each stopped on drop.
async fn one_instance_guide(
    name: &'static str,
    front: &'static str,
    front_file: &str,
    base: u16,
) -> (FrontProcess, Gateway, tokio::process::Child) {
    let guide = Guide::load(name);
    for port in [base, base + 1, base + 2, base + 4] {
        assert_port_free(name, port);
    }
    sso_standin::start(base + 3).await;
    let app = start_whoami_process(name, base + 2).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let toml = guide.vestibule_toml(&[("/var/lib/vestibule", &data)]);
    let gw = Gateway::start_in(dir, &toml, &[]).await;
    assert_eq!(
        gw.addr.port(),
        base + 1,
        "{name}: vestibule's listen address"
    );
    let mut proc = start_front(&guide, front, front_file);
    wait_for_port(&mut proc, base).await;
    (proc, gw, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authelia_caddy_guide_as_written() {
    let (caddy, gw, _app) = one_instance_guide("authelia-caddy", "caddy", "Caddyfile", 19300).await;

    let alice = [("Cookie", "authelia_session=alice")];
    let bob = [("Cookie", "authelia_session=bob")];
    let r = expect(&caddy, 19300, "alice, /", "/", &alice, 200).await;
    assert_eq!(app_saw(&r, "remote-user"), ["alice"]);
    assert_eq!(app_saw(&r, "remote-groups"), ["admins,users"]);
    assert_eq!(app_saw(&r, "remote-email"), ["alice@example.com"]);

    // A client's own Remote-User, any spelling, never wins.
    let r = expect(
        &caddy,
        19300,
        "bob claiming to be admin",
        "/",
        &[
            ("Cookie", "authelia_session=bob"),
            ("Remote-User", "admin"),
            ("Remote_User", "admin"),
        ],
        200,
    )
    .await;
    assert_eq!(app_saw(&r, "remote-user"), ["bob"]);

    expect(&caddy, 19300, "alice, /admin", "/admin/x", &alice, 200).await;
    expect(&caddy, 19300, "bob, /admin", "/admin/x", &bob, 403).await;

    // Not signed in: Authelia's portal, with the way back (the test
    // client sends `Host: app.test`).
    let r = expect(&caddy, 19300, "nobody, /", "/page", &[], 302).await;
    let location = r.header("location").unwrap_or_default();
    assert!(
        location == "https://auth.example.com/?rd=http%3A%2F%2Fapp.test%2Fpage",
        "{location}"
    );

    // /share is an Authelia bypass: the app is reached, with nobody in it,
    // even when the client names someone.
    let r = expect(
        &caddy,
        19300,
        "nobody, /share",
        "/share/album",
        &[("Remote-User", "alice")],
        200,
    )
    .await;
    assert!(
        app_saw(&r, "remote-user").iter().all(String::is_empty),
        "{:?}",
        r.seen_headers()
    );

    // Around Caddy, straight to vestibule from another address: no identity.
    let r = Raw::get(gw.addr, UNTRUSTED, "/", &[("Remote-User", "alice")]).await;
    assert_eq!(r.status, 401, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentik_nginx_guide_as_written() {
    let (nginx, gw, _app) =
        one_instance_guide("authentik-nginx", "nginx", "nginx.conf", 19310).await;

    let alice = [("Cookie", "authentik_proxy_standin=alice")];
    let r = expect(&nginx, 19310, "alice, /", "/", &alice, 200).await;
    assert_eq!(app_saw(&r, "remote-user"), ["alice"]);
    assert_eq!(app_saw(&r, "remote-groups"), ["admins,users"]);
    assert!(
        app_saw(&r, "x-authentik-username").is_empty(),
        "{:?}",
        r.seen_headers()
    );

    // bob sends alice's authentik headers and a Remote-User himself: nginx
    // sets X-authentik-* from the outpost's answer, vestibule the rest.
    let r = expect(
        &nginx,
        19310,
        "bob claiming to be alice",
        "/",
        &[
            ("Cookie", "authentik_proxy_standin=bob"),
            ("X-authentik-username", "alice"),
            ("X-authentik-uid", "9a2b7c4d"),
            ("Remote-User", "alice"),
        ],
        200,
    )
    .await;
    assert_eq!(app_saw(&r, "remote-user"), ["bob"]);

    expect(&nginx, 19310, "alice, /admin", "/admin/", &alice, 200).await;
    expect(
        &nginx,
        19310,
        "bob, /admin",
        "/admin/",
        &[("Cookie", "authentik_proxy_standin=bob")],
        403,
    )
    .await;

    // Not signed in, whatever the client claims: the outpost's sign-in.
    // (Alike frontends.rs's login-redirect check in shape: a request and
    // its Location; the fronts and the expected URL differ.)
    let r = expect(
        &nginx,
        19310,
        "nobody",
        "/page",
        &[("X-authentik-username", "alice")],
        302,
    )
    .await;
    assert_eq!(
        r.header("location"),
        Some("http://app.test:19310/outpost.goauthentik.io/start?rd=http://app.test/page")
    );

    let r = Raw::get(
        gw.addr,
        UNTRUSTED,
        "/",
        &[
            ("X-authentik-username", "alice"),
            ("X-authentik-uid", "9a2b7c4d"),
        ],
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
}

/// The drop-in's `Environment=` assignments, as systemd reads them (a
/// whole assignment may be single-quoted).
fn drop_in_environment(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .map(|a| a.trim_matches('\''))
        .map(|a| {
            let (k, v) = a.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_instances_guide_as_written() {
    let guide = Guide::load("postgresql-instances");
    for port in [19320, 19321, 19322, 19324, 19325, 19326] {
        assert_port_free("postgresql-instances", port);
    }
    let url = tokio::task::spawn_blocking(testkit::postgres_url)
        .await
        .unwrap();
    sso_standin::start(19323).await;
    let _app = start_whoami_process("postgresql-instances", 19322).await;

    let kek_dir = tempfile::tempdir().unwrap();
    let kek = kek_dir.path().join("kek");
    let mut key = [0u8; 32];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut key)
            .unwrap();
    }
    {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        std::fs::write(&kek, format!("{text}\n")).unwrap();
    }
    let kek_path = kek.display().to_string();
    let toml = guide.vestibule_toml(&[
        ("postgres://vestibule@127.0.0.1:5432/vestibule", &url),
        ("/etc/vestibule/kek", &kek_path),
    ]);
    let a = Gateway::start_in(tempfile::tempdir().unwrap(), &toml, &[]).await;
    let env = drop_in_environment(guide.file("instance-b.conf"));
    assert_eq!(env.len(), 2, "{env:?}");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let b = Gateway::start_in(tempfile::tempdir().unwrap(), &toml, &env).await;
    assert_eq!((a.addr.port(), b.addr.port()), (19321, 19325));
    let mut nginx = start_front(&guide, "nginx", "nginx.conf");
    wait_for_port(&mut nginx, 19320).await;

    // Both instances serve alice (round robin), each from its own cache.
    let alice = [("Cookie", "authentik_proxy_standin=alice")];
    for _ in 0..6 {
        let r = expect(&nginx, 19320, "alice", "/", &alice, 200).await;
        assert_eq!(app_saw(&r, "remote-user"), ["alice"]);
    }
    for gw in [&a, &b] {
        assert!(
            gw.metrics().await.contains("outcome=\"forwarded\""),
            "instance {} served nothing",
            gw.addr
        );
    }

    // Disable her with the CLI (its own connection to the database): every
    // request through either instance is refused within a second, though
    // both cached her account for 60 s.
    let cli = |args: &[&str]| {
        let out = StdCommand::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(args)
            .arg("--config")
            .arg(a._dir.path().join("vestibule.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "vestibule {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["users", "disable", "alice"]);
    let started = Instant::now();
    loop {
        let mut refused = 0;
        for _ in 0..4 {
            let r = Raw::get(front_addr(19320), TRUSTED, "/", &alice).await;
            refused += usize::from(r.status == 403);
        }
        if refused == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "alice still reaches the app 3 s after `users disable`\n{}",
            nginx.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "postgresql-instances: disable reached both instances in {:?}",
        started.elapsed()
    );

    cli(&["users", "enable", "alice"]);
    let started = Instant::now();
    while Raw::get(front_addr(19320), TRUSTED, "/", &alice)
        .await
        .status
        != 200
    {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "alice still refused 3 s after `users enable`"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn drop_in_reader_works() {
    assert_eq!(
        drop_in_environment("[Service]\nEnvironment='A=[\"x\"]'\nEnvironment=B=1\n"),
        [
            ("A".to_owned(), "[\"x\"]".to_owned()),
            ("B".to_owned(), "1".to_owned())
        ]
    );
}
