//! `[source.jwt]`: signed identity assertions (Pomerium, Cloudflare Access,
//! authentik) verified against a JWK Set served over a real socket, through
//! the real binary.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use vestibule_core::jwt::testing::TestSigner;

use crate::support::*;

const ISSUER: &str = "https://sso.test/application/o/vestibule/";

/// A key server whose JWK Set can be swapped, counting fetches.
struct KeyServer {
    addr: SocketAddr,
    jwks: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(jwks: String) -> Self {
        let body = Arc::new(Mutex::new(jwks));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (b, f) = (body.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (b, f) = (b.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = b.lock().unwrap().clone();
                    ([("content-type", "application/json")], body)
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        Self {
            addr,
            jwks: body,
            fetches,
        }
    }

    fn set(&self, jwks: String) {
        *self.jwks.lock().unwrap() = jwks;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn claims(sub: &str) -> serde_json::Value {
    json!({
        "iss": ISSUER,
        "aud": "vestibule",
        "sub": sub,
        "exp": now() + 300,
        "iat": now(),
        "preferred_username": "alice",
        "email": "alice@example.com",
        "name": "Alice Liddell",
        "groups": ["family", "admins"],
    })
}

fn jwt_config(jwks_url: &str, up: SocketAddr, extra: &str) -> String {
    let src = format!(
        "[source.jwt]\npreset = \"authentik\"\nissuer = \"{ISSUER}\"\naudience = [\"vestibule\"]\n\
         jwks_url = \"{jwks_url}\"\ntrusted_proxies = [\"127.0.0.1\"]\n{extra}\n"
    );
    let routes = [
        route("app", "/", up, "allow_groups = [\"family\"]"),
        route("open", "/open", up, "auth = \"optional\""),
    ]
    .concat();
    config(&src, &routes)
}

async fn get(gw: &Gateway, from: &str, path: &str, token: &str) -> Raw {
    Raw::get(gw.addr, from, path, &[("X-authentik-jwt", token)]).await
}

/// A valid assertion names the user to the app in the route's header
/// dialect; the assertion itself never reaches the app.
#[tokio::test]
async fn a_verified_assertion_names_the_user() {
    let up = start_whoami().await;
    let es = TestSigner::es256("es");
    let rs = TestSigner::rs256("rs");
    let ed = TestSigner::ed25519("ed");
    let keys = KeyServer::start(TestSigner::jwks_json(&[&es, &rs, &ed])).await;
    let gw = Gateway::start(&jwt_config(&format!("http://{}/jwks", keys.addr), up, "")).await;
    for signer in [&es, &rs, &ed] {
        let r = get(&gw, TRUSTED, "/", &signer.sign(&claims("u-1"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = r.seen_headers();
        assert_eq!(seen["remote-user"], ["alice"]);
        assert_eq!(seen["remote-email"], ["alice@example.com"]);
        assert_eq!(seen["remote-name"], ["Alice Liddell"]);
        assert_eq!(seen["remote-groups"], ["family,admins"]);
        assert!(!seen.contains_key("x-authentik-jwt"), "{seen:?}");
    }
    // Keys are fetched once at start-up, not per request.
    assert_eq!(keys.fetches(), 1);
    // Not in the route's group: 403, as with headers.
    let mut c = claims("u-2");
    c["groups"] = json!(["guests"]);
    assert_eq!(get(&gw, TRUSTED, "/", &es.sign(&c)).await.status, 403);
    // The same in forward-auth.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/.vestibule/verify",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.test"),
            ("X-Forwarded-Uri", "/"),
            ("X-authentik-jwt", &es.sign(&claims("u-1"))),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("alice"));
    let m = gw.metrics().await;
    assert!(
        m.contains("vestibule_auth_decisions_total{source=\"jwt\",result=\"authenticated\"}"),
        "{m}"
    );
}

/// Every way an assertion can be wrong is a 401 (never a login redirect
/// loop, never the app); ambiguity is a 400; an untrusted peer's assertion
/// is ignored and stripped.
#[tokio::test]
async fn bad_assertions_are_refused() {
    let up = start_whoami().await;
    let es = TestSigner::es256("es");
    let rs = TestSigner::rs256("rs");
    let stranger = TestSigner::es256("es");
    let keys = KeyServer::start(TestSigner::jwks_json(&[&es, &rs])).await;
    let gw = Gateway::start(&jwt_config(
        &format!("http://{}/jwks", keys.addr),
        up,
        "algorithms = [\"ES256\", \"RS256\"]",
    ))
    .await;
    let good = claims("u-1");
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let b64 = |v: &serde_json::Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let valid = es.sign(&good);
    let (h, rest) = valid.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let cases: Vec<(&str, String)> = vec![
        ("expired", es.sign(&with("exp", json!(now() - 3600)))),
        ("not yet valid", es.sign(&with("nbf", json!(now() + 3600)))),
        (
            "issued in the future",
            es.sign(&with("iat", json!(now() + 3600))),
        ),
        ("no expiry", es.sign(&without("exp"))),
        (
            "wrong issuer",
            es.sign(&with("iss", json!("https://evil.test/"))),
        ),
        (
            "wrong audience",
            es.sign(&with("aud", json!(["other-app"]))),
        ),
        ("no subject", es.sign(&without("sub"))),
        ("signed by a stranger with our kid", stranger.sign(&good)),
        (
            "claims swapped under a valid signature",
            format!("{h}.{}.{sig}", b64(&with("sub", json!("admin")))),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "kid": "es"})),
                b64(&good)
            ),
        ),
        (
            "HS256 keyed with the public key",
            format!(
                "{}.{}.{sig}",
                b64(&json!({"alg": "HS256", "kid": "rs"})),
                b64(&good)
            ),
        ),
        (
            "algorithm not allowed here",
            TestSigner::ed25519("es").sign(&good),
        ),
        ("garbage", "not a token".into()),
        (
            "control characters in a claim",
            es.sign(&with("name", json!("Alice\r\nRemote-User: admin"))),
        ),
        (
            "a separator inside a group name",
            es.sign(&with("groups", json!(["family,admins"]))),
        ),
    ];
    for (what, token) in &cases {
        let r = get(&gw, TRUSTED, "/", token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert!(r.header("location").is_none(), "{what}");
        assert!(!r.text().contains("remote-user"), "{what}");
    }
    // A page asks a browser to reload rather than looping to the login.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[("X-authentik-jwt", &cases[0].1), ("Accept", "text/html")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert!(r.text().contains("could not be verified"), "{}", r.text());

    // An empty assertion is no assertion: anonymous, like an empty
    // identity header (401 where required, nobody on an optional route).
    let r = get(&gw, TRUSTED, "/", "").await;
    assert_eq!(r.status, 401);
    let r = get(&gw, TRUSTED, "/open", " ").await;
    assert_eq!(r.status, 200);
    assert!(!r.seen_headers().contains_key("remote-user"));

    // Two spellings of the assertion header: ambiguous.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[("X-authentik-jwt", &valid), ("X_Authentik_Jwt", &valid)],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());

    // From an untrusted peer a valid assertion counts for nothing (a leaked
    // assertion cannot be replayed from anywhere), and is stripped.
    assert_eq!(get(&gw, UNTRUSTED, "/", &valid).await.status, 401);
    let r = get(&gw, UNTRUSTED, "/open", &valid).await;
    assert_eq!(r.status, 200);
    let seen = r.seen_headers();
    assert!(!seen.contains_key("remote-user"), "{seen:?}");
    assert!(!seen.contains_key("x-authentik-jwt"), "{seen:?}");

    // The log names the reason, never the token.
    let log = gw.stderr();
    assert!(log.contains("the assertion has expired"), "{log}");
    for reason in [
        "the assertion's audience is not an expected one",
        "the assertion's signature does not verify",
    ] {
        assert!(log.contains(reason), "{reason}: {log}");
    }
    assert!(!log.contains(&valid), "the token was logged");
}

/// Key rotation: an assertion signed with a key vestibule has not seen
/// makes it fetch the set again, once; invented key ids cannot make it
/// hammer the key server.
#[tokio::test]
async fn rotated_keys_are_fetched_once_on_demand() {
    let up = start_whoami().await;
    let old = TestSigner::es256("2026-10");
    let new = TestSigner::rs256("2026-11");
    let keys = KeyServer::start(TestSigner::jwks_json(&[&old])).await;
    let gw = Gateway::start(&jwt_config(&format!("http://{}/jwks", keys.addr), up, "")).await;
    assert_eq!(
        get(&gw, TRUSTED, "/", &old.sign(&claims("u"))).await.status,
        200
    );
    assert_eq!(keys.fetches(), 1);

    keys.set(TestSigner::jwks_json(&[&old, &new]));
    assert_eq!(
        get(&gw, TRUSTED, "/", &new.sign(&claims("u"))).await.status,
        200
    );
    assert_eq!(keys.fetches(), 2, "one fetch for the new key id");

    // The old key is withdrawn: an assertion vestibule verified (and
    // remembered) with it stops working as soon as the new set is loaded.
    let remembered = old.sign(&claims("u"));
    assert_eq!(get(&gw, TRUSTED, "/", &remembered).await.status, 200);
    keys.set(TestSigner::jwks_json(&[&new]));
    tokio::time::sleep(std::time::Duration::from_millis(10_100)).await;
    let newest = TestSigner::rs256("2026-12");
    keys.set(TestSigner::jwks_json(&[&new, &newest]));
    assert_eq!(
        get(&gw, TRUSTED, "/", &newest.sign(&claims("u")))
            .await
            .status,
        200
    );
    assert_eq!(keys.fetches(), 3);
    assert_eq!(get(&gw, TRUSTED, "/", &remembered).await.status, 401);

    // Fifty invented key ids within the minimum interval: no more fetches.
    for i in 0..50 {
        let forger = TestSigner::es256(&format!("invented-{i}"));
        assert_eq!(
            get(&gw, TRUSTED, "/", &forger.sign(&claims("u")))
                .await
                .status,
            401
        );
    }
    assert_eq!(keys.fetches(), 3);
}

/// A remembered assertion lives no longer than its own `exp`.
#[tokio::test]
async fn remembered_assertions_expire_with_the_token() {
    let up = start_whoami().await;
    let signer = TestSigner::es256("es");
    let keys = KeyServer::start(TestSigner::jwks_json(&[&signer])).await;
    let gw = Gateway::start(&jwt_config(
        &format!("http://{}/jwks", keys.addr),
        up,
        "leeway = \"0s\"",
    ))
    .await;
    let mut c = claims("u");
    c["exp"] = json!(now() + 2);
    let token = signer.sign(&c);
    assert_eq!(get(&gw, TRUSTED, "/", &token).await.status, 200);
    assert_eq!(get(&gw, TRUSTED, "/", &token).await.status, 200);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(get(&gw, TRUSTED, "/", &token).await.status, 401);
}

/// No keys yet (the key server is down): assertions get 503, never a pass;
/// anonymous requests to public routes still work.
#[tokio::test]
async fn without_keys_assertions_fail_closed() {
    let up = start_whoami().await;
    let signer = TestSigner::es256("es");
    let down = closed_port().await;
    let gw = Gateway::start(&jwt_config(&format!("http://{down}/jwks"), up, "")).await;
    let r = get(&gw, TRUSTED, "/", &signer.sign(&claims("u"))).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(Raw::get(gw.addr, TRUSTED, "/open", &[]).await.status, 200);
}

/// A JWK Set from a file works the same, and `check` refuses the settings
/// that would accept forged or misdirected assertions.
#[tokio::test]
async fn jwks_file_and_configuration_checks() {
    let up = start_whoami().await;
    let signer = TestSigner::es256("es");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, TestSigner::jwks_json(&[&signer])).unwrap();
    let src = format!(
        "[source.jwt]\npreset = \"pomerium\"\nissuer = \"{ISSUER}\"\naudience = [\"vestibule\"]\n\
         jwks_file = \"{}\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
        file.display()
    );
    let gw = Gateway::start(&config(&src, &route("app", "/", up, ""))).await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[("X-Pomerium-Jwt-Assertion", &signer.sign(&claims("u")))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let check = |cfg: String| {
        let path = dir.path().join("check.toml");
        std::fs::write(&path, cfg).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
            .args(["check", "--strict", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let base = |extra: &str| {
        format!(
            "[source.jwt]\npreset = \"cloudflare\"\nissuer = \"https://team.cloudflareaccess.com\"\n{extra}\n\n{}",
            route("app", "/", up, "")
        )
    };
    let private = dir.path().join("private.json");
    let mut leaked = signer.jwk();
    leaked["d"] = json!("AAAA");
    std::fs::write(&private, json!({ "keys": [leaked] }).to_string()).unwrap();
    let refused = [
        (
            "no audience",
            base(
                "jwks_url = \"https://team.cloudflareaccess.com/cdn-cgi/access/certs\"\ntrusted_proxies = [\"127.0.0.1\"]",
            ),
            "source.jwt.audience",
        ),
        (
            "plain http to another host",
            base(
                "audience = [\"a\"]\njwks_url = \"http://keys.example.com/jwks\"\ntrusted_proxies = [\"127.0.0.1\"]",
            ),
            "source.jwt.jwks_url",
        ),
        (
            "no keys",
            base("audience = [\"a\"]\ntrusted_proxies = [\"127.0.0.1\"]"),
            "source.jwt.jwks_url",
        ),
        (
            "HMAC",
            base(
                "audience = [\"a\"]\njwks_url = \"https://k.test/\"\nalgorithms = [\"HS256\"]\ntrusted_proxies = [\"127.0.0.1\"]",
            ),
            "source.jwt.algorithms[0]",
        ),
        (
            "any peer",
            base(
                "audience = [\"a\"]\njwks_url = \"https://k.test/\"\ntrusted_proxies = [\"0.0.0.0/0\"]",
            ),
            "source.jwt.trusted_proxies",
        ),
        (
            "no peer",
            base("audience = [\"a\"]\njwks_url = \"https://k.test/\""),
            "source.jwt.trusted_proxies",
        ),
        (
            "a key file that is missing",
            base(
                "audience = [\"a\"]\njwks_file = \"/nonexistent/jwks.json\"\ntrusted_proxies = [\"127.0.0.1\"]",
            ),
            "source.jwt.jwks_file",
        ),
        (
            "a key file holding a private key",
            base(&format!(
                "audience = [\"a\"]\njwks_file = \"{}\"\ntrusted_proxies = [\"127.0.0.1\"]",
                private.display()
            )),
            "source.jwt.jwks_file",
        ),
        (
            "a CA file with no certificate",
            base(&format!(
                "audience = [\"a\"]\njwks_url = \"https://k.test/\"\njwks_ca = \"{}\"\ntrusted_proxies = [\"127.0.0.1\"]",
                file.display()
            )),
            "source.jwt.jwks_ca",
        ),
        (
            "two sources",
            format!(
                "{}\n[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
                base(
                    "audience = [\"a\"]\njwks_url = \"https://k.test/\"\ntrusted_proxies = [\"127.0.0.1\"]"
                )
            ),
            "source",
        ),
    ];
    for (what, cfg, key) in refused {
        let (code, out) = check(cfg);
        assert_eq!(code, Some(2), "{what}: {out}");
        assert!(out.contains(&format!("error: {key}:")), "{what}: {out}");
    }
    // A good one passes `check --strict` (no warning either), with accounts
    // (and TLS, without which the session cookie warning fires; `check`
    // only needs the certificate files to exist).
    let (code, out) = check(format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{cert}\"\nkey = \"{cert}\"\n\
         [database]\ndata_dir = \"{data}\"\n[accounts]\n{}",
        base(
            "audience = [\"a\"]\njwks_url = \"https://team.cloudflareaccess.com/cdn-cgi/access/certs\"\ntrusted_proxies = [\"127.0.0.1\"]",
        ),
        cert = file.display(),
        data = dir.path().join("data").display(),
    ));
    assert_eq!(code, Some(0), "{out}");
}

/// A key server over HTTPS with a private CA: trusted through `jwks_ca`,
/// refused without it (the built-in roots do not know it), so a key server
/// that cannot prove its name never supplies keys.
#[tokio::test]
async fn https_key_server_needs_a_trusted_certificate() {
    use hyper_util::rt::TokioIo;
    let up = start_whoami().await;
    let signer = TestSigner::es256("es");
    let jwks = TestSigner::jwks_json(&[&signer]);
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("ca.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let acceptor = vestibule::http::listen::tls_acceptor(&cert_path, &key_path).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let (acceptor, jwks) = (acceptor.clone(), jwks.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |_req| {
                    let body = jwks.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let url = format!("https://localhost:{port}/jwks");
    let token = signer.sign(&claims("u"));

    let ca = format!("jwks_ca = \"{}\"", cert_path.display());
    let trusted = Gateway::start(&jwt_config(&url, up, &ca)).await;
    let r = get(&trusted, TRUSTED, "/", &token).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let untrusted = Gateway::start(&jwt_config(&url, up, "")).await;
    assert_eq!(get(&untrusted, TRUSTED, "/", &token).await.status, 503);
    let log = untrusted.stderr();
    assert!(
        log.contains("could not load the assertion signing keys"),
        "{log}"
    );
}
