//! Running under a service manager: systemd readiness (`sd_notify`), the
//! `/livez` and `/readyz` probes (with the database checked), `SIGHUP`,
//! and `vestibule backup` / `restore` on the real binary.

use std::path::Path;
use std::time::{Duration, Instant};

use vestibule_store::testkit::PgCluster;

use crate::support::*;

fn accounts_on(url_or_dir: &str) -> String {
    let database = if url_or_dir.starts_with("postgres") {
        format!("url = \"{url_or_dir}\"")
    } else {
        format!("data_dir = \"{url_or_dir}\"")
    };
    format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\n{database}\n\n[accounts]\ncache_ttl = \"1s\"\n"
    )
}

async fn admin_get(gw: &Gateway, path: &str) -> Raw {
    Raw::get(gw.admin.unwrap(), TRUSTED, path, &[]).await
}

#[tokio::test]
async fn tells_systemd_it_is_ready_once_listening() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = tokio::net::UnixDatagram::bind(&socket_path).unwrap();
    let up = start_whoami().await;
    let gw = Gateway::start_with_env(
        &config(&authelia(), &route("app", "/", up, "")),
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    )
    .await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("no sd_notify message within 10 s")
        .unwrap();
    let msg = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    // Ready means serving: the listeners answer.
    assert_eq!(admin_get(&gw, "/livez").await.status, 200);
}

#[tokio::test]
async fn livez_and_readyz_answer_with_a_reachable_sqlite_store() {
    let data = tempfile::tempdir().unwrap();
    let up = start_whoami().await;
    let gw = Gateway::start(&config(
        &accounts_on(data.path().to_str().unwrap()),
        &route("app", "/", up, ""),
    ))
    .await;
    let live = admin_get(&gw, "/livez").await;
    assert_eq!((live.status, live.text()), (200, "alive\n".to_owned()));
    let ready = admin_get(&gw, "/readyz").await;
    assert_eq!((ready.status, ready.text()), (200, "ready\n".to_owned()));
    // The old probe is unchanged.
    assert_eq!(admin_get(&gw, "/healthz").await.status, 200);
    // Not on the main listener: probes are for operators.
    assert_ne!(
        Raw::get(gw.addr, TRUSTED, "/readyz", &[]).await.text(),
        "ready\n"
    );
}

#[tokio::test]
async fn readyz_fails_while_the_assertion_keys_cannot_be_loaded() {
    let up = start_whoami().await;
    let nowhere = closed_port().await;
    let src = format!(
        "[source.jwt]\npreset = \"authentik\"\nissuer = \"https://sso.example\"\n\
         audience = [\"vestibule\"]\njwks_url = \"http://{nowhere}/jwks\"\n\
         trusted_proxies = [\"127.0.0.1\"]\n"
    );
    let gw = Gateway::start(&config(&src, &route("app", "/", up, ""))).await;
    let r = admin_get(&gw, "/readyz").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("signing keys"), "{}", r.text());
    assert_eq!(admin_get(&gw, "/livez").await.status, 200);
}

/// Stops and starts the cluster off the async runtime (both wait for the
/// server).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_postgres_is_down_and_recovers() {
    let cluster = blocking(PgCluster::start).await;
    let (cluster, url) = blocking(move || {
        let url = cluster.create_database();
        (cluster, url)
    })
    .await;
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&accounts_on(&url), &route("app", "/", up, ""))).await;
    assert_eq!(admin_get(&gw, "/readyz").await.status, 200);

    let mut cluster = blocking(move || {
        let mut c = cluster;
        c.stop();
        c
    })
    .await;
    let t0 = Instant::now();
    let down = until_status(503, async || admin_get(&gw, "/readyz").await.status).await;
    let r = admin_get(&gw, "/readyz").await;
    assert!(r.text().starts_with("not ready: "), "{}", r.text());
    // Liveness does not depend on the database: restarting would not help.
    assert_eq!(admin_get(&gw, "/livez").await.status, 200);
    // Each probe answers within the readiness timeout (plus slack).
    let probe = Instant::now();
    admin_get(&gw, "/readyz").await;
    assert!(
        probe.elapsed() < vestibule::service::health::READY_TIMEOUT + Duration::from_secs(2),
        "{:?}",
        probe.elapsed()
    );
    eprintln!(
        "readyz: 503 {down:?} after the cluster stopped ({:?} total)",
        t0.elapsed()
    );

    let mut cluster = blocking(move || {
        cluster.start_again();
        cluster
    })
    .await;
    let started = Instant::now();
    loop {
        if admin_get(&gw, "/readyz").await.status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "not ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "readyz: 200 again {:?} after the cluster restarted",
        started.elapsed()
    );
    blocking(move || cluster.stop()).await;
}

async fn hangup(gw: &Gateway) {
    let status = tokio::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

/// Waits (at most 10 s) until the gateway's stderr has `n` lines with
/// `needle`.
async fn until_logged(gw: &Gateway, needle: &str, n: usize) -> String {
    let started = Instant::now();
    loop {
        let log = gw.stderr();
        if log.matches(needle).count() >= n {
            return log;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no {needle:?} ({n}) in:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_applies_routes_live_and_names_what_needs_a_restart() {
    let up = start_whoami().await;
    let gateway_config =
        |routes: &str| config(&authelia(), routes).replace("level = \"warn\"", "level = \"info\"");
    let original = gateway_config(&route("app", "/", up, ""));
    let gw = Gateway::start(&original).await;
    let path = gw._dir.path().join("vestibule.toml");
    let alice = [("Remote-User", "alice")];
    let admin = [("Remote-User", "root"), ("Remote-Groups", "admins")];
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &alice).await.status,
        200
    );

    // A new route, and a [server] change: the route applies at once (alice
    // is now refused under /admins/, an admin is not), [server] waits.
    let with_admins = gateway_config(
        &(route("app", "/", up, "")
            + &route("admins", "/admins/", up, "allow_groups = [\"admins\"]")),
    );
    std::fs::write(
        &path,
        with_admins.replace("[server]\n", "[server]\nmax_connections = 999\n"),
    )
    .unwrap();
    hangup(&gw).await;
    let log = until_logged(&gw, "reload: applied [[route]]", 1).await;
    // Alike identity.rs's group checks in shape (status per identity);
    // here they show that the routes changed under a running gateway.
    assert!(log.contains("reload: needs a restart: [server]"), "{log}");
    assert!(!log.contains("needs a restart: [[route]]"), "{log}");
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &alice).await.status,
        403
    );
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &admin).await.status,
        200
    );
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/other", &alice).await.status,
        200
    );
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains("route=\"admins\",outcome=\"forbidden\""),
        "the new route is counted under its name:\n{metrics}"
    );

    // A file with errors: each error is logged, the running routes stay.
    std::fs::write(
        &path,
        original.replace("dialect = \"authelia\"", "dialect = \"nope\""),
    )
    .unwrap();
    hangup(&gw).await;
    let log = until_logged(&gw, "has errors; the running configuration stays", 1).await;
    assert!(
        log.contains("nope"),
        "the error names the bad value:\n{log}"
    );
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &alice).await.status,
        403
    );

    // Routes that lean on a change needing a restart ([accounts], for
    // device credentials) wait for it too; the running routes stay.
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        &path,
        gateway_config(&route("app", "/", up, "credentials = [\"bearer\"]"))
            + &format!(
                "\n[accounts]\n\n[database]\ndata_dir = \"{}\"\n",
                data.path().display()
            ),
    )
    .unwrap();
    hangup(&gw).await;
    let log = until_logged(&gw, "reload: needs a restart: [[route]]", 1).await;
    assert!(log.contains("reload: needs a restart: [accounts]"), "{log}");
    assert!(
        log.contains("depends on a change that needs a restart"),
        "{log}"
    );
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &alice).await.status,
        403
    );

    // Back to the first routes: applied, alice is in again.
    std::fs::write(&path, &original).unwrap();
    hangup(&gw).await;
    until_logged(&gw, "reload: applied [[route]]", 2).await;
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &alice).await.status,
        200
    );

    // The process survived every signal.
    assert_eq!(admin_get(&gw, "/livez").await.status, 200);
}

async fn vestibule(args: &[&str], config: &Path) -> (i32, String, String) {
    vestibule_with_env(args, config, &[]).await
}

async fn vestibule_with_env(
    args: &[&str],
    config: &Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(args)
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .env_remove("VESTIBULE_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn backup_and_restore_commands_round_trip_a_running_gateways_database() {
    let data = tempfile::tempdir().unwrap();
    let up = start_whoami().await;
    let cfg_text = config(
        &accounts_on(data.path().to_str().unwrap()),
        &route("app", "/", up, ""),
    );
    let gw = Gateway::start(&cfg_text).await;
    let cfg = gw._dir.path().join("vestibule.toml");
    // Provision an account through the gateway (auto provisioning).
    let id = [
        ("X-authentik-uid", "u1"),
        ("X-authentik-username", "ursula"),
    ];
    assert_eq!(Raw::get(gw.addr, TRUSTED, "/", &id).await.status, 200);

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("vestibule.backup");
    let file_arg = file.to_str().unwrap();
    let (code, stdout, stderr) = vestibule(&["backup", file_arg], &cfg).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(file_arg) && stdout.contains("schema version"),
        "{stdout}"
    );
    let (code, _, stderr) = vestibule(&["backup", file_arg], &cfg).await;
    assert_eq!(code, 1, "a second backup to the same file is refused");
    assert!(stderr.contains("refusing to overwrite"), "{stderr}");
    drop(gw);

    // Into an empty data directory (a new machine), then the account is
    // there for the admin CLI.
    let fresh = tempfile::tempdir().unwrap();
    let fresh_data = fresh.path().join("not-yet-made");
    let fresh_cfg = out.path().join("fresh.toml");
    std::fs::write(
        &fresh_cfg,
        config(
            &accounts_on(fresh_data.to_str().unwrap()),
            &route("app", "/", up, ""),
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = vestibule(&["restore", file_arg], &fresh_cfg).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("vestibule.db"), "{stdout}");
    let (code, stdout, stderr) = vestibule(&["users", "list"], &fresh_cfg).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ursula"), "{stdout}");
    // Restoring over it again needs --replace.
    let (code, _, stderr) = vestibule(&["restore", file_arg], &fresh_cfg).await;
    assert_eq!(code, 1, "{stderr}");
    let (code, _, stderr) = vestibule(&["restore", "--replace", file_arg], &fresh_cfg).await;
    assert_eq!(code, 0, "{stderr}");
}

#[tokio::test]
async fn the_packaged_example_configuration_passes_check() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/vestibule.toml");
    let (code, _, stderr) = vestibule(&["check"], &example).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("0 error(s)"), "{stderr}");
    // The unit runs exactly this check before starting.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/vestibule.service"),
    )
    .unwrap();
    assert!(
        unit.contains(
            "ExecStartPre=/usr/bin/vestibule check --config /etc/vestibule/vestibule.toml"
        ),
        "{unit}"
    );
}

fn sha256_hex(s: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A code exchange with a bogus code at the provider, authenticated as
/// `client_id` with `secret`: 400 `invalid_grant` when the client is
/// known and its secret right, 401 `invalid_client` otherwise.
async fn token_status(gw: &Gateway, client_id: &str, secret: &str) -> u16 {
    let body = format!(
        "grant_type=authorization_code&code=bogus&redirect_uri=x&code_verifier=v&client_id={client_id}&client_secret={secret}"
    );
    let req = format!(
        "POST /.vestibule/oidc/token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        gw.addr,
        body.len()
    );
    Raw::send(gw.addr, TRUSTED, req.as_bytes()).await.status
}

#[tokio::test]
async fn sighup_applies_oidc_clients_live_and_reloads_signing_keys() {
    let up = start_whoami().await;
    let port = closed_port().await;
    let data = tempfile::tempdir().unwrap();
    let client = |id: &str| {
        format!(
            "[[oidc_provider.client]]\nclient_id = \"{id}\"\nkind = \"confidential\"\nsecret_sha256 = \"{}\"\n\
             redirect_uris = [\"https://{id}.example.com/cb\"]\n\n",
            sha256_hex(&format!("{id}-secret"))
        )
    };
    let text = |issuer: &str, clients: &str| {
        format!(
            "[server]\nlisten = [\"{port}\"]\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\n\n{}\n\
             [keys]\npublish_ahead = \"4h\"\nreload_every = \"1h\"\n\n[oidc_provider]\nissuer = \"{issuer}\"\n\n{clients}{}",
            accounts_on(&data.path().display().to_string()),
            route("app", "/", up, ""),
        )
    };
    let issuer = format!("http://{port}");
    let gw = Gateway::start(&text(&issuer, &client("one"))).await;
    let path = gw._dir.path().join("vestibule.toml");
    assert_eq!(token_status(&gw, "one", "one-secret").await, 400);
    assert_eq!(token_status(&gw, "two", "two-secret").await, 401);

    // `two` added, `one` removed: applied at once, nothing else changed.
    std::fs::write(&path, text(&issuer, &client("two"))).unwrap();
    hangup(&gw).await;
    let log = until_logged(&gw, "reload: applied [[oidc_provider.client]]", 1).await;
    assert!(!log.contains("needs a restart: [oidc_provider]"), "{log}");
    assert_eq!(token_status(&gw, "two", "two-secret").await, 400);
    assert_eq!(token_status(&gw, "two", "wrong").await, 401);
    assert_eq!(token_status(&gw, "one", "one-secret").await, 401);

    // The issuer changes too: the whole section waits for a restart, the
    // clients with it.
    std::fs::write(
        &path,
        text(&format!("http://localhost:{}", port.port()), &client("one")),
    )
    .unwrap();
    hangup(&gw).await;
    until_logged(&gw, "reload: needs a restart: [oidc_provider]", 1).await;
    assert_eq!(token_status(&gw, "two", "two-secret").await, 400);
    assert_eq!(token_status(&gw, "one", "one-secret").await, 401);

    // A key added to the store (as `vestibule keys rotate` at another
    // instance would) is published here at the next SIGHUP, not at the
    // next `reload_every` (an hour away).
    std::fs::write(&path, text(&issuer, &client("two"))).unwrap();
    let published = || async {
        Raw::get(gw.addr, TRUSTED, "/.vestibule/jwks.json", &[])
            .await
            .json()["keys"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = published().await;
    let (code, _, err) = vestibule(&["keys", "rotate"], &path).await;
    assert_eq!(code, 0, "{err}");
    hangup(&gw).await;
    until_logged(&gw, "reload: signing keys reloaded from the store", 3).await;
    // One new key per family in use (the assertion family and the
    // provider's RS256), each published now.
    assert!(published().await > before);

    assert_eq!(admin_get(&gw, "/livez").await.status, 200);
}

/// The `keys=` of each log line with `message`, in order.
fn logged_key_counts(log: &str, message: &str) -> Vec<usize> {
    log.lines()
        .filter(|l| l.contains(message))
        .filter_map(|l| {
            l.split("keys=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test]
async fn sighup_fetches_the_oidc_providers_discovery_and_keys_again() {
    use crate::oidc_client_auth::pair;
    use crate::oidc_login::{KEK, KEK_VAR, SECRET, SECRET_VAR};
    let p = pair(
        |_| format!("secret_sha256 = \"{}\"", sha256_hex(SECRET)),
        &format!("client_secret_env = \"{SECRET_VAR}\""),
    )
    .await;
    const FETCHED: &str = "reload: [source.oidc] discovery document and JWK Set fetched again";
    hangup(&p.down).await;
    let log = until_logged(&p.down, FETCHED, 1).await;
    let first = logged_key_counts(&log, FETCHED);
    // The provider adds keys (as `vestibule keys rotate` does) and, at its
    // own SIGHUP, publishes them; the downstream's next SIGHUP fetches
    // them, without waiting for an unknown kid.
    let (code, _, err) = vestibule_with_env(
        &["keys", "rotate"],
        &p.up._dir.path().join("vestibule.toml"),
        &[(KEK_VAR, KEK)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    hangup(&p.up).await;
    until_logged(&p.up, "reload: signing keys reloaded from the store", 1).await;
    hangup(&p.down).await;
    let log = until_logged(&p.down, FETCHED, 2).await;
    let counts = logged_key_counts(&log, FETCHED);
    assert_eq!(counts.len(), 2, "{log}");
    assert!(counts[1] > first[0], "{counts:?}\n{log}");
}
