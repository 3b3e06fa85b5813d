//! Back-Channel Logout 1.0, sent (issue 14), in-process over the real
//! SQLite store and key ring, to a real HTTP receiver on loopback
//! registered as a client's `backchannel_logout_uri`. Each way a session
//! (or a grant) ends is followed by a logout token that verifies against
//! the gateway's JWK Set, and by the grant's tokens being dead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vestibule::accounts::now_ms;
use vestibule::provider::backchannel::{LOGOUT_TOKEN_TYP, spawn_sender};
use vestibule::provider::id_token;
use vestibule_core::oidc::BACKCHANNEL_LOGOUT_EVENT;
use vestibule_core::secret::hash_token;
use vestibule_jose::{Algorithm, Compact, Policy};
use vestibule_store::provider::{NewAuthorizationCode, StoredOidcClient};

use super::provider_support::{
    CHALLENGE, ISSUER, SECRET, VERIFIER, WEB_CB, basic, form, jwks, provider_gw, sha256,
};
use super::*;

const INTROSPECT: &str = "/.vestibule/oidc/introspect";
const ALICE: [(&str, &str); 1] = [("Remote-User", "alice")];

/// A loopback RP: records each `logout_token` it is sent and answers with
/// the next scripted status (200 once the script runs out).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, String)>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(script: &[u16]) -> (Self, String) {
        let me = Self {
            got: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().rev().copied().collect())),
        };
        let state = me.clone();
        let app = axum::Router::new().route(
            "/bcl",
            axum::routing::post(move |headers: http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let ct = headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    state.got.lock().unwrap().push((ct, body));
                    let status = state.script.lock().unwrap().pop().unwrap_or(200);
                    http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (me, format!("http://{addr}/bcl"))
    }

    /// Waits (bounded) until `n` tokens came in; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..600 {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got
                    .into_iter()
                    .map(|(ct, body)| {
                        // §2.5: a form POST with one parameter.
                        assert_eq!(ct, "application/x-www-form-urlencoded");
                        let token = body.strip_prefix("logout_token=").expect("logout_token=");
                        percent_encoding::percent_decode_str(token)
                            .decode_utf8()
                            .unwrap()
                            .into_owned()
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "fewer than {n} logout tokens arrived: {:?}",
            self.got.lock().unwrap()
        );
    }
}

/// The provider gateway with `bcl` (confidential, ES256 ID tokens) whose
/// `backchannel_logout_uri` is `uri`, and its sender running.
async fn gw_with_receiver(uri: &str) -> (Gw, tokio::task::JoinHandle<()>) {
    let gw = provider_gw().await;
    gw.store()
        .create_oidc_client(&StoredOidcClient {
            client_id: "bcl".into(),
            secret_hash: Some(sha256(SECRET)),
            settings_json: format!(
                r#"{{"kind":"confidential","redirect_uris":["{WEB_CB}"],"id_token_alg":"ES256","backchannel_logout_uri":"{uri}"}}"#
            ),
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    let sender = spawn_sender(gw.state.clone()).expect("the sender starts");
    (gw, sender)
}

/// A signed-in browser for alice and tokens of `bcl` from its session:
/// (browser, session_ref, access token, refresh token).
async fn signed_in_with_tokens(gw: &Gw) -> (Browser, String, String, String) {
    let b = Browser::open(&gw.app, "/.vestibule/account", &ALICE).await;
    let session_ref = vestibule_store::hex(&hash_token(b.token()));
    let (access, refresh) = tokens_from(gw, &session_ref).await;
    (b, session_ref, access, refresh)
}

/// Redeems a fresh code of alice's at `bcl`, from the session `session_ref`.
async fn tokens_from(gw: &Gw, session_ref: &str) -> (String, String) {
    let account = gw.account_id("alice").await;
    let code = format!("code-{}", rand::random::<u64>());
    let now = now_ms();
    gw.store()
        .create_authorization_code(&NewAuthorizationCode {
            code_hash: sha256(&code),
            client_id: "bcl".into(),
            account_id: account,
            redirect_uri: WEB_CB.into(),
            scopes: "offline_access openid".into(),
            nonce: None,
            code_challenge: Some(CHALLENGE.into()),
            session_ref: Some(session_ref.into()),
            auth_time: now,
            amr: vec![],
            created_at: now,
            expires_at: now + 60_000,
        })
        .await
        .unwrap();
    let r = Call::post("/.vestibule/oidc/token")
        .header("Authorization", &basic("bcl", SECRET))
        .form(&form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    (
        j["access_token"].as_str().unwrap().to_owned(),
        j["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Verifies a logout token as an RP would, against the gateway's JWK Set;
/// returns its claims.
async fn verified(gw: &Gw, token: &str, session_ref: &str) -> BTreeMap<String, serde_json::Value> {
    let (set, _) = jwks(gw).await;
    let v = Compact::parse(token)
        .unwrap()
        .verify(
            &set,
            &Policy {
                algorithms: &[Algorithm::ES256],
                types: &[LOGOUT_TOKEN_TYP],
                type_required: true,
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(v.header()["typ"], LOGOUT_TOKEN_TYP);
    assert_eq!(v.header()["alg"], "ES256");
    let c: BTreeMap<String, serde_json::Value> = v.claims_object().unwrap().into_iter().collect();
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], "bcl");
    let (iat, exp) = (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap());
    assert!((now_ms() / 1000 - iat).abs() < 60, "iat {iat}");
    assert!(exp > iat && exp - iat <= 120);
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 32));
    assert_eq!(
        c["events"],
        serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} })
    );
    assert_eq!(c["sid"], id_token::sid(session_ref));
    assert_eq!(c["sub"], gw.account_id("alice").await.to_string());
    assert!(!c.contains_key("nonce"));
    c
}

/// The tokens of the ended grant are dead: the refresh token gets
/// `invalid_grant`, the access token is inactive at introspection.
async fn tokens_are_dead(gw: &Gw, access: &str, refresh: &str) {
    let r = Call::post("/.vestibule/oidc/token")
        .header("Authorization", &basic("bcl", SECRET))
        .form(&form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
        ]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_grant");
    let r = Call::post(INTROSPECT)
        .header("Authorization", &basic("bcl", SECRET))
        .form(&form(&[("token", access)]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({ "active": false }));
}

async fn outbox_len(gw: &Gw) -> usize {
    gw.store().backchannel_logouts().await.unwrap().len()
}

/// Waits (bounded) until the outbox is empty.
async fn outbox_drains(gw: &Gw) {
    for _ in 0..600 {
        if outbox_len(gw).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{:?}", gw.store().backchannel_logouts().await.unwrap());
}

#[tokio::test]
async fn every_way_a_session_ends_tells_the_app_and_kills_its_tokens() {
    let (rp, uri) = Receiver::start(&[]).await;
    let (gw, sender) = gw_with_receiver(&uri).await;
    let mut jtis = Vec::new();
    let mut seen = 0;
    let mut check = async |gw: &Gw, session_ref: &str, access: &str, refresh: &str| {
        seen += 1;
        let got = rp.wait_for(seen).await;
        let claims = verified(gw, &got[seen - 1], session_ref).await;
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
        tokens_are_dead(gw, access, refresh).await;
        outbox_drains(gw).await;
    };

    // Logout from the pages.
    let (b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    let r = b.call("GET", "/.vestibule/logout").send(&gw.app).await;
    assert!(r.status < 400, "{}", r.text());
    check(&gw, &sref, &access, &refresh).await;

    // An admin revokes every session of the account (the CLI's `sessions
    // revoke` and the admin page's call).
    let (_b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    let alice = gw.account_id("alice").await;
    assert_eq!(gw.store().revoke_sessions_of(alice).await.unwrap(), 1);
    check(&gw, &sref, &access, &refresh).await;

    // One session revoked by id (the sessions page).
    let (b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    assert!(
        gw.store()
            .revoke_session(&hash_token(b.token()))
            .await
            .unwrap()
    );
    check(&gw, &sref, &access, &refresh).await;

    // Expiry: the housekeeping purge ends lapsed sessions.
    let (_b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    let far = now_ms() + 365 * 86_400_000;
    assert!(gw.store().purge_expired_sessions(far).await.unwrap() >= 1);
    check(&gw, &sref, &access, &refresh).await;

    // The grant revoked on its own (the Apps page): told too, while the
    // session goes on.
    let (b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    let grant = gw.store().grants_of(alice).await.unwrap().pop().unwrap();
    assert!(
        gw.store()
            .revoke_grant(grant.id, Some(alice))
            .await
            .unwrap()
    );
    check(&gw, &sref, &access, &refresh).await;
    assert!(
        gw.store()
            .session(&hash_token(b.token()))
            .await
            .unwrap()
            .is_some()
    );

    // Account disabled by the admin: its sessions end.
    let (_b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    let account = gw.store().account(alice).await.unwrap().unwrap();
    vestibule::accounts::admin::set_status(
        gw.store().as_ref(),
        &account,
        vestibule::accounts::admin::StatusAction::Disable,
        &vestibule::accounts::admin::Actor {
            name: "cli:root".into(),
            client_ip: None,
            note: String::new(),
            guard: None,
        },
    )
    .await
    .unwrap();
    check(&gw, &sref, &access, &refresh).await;

    let mut unique = jtis.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), jtis.len());
    sender.abort();
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_a_fresh_token_each_time() {
    let (rp, uri) = Receiver::start(&[500, 500]).await;
    let (gw, sender) = gw_with_receiver(&uri).await;
    let (b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    b.call("GET", "/.vestibule/logout").send(&gw.app).await;
    // Delivered on the third attempt (after 1 s, then 2 s of backoff).
    let got = rp.wait_for(3).await;
    let mut jtis = Vec::new();
    for t in &got {
        jtis.push(verified(&gw, t, &sref).await["jti"].clone());
    }
    assert!(jtis[0] != jtis[1] && jtis[1] != jtis[2] && jtis[0] != jtis[2]);
    outbox_drains(&gw).await;
    tokens_are_dead(&gw, &access, &refresh).await;
    let failed = gw
        .store()
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some("backchannel-logout".into()),
            subject: None,
            limit: 100,
        })
        .await
        .unwrap();
    let outcomes: Vec<&str> = failed.iter().rev().map(|e| e.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "sent"]);
    sender.abort();
}

#[tokio::test]
async fn the_row_is_on_disk_when_logout_answers_and_waits_for_a_receiver_that_is_down() {
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (gw, sender) = gw_with_receiver(&format!("http://{dead}/bcl")).await;
    sender.abort();
    let (b, sref, access, refresh) = signed_in_with_tokens(&gw).await;
    b.call("GET", "/.vestibule/logout").send(&gw.app).await;
    // No sender runs: the notification is in the store already.
    let rows = gw.store().backchannel_logouts().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].client_id.as_str(), rows[0].session_ref.as_str()),
        ("bcl", sref.as_str())
    );
    tokens_are_dead(&gw, &access, &refresh).await;
    // A sender against a receiver that is down: the row stays, retried.
    let sender = spawn_sender(gw.state.clone()).unwrap();
    for _ in 0..200 {
        let rows = gw.store().backchannel_logouts().await.unwrap();
        if rows[0].attempts >= 2 {
            assert!(rows[0].last_error.is_some());
            assert!(rows[0].next_attempt_at > now_ms() - 5_000);
            sender.abort();
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "not retried: {:?}",
        gw.store().backchannel_logouts().await.unwrap()
    );
}
