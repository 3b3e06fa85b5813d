//! The provider's access tokens at the gate on two real gateways sharing
//! one real PostgreSQL (issue 14): a token cached at B and revoked at A,
//! or whose account is disabled, is refused at B within 1 s. No speed is
//! asserted beyond that functional bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use vestibule_store::provider::NewAuthorizationCode;
use vestibule_store::testkit;
use vestibule_store::{AccountStatus, IdentityKey, NewAccount, Store, StoreConfig};

use crate::support::*;

const SECRET: &str = "cli-secret";
const CB: &str = "https://app.test/cb";

fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref(),
    );
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn gateway_config(url: &str, upstream: std::net::SocketAddr) -> String {
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\nurl = \"{url}\"\n\n[accounts]\n\n\
         [oidc_provider]\nissuer = \"https://sso.example.test\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"cli\"\nkind = \"confidential\"\nsecret_sha256 = \"{}\"\n\
         redirect_uris = [\"{CB}\"]\nrequire_pkce = false\n",
        hex(&sha256(SECRET))
    );
    config(
        &src,
        &route(
            "api",
            "/",
            upstream,
            "access_tokens = { clients = [\"cli\"] }",
        ),
    )
}

/// A POST of a form with the client's Basic credentials.
async fn post_form(gw: &Gateway, path: &str, body: &str) -> Raw {
    let auth = format!("Basic {}", STANDARD.encode(format!("cli:{SECRET}")));
    let mut r = request(
        "POST",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Content-Length", &body.len().to_string()),
        ],
    );
    r.extend_from_slice(body.as_bytes());
    Raw::send(gw.addr, TRUSTED, &r).await
}

/// A code stored as authorize would store it, redeemed at `gw`'s real
/// token endpoint: the access token.
async fn token_via(gw: &Gateway, store: &Arc<dyn Store>, account: i64) -> String {
    let code = format!(
        "code-{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    );
    let now = vestibule::accounts::now_ms();
    store
        .create_authorization_code(&NewAuthorizationCode {
            code_hash: sha256(&code),
            client_id: "cli".into(),
            account_id: account,
            redirect_uri: CB.into(),
            scopes: "openid".into(),
            nonce: None,
            code_challenge: None,
            session_ref: None,
            auth_time: now,
            amr: vec!["pwd".into()],
            created_at: now,
            expires_at: now + 60_000,
        })
        .await
        .unwrap();
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        percent_encoding::utf8_percent_encode(CB, percent_encoding::NON_ALPHANUMERIC)
    );
    let r = post_form(gw, "/.vestibule/oidc/token", &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    j["access_token"].as_str().unwrap().to_owned()
}

async fn with_token(gw: &Gateway, token: &str) -> u16 {
    let auth = format!("Bearer {token}");
    Raw::get(gw.addr, TRUSTED, "/x", &[("Authorization", &auth)])
        .await
        .status
}

/// Polls `gw` until the token is refused (401), for at most 1 s.
async fn refused_within_a_second(gw: &Gateway, token: &str) {
    let started = Instant::now();
    loop {
        match with_token(gw, token).await {
            401 => return,
            200 => {}
            s => panic!("unexpected {s}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still accepted 1 s after the change"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_disable_at_one_gateway_reach_the_other_within_a_second() {
    let url = tokio::task::spawn_blocking(testkit::postgres_url)
        .await
        .unwrap();
    let up = start_whoami().await;
    let text = gateway_config(&url, up);
    let a = Gateway::start_in(tempfile::tempdir().unwrap(), &text, &[]).await;
    let b = Gateway::start_in(tempfile::tempdir().unwrap(), &text, &[]).await;
    let store: Arc<dyn Store> = vestibule_store::open(&StoreConfig::new(url.clone()))
        .await
        .unwrap();
    let uid = format!("u-{}", rand::random::<u32>());
    let ann = store
        .create_account(NewAccount {
            key: IdentityKey::new("authentik", &uid),
            username: format!("ann-{uid}"),
            email: None,
            display_name: None,
            groups: vec![],
            org: None,
            status: AccountStatus::Active,
            now: vestibule::accounts::now_ms(),
        })
        .await
        .unwrap()
        .id;

    // Minted at A, cached at B, revoked at A (RFC 7009).
    let t = token_via(&a, &store, ann).await;
    assert_eq!(with_token(&b, &t).await, 200);
    assert_eq!(with_token(&b, &t).await, 200);
    let r = post_form(&a, "/.vestibule/oidc/revoke", &format!("token={t}")).await;
    assert_eq!(r.status, 200);
    refused_within_a_second(&b, &t).await;

    // Another token, cached at both; the account disabled elsewhere.
    let t = token_via(&a, &store, ann).await;
    assert_eq!(with_token(&a, &t).await, 200);
    assert_eq!(with_token(&b, &t).await, 200);
    assert!(
        store
            .set_status(ann, AccountStatus::Disabled, vestibule::accounts::now_ms())
            .await
            .unwrap()
    );
    refused_within_a_second(&b, &t).await;
    refused_within_a_second(&a, &t).await;
}
