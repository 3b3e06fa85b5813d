//! Client certificates per device (issue 18), through the real binary:
//! issuing from the devices page (password shown once, PKCS#12 and PEM),
//! `curl --cert` on vestibule's own TLS listener with the PEM and with the
//! PKCS#12 converted by Debian's `openssl pkcs12` (both forms, with and
//! without `-legacy`, algorithms checked), refusals (revoked, expired,
//! foreign CA) as readable 403s, revocation on the next request including
//! a resumed TLS session, 421 for a coalesced request, and the forwarded
//! header from trusted peers only.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vestibule_core::client_cert::CertFingerprint;
use vestibule_store::{NewDevice, StoreConfig};

use crate::devices::{FORM, Setup, between, now_ms, page_session, post, refs, sign_in, sso};
use crate::support::*;

/// The certificate hostname, and the host of everything else.
const MTLS_HOST: &str = "mtls.test";

pub(crate) struct Env {
    pub(crate) s: Setup,
    pub(crate) dir: tempfile::TempDir,
    /// The server certificate and key files (PEM).
    pub(crate) server_files: (PathBuf, PathBuf),
    /// The server certificate (self-signed, for both names), as a root.
    server_cert: CertificateDer<'static>,
}

/// A gateway with authentik identities from 127.0.0.1, accounts, its own
/// TLS listener requesting certificates on `mtls.test`, certificates
/// forwarded in `X-Client-Cert` (base64 DER) by trusted peers, and the
/// route `api` (bearer, so owners may pick it for a device), `stale`
/// (`max_sso_age` 2 s) and `admins` (group `admins` only).
async fn setup() -> Env {
    setup_forwarding("base64-der", None).await
}

/// [`setup`], with the forwarded certificate in `format`, and the front's
/// verification result in `verify_header` when given.
async fn setup_forwarding(format: &str, verify_header: Option<&str>) -> Env {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server =
        rcgen::generate_simple_self_signed(vec![MTLS_HOST.to_owned(), "app.test".to_owned()])
            .unwrap();
    let (cert_path, key_path) = (files.path().join("srv.pem"), files.path().join("srv.key"));
    std::fs::write(&cert_path, server.cert.pem()).unwrap();
    std::fs::write(&key_path, server.signing_key.serialize_pem()).unwrap();
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\ncache_ttl = \"60s\"\n\n\
         [client_certs]\nenabled = true\nhostnames = [\"{MTLS_HOST}\"]\nvalidity = \"30d\"\n\
         crl_url = \"https://sso.test/.vestibule/client-ca.crl\"\n\
         forwarded_header = \"X-Client-Cert\"\nforwarded_format = \"{format}\"\n{}",
        data.display(),
        verify_header.map_or_else(String::new, |h| format!(
            "forwarded_verify_header = \"{h}\"\n"
        ))
    );
    let ws = start_ws_echo().await;
    let routes = [
        route("api", "/api", up, "credentials = [\"bearer\"]"),
        route("count", "/_count", up, "credentials = [\"bearer\"]"),
        route("ws", "/ws", ws, "credentials = [\"bearer\"]"),
        route("music", "/music", up, "credentials = [\"basic\"]"),
        route("plain", "/plain", up, ""),
        route(
            "stale",
            "/stale",
            up,
            "credentials = [\"bearer\"]\nmax_sso_age = \"2s\"",
        ),
        route(
            "admins",
            "/admins",
            up,
            "credentials = [\"bearer\"]\nallow_groups = [\"admins\"]",
        ),
    ]
    .concat();
    let tls = format!(
        "[server.tls]\nlisten = [\"127.0.0.1:0\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let cfg = config(&src, &routes).replacen("[log]", &format!("{tls}\n[log]"), 1);
    let gw = Gateway::start_in(dir, &cfg, &[]).await;
    let store = vestibule_store::open(&StoreConfig::new(format!(
        "sqlite://{}",
        data.join("vestibule.db").display()
    )))
    .await
    .unwrap();
    Env {
        s: Setup { gw, store },
        server_files: (cert_path, key_path),
        dir: files,
        server_cert: server.cert.der().clone(),
    }
}

/// A WebSocket server that echoes every data frame back.
async fn start_ws_echo() -> std::net::SocketAddr {
    use futures_util::{SinkExt, StreamExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A gateway ([`setup`]) where alice signed in and made a certificate
/// device (`key`, `form`) on the page; its PEM is written as `phone.pem`.
async fn alice_with_certificate(key: &str, form: &str) -> (Env, Issued, PathBuf) {
    let env = setup().await;
    sign_in(&env.s, "a-1", "alice").await;
    let issued = issue(&env, "Phone", key, form).await;
    let pem = write(env.dir.path(), "phone.pem", issued.pem.as_bytes());
    (env, issued, pem)
}

/// A page form POST as the session whose headers are `h`.
async fn form_post(env: &Env, h: &[(String, String)], path: &str, body: &str) -> Raw {
    post(&env.s.gw, path, &refs(h), FORM, body).await
}

/// What the devices page hands out for one certificate.
struct Issued {
    password: String,
    p12: Vec<u8>,
    pem: String,
    device_id: i64,
}

/// Makes a certificate device for alice on `api` through the page.
async fn issue(env: &Env, name: &str, key: &str, pkcs12: &str) -> Issued {
    let s = &env.s;
    let (h, csrf, html) = page_session(s, "a-1", "alice").await;
    assert!(html.contains("id=\"add-certificate\""), "{html}");
    let before: Vec<i64> = s
        .store
        .devices_of(None)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    let body = format!(
        "csrf={csrf}&name={name}&app=cli&route=api&route=count&route=ws&key={key}&pkcs12={pkcs12}"
    );
    let r = post(
        &s.gw,
        "/.vestibule/devices/certificate",
        &refs(&h),
        FORM,
        &body,
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = r.header("location").unwrap().to_owned();
    let r = Raw::get(s.gw.addr, TRUSTED, &page, &refs(&h)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let password = between(
        &r.text(),
        "id=\"p12-password\" class=\"secret\" readonly value=\"",
        "\"",
    )
    .to_owned();
    assert!(password.len() >= 20, "{password}");
    // Shown once: a reload gets 410, and the password is not on it.
    let again = Raw::get(s.gw.addr, TRUSTED, &page, &refs(&h)).await;
    assert_eq!(again.status, 410);
    assert!(!again.text().contains(&password));
    let p12 = Raw::get(s.gw.addr, TRUSTED, &format!("{page}/device.p12"), &refs(&h)).await;
    assert_eq!(p12.status, 200);
    assert_eq!(p12.header("content-type"), Some("application/x-pkcs12"));
    let pem = Raw::get(s.gw.addr, TRUSTED, &format!("{page}/device.pem"), &refs(&h)).await;
    assert_eq!(pem.status, 200);
    // Another signed-in person cannot fetch the files.
    let (mh, _, _) = page_session(s, "m-1", "mallory").await;
    let stolen = Raw::get(
        s.gw.addr,
        TRUSTED,
        &format!("{page}/device.p12"),
        &refs(&mh),
    )
    .await;
    assert_eq!(stolen.status, 410);
    let device = s
        .store
        .devices_of(None)
        .await
        .unwrap()
        .into_iter()
        .find(|d| !before.contains(&d.id))
        .expect("a new device");
    assert_eq!(device.kind, "certificate");
    Issued {
        password,
        p12: p12.body,
        pem: pem.text(),
        device_id: device.id,
    }
}

/// Makes certificate device `Phone` on `api` with a fallback token, as the
/// session `h` on the page; (the one-time page, the token).
async fn certificate_with_fallback(
    env: &Env,
    h: &[(String, String)],
    csrf: &str,
) -> (String, String) {
    let body = format!("csrf={csrf}&name=Phone&app=ios-immich&route=api&fallback=on");
    let r = form_post(env, h, "/.vestibule/devices/certificate", &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = r.header("location").unwrap().to_owned();
    let shown = Raw::get(env.s.gw.addr, TRUSTED, &page, &refs(h)).await;
    let token = between(
        &shown.text(),
        "id=\"fallback-token\" class=\"secret\" readonly value=\"",
        "\"",
    )
    .to_owned();
    (page, token)
}

/// `GET /api/` with `token` as a Bearer token, from an untrusted peer.
async fn bearer_from_anywhere(env: &Env, token: &str) -> Raw {
    let bearer = format!("Bearer {token}");
    Raw::get(
        env.s.gw.addr,
        UNTRUSTED,
        "/api/",
        &[("Authorization", &bearer)],
    )
    .await
}

/// The audit log has exactly one `action` entry about `subject`.
async fn assert_audited_once(env: &Env, action: &str, subject: String) {
    let audit = env
        .s
        .store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some(action.into()),
            subject: Some(subject),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
}

/// The certificate in `pem` is on the gateway's CRL, as `openssl crl` reads it.
async fn assert_on_crl(env: &Env, pem: &Path) {
    let dir = env.dir.path();
    let crl = Raw::get(env.s.gw.addr, TRUSTED, "/.vestibule/client-ca.crl", &[]).await;
    assert_eq!(crl.status, 200);
    assert_eq!(crl.header("content-type"), Some("application/pkix-crl"));
    let crl_path = write(dir, "ca.crl", &crl.body);
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl_path.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok, "{text}");
    let (_, serial) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_uppercase();
    assert!(
        text.to_ascii_uppercase().replace(':', "").contains(&serial),
        "{serial} not in {text}"
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `curl --cert` to `https://<host>:<port><path>` on vestibule's own TLS
/// listener; returns (status, body).
async fn curl(
    env: &Env,
    host: &str,
    path: &str,
    cert: Option<&Path>,
    extra: &[&str],
) -> (u16, String) {
    curl_at(env.s.gw.tls.unwrap().port(), host, path, cert, extra).await
}

/// `curl --cert` to `https://<host>:<port><path>`, resolving `host` to
/// 127.0.0.1; returns (status, body, with curl's own message on failure).
async fn curl_at(
    port: u16,
    host: &str,
    path: &str,
    cert: Option<&Path>,
    extra: &[&str],
) -> (u16, String) {
    // tokio's: the upstream runs on this test's runtime.
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "-k", "--max-time", "20", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"));
    if let Some(c) = cert {
        cmd.arg("--cert").arg(c);
    }
    cmd.args(extra).arg(format!("https://{host}:{port}{path}"));
    let out = cmd.output().await.expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let body = format!("{body}{}", String::from_utf8_lossy(&out.stderr));
    (code.trim().parse().unwrap_or(0), body)
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Opens `issued`'s PKCS#12 with Debian's `openssl pkcs12` (refused with a
/// wrong password), converts it to PEM without and with `-legacy`, and
/// uses each with curl; returns `openssl pkcs12 -info` (the algorithms).
async fn open_p12(env: &Env, issued: &Issued, name: &str) -> String {
    let dir = env.dir.path();
    let p12 = write(dir, &format!("{name}.p12"), &issued.p12);
    let p12 = p12.to_str().unwrap();
    let info = |pass: &str| openssl(&["pkcs12", "-info", "-in", p12, "-passin", pass, "-noout"]);
    let (ok, text) = info(&format!("pass:{}", issued.password));
    assert!(ok, "{text}");
    assert!(!info("pass:wrong").0, "opened with a wrong password");
    for legacy in [false, true] {
        let out = dir.join(format!("{name}-{legacy}.pem"));
        let pass = format!("pass:{}", issued.password);
        let mut args = vec!["pkcs12", "-in", p12, "-passin", &pass, "-nodes", "-out"];
        args.push(out.to_str().unwrap());
        if legacy {
            args.push("-legacy");
        }
        let (ok, text) = openssl(&args);
        assert!(ok, "openssl pkcs12 (legacy {legacy}): {text}");
        let (status, body) = curl(env, MTLS_HOST, "/api/", Some(&out), &[]).await;
        assert_eq!(status, 200, "legacy {legacy}: {body}");
    }
    text
}

#[tokio::test]
async fn issued_certificates_open_everywhere_and_authenticate_with_curl() {
    // The PEM, straight into curl: alice, with the route's identity.
    let (env, issued, pem) = alice_with_certificate("rsa-2048", "compatible").await;
    let dir = env.dir.path();
    let (status, body) = curl(&env, MTLS_HOST, "/api/x", Some(&pem), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"), "{body}");

    // The leaf: RSA-2048, clientAuth, named for the user and device, with
    // the CRL URL, signed directly by the CA.
    let (ok, text) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok, "{text}");
    for want in [
        "Public-Key: (2048 bit)",
        "TLS Web Client Authentication",
        "CN = alice",
        "OU = Phone",
        "Issuer: CN = vestibule device CA",
        "URI:https://sso.test/.vestibule/client-ca.crl",
    ] {
        assert!(text.contains(want), "{want} not in {text}");
    }

    // The compatible PKCS#12: 3DES for both bags and an SHA-1 MAC, which
    // OpenSSL 3 opens without -legacy, and with it.
    let info = open_p12(&env, &issued, "phone").await;
    assert!(info.contains("MAC: sha1"), "{info}");
    assert_eq!(
        info.matches("pbeWithSHA1And3-KeyTripleDES-CBC").count(),
        2,
        "both bags 3DES: {info}"
    );
    assert!(!info.contains("RC2") && !info.contains("AES"), "{info}");

    // The AES form, P-256: PBES2/AES-256-CBC and an SHA-256 MAC.
    let aes = issue(&env, "Laptop", "p256", "aes").await;
    let info = open_p12(&env, &aes, "laptop").await;
    assert!(info.contains("MAC: sha256"), "{info}");
    assert_eq!(info.matches("AES-256-CBC").count(), 2, "{info}");
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        dir.join("laptop-false.pem").to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains("prime256v1"), "{text}");

    // The private keys are nowhere in the database (nor its journal).
    for (what, pem) in [("rsa", &issued.pem), ("p256", &aes.pem)] {
        let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
        let key = key.secret_der();
        let data = env.s.gw._dir.path().join("data");
        for f in std::fs::read_dir(&data).unwrap() {
            let f = f.unwrap().path();
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key),
                "{what} key in {}",
                f.display()
            );
        }
    }

    // The public CA bundle names the issuer the leaves chain to.
    let ca = Raw::get(env.s.gw.addr, TRUSTED, "/.vestibule/client-ca.pem", &[]).await;
    assert_eq!(ca.status, 200);
    let ca_path = write(dir, "ca.pem", &ca.body);
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        ca_path.to_str().unwrap(),
        "-purpose",
        "sslclient",
        pem.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
}

#[tokio::test]
async fn unknown_revoked_and_expired_certificates_get_a_readable_403() {
    let (env, issued, pem) = alice_with_certificate("p256", "compatible").await;
    let dir = env.dir.path();
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&pem), &[]).await;
    assert_eq!(status, 200, "{body}");

    // No certificate: no identity.
    let (status, _) = curl(&env, MTLS_HOST, "/api/", None, &[]).await;
    assert_eq!(status, 401);

    // A certificate from another CA: the handshake completes, the page says why.
    let foreign = rcgen::generate_simple_self_signed(vec!["phone".to_owned()]).unwrap();
    let foreign_pem = format!(
        "{}{}",
        foreign.cert.pem(),
        foreign.signing_key.serialize_pem()
    );
    let foreign_path = write(dir, "foreign.pem", foreign_pem.as_bytes());
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&foreign_path), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("not one of this gateway"), "{body}");

    // A certificate device that has expired: its own message.
    env.s
        .store
        .create_device(&NewDevice {
            account_id: env.s.store.devices_of(None).await.unwrap()[0].account_id,
            name: "old".into(),
            kind: "certificate".into(),
            routes: vec!["api".into()],
            secret_hash: CertFingerprint::of_der(foreign.cert.der()).0,
            basic_user: None,
            created_at: now_ms() - 10_000,
            expires_at: Some(now_ms() - 1_000),
        })
        .await
        .unwrap();
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&foreign_path), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");

    // The CRL is signed once and served as is while nothing changes.
    let crl = async || {
        Raw::get(env.s.gw.addr, TRUSTED, "/.vestibule/client-ca.crl", &[])
            .await
            .body
    };
    let before = crl().await;
    assert_eq!(before, crl().await);

    // Revoked on the page: refused on the next request, and on the very
    // next CRL.
    let (h, csrf, _) = page_session(&env.s, "a-1", "alice").await;
    let body = format!("csrf={csrf}&id={}", issued.device_id);
    let r = form_post(&env, &h, "/.vestibule/devices/revoke", &body).await;
    assert!(r.status == 303 || r.status == 200, "{}", r.text());
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&pem), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("revoked"), "{body}");
    assert_ne!(crl().await, before);
    assert_on_crl(&env, &pem).await;
}

/// What `openssl s_client` says of a handshake with SNI `host` (it lists
/// the CA names a CertificateRequest hints, RFC 8446 §4.3.2
/// `certificate_authorities`, RFC 5246 §7.4.4).
async fn handshake_seen_by_openssl(env: &Env, host: &str) -> String {
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(env.s.gw.tls.unwrap().to_string())
        .args(["-servername", host])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn only_certificate_hosts_ask_and_they_hint_only_vestibules_ca() {
    let env = setup().await;
    let text = handshake_seen_by_openssl(&env, MTLS_HOST).await;
    let names = text
        .split("Acceptable client certificate CA names")
        .nth(1)
        .unwrap_or_else(|| panic!("no CertificateRequest on {MTLS_HOST}: {text}"));
    let names: Vec<&str> = names
        .lines()
        .skip(1)
        .take_while(|l| !l.contains(':') || l.contains("CN"))
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(names.len(), 1, "{text}");
    assert!(
        names[0].contains("CN") && names[0].contains("vestibule device CA"),
        "{text}"
    );
    // Another host name on the same listener asks for nothing.
    let text = handshake_seen_by_openssl(&env, "app.test").await;
    assert!(
        text.contains("No client certificate CA names sent"),
        "{text}"
    );
    assert!(
        !text.contains("Acceptable client certificate CA names"),
        "{text}"
    );
}

#[tokio::test]
async fn certificate_hosts_answer_421_to_coalesced_requests() {
    let (env, _, pem) = alice_with_certificate("p256", "compatible").await;
    // A connection made for mtls.test, asked for app.test.
    let (status, _) = curl(
        &env,
        MTLS_HOST,
        "/api/",
        Some(&pem),
        &["-H", "Host: app.test"],
    )
    .await;
    assert_eq!(status, 421);
    // A connection made for app.test (no certificate asked), asked for
    // mtls.test.
    let (status, _) = curl(&env, "app.test", "/api/", None, &["-H", "Host: mtls.test"]).await;
    assert_eq!(status, 421);
    // app.test never asks for a certificate: curl's is not sent, the
    // request is anonymous.
    let (status, _) = curl(&env, "app.test", "/api/", Some(&pem), &[]).await;
    assert_eq!(status, 401);
}

/// A TLS client trusting the gateway's certificate, with session
/// resumption (rustls' in-memory cache), presenting the certificate and key
/// in `pem` when given.
fn tls_client(env: &Env, pem: Option<&str>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(env.server_cert.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// One GET over a new TLS connection; (status, resumed).
async fn get_over(env: &Env, connector: &tokio_rustls::TlsConnector) -> (u16, bool) {
    let tcp = Raw::connect(env.s.gw.tls.unwrap(), TRUSTED).await;
    let mut tls = connector
        .connect(MTLS_HOST.try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(
        format!("GET /api/ HTTP/1.1\r\nHost: {MTLS_HOST}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    // Ignore the close_notify-less end some servers send.
    let _ = tls.read_to_end(&mut buf).await;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    (Raw::parse(&buf).status, resumed)
}

#[tokio::test]
async fn revocation_holds_on_a_resumed_tls_session() {
    let (env, issued, _) = alice_with_certificate("p256", "compatible").await;
    let connector = tls_client(&env, Some(&issued.pem));
    assert_eq!(get_over(&env, &connector).await, (200, false));
    // The next connection resumes the session (the verifier does not run).
    assert_eq!(get_over(&env, &connector).await, (200, true));
    assert!(
        env.s
            .store
            .revoke_device(issued.device_id, None)
            .await
            .unwrap()
    );
    let status = until_status(403, async || get_over(&env, &connector).await.0).await;
    assert!(status < std::time::Duration::from_secs(2));
    // Still resumed, still refused: the per-request lookup decides.
    assert_eq!(get_over(&env, &connector).await, (403, true));
}

#[tokio::test]
async fn forwarded_certificates_count_only_from_trusted_peers() {
    let (env, issued, _) = alice_with_certificate("rsa-2048", "compatible").await;
    let der = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let gw = &env.s.gw;
    // From the trusted front: alice.
    let r = Raw::get(gw.addr, TRUSTED, "/api/", &[("X-Client-Cert", &b64)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("alice"));
    // The header never reaches the app.
    assert!(!r.seen_headers().contains_key("x-client-cert"));
    // From anyone else: ignored (and stripped).
    let r = Raw::get(gw.addr, UNTRUSTED, "/api/", &[("X-Client-Cert", &b64)]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // Caddy's unexpanded placeholder and an empty value: no certificate.
    for v in ["{http.request.tls.client.certificate_der_base64}", ""] {
        let r = Raw::get(gw.addr, TRUSTED, "/api/", &[("X-Client-Cert", v)]).await;
        assert_eq!(r.status, 401, "{v:?}: {}", r.text());
    }
    // Two copies under two spellings: 400.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/api/",
        &[("X-Client-Cert", &b64), ("X_Client_Cert", &b64)],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Not base64: 400.
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/api/",
        &[("X-Client-Cert", "not base64!")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    // The front's SSO identity wins over a certificate.
    let mut h = sso("b-1", "bob");
    h.push(("X-Client-Cert".into(), b64.clone()));
    let r = Raw::get(gw.addr, TRUSTED, "/api/", &refs(&h)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("bob") && !r.text().contains("alice"));
}

// ---- real fronts terminating TLS and forwarding the certificate -------------

// Each front's configuration is read from docs/client-certificates.md, the
// block a reader copies, so the documented lines are the tested ones. Only
// the addresses, host name and file paths are replaced (each replacement
// must find its text, so a changed doc fails here rather than drifting),
// and a test-only scaffold is put around the nginx block (a private
// prefix, pid and temp paths) and before the Caddyfile (no admin API, no
// ACME).

const CLIENT_CERTS_DOC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/client-certificates.md"
);

/// The `### <heading>` section of the client-certificate doc.
fn doc_section(heading: &str) -> String {
    let doc = std::fs::read_to_string(CLIENT_CERTS_DOC).unwrap();
    let start = doc
        .find(&format!("\n### {heading}\n"))
        .unwrap_or_else(|| panic!("no `### {heading}` in the doc"));
    let rest = &doc[start + 1..];
    let end = rest[4..].find("\n#").map_or(rest.len(), |e| e + 5);
    rest[..end].to_owned()
}

/// The one ```lang block of the doc's `### heading` section.
fn doc_block(heading: &str, lang: &str) -> String {
    let mut found: Vec<String> = crate::frontends::fenced_blocks(&doc_section(heading))
        .into_iter()
        .filter(|(info, _)| info == lang)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(found.len(), 1, "one ```{lang} block under `### {heading}`");
    found.remove(0)
}

/// The `[client_certs]` forwarding settings the doc gives for a front:
/// (format, verify header). The tested fronts use `X-Client-Cert`.
fn doc_forwarding(heading: &str) -> (String, Option<String>) {
    let t: toml::Table = doc_block(heading, "toml").parse().unwrap();
    let cc = t["client_certs"].as_table().unwrap();
    if heading != "Traefik" {
        assert_eq!(cc["forwarded_header"].as_str(), Some("X-Client-Cert"));
    }
    (
        cc["forwarded_format"].as_str().unwrap().to_owned(),
        cc.get("forwarded_verify_header")
            .map(|v| v.as_str().unwrap().to_owned()),
    )
}

/// `text` with every `(from, to)` replaced; each `from` must be there.
fn replaced(front: &str, text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "{front}: the doc's block no longer has `{from}`:\n{out}"
        );
        out = out.replace(from, to);
    }
    out
}

/// A front's configuration from the doc, with `{front}`, `{vestibule}`,
/// `{cert}`, `{key}`, `{combined}` (certificate and key in one file) and
/// `{ca}` (vestibule's CA bundle) to fill in.
fn front_config(front: &str) -> String {
    const VESTIBULE: (&str, &str) = ("127.0.0.1:8080", "127.0.0.1:{vestibule}");
    match front {
        "nginx" => format!(
            "daemon off;\nworker_processes 1;\nerror_log error.log;\npid nginx.pid;\n\
             events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n    \
             client_body_temp_path tmp; proxy_temp_path tmp; fastcgi_temp_path tmp;\n    \
             uwsgi_temp_path tmp; scgi_temp_path tmp;\n{}}}\n",
            replaced(
                front,
                &doc_block("nginx", "nginx"),
                &[
                    ("listen 443 ssl;", "listen 127.0.0.1:{front} ssl;"),
                    ("ha-mtls.example.org", MTLS_HOST),
                    ("/etc/nginx/tls/fullchain.pem", "{cert}"),
                    ("/etc/nginx/tls/privkey.pem", "{key}"),
                    ("/etc/nginx/vestibule-client-ca.pem", "{ca}"),
                    VESTIBULE,
                ],
            )
        ),
        "caddy" => format!(
            "{{\n    admin off\n    auto_https off\n}}\n{}",
            replaced(
                front,
                &doc_block("Caddy", "caddyfile"),
                &[
                    (
                        "ha-mtls.example.org {\n",
                        "https://mtls.test:{front} {\n    bind 127.0.0.1\n",
                    ),
                    // The doc's site gets its certificate from ACME.
                    ("    tls {\n", "    tls {cert} {key} {\n"),
                    ("/etc/caddy/vestibule-client-ca.pem", "{ca}"),
                    VESTIBULE,
                ],
            )
        ),
        _ => replaced(
            front,
            &doc_block("HAProxy", "haproxy"),
            &[
                ("bind :443 ", "bind 127.0.0.1:{front} "),
                ("/etc/haproxy/site.pem", "{combined}"),
                ("/etc/haproxy/vestibule-client-ca.pem", "{ca}"),
                VESTIBULE,
            ],
        ),
    }
}

#[test]
fn the_documented_front_settings_are_the_tested_ones() {
    // What the fronts' tests run is the doc's text; this pins the lines
    // the security of each depends on, so they cannot be edited away.
    // (front, doc heading, lines that must be there, (format, verify header))
    type Pinned<'a> = (&'a str, &'a str, &'a [&'a str], (&'a str, Option<&'a str>));
    let pinned: [Pinned; 3] = [
        (
            "nginx",
            "nginx",
            &[
                "ssl_verify_client optional_no_ca;",
                "proxy_set_header X-Client-Cert $ssl_client_escaped_cert;",
                "proxy_set_header X-Client-Verify $ssl_client_verify;",
            ],
            ("nginx-escaped-pem", Some("X-Client-Verify")),
        ),
        (
            "caddy",
            "Caddy",
            &["header_up X-Client-Cert {http.request.tls.client.certificate_der_base64}"],
            ("base64-der", None),
        ),
        (
            "haproxy",
            "HAProxy",
            &[
                "mode http",
                "http-request del-header X-Client-Cert",
                "http-request set-header X-Client-Cert %[ssl_c_der,base64] if { ssl_c_used ssl_c_verify 0 }",
            ],
            ("base64-der", None),
        ),
    ];
    for (front, heading, lines, (format, verify)) in pinned {
        let config = front_config(front);
        for want in lines {
            assert!(config.contains(want), "{front}: {want}: {config}");
        }
        assert_eq!(
            doc_forwarding(heading),
            (format.to_owned(), verify.map(str::to_owned)),
            "{front}"
        );
    }
    // Traefik is not packaged in Debian: its header format is unit-tested
    // in vestibule-core, and the doc says so.
    let traefik = doc_section("Traefik");
    assert_eq!(doc_forwarding("Traefik").0, "traefik-chain", "{traefik}");
    assert!(traefik.contains("not packaged in Debian"), "{traefik}");
}

/// Starts `front` (`nginx`, `caddy`, `haproxy`) terminating TLS on a free
/// port before `env`'s vestibule; returns it and its port.
async fn start_front(env: &Env, front: &'static str) -> (crate::frontends::FrontProcess, u16) {
    let exe = crate::frontends::find_binary(front, front, front);
    let port = closed_port().await.port();
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let d = dir.path();
    let ca = Raw::get(env.s.gw.addr, TRUSTED, "/.vestibule/client-ca.pem", &[]).await;
    assert_eq!(ca.status, 200);
    let ca_path = write(d, "ca.pem", &ca.body);
    let (cert, key) = &env.server_files;
    let combined = format!(
        "{}{}",
        std::fs::read_to_string(cert).unwrap(),
        std::fs::read_to_string(key).unwrap()
    );
    let combined = write(d, "combined.pem", combined.as_bytes());
    // Every file must be readable by the front's unprivileged workers.
    for f in [&ca_path, &combined] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (srv_cert, srv_key) = (
        write(d, "srv.pem", &std::fs::read(cert).unwrap()),
        write(d, "srv.key", &std::fs::read(key).unwrap()),
    );
    let fill = |t: &str| {
        t.replace("{front}", &port.to_string())
            .replace("{vestibule}", &env.s.gw.addr.port().to_string())
            .replace("{cert}", srv_cert.to_str().unwrap())
            .replace("{key}", srv_key.to_str().unwrap())
            .replace("{combined}", combined.to_str().unwrap())
            .replace("{ca}", ca_path.to_str().unwrap())
    };
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let log = std::fs::File::create(d.join("front.log")).unwrap();
    let mut cmd = std::process::Command::new(&exe);
    cmd.current_dir(d)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(log.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(log));
    match front {
        "nginx" => {
            let conf = write(d, "nginx.conf", fill(&front_config(front)).as_bytes());
            cmd.arg("-p")
                .arg(format!("{}/", d.display()))
                .arg("-c")
                .arg(conf);
        }
        "caddy" => {
            let conf = write(d, "Caddyfile", fill(&front_config(front)).as_bytes());
            cmd.env("HOME", d)
                .env("XDG_CONFIG_HOME", d.join("config"))
                .env("XDG_DATA_HOME", d.join("data"))
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(conf);
        }
        _ => {
            let conf = write(d, "haproxy.cfg", fill(&front_config(front)).as_bytes());
            cmd.arg("-db").arg("-f").arg(conf);
        }
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{front}: cannot start: {e}"));
    let mut process = crate::frontends::FrontProcess {
        name: front,
        child,
        dir,
    };
    crate::frontends::wait_for_port(&mut process, port).await;
    (process, port)
}

/// `curl` through a front on `port`, with extra header lines.
async fn curl_front(port: u16, cert: Option<&Path>, headers: &[&str]) -> (u16, String) {
    let extra: Vec<&str> = headers.iter().flat_map(|h| ["-H", *h]).collect();
    curl_at(port, MTLS_HOST, "/api/", cert, &extra).await
}

/// One front: the issued certificate is alice; a client that sends the
/// header itself (even with alice's real, public certificate) is ignored;
/// no certificate is anonymous; `foreign` (when the front forwards a
/// certificate it could not verify) is no certificate.
async fn exercise_front(front: &'static str, heading: &str, foreign_forwarded: bool) {
    // The `[client_certs]` lines the doc gives for this front.
    let (format, verify_header) = doc_forwarding(heading);
    let env = setup_forwarding(&format, verify_header.as_deref()).await;
    sign_in(&env.s, "a-1", "alice").await;
    let issued = issue(&env, "Phone", "rsa-2048", "compatible").await;
    let pem = write(env.dir.path(), "phone.pem", issued.pem.as_bytes());
    let (process, port) = start_front(&env, front).await;
    let logs = || process.logs();

    let (status, body) = curl_front(port, Some(&pem), &[]).await;
    assert_eq!(status, 200, "{front}: {body}\n{}", logs());
    assert!(body.contains("alice"), "{front}: {body}");
    assert!(
        !body.to_ascii_lowercase().contains("x-client-cert"),
        "{front}: {body}"
    );

    let der = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();
    let spoof = format!(
        "X-Client-Cert: {}",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    let (status, body) = curl_front(port, None, &[&spoof]).await;
    assert_eq!(
        status, 401,
        "{front}: a client-sent header must not count: {body}"
    );
    let (status, body) = curl_front(port, None, &[]).await;
    assert_eq!(status, 401, "{front}: {body}");

    if foreign_forwarded {
        let foreign = rcgen::generate_simple_self_signed(vec!["phone".to_owned()]).unwrap();
        let f = format!(
            "{}{}",
            foreign.cert.pem(),
            foreign.signing_key.serialize_pem()
        );
        let f = write(env.dir.path(), "foreign.pem", f.as_bytes());
        let (status, body) = curl_front(port, Some(&f), &[]).await;
        assert_eq!(
            status, 401,
            "{front}: a failed verification is no certificate: {body}"
        );
    }

    // Revoked: refused on the next request through the front.
    assert!(
        env.s
            .store
            .revoke_device(issued.device_id, None)
            .await
            .unwrap()
    );
    until_status(403, async || curl_front(port, Some(&pem), &[]).await.0).await;
}

#[tokio::test]
async fn nginx_forwards_the_escaped_certificate() {
    exercise_front("nginx", "nginx", true).await;
}

#[tokio::test]
async fn caddy_forwards_the_der_base64_certificate() {
    exercise_front("caddy", "Caddy", false).await;
}

#[tokio::test]
async fn haproxy_forwards_the_der_base64_certificate() {
    exercise_front("haproxy", "HAProxy", false).await;
}

#[tokio::test]
async fn websocket_and_a_100_mib_upload_with_a_certificate() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (env, issued, pem) = alice_with_certificate("p256", "compatible").await;
    let d = env.s.store.device(issued.device_id).await.unwrap().unwrap();
    assert_eq!(d.routes, ["api", "count", "ws"]);
    // A WebSocket on the certificate connection (HTTP/1.1 upgrade).
    let connector = tls_client(&env, Some(&issued.pem));
    let tcp = Raw::connect(env.s.gw.tls.unwrap(), TRUSTED).await;
    let tls = connector
        .connect(MTLS_HOST.try_into().unwrap(), tcp)
        .await
        .unwrap();
    let req = format!("wss://{MTLS_HOST}/ws/socket")
        .into_client_request()
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(req, tls).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello")).await.unwrap();
    let m = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.into_text().unwrap().as_str(), "hello");
    // Without the certificate the upgrade never reaches the app.
    let anonymous = Raw::connect(env.s.gw.tls.unwrap(), TRUSTED).await;
    let plain = tls_client(&env, None);
    let tls = plain
        .connect(MTLS_HOST.try_into().unwrap(), anonymous)
        .await
        .unwrap();
    let req = format!("wss://{MTLS_HOST}/ws/socket")
        .into_client_request()
        .unwrap();
    let err = tokio_tungstenite::client_async(req, tls).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    // 100 MiB up, streamed, counted by the app.
    const SIZE: u64 = 100 * 1024 * 1024;
    let body = env.dir.path().join("upload.bin");
    std::fs::File::create(&body).unwrap().set_len(SIZE).unwrap();
    let (status, text) = curl(
        &env,
        MTLS_HOST,
        "/_count",
        Some(&pem),
        &["-X", "POST", "--upload-file", body.to_str().unwrap()],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let counted: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(counted["bytes"], SIZE);
}

#[tokio::test]
async fn renewal_replaces_the_certificate_of_the_same_device() {
    let (env, first, old) = alice_with_certificate("p256", "compatible").await;
    assert_eq!(curl(&env, MTLS_HOST, "/api/", Some(&old), &[]).await.0, 200);
    // "Last used" is written behind the request.
    let mut before = None;
    for _ in 0..50 {
        let d = env.s.store.device(first.device_id).await.unwrap().unwrap();
        if d.last_used_at.is_some() {
            before = Some(d);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let before = before.expect("last used recorded");
    let (h, csrf, html) = page_session(&env.s, "a-1", "alice").await;
    assert!(html.contains("name=\"renew\""), "{html}");
    assert!(html.contains("stops working"), "{html}");
    // Someone else's device cannot be renewed into one's own.
    let (mh, mcsrf, _) = page_session(&env.s, "m-1", "mallory").await;
    let body = format!("csrf={mcsrf}&renew={}", first.device_id);
    let r = form_post(&env, &mh, "/.vestibule/devices/certificate", &body).await;
    assert_eq!(r.status, 404, "{}", r.text());
    // Nor without the form's CSRF token.
    let body = format!("renew={}", first.device_id);
    let r = form_post(&env, &h, "/.vestibule/devices/certificate", &body).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(curl(&env, MTLS_HOST, "/api/", Some(&old), &[]).await.0, 200);

    let body = format!(
        "csrf={csrf}&renew={}&key=rsa-2048&pkcs12=aes&app=cli",
        first.device_id
    );
    let r = form_post(&env, &h, "/.vestibule/devices/certificate", &body).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = r.header("location").unwrap().to_owned();
    // The one-time page, as on first issue.
    let shown = Raw::get(env.s.gw.addr, TRUSTED, &page, &refs(&h)).await;
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert!(shown.text().contains("id=\"p12-password\""));
    let again = Raw::get(env.s.gw.addr, TRUSTED, &page, &refs(&h)).await;
    assert_eq!(again.status, 410);
    let pem = Raw::get(
        env.s.gw.addr,
        TRUSTED,
        &format!("{page}/device.pem"),
        &refs(&h),
    )
    .await;
    assert_eq!(pem.status, 200);
    let pem = pem.text();
    assert!(pem.contains("BEGIN PRIVATE KEY"), "{pem}");
    // The same device: id, name, apps, creation and "last used" kept; a
    // new expiry.
    let devices = env.s.store.devices_of(None).await.unwrap();
    assert_eq!(devices.len(), 1);
    let after = &devices[0];
    assert_eq!(after.id, first.device_id);
    assert_eq!(after.name, "Phone");
    assert_eq!(after.routes, ["api", "count", "ws"]);
    assert_eq!(after.created_at, before.created_at);
    assert_eq!(after.last_used_at, before.last_used_at);
    assert!(after.expires_at >= before.expires_at);
    let new = write(env.dir.path(), "new.pem", pem.as_bytes());
    // The key type asked for on the renew form.
    let (ok, text) = openssl(&["x509", "-in", new.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok && text.contains("rsaEncryption"), "{text}");
    // The old certificate is refused on the next request, the new one
    // accepted, and the old one is on the CRL.
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&old), &[]).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&new), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"), "{body}");
    assert_on_crl(&env, &old).await;
    assert_audited_once(&env, "device-renew", format!("device:{}", first.device_id)).await;
}

#[tokio::test]
async fn a_fallback_token_is_its_own_device_beside_the_certificate() {
    let env = setup().await;
    sign_in(&env.s, "a-1", "alice").await;
    let (h, csrf, _) = page_session(&env.s, "a-1", "alice").await;
    // `music` takes no tokens: refused before anything is issued.
    let body = format!("csrf={csrf}&name=Phone&app=ios-immich&route=music&fallback=on");
    let r = form_post(&env, &h, "/.vestibule/devices/certificate", &body).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("does not take tokens"), "{}", r.text());
    assert!(env.s.store.devices_of(None).await.unwrap().is_empty());

    let (_, token) = certificate_with_fallback(&env, &h, &csrf).await;
    // The token works without a certificate, from anywhere.
    let r = bearer_from_anywhere(&env, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("alice"));
    // Two rows, each with its own "last used".
    let mut names: Vec<String> = env
        .s
        .store
        .devices_of(None)
        .await
        .unwrap()
        .into_iter()
        .map(|d| format!("{} {}", d.kind, d.name))
        .collect();
    names.sort();
    assert_eq!(names, ["certificate Phone", "token Phone (fallback token)"]);
}

// ---- the identity, scope and policy of a certificate device -----------------

/// A leaf signed with the gateway's current CA key, read from the store as
/// a front-line test can (no key-encryption key in this setup), valid from
/// `not_before` to `not_after` (Unix ms): what `ClientCa::issue` makes,
/// with any dates. Returns the PEM file (certificate and key) and the DER.
async fn sign_with_the_ca(
    env: &Env,
    name: &str,
    not_before: i64,
    not_after: i64,
) -> (PathBuf, Vec<u8>) {
    let row = env
        .s
        .store
        .client_cas()
        .await
        .unwrap()
        .into_iter()
        .rev()
        .find(|r| r.retired_at.is_none())
        .unwrap();
    assert_eq!(row.private_format, vestibule_store::PrivateKeyFormat::Plain);
    let ca_key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(row.private_key.clone()),
        &rcgen::PKCS_ECDSA_P256_SHA256,
    )
    .unwrap();
    let issuer =
        rcgen::Issuer::from_ca_cert_der(&CertificateDer::from(row.cert_der.clone()), &ca_key)
            .unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "alice");
    dn.push(rcgen::DnType::OrganizationalUnitName, name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let at = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
    };
    params.not_before = at(not_before);
    params.not_after = at(not_after);
    let cert = params.signed_by(&key, &issuer).unwrap();
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let path = write(env.dir.path(), &format!("{name}.pem"), pem.as_bytes());
    (path, cert.der().to_vec())
}

/// A certificate device of alice's for `der`, on `routes`, expiring at
/// `expires_at` (the page sets it to the leaf's notAfter).
async fn certificate_device(
    env: &Env,
    name: &str,
    der: &[u8],
    routes: &[&str],
    expires_at: i64,
) -> i64 {
    let account_id = env
        .s
        .store
        .account_by_identity(&vestibule_store::IdentityKey::new("authentik", "a-1"))
        .await
        .unwrap()
        .unwrap()
        .id;
    env.s
        .store
        .create_device(&NewDevice {
            account_id,
            name: name.into(),
            kind: "certificate".into(),
            routes: routes.iter().map(|r| (*r).to_owned()).collect(),
            secret_hash: CertFingerprint::of_der(der).0,
            basic_user: None,
            created_at: now_ms(),
            expires_at: Some(expires_at),
        })
        .await
        .unwrap()
        .id
}

const DAY_MS: i64 = 86_400_000;

#[tokio::test]
async fn an_expired_certificate_of_this_ca_is_refused_with_its_reason() {
    let env = setup().await;
    sign_in(&env.s, "a-1", "alice").await;
    let now = now_ms();
    // X.509-expired, signed by the gateway's own CA: its device expired
    // with it (the page sets the device's expiry to the leaf's notAfter).
    let (pem, der) = sign_with_the_ca(&env, "Old", now - 2 * DAY_MS, now - DAY_MS).await;
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        pem.to_str().unwrap(),
        "-noout",
        "-checkend",
        "0",
    ]);
    assert!(!ok, "the leaf has expired: {text}");
    certificate_device(&env, "Old", &der, &["api"], now - DAY_MS).await;
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&pem), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired") && body.contains("Renew"), "{body}");
    // A leaf still valid by its dates, whose device's expiry passed.
    let (pem, der) = sign_with_the_ca(&env, "Lapsed", now - DAY_MS, now + DAY_MS).await;
    certificate_device(&env, "Lapsed", &der, &["api"], now - 1_000).await;
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&pem), &[]).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("expired"), "{body}");
    // A leaf of the same CA, made the same way, on a live device is
    // accepted: the refusals were the expiry, nothing else.
    let (pem, der) = sign_with_the_ca(&env, "Live", now - DAY_MS, now + DAY_MS).await;
    certificate_device(&env, "Live", &der, &["api"], now + DAY_MS).await;
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&pem), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("alice"), "{body}");
}

#[tokio::test]
async fn the_certificate_lives_as_long_as_configured_and_so_does_its_device() {
    // `validity = "30d"` in this setup.
    let (env, issued, pem) = alice_with_certificate("p256", "compatible").await;
    let device = env.s.store.device(issued.device_id).await.unwrap().unwrap();
    let expires_at = device.expires_at.expect("a certificate device expires");
    let left = (expires_at - now_ms()) / 1000;
    let configured = 30 * 86_400;
    assert!(
        left <= configured && left > configured - 120,
        "{left} s left"
    );
    // The certificate's notAfter is the device's expiry, to the second
    // (`-checkend N`: fails when the certificate expires within N s).
    let checkend = |secs: i64| {
        openssl(&[
            "x509",
            "-in",
            pem.to_str().unwrap(),
            "-noout",
            "-checkend",
            &secs.to_string(),
        ])
        .0
    };
    let left = (expires_at - now_ms()) / 1000;
    assert!(checkend(left - 5), "notAfter is before the device's expiry");
    assert!(!checkend(left + 5), "notAfter is after the device's expiry");
}

#[tokio::test]
async fn a_certificate_with_another_credential_is_ambiguous() {
    let (env, _, pem) = alice_with_certificate("p256", "compatible").await;
    // Alice's own token, valid on its own.
    let account_id = env.s.store.devices_of(None).await.unwrap()[0].account_id;
    let token = vestibule_core::credential::device_token(rand::random())
        .expose()
        .to_owned();
    env.s
        .store
        .create_device(&NewDevice {
            account_id,
            name: "Laptop".into(),
            kind: "token".into(),
            routes: vec!["api".into()],
            secret_hash: vestibule_core::secret::hash_token(&token),
            basic_user: Some("alice".into()),
            created_at: now_ms(),
            expires_at: None,
        })
        .await
        .unwrap();
    let bearer = format!("Authorization: Bearer {token}");
    let (status, body) = curl(&env, MTLS_HOST, "/api/", None, &["-H", &bearer]).await;
    assert_eq!(status, 200, "{body}");
    // Both on one request, even naming the same person: 400.
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&pem), &["-H", &bearer]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("client certificate and another device credential"),
        "{body}"
    );
    // The same through a trusted front's forwarded header.
    let der = CertificateDer::from_pem_slice(&std::fs::read(&pem).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let both = [
        ("X-Client-Cert", b64.as_str()),
        ("Authorization", &bearer[15..]),
    ];
    let r = Raw::get(env.s.gw.addr, TRUSTED, "/api/", &both).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test]
async fn a_certificate_device_gets_its_scope_the_route_policy_and_sso_freshness() {
    let env = setup().await;
    sign_in(&env.s, "a-1", "alice").await;
    let now = now_ms();
    let (pem, der) = sign_with_the_ca(&env, "Phone", now - 60_000, now + DAY_MS).await;
    certificate_device(
        &env,
        "Phone",
        &der,
        &["api", "stale", "admins"],
        now + DAY_MS,
    )
    .await;
    let get = async |path: &str| curl(&env, MTLS_HOST, path, Some(&pem), &[]).await;
    let (status, body) = get("/api/").await;
    assert_eq!(status, 200, "{body}");
    // The device's scope: `count` and `music` are not among its apps.
    for path in ["/_count", "/music/"] {
        let (status, body) = get(path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // The route's policy: `admins` is for the admins group; alice is in
    // `users`, whatever her device may reach.
    let (status, body) = get("/admins/").await;
    assert_eq!(status, 403, "{body}");
    // SSO freshness: `stale` wants a sign-in through the front within 2 s.
    let (status, body) = get("/stale/").await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let (status, body) = get("/stale/").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("browser"), "{body}");
    // Other routes are not affected, and signing in again revives it.
    assert_eq!(get("/api/").await.0, 200);
    sign_in(&env.s, "a-1", "alice").await;
    assert_eq!(get("/stale/").await.0, 200);
}

/// The devices page's row of device `id`.
fn row_of(html: &str, id: i64) -> &str {
    let start = html
        .find(&format!("data-device=\"{id}\""))
        .unwrap_or_else(|| panic!("no row for device {id}: {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</tr>").unwrap()]
}

#[tokio::test]
async fn the_page_reminds_the_owner_to_renew_before_expiry() {
    // 30-day certificates: a fresh one is not "to renew soon" (the
    // reminder comes with the last quarter of the validity, at most 30
    // days); one with three days left is.
    let (env, fresh, _) = alice_with_certificate("p256", "compatible").await;
    let now = now_ms();
    let (_, der) = sign_with_the_ca(&env, "Tablet", now - 27 * DAY_MS, now + 3 * DAY_MS).await;
    let soon = certificate_device(&env, "Tablet", &der, &["api"], now + 3 * DAY_MS).await;
    let (_, _, html) = page_session(&env.s, "a-1", "alice").await;
    let row = row_of(&html, fresh.device_id);
    assert!(!row.contains("renew it soon"), "{row}");
    let row = row_of(&html, soon);
    assert!(row.contains("renew it soon"), "{row}");
    assert!(row.contains("class=\"renew-soon\""), "{row}");
    assert!(row.contains("Renew now"), "{row}");
}

#[tokio::test]
async fn the_page_shows_when_a_device_was_last_seen_with_and_without_its_certificate() {
    let env = setup().await;
    sign_in(&env.s, "a-1", "alice").await;
    let (h, csrf, _) = page_session(&env.s, "a-1", "alice").await;
    let (page, token) = certificate_with_fallback(&env, &h, &csrf).await;
    let url = format!("{page}/device.pem");
    let pem = Raw::get(env.s.gw.addr, TRUSTED, &url, &refs(&h)).await.body;
    let pem = write(env.dir.path(), "phone.pem", &pem);
    let devices = env.s.store.devices_of(None).await.unwrap();
    let cert = devices.iter().find(|d| d.kind == "certificate").unwrap().id;
    let fallback = devices.iter().find(|d| d.kind == "token").unwrap().id;
    let used = async |id: i64| {
        for _ in 0..100 {
            if let Some(t) = env.s.store.device(id).await.unwrap().unwrap().last_used_at {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("device {id} never recorded as used");
    };
    let page_html = async || page_session(&env.s, "a-1", "alice").await.2;

    // Nothing yet.
    let html = page_html().await;
    let row = row_of(&html, cert);
    assert!(row.contains("with the certificate: never"), "{row}");
    assert!(
        row.contains("without the certificate (fallback token): never"),
        "{row}"
    );

    // Seen with the certificate, on vestibule's own TLS listener.
    assert_eq!(curl(&env, MTLS_HOST, "/api/", Some(&pem), &[]).await.0, 200);
    used(cert).await;
    let html = page_html().await;
    let row = row_of(&html, cert);
    assert!(row.contains("with the certificate: 20"), "{row}");
    assert!(row.contains("from 127.0.0.1"), "{row}");
    assert!(
        row.contains("without the certificate (fallback token): never"),
        "{row}"
    );

    // Seen without it: the fallback token.
    let r = bearer_from_anywhere(&env, &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    used(fallback).await;
    let html = page_html().await;
    let row = row_of(&html, cert);
    assert!(
        row.contains("without the certificate (fallback token): 20"),
        "{row}"
    );
    // The token's own row says what it is.
    let row = row_of(&html, fallback);
    assert!(row.contains("without the certificate: 20"), "{row}");
}

// ---- `vestibule ca show|rotate|export` --------------------------------------

/// `vestibule <args>` against the gateway's configuration, as an operator
/// runs it; (code, stdout and stderr).
async fn ca_cli(env: &Env, args: &[&str]) -> (i32, String) {
    let o = crate::admin_cli::cli(&env.s.gw._dir.path().join("vestibule.toml"), args).await;
    (o.code, format!("{}{}", o.stdout, o.stderr))
}

#[tokio::test]
async fn ca_show_export_and_rotate_from_the_cli() {
    let (env, old_device, old_leaf) = alice_with_certificate("p256", "compatible").await;
    let first = env.s.store.client_cas().await.unwrap();
    assert_eq!(first.len(), 1);

    // show: the one CA, by the SHA-256 of its certificate, current.
    let (code, out) = ca_cli(&env, &["ca", "show"]).await;
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains(&first[0].id))
        .expect("the CA is listed");
    assert!(line.contains("current") && line.contains("plain"), "{line}");

    // export: exactly what fronts are served, and what the leaf chains to.
    let (code, exported) = ca_cli(&env, &["ca", "export"]).await;
    assert_eq!(code, 0, "{exported}");
    let served = Raw::get(env.s.gw.addr, TRUSTED, "/.vestibule/client-ca.pem", &[]).await;
    assert_eq!(exported, served.text());
    let bundle = write(env.dir.path(), "bundle.pem", exported.as_bytes());
    let verify = |leaf: &Path| {
        openssl(&[
            "verify",
            "-CAfile",
            bundle.to_str().unwrap(),
            "-purpose",
            "sslclient",
            leaf.to_str().unwrap(),
        ])
    };
    let (ok, text) = verify(&old_leaf);
    assert!(ok, "{text}");

    // rotate: a new CA signs from now on; the old one is retired, and its
    // certificates stay valid (devices are found by fingerprint).
    let (code, out) = ca_cli(&env, &["ca", "rotate"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("stay valid"), "{out}");
    let cas = env.s.store.client_cas().await.unwrap();
    assert_eq!(cas.len(), 2);
    let new = cas.iter().find(|c| c.retired_at.is_none()).unwrap();
    assert_ne!(new.id, first[0].id);
    assert!(out.contains(&new.id), "{out}");
    let (_, shown) = ca_cli(&env, &["ca", "show"]).await;
    let old_line = shown.lines().find(|l| l.contains(&first[0].id)).unwrap();
    assert!(old_line.contains("retired"), "{shown}");
    let new_line = shown.lines().find(|l| l.contains(&new.id)).unwrap();
    assert!(new_line.contains("current"), "{shown}");
    assert_audited_once(&env, "ca-rotate", format!("client-ca:{}", new.id)).await;
    assert_eq!(
        curl(&env, MTLS_HOST, "/api/", Some(&old_leaf), &[]).await.0,
        200
    );

    // The running gateway issues from the new CA; the exported bundle
    // (both CAs) verifies the old and the new leaf.
    let issued = issue(&env, "Laptop", "p256", "compatible").await;
    let new_leaf = write(env.dir.path(), "laptop.pem", issued.pem.as_bytes());
    let (status, body) = curl(&env, MTLS_HOST, "/api/", Some(&new_leaf), &[]).await;
    assert_eq!(status, 200, "{body}");
    let (_, exported) = ca_cli(&env, &["ca", "export"]).await;
    assert_eq!(exported.matches("BEGIN CERTIFICATE").count(), 2);
    std::fs::write(&bundle, &exported).unwrap();
    for leaf in [&old_leaf, &new_leaf] {
        let (ok, text) = verify(leaf);
        assert!(ok, "{text}");
    }
    let only_new = write(
        env.dir.path(),
        "new-ca.pem",
        vestibule::certs::pem_block("CERTIFICATE", &new.cert_der).as_bytes(),
    );
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        only_new.to_str().unwrap(),
        new_leaf.to_str().unwrap(),
    ]);
    assert!(ok, "the new leaf is signed by the new CA: {text}");
    // The CRL is the new CA's from the rotation on.
    let crl = Raw::get(env.s.gw.addr, TRUSTED, "/.vestibule/client-ca.crl", &[]).await;
    let crl = write(env.dir.path(), "after.crl", &crl.body);
    let (ok, text) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-CAfile",
        only_new.to_str().unwrap(),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // A certificate of the retired CA revoked after the rotation: refused,
    // and on the retired CA's CRL, which fronts get with the current one.
    assert!(
        env.s
            .store
            .revoke_device(old_device.device_id, None)
            .await
            .unwrap()
    );
    // (Revoked behind the gateway's back: it learns through the change feed.)
    until_status(403, async || {
        curl(&env, MTLS_HOST, "/api/", Some(&old_leaf), &[]).await.0
    })
    .await;
    let crls = Raw::get(
        env.s.gw.addr,
        TRUSTED,
        "/.vestibule/client-ca-crls.pem",
        &[],
    )
    .await;
    assert_eq!(crls.status, 200);
    let crls = crls.text();
    let blocks: Vec<String> = crls
        .split_inclusive("-----END X509 CRL-----\n")
        .map(str::to_owned)
        .collect();
    assert_eq!(blocks.len(), 2, "{crls}");
    let old_ca = write(
        env.dir.path(),
        "old-ca.pem",
        vestibule::certs::pem_block("CERTIFICATE", &first[0].cert_der).as_bytes(),
    );
    let (_, serial) = openssl(&[
        "x509",
        "-in",
        old_leaf.to_str().unwrap(),
        "-noout",
        "-serial",
    ]);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_uppercase();
    for (block, ca, listed) in [(&blocks[0], &only_new, false), (&blocks[1], &old_ca, true)] {
        let file = write(env.dir.path(), "one.crl.pem", block.as_bytes());
        let (ok, text) = openssl(&[
            "crl",
            "-in",
            file.to_str().unwrap(),
            "-CAfile",
            ca.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        assert!(ok && text.contains("verify OK"), "{text}");
        let has = text.to_ascii_uppercase().replace(':', "").contains(&serial);
        assert_eq!(has, listed, "{serial} in {text}");
    }
}

#[tokio::test]
async fn every_app_in_the_picker_gets_its_own_install_steps() {
    let env = setup().await;
    sign_in(&env.s, "a-1", "alice").await;
    let (h, csrf, html) = page_session(&env.s, "a-1", "alice").await;
    // The picker of the certificate form, as the page offers it.
    let form = between(&html, "id=\"add-certificate\"", "</form>");
    let picker = between(form, "<select name=\"app\">", "</select>");
    let apps: Vec<&str> = picker
        .split("<option value=\"")
        .skip(1)
        .map(|o| &o[..o.find('"').unwrap()])
        .collect();
    // The steps each app's page must give (issue 18: Android system-wide,
    // in-app import for Home Assistant, Immich and paperless on iOS,
    // Nextcloud desktop, curl).
    let steps = [
        ("android", "Install a certificate"),
        ("ios-ha", "Companion app"),
        ("ios-immich", "Import client certificate"),
        ("ios-paperless", "paperless-mobile"),
        ("desktop", "Configure client-side TLS certificate"),
        ("cli", "curl --cert"),
    ];
    assert_eq!(apps, steps.map(|(a, _)| a), "{picker}");
    for (i, (app, want)) in steps.into_iter().enumerate() {
        let body = format!("csrf={csrf}&name=D{i}&app={app}&route=api&key=p256");
        let r = form_post(&env, &h, "/.vestibule/devices/certificate", &body).await;
        assert_eq!(r.status, 303, "{app}: {}", r.text());
        let page = Raw::get(
            env.s.gw.addr,
            TRUSTED,
            r.header("location").unwrap(),
            &refs(&h),
        )
        .await;
        let install = between(&page.text(), "<div id=\"install\"", "</div>").to_owned();
        assert!(
            install.contains(&format!("data-app=\"{app}\"")),
            "{install}"
        );
        assert!(install.contains(want), "{app}: {want} not in {install}");
        for (other, theirs) in steps {
            if other != app && !want.contains(theirs) {
                assert!(!install.contains(theirs), "{app} shows {other}'s steps");
            }
        }
    }
}
