//! The OpenID Connect provider on two real gateways sharing one real
//! PostgreSQL database and one configuration (issue 14: "a code issued by
//! one instance is redeemed at another, and reuse is detected across
//! instances"). Every request goes over TCP to a `vestibule serve`
//! process; nothing is shared between the two but the database.
//!
//! - A code issued at A is redeemed at B; replayed at A it is
//!   `invalid_grant` and B's tokens are revoked (introspection says
//!   inactive at both).
//! - A refresh rotated at A and retried at B within `refresh_grace` gets
//!   the same successor tokens; retried after the window it revokes the
//!   family (A's successor is then `invalid_grant`).
//! - A device code issued at A is approved at B and polled at A.
//!
//! The one wait is past `refresh_grace` (a window of the protocol, not a
//! speed measurement).

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use vestibule_store::testkit;

use crate::support::*;

const SECRET: &str = "web-secret";
const CB: &str = "https://app.example.test/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const GRACE_S: u64 = 4;

const ALICE: [(&str, &str); 3] = [
    ("X-authentik-uid", "a-1"),
    ("X-authentik-username", "alice"),
    ("X-authentik-groups", "users"),
];

fn gateway_config(url: &str, upstream: SocketAddr) -> String {
    let h = sha256_hex(SECRET);
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\nurl = \"{url}\"\n\n[accounts]\n\n\
         [oidc_provider]\nissuer = \"https://sso.example.test\"\nrefresh_grace = \"{GRACE_S}s\"\ndevice_poll_interval = \"1s\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"web\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         consent = \"implicit\"\nredirect_uris = [\"{CB}\"]\n\
         grants = [\"authorization_code\", \"refresh_token\", \"device_code\"]\n"
    );
    config(&src, &route("app", "/", upstream, "host = \"app.test\""))
}

async fn two_gateways() -> (Gateway, Gateway) {
    let url = tokio::task::spawn_blocking(testkit::postgres_url)
        .await
        .unwrap();
    let up = start_whoami().await;
    let text = gateway_config(&url, up);
    let a = Gateway::start_in(tempfile::tempdir().unwrap(), &text, &[]).await;
    let b = Gateway::start_in(tempfile::tempdir().unwrap(), &text, &[]).await;
    (a, b)
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("web:{SECRET}"))
    )
}

/// A form `POST` to `path` of `gw`, with extra header lines.
async fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: sso.example.test\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    Raw::send(gw.addr, TRUSTED, r.as_bytes()).await
}

/// The client's call of an endpoint: authenticated with its secret.
async fn client_call(gw: &Gateway, path: &str, pairs: &[(&str, &str)]) -> Raw {
    let auth = basic();
    post(gw, path, &[("Authorization", &auth)], &form(pairs)).await
}

async fn token(gw: &Gateway, pairs: &[(&str, &str)]) -> Raw {
    client_call(gw, "/.vestibule/oidc/token", pairs).await
}

fn tokens_ok(r: &Raw) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[track_caller]
fn error_is(r: &Raw, error: &str) {
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], error, "{}", r.text());
}

async fn active(gw: &Gateway, token: &str) -> bool {
    let r = client_call(gw, "/.vestibule/oidc/introspect", &[("token", token)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["active"].as_bool().unwrap()
}

/// A code for alice from `gw`'s authorization endpoint (consent implicit).
async fn authorize(gw: &Gateway) -> String {
    let q = form(&[
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", CB),
        ("scope", "openid offline_access"),
        ("state", "s-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]);
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        &format!("/.vestibule/oidc/authorize?{q}"),
        &ALICE,
    )
    .await;
    assert!(matches!(r.status, 302 | 303), "{} {}", r.status, r.text());
    let location = r.header("location").unwrap().to_owned();
    assert!(location.starts_with(CB), "{location}");
    let query = location.split_once('?').unwrap().1;
    url_param(query, "code")
}

fn url_param(query: &str, name: &str) -> String {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .unwrap()
                .into_owned()
        })
        .unwrap_or_else(|| panic!("no {name} in {query}"))
}

async fn exchange(gw: &Gateway, code: &str) -> Raw {
    token(
        gw,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

async fn refresh(gw: &Gateway, refresh_token: &str) -> Raw {
    token(
        gw,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

#[tokio::test]
async fn a_code_from_one_instance_is_redeemed_at_the_other_and_replay_is_seen_by_both() {
    let (a, b) = two_gateways().await;
    let code = authorize(&a).await;
    let j = tokens_ok(&exchange(&b, &code).await);
    let access = j["access_token"].as_str().unwrap().to_owned();
    let refresh_token = j["refresh_token"].as_str().unwrap().to_owned();
    assert!(j["id_token"].as_str().is_some());
    assert!(active(&a, &access).await && active(&b, &access).await);
    // Replayed at the other instance: refused, and B's tokens revoked.
    error_is(&exchange(&a, &code).await, "invalid_grant");
    for gw in [&a, &b] {
        assert!(!active(gw, &access).await);
        assert!(!active(gw, &refresh_token).await);
    }
    error_is(&refresh(&b, &refresh_token).await, "invalid_grant");
}

#[tokio::test]
async fn refresh_rotation_across_instances_grace_then_reuse() {
    let (a, b) = two_gateways().await;
    let j = tokens_ok(&exchange(&a, &authorize(&a).await).await);
    let r0 = j["refresh_token"].as_str().unwrap().to_owned();
    let first = tokens_ok(&refresh(&a, &r0).await);
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r0, r1);
    // A retry of r0 at B within the grace window: the same successors.
    let retry = tokens_ok(&refresh(&b, &r0).await);
    assert_eq!(retry["refresh_token"], first["refresh_token"]);
    assert_eq!(retry["access_token"], first["access_token"]);
    // After the window, r0 at B is reuse: the family goes, r1 with it.
    tokio::time::sleep(Duration::from_secs(GRACE_S + 1)).await;
    error_is(&refresh(&b, &r0).await, "invalid_grant");
    error_is(&refresh(&a, &r1).await, "invalid_grant");
    assert!(!active(&a, first["access_token"].as_str().unwrap()).await);
}

#[tokio::test]
async fn a_device_code_approved_at_one_instance_is_polled_at_the_other() {
    let (a, b) = two_gateways().await;
    let r = client_call(
        &a,
        "/.vestibule/oidc/device_authorization",
        &[("scope", "openid offline_access")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let device_code = j["device_code"].as_str().unwrap().to_owned();
    let user_code = j["user_code"].as_str().unwrap().to_owned();
    let poll = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", device_code.as_str()),
    ];
    error_is(&token(&a, &poll).await, "authorization_pending");
    // Alice answers on B's device page.
    let page = Raw::get(b.addr, TRUSTED, "/.vestibule/device", &ALICE).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let set_cookie = page
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && !v.contains("Max-Age=0"))
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    let cookie = set_cookie.split("; ").next().unwrap().to_owned();
    let text = page.text();
    let csrf = text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let mut headers: Vec<(&str, &str)> = ALICE.to_vec();
    headers.push(("Cookie", &cookie));
    let r = post(
        &b,
        "/.vestibule/device",
        &headers,
        &form(&[
            ("csrf", &csrf),
            ("user_code", &user_code),
            ("decision", "allow"),
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Device signed in"), "{}", r.text());
    // Polled at A, after the announced interval.
    tokio::time::sleep(Duration::from_secs(j["interval"].as_u64().unwrap() + 1)).await;
    let t = tokens_ok(&token(&a, &poll).await);
    assert!(t["id_token"].as_str().is_some());
    assert!(active(&b, t["access_token"].as_str().unwrap()).await);
    // Presented again at B: refused, and the grant it issued is revoked.
    tokio::time::sleep(Duration::from_secs(j["interval"].as_u64().unwrap() + 1)).await;
    error_is(&token(&b, &poll).await, "invalid_grant");
    assert!(!active(&a, t["access_token"].as_str().unwrap()).await);
}
