//! The device authorization grant (RFC 8628), in-process against a real
//! SQLite store: the device authorization endpoint, the verification page
//! (signed in through the trusted front, CSRF-checked), and the token
//! endpoint's device-code arm (pending, slow_down, denial, expiry,
//! one-time redemption), with the wrong-code limiter.

use vestibule_jose::Algorithm;
use vestibule_store::AccountStatus;
use vestibule_store::provider::NewDeviceCode;

use super::provider_support::{
    account, basic, form, oauth_error, post_token, provider_gw, sha256, tokens_ok, verify,
};
use super::*;

const DEVICE_AUTHZ: &str = "/.vestibule/oidc/device_authorization";
const PAGE: &str = "/.vestibule/device";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SECRET: &str = "web-secret";

async fn device_authorization(gw: &Gw, auth: Option<&str>, pairs: &[(&str, &str)]) -> Resp {
    let mut call = Call::post(DEVICE_AUTHZ).form(&form(pairs));
    if let Some(a) = auth {
        call = call.header("Authorization", a);
    }
    call.send(&gw.app).await
}

async fn poll(gw: &Gw, device_code: &str) -> Resp {
    post_token(
        gw,
        None,
        &[
            ("grant_type", GRANT),
            ("client_id", "tv"),
            ("device_code", device_code),
        ],
    )
    .await
}

/// Moves a device code's previous poll far back, as if the client had
/// waited its interval (the test does not sleep).
async fn waited(gw: &Gw, device_code: &str) {
    let h = sha256(device_code);
    let d = gw.store().device_code(&h).await.unwrap().unwrap();
    assert!(
        gw.store()
            .record_device_poll(&h, d.last_poll_at, 0, d.code.interval_ms)
            .await
            .unwrap()
    );
}

fn identity(user: &str) -> [(&str, &str); 1] {
    [("Remote-User", user)]
}

async fn browser(gw: &Gw, user: &str) -> Browser {
    Browser::open(&gw.app, "/.vestibule/account", &identity(user)).await
}

async fn submit(gw: &Gw, b: &Browser, fields: &[(&str, &str)]) -> Resp {
    let mut pairs = vec![("csrf", b.csrf.as_str())];
    pairs.extend_from_slice(fields);
    b.call("POST", PAGE).form(&form(&pairs)).send(&gw.app).await
}

#[tokio::test]
async fn the_device_flow_end_to_end_with_pending_slow_down_and_one_redemption() {
    let gw = provider_gw().await;
    let alice = account(&gw, "alice", &["users"]).await;
    let r = device_authorization(
        &gw,
        None,
        &[
            ("client_id", "tv"),
            ("scope", "openid offline_access profile"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let j = r.json();
    let device_code = j["device_code"].as_str().unwrap().to_owned();
    let user_code = j["user_code"].as_str().unwrap().to_owned();
    // §6.1: 8 letters of the base-20 alphabet, shown XXXX-XXXX.
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .replace('-', "")
            .bytes()
            .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b))
    );
    assert!(device_code.len() >= 43);
    assert_eq!(
        j["verification_uri"],
        "https://sso.example.test/.vestibule/device"
    );
    assert_eq!(
        j["verification_uri_complete"],
        format!("https://sso.example.test/.vestibule/device?user_code={user_code}")
    );
    assert_eq!(
        (j["expires_in"].as_i64(), j["interval"].as_i64()),
        (Some(600), Some(5))
    );
    // Only digests are stored.
    let stored = gw
        .store()
        .device_code(&sha256(&device_code))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.code.user_code_hash,
        sha256(&user_code.replace('-', ""))
    );

    // Nobody answered yet; polling again at once is slow_down, and the
    // interval grows by 5 s each time (§3.5).
    oauth_error(&poll(&gw, &device_code).await, 400, "authorization_pending");
    oauth_error(&poll(&gw, &device_code).await, 400, "slow_down");
    oauth_error(&poll(&gw, &device_code).await, 400, "slow_down");
    let d = gw
        .store()
        .device_code(&sha256(&device_code))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.code.interval_ms, 15_000);

    // The page, from verification_uri_complete: prefilled, nothing approved
    // by following the link (§5.4).
    let b = browser(&gw, "alice").await;
    let r = b
        .call("GET", &format!("{PAGE}?user_code={user_code}"))
        .html()
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(&format!("value=\"{user_code}\"")),
        "{}",
        r.text()
    );
    waited(&gw, &device_code).await;
    oauth_error(&poll(&gw, &device_code).await, 400, "authorization_pending");
    // Typed in lower case without the dash: the confirmation names the
    // client and the scopes.
    let typed = user_code.replace('-', "").to_lowercase();
    let r = submit(&gw, &b, &[("user_code", &typed)]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let page = r.text();
    assert!(
        page.contains("Allow Living-room TV on your device?"),
        "{page}"
    );
    assert!(page.contains("Your name and user name"), "{page}");
    assert!(page.contains(&user_code));
    // Without the CSRF token, nothing.
    let r = b
        .call("POST", PAGE)
        .form(&form(&[
            ("csrf", "x"),
            ("user_code", &typed),
            ("decision", "allow"),
        ]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = submit(&gw, &b, &[("user_code", &typed), ("decision", "allow")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Device signed in"));

    waited(&gw, &device_code).await;
    let j = tokens_ok(&poll(&gw, &device_code).await);
    assert!(j["refresh_token"].as_str().is_some());
    let claims = verify(
        &gw,
        j["id_token"].as_str().unwrap(),
        Algorithm::RS256,
        "JWT",
    )
    .await;
    assert_eq!(claims["aud"], "tv");
    assert_eq!(claims["preferred_username"], "alice");
    assert!(!claims.contains_key("nonce"));
    let grants = gw.store().grants_of(alice).await.unwrap();
    assert_eq!(grants.len(), 1);
    // Redeemed once.
    waited(&gw, &device_code).await;
    oauth_error(&poll(&gw, &device_code).await, 400, "invalid_grant");
    // Answered once: the code is no longer waiting.
    let r = submit(&gw, &b, &[("user_code", &typed), ("decision", "deny")]).await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test]
async fn denial_expiry_and_client_rules() {
    let gw = provider_gw().await;
    account(&gw, "bob", &["users"]).await;
    // A client without the grant, a confidential client without its
    // secret, a scope the client does not have.
    let r = device_authorization(&gw, Some(&basic("web", SECRET)), &[("scope", "openid")]).await;
    oauth_error(&r, 400, "unauthorized_client");
    let r = device_authorization(&gw, None, &[("client_id", "tvstaff")]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = device_authorization(
        &gw,
        None,
        &[("client_id", "tv"), ("scope", "openid api.write")],
    )
    .await;
    oauth_error(&r, 400, "invalid_scope");
    // A client that may not use the grant at the token endpoint either.
    let r = post_token(
        &gw,
        Some(&basic("web", SECRET)),
        &[("grant_type", GRANT), ("device_code", "x")],
    )
    .await;
    oauth_error(&r, 400, "unauthorized_client");

    // Denied.
    let j = device_authorization(&gw, None, &[("client_id", "tv")])
        .await
        .json();
    let dc = j["device_code"].as_str().unwrap().to_owned();
    let b = browser(&gw, "bob").await;
    let r = submit(
        &gw,
        &b,
        &[
            ("user_code", j["user_code"].as_str().unwrap()),
            ("decision", "deny"),
        ],
    )
    .await;
    assert!(r.text().contains("Sign-in denied"), "{}", r.text());
    oauth_error(&poll(&gw, &dc).await, 400, "access_denied");

    // Expired (§3.5 expired_token), and not shown on the page.
    let now = vestibule::accounts::now_ms();
    gw.store()
        .create_device_code(&NewDeviceCode {
            device_code_hash: sha256("vdc_expired"),
            user_code_hash: sha256("BBBBCCCC"),
            client_id: "tv".into(),
            scopes: "openid".into(),
            interval_ms: 5_000,
            created_at: now - 700_000,
            expires_at: now - 100_000,
        })
        .await
        .unwrap();
    oauth_error(&poll(&gw, "vdc_expired").await, 400, "expired_token");
    let r = submit(&gw, &b, &[("user_code", "bbbb-cccc")]).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("No device is waiting for this code"),
        "{}",
        r.text()
    );
    // An unknown device code, or another client's.
    oauth_error(&poll(&gw, "vdc_nothing").await, 400, "invalid_grant");
}

#[tokio::test]
async fn group_restricted_clients_disabled_users_and_the_wrong_code_limit() {
    let gw = provider_gw().await;
    account(&gw, "carol", &["users"]).await;
    account(&gw, "dave", &["users"]).await;
    let j = device_authorization(&gw, Some(&basic("tvstaff", SECRET)), &[])
        .await
        .json();
    let staff_code = j["user_code"].as_str().unwrap().to_owned();
    let b = browser(&gw, "carol").await;
    let r = submit(&gw, &b, &[("user_code", &staff_code)]).await;
    assert_eq!(r.status, 403, "{}", r.text());

    let j = device_authorization(&gw, None, &[("client_id", "tv")])
        .await
        .json();
    let code = j["user_code"].as_str().unwrap().to_owned();
    let d = browser(&gw, "dave").await;
    set_status(&gw, "dave", AccountStatus::Disabled).await;
    let r = submit(&gw, &d, &[("user_code", &code), ("decision", "allow")]).await;
    assert_ne!(r.status, 200, "{}", r.text());

    // §5.1: wrong codes are limited per account (and per address); the
    // message says what happened, and a right code is refused too while
    // blocked.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(submit(&gw, &b, &[("user_code", "ZZZZ-ZZZZ")]).await.status);
    }
    assert_eq!(&statuses[..5], &[400; 5], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    let r = submit(&gw, &b, &[("user_code", &code)]).await;
    assert_eq!(r.status, 429);
    assert!(r.text().contains("Too many wrong codes"), "{}", r.text());
}

/// Approves a fresh device code of `tv` for `user` and redeems it: the
/// device code and the token response.
async fn approved_and_redeemed(gw: &Gw, user: &str) -> (String, serde_json::Value) {
    let r = device_authorization(
        gw,
        None,
        &[("client_id", "tv"), ("scope", "openid offline_access")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let device_code = j["device_code"].as_str().unwrap().to_owned();
    let user_code = j["user_code"].as_str().unwrap().to_owned();
    let b = browser(gw, user).await;
    let r = submit(gw, &b, &[("user_code", &user_code), ("decision", "allow")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let tokens = tokens_ok(&poll(gw, &device_code).await);
    (device_code, tokens)
}

/// A redeemed device code presented again revokes the grant it issued,
/// with every token of it, as a replayed authorization code does (RFC 6749
/// §4.1.2). Before the fix the tokens lived on.
#[tokio::test]
async fn a_redeemed_device_code_presented_again_revokes_its_grant() {
    let gw = provider_gw().await;
    let alice = account(&gw, "alice", &["users"]).await;
    let (device_code, j) = approved_and_redeemed(&gw, "alice").await;
    assert_eq!(gw.store().grants_of(alice).await.unwrap().len(), 1);
    waited(&gw, &device_code).await;
    oauth_error(&poll(&gw, &device_code).await, 400, "invalid_grant");
    assert!(gw.store().grants_of(alice).await.unwrap().is_empty());
    let access = j["access_token"].as_str().unwrap();
    let r = Call::get("/.vestibule/oidc/userinfo")
        .header("Authorization", &format!("Bearer {access}"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = post_token(
        &gw,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "tv"),
            ("refresh_token", j["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_grant");
}

/// `device_code_lifetime` and `device_poll_interval` are settings: the
/// response announces them and the stored code keeps them.
#[tokio::test]
async fn device_lifetimes_come_from_the_settings() {
    let gw = super::provider_support::provider_gw_of(&accounts_config(
        "auto",
        "[oidc_provider]\nissuer = \"https://sso.example.test\"\n\
         device_code_lifetime = \"2m\"\ndevice_poll_interval = \"7s\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"tv\"\nkind = \"public\"\n\
         grants = [\"device_code\"]\n",
        "",
    ))
    .await;
    let r = device_authorization(&gw, None, &[("client_id", "tv")]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        (j["expires_in"].as_i64(), j["interval"].as_i64()),
        (Some(120), Some(7))
    );
    let d = gw
        .store()
        .device_code(&sha256(j["device_code"].as_str().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.code.interval_ms, 7_000);
    assert_eq!(d.code.expires_at - d.code.created_at, 120_000);
}

/// `verification_uri_complete` as a QR code: the picture of exactly that
/// URI for the code the device got, however the code is spelled; a
/// malformed code is a 400; nothing tells whether a code is live.
#[tokio::test]
async fn the_qr_code_shows_verification_uri_complete() {
    let gw = provider_gw().await;
    let j = device_authorization(&gw, None, &[("client_id", "tv")])
        .await
        .json();
    let shown = j["user_code"].as_str().unwrap();
    let complete = j["verification_uri_complete"].as_str().unwrap();
    let app = &gw.app;
    let qr = |code: String| async move {
        Call::get(&format!("/.vestibule/oidc/device_qr.svg?user_code={code}"))
            .send(app)
            .await
    };
    let r = qr(shown.to_owned()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'")
    );
    // The same picture the qrcode crate draws of verification_uri_complete.
    let expected = qrcode::QrCode::new(complete.as_bytes())
        .unwrap()
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    assert_eq!(r.text(), &expected[expected.find("<svg").unwrap()..]);
    // Typed in lowercase without its dash: the same code, the same picture.
    let typed = shown.replace('-', "").to_lowercase();
    assert_eq!(qr(typed).await.body, r.body);
    // A code nobody was given still gets its picture (no probing)...
    assert_eq!(qr("BCDF-GHJK".into()).await.status, 200);
    // ...a malformed one is a 400, and a missing one too.
    for bad in ["AEIO-UAEI", "BCDF", "BCDF-GHJK-LM", "%3Cscript%3E"] {
        assert_eq!(qr(bad.into()).await.status, 400, "{bad}");
    }
    let r = Call::get("/.vestibule/oidc/device_qr.svg")
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400);
}
