//! RP-initiated logout at the provider (OpenID Connect RP-Initiated Logout
//! 1.0), in-process over the real SQLite store and key ring: with a valid
//! `id_token_hint` the session ends at once; without one the person is
//! asked (CSRF-checked); the post-logout redirect is followed only to a
//! registered URI, exactly, with `state`.

use std::collections::BTreeSet;
use std::time::Duration;

use vestibule::accounts::now_ms;
use vestibule::provider::id_token::{self, IdToken};
use vestibule_core::secret::hash_token;
use vestibule_jose::Algorithm;
use vestibule_store::provider::StoredOidcClient;

use super::provider_support::provider_gw;
use super::*;

const END: &str = "/.vestibule/oidc/end_session";
const CONFIRM: &str = "/.vestibule/oidc/end_session/confirm";
const ISSUER: &str = "https://sso.example.test";
const BYE: &str = "https://rp.example.test/bye";
const ALICE: [(&str, &str); 1] = [("Remote-User", "alice")];

/// The gateway, with `rp` registered in the store (as `vestibule clients
/// add` does) with one post-logout redirect URI.
async fn gw() -> Gw {
    let gw = provider_gw().await;
    gw.store()
        .create_oidc_client(&StoredOidcClient {
            client_id: "rp".into(),
            secret_hash: None,
            settings_json: format!(
                r#"{{"kind":"public","redirect_uris":["https://rp.example.test/cb"],"post_logout_redirect_uris":["{BYE}"]}}"#
            ),
            created_at: 1,
            updated_at: 1,
        })
        .await
        .unwrap();
    gw
}

/// An ID token for `user` issued to `client`, `age_s` seconds ago, valid
/// for 60 s.
async fn id_token_for(gw: &Gw, user: &str, client: &str, age_s: i64) -> String {
    let id = gw.account_id(user).await;
    let account = gw.store().account(id).await.unwrap().unwrap();
    let scopes: BTreeSet<String> = ["openid".to_owned()].into();
    let ring = gw.state.signing_keys.as_ref().unwrap();
    id_token::mint(
        ring,
        &IdToken {
            issuer: ISSUER,
            client_id: client,
            alg: Algorithm::RS256,
            account: &account,
            scopes: &scopes,
            nonce: None,
            auth_time_ms: now_ms(),
            session_ref: Some("s"),
            amr: &[],
            access_token: "at",
            now: now_ms() / 1000 - age_s,
            lifetime: Duration::from_secs(60),
        },
    )
    .unwrap()
}

fn query(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether the browser's session is still live in the store.
async fn live(gw: &Gw, b: &Browser) -> bool {
    gw.store()
        .session(&hash_token(b.token()))
        .await
        .unwrap()
        .is_some_and(|s| s.is_live(now_ms()))
}

#[tokio::test]
async fn a_valid_hint_ends_the_session_and_redirects_exactly() {
    let gw = gw().await;
    let b = Browser::open(&gw.app, "/.vestibule/account", &ALICE).await;
    // An expired hint is still a hint (§2): issued an hour ago.
    let hint = id_token_for(&gw, "alice", "rp", 3600).await;
    let r = b
        .call(
            "GET",
            &format!(
                "{END}?{}",
                query(&[
                    ("id_token_hint", &hint),
                    ("post_logout_redirect_uri", BYE),
                    ("state", "st&1")
                ])
            ),
        )
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("https://rp.example.test/bye?state=st%261")
    );
    assert!(r.cleared().is_some());
    assert!(!live(&gw, &b).await);

    // POST (form serialization) works the same; a URI that is not
    // registered exactly gets the "signed out" page, no redirect.
    let b = Browser::open(&gw.app, "/.vestibule/account", &ALICE).await;
    let r = b
        .call("POST", END)
        .form(&query(&[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", "https://rp.example.test/bye/"),
        ]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("location"), None);
    assert!(r.text().contains("signed out"), "{}", r.text());
    assert!(!live(&gw, &b).await);
}

#[tokio::test]
async fn without_a_hint_the_person_confirms() {
    let gw = gw().await;
    let b = Browser::open(&gw.app, "/.vestibule/account", &ALICE).await;
    let r = b
        .call(
            "GET",
            &format!(
                "{END}?{}",
                query(&[
                    ("client_id", "rp"),
                    ("post_logout_redirect_uri", BYE),
                    ("state", "s2")
                ])
            ),
        )
        .html()
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Sign out?"), "{}", r.text());
    assert!(live(&gw, &b).await, "nothing ends before the person agrees");
    let fields = query(&[
        ("client_id", "rp"),
        ("post_logout_redirect_uri", BYE),
        ("state", "s2"),
    ]);
    // A forged form (no or another CSRF token) ends nothing.
    for bad in ["", "csrf=nope&"] {
        let r = b
            .call("POST", CONFIRM)
            .form(&format!("{bad}{fields}"))
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(live(&gw, &b).await);
    }
    let r = b
        .call("POST", CONFIRM)
        .form(&format!("csrf={}&{fields}", b.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("https://rp.example.test/bye?state=s2")
    );
    assert!(!live(&gw, &b).await);

    // A hint for someone else is no proof either: asked again.
    let b = Browser::open(&gw.app, "/.vestibule/account", &ALICE).await;
    Browser::open(&gw.app, "/.vestibule/account", &[("Remote-User", "bob")]).await;
    let bobs = id_token_for(&gw, "bob", "rp", 0).await;
    let r = b
        .call(
            "GET",
            &format!("{END}?{}", query(&[("id_token_hint", &bobs)])),
        )
        .html()
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Sign out?"));
    assert!(live(&gw, &b).await);
}

#[tokio::test]
async fn bad_requests_get_a_page_and_end_nothing() {
    let gw = gw().await;
    let b = Browser::open(&gw.app, "/.vestibule/account", &ALICE).await;
    let hint = id_token_for(&gw, "alice", "rp", 0).await;
    let mut tampered = hint.clone();
    tampered.pop();
    tampered.push(if hint.ends_with('A') { 'B' } else { 'A' });
    let cases = [
        // Not our token.
        query(&[("id_token_hint", "a.b.c")]),
        query(&[("id_token_hint", &tampered)]),
        // §2: client_id must be the hint's audience.
        query(&[("id_token_hint", &hint), ("client_id", "web")]),
        // An unknown client.
        query(&[("client_id", "nobody"), ("post_logout_redirect_uri", BYE)]),
        // Ambiguous.
        format!("state=a&state=b&{}", query(&[("id_token_hint", &hint)])),
    ];
    for q in cases {
        let r = b
            .call("GET", &format!("{END}?{q}"))
            .html()
            .send(&gw.app)
            .await;
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.header("location"), None);
        assert!(live(&gw, &b).await, "{q}");
    }
    // A client without a registered URI: never redirected.
    let r = b
        .call(
            "GET",
            &format!(
                "{END}?{}",
                query(&[("client_id", "web"), ("post_logout_redirect_uri", BYE)])
            ),
        )
        .html()
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    let r = b
        .call("POST", CONFIRM)
        .form(&format!(
            "csrf={}&{}",
            b.csrf,
            query(&[("client_id", "web"), ("post_logout_redirect_uri", BYE)])
        ))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("location"), None);
    assert!(!live(&gw, &b).await);
    // Nobody signed in: nothing to end, the redirect still follows the
    // rules.
    let r = Call::get(&format!(
        "{END}?{}",
        query(&[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)])
    ))
    .send(&gw.app)
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(BYE));
}

/// The logout token (Back-Channel Logout 1.0 §2.4), as an RP verifies it
/// (core::oidc, the login mode's own checks) against the published JWK
/// Set: `typ` logout+jwt, both `sub` and `sid`, the event, no `nonce`,
/// `exp - iat` ≤ 120 s, a fresh `jti` each time.
#[tokio::test]
async fn logout_tokens_verify_as_an_rp_checks_them() {
    use vestibule::provider::backchannel::{LOGOUT_TOKEN_TYP, mint_logout_token};
    use vestibule_core::oidc::{LogoutTokenExpectations, verify_logout_token};
    use vestibule_jose::{Compact, Jwks};

    let gw = gw().await;
    let ring = gw.state.signing_keys.as_ref().unwrap();
    let jwks = Jwks::parse(ring.published().to_json().as_bytes()).unwrap();
    let now = now_ms() / 1000;
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let sid = id_token::sid("session-one");
        let mint = || mint_logout_token(ring, alg, ISSUER, "rp", "42", &sid, now).unwrap();
        let (a, b) = (mint(), mint());
        let expect = LogoutTokenExpectations {
            issuer: ISSUER,
            client_id: "rp",
            algorithms: &[alg],
            now,
            leeway: 0,
            max_age: 120,
            require_expiry: true,
            max_token_bytes: 16_384,
        };
        let header = Compact::parse(&a).unwrap().header().clone();
        assert_eq!(header["typ"], LOGOUT_TOKEN_TYP);
        assert_eq!(header["alg"], alg.as_str());
        let t = verify_logout_token(&a, &jwks, &expect).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(t.subject.as_deref(), Some("42"));
        assert_eq!(t.session_id.as_deref(), Some(sid.as_str()));
        assert!(t.expires_at.unwrap() - t.issued_at <= 120);
        let tb = verify_logout_token(&b, &jwks, &expect).unwrap();
        assert_ne!(t.token_id, tb.token_id, "a fresh jti per token");
    }
}
