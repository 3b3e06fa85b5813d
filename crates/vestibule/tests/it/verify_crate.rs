//! `vestibule-verify` round trip: the crate's example app (an axum app
//! behind `AssertionLayer`, fetching the gateway's `/.vestibule/jwks.json`)
//! is the upstream of a real gateway. Through the gateway, it greets the
//! user the gateway vouches for; straight to the app, or with an assertion
//! for another audience, it answers 401. The same holds for each signing
//! algorithm `[keys] algorithm` selects.

use std::path::Path;

use serde_json::Value;
use tokio::net::TcpListener;
use vestibule_verify::{Algorithm, Policy, Verifier};

use crate::support::*;
use crate::whoami_app;

const ISSUER: &str = "https://sso.example.test";

fn gateway_config(data: &Path, upstream: std::net::SocketAddr, algorithm: Algorithm) -> String {
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n\n\
         [keys]\nalgorithm = \"{}\"\n\n\
         [assertions]\nissuer = \"{ISSUER}\"\n",
        data.display(),
        algorithm.as_str()
    );
    let routes = format!(
        "{}{}",
        route(
            "app",
            "/",
            upstream,
            "host = \"app.test\"\nassertion = true"
        ),
        route(
            "elsewhere",
            "/elsewhere",
            upstream,
            "host = \"app.test\"\nassertion = true\nassertion_audience = \"urn:another-app\""
        ),
    );
    config(&src, &routes)
}

const ALICE: [(&str, &str); 5] = [
    ("X-authentik-uid", "a-1"),
    ("X-authentik-username", "alice"),
    ("X-authentik-email", "alice@example.com"),
    ("X-authentik-name", "Alice A"),
    ("X-authentik-groups", "admins|users"),
];

#[tokio::test]
async fn the_example_app_greets_the_user_the_gateway_vouches_for() {
    greets_the_user_with(Algorithm::ES256).await;
}

#[tokio::test]
async fn rs256_is_selectable_and_verifies() {
    greets_the_user_with(Algorithm::RS256).await;
}

#[tokio::test]
async fn eddsa_is_selectable_and_verifies() {
    greets_the_user_with(Algorithm::EdDSA).await;
}

/// The round trip with the gateway signing with `algorithm`. The app's
/// verifier accepts that algorithm only, so a greeting proves the
/// assertion's header `alg` is the one configured (vestibule-verify
/// checks `alg` against its list before looking at the key, RFC 8725 §3.1).
async fn greets_the_user_with(algorithm: Algorithm) {
    // The app's socket first (the gateway needs its address), the app
    // itself once the gateway's key URL is known.
    let app_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app_listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, &gateway_config(&data, app_addr, algorithm), &[]).await;
    // The published set holds keys of the chosen algorithm only.
    let set = Raw::get(gw.addr, TRUSTED, "/.vestibule/jwks.json", &[])
        .await
        .json();
    let algs: Vec<&Value> = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["alg"])
        .collect();
    assert!(!algs.is_empty());
    assert!(algs.iter().all(|a| *a == algorithm.as_str()), "{algs:?}");
    let verifier = Verifier::fetch(
        &format!("http://{}/.vestibule/jwks.json", gw.addr),
        Policy::new(ISSUER, "app.test").with_algorithms(&[algorithm]),
    )
    .unwrap();
    tokio::spawn(async move { axum::serve(app_listener, whoami_app::app(verifier)).await });

    // Through the gateway: verified, greeted. A client's own assertion is
    // dropped by the gateway, so it changes nothing.
    let mut headers = ALICE.to_vec();
    headers.push(("X-Vestibule-Assertion", "forged"));
    let r = Raw::get(gw.addr, TRUSTED, "/hello", &headers).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let who = r.json();
    assert_eq!(who["greeting"], "Hello, Alice A!");
    assert_eq!(who["subject"], "a-1");
    assert_eq!(who["username"], "alice");
    assert_eq!(who["email"], "alice@example.com");
    assert_eq!(who["groups"], serde_json::json!(["admins", "users"]));
    assert_eq!(who["auth_method"], "header");
    assert_eq!(who["device_id"], serde_json::Value::Null);

    // Straight to the app, with identity headers and a made-up assertion:
    // the app believes neither.
    for extra in [None, Some(("X-Vestibule-Assertion", "forged"))] {
        let mut headers = ALICE.to_vec();
        headers.extend(extra);
        let r = Raw::get(app_addr, TRUSTED, "/hello", &headers).await;
        assert_eq!(
            (r.status, r.text()),
            (401, "invalid assertion\n".to_owned())
        );
    }

    // A genuine assertion, but for another app's audience: refused.
    let r = Raw::get(gw.addr, TRUSTED, "/elsewhere/hello", &ALICE).await;
    assert_eq!(
        (r.status, r.text()),
        (401, "invalid assertion\n".to_owned())
    );
}
