//! The devices pages (create, revoke, admin revoke), pairing from the
//! browser's side (start, status, decide) and the device's side (claim,
//! poll), and a device credential through forward-auth.

use vestibule_core::credential::device_token;
use vestibule_core::secret::hash_token;
use vestibule_store::NewDevice;

use super::*;

const DEVICES: &str = "/.vestibule/devices";
const NEW: &str = "/.vestibule/devices/new";
const REVOKE: &str = "/.vestibule/devices/revoke";
const ADMIN_REVOKE: &str = "/.vestibule/admin/devices/revoke";
const PAIR_START: &str = "/.vestibule/devices/pair";
const CLAIM: &str = "/.vestibule/pair";
const POLL: &str = "/.vestibule/pair/poll";

/// Auto provisioning; `api` takes Bearer and the custom header, `media` the
/// query parameter, `music` Basic, `secret` Bearer for admins only, `plain`
/// no credential.
fn devices_config(sections: &str) -> String {
    let routes = [
        route(
            "api",
            "/api",
            NO_UPSTREAM,
            "credentials = [\"bearer\", \"header\"]",
        ),
        route("media", "/media", NO_UPSTREAM, "credentials = [\"query\"]"),
        route("music", "/music", NO_UPSTREAM, "credentials = [\"basic\"]"),
        route(
            "secret",
            "/secret",
            NO_UPSTREAM,
            "credentials = [\"bearer\"]\nallow_groups = [\"admins\"]",
        ),
        route("plain", "/plain", NO_UPSTREAM, ""),
    ]
    .concat();
    accounts_config("auto", sections, &routes)
}

const ALICE: [(&str, &str); 1] = [("Remote-User", "alice")];
const MALLORY: [(&str, &str); 1] = [("Remote-User", "mallory")];
const ROOT: [(&str, &str); 2] = [("Remote-User", "root"), ("Remote-Groups", "admins")];

/// A device of `user` on `routes`, made in the store as the page would,
/// and its secret.
async fn device(gw: &Gw, user: &str, routes: &[&str]) -> (i64, String) {
    let token = device_token(rand::random()).expose().to_owned();
    let d = gw
        .store()
        .create_device(&NewDevice {
            account_id: gw.account_id(user).await,
            name: "phone".into(),
            kind: "token".into(),
            routes: routes.iter().map(|r| (*r).to_owned()).collect(),
            secret_hash: hash_token(&token),
            basic_user: Some(user.into()),
            created_at: vestibule::accounts::now_ms(),
            expires_at: None,
        })
        .await
        .unwrap();
    (d.id, token)
}

async fn exists(gw: &Gw, id: i64) -> bool {
    gw.store().device(id).await.unwrap().is_some()
}

/// A JSON answer of the device endpoints: the error code, and the headers
/// every answer under `/.vestibule/` carries.
#[track_caller]
fn json_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["error"], error, "{}", r.text());
    r.assert_page_headers();
}

#[tokio::test]
async fn the_devices_page_offers_only_routes_the_person_may_give() {
    let gw = Gw::new(&devices_config("")).await;
    let r = Call::get(DEVICES).headers(&ALICE).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_page_headers();
    session_pair(r.new_session().unwrap(), false);
    let html = r.text();
    assert!(html.contains("You have no devices yet"));
    assert!(html.contains("value=\"api\"") && html.contains("value=\"media\""));
    // No credentials there, or a policy alice does not pass.
    assert!(!html.contains("value=\"plain\"") && !html.contains("value=\"secret\""));
    let r = Call::get(DEVICES).headers(&ROOT).send(&gw.app).await;
    assert!(r.text().contains("value=\"secret\""));
}

#[tokio::test]
async fn creating_a_device_needs_the_token_and_a_valid_form() {
    let gw = Gw::new(&devices_config("")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let create = |body: String| b.call("POST", NEW).form(&body).send(&gw.app);
    let form = "name=Phone&kind=token&route=api&expires_days=0";
    // Without, with an empty, or with a wrong token: 403, nothing made.
    for csrf in [String::new(), "csrf=&".into(), format!("csrf={}x&", b.csrf)] {
        let r = create(format!("{csrf}{form}")).await;
        assert_eq!(r.status, 403, "{csrf}");
        r.assert_page_headers();
    }
    assert!(gw.store().devices_of(None).await.unwrap().is_empty());
    // A bad form: 400, with the reason.
    for (bad, why) in [
        (
            "name=&kind=token&route=api&expires_days=0",
            "Give the device a name",
        ),
        ("name=P&kind=token&expires_days=0", "Pick at least one app"),
        ("name=P&kind=token&route=plain&expires_days=0", "`plain`"),
        ("name=P&kind=token&route=secret&expires_days=0", "`secret`"),
        ("name=P&kind=root&route=api&expires_days=0", "Unknown kind"),
        // The kind must be one the apps take.
        (
            "name=P&kind=app-password&route=api&expires_days=0",
            "`api` does not take app passwords",
        ),
        (
            "name=P&kind=token&route=api&route=music&expires_days=0",
            "`music` only takes app passwords",
        ),
        (
            "name=P&kind=token&route=api&expires_days=7",
            "Pick an expiry",
        ),
    ] {
        let r = create(format!("csrf={}&{bad}", b.csrf)).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.text().contains(why), "{bad}: {}", r.text());
    }
    assert!(gw.store().devices_of(None).await.unwrap().is_empty());

    let r = create(format!(
        "csrf={}&name=My+Phone&kind=token&route=api&route=media&expires_days=30",
        b.csrf
    ))
    .await;
    // POST/redirect/GET: the secret is on a one-time page.
    assert_eq!(r.status, 303, "{}", r.text());
    r.assert_page_headers();
    assert!(r.set_cookies().is_empty());
    let shown = r.header("location").unwrap().to_owned();
    assert!(shown.starts_with("/.vestibule/devices/created/"), "{shown}");
    // Only the session that created it may see it.
    let m = Browser::open(&gw.app, DEVICES, &MALLORY).await;
    assert_eq!(m.call("GET", &shown).send(&gw.app).await.status, 410);
    let r = b.call("GET", &shown).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_page_headers();
    let html = r.text();
    let secret = between(
        &html,
        "<input id=\"secret\" class=\"secret\" readonly value=\"",
        "\"",
    )
    .to_owned();
    assert!(secret.starts_with("vst_") && secret.len() == 47, "{secret}");
    assert!(html.contains(&format!("Authorization: Bearer {secret}")));
    assert!(html.contains(&format!("?vestibule_token={secret}")));
    let made = gw.store().devices_of(None).await.unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].name, "My Phone");
    assert_eq!(made[0].routes, ["api", "media"]);
    assert_eq!(made[0].kind, "token");
    // A token is not offered as a password.
    assert!(!html.contains("Basic "), "{html}");
    let by_secret = gw.store().device_by_secret(&hash_token(&secret)).await;
    assert!(by_secret.unwrap().is_some(), "stored by its hash");
    // A reload shows it no more, and makes no second device.
    let r = b.call("GET", &shown).send(&gw.app).await;
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(!r.text().contains(&secret));
    assert_eq!(gw.store().devices_of(None).await.unwrap().len(), 1);

    // An app password: what to paste is Basic, and only Basic; its QR code
    // holds the server address with the user and the password inside.
    let r = create(format!(
        "csrf={}&name=Player&kind=app-password&route=music&expires_days=0",
        b.csrf
    ))
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let shown = r.header("location").unwrap().to_owned();
    let r = b.call("GET", &shown).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    let secret = between(
        &html,
        "<input id=\"secret\" class=\"secret\" readonly value=\"",
        "\"",
    )
    .to_owned();
    assert!(html.contains("Authorization: Basic "), "{html}");
    assert!(html.contains(&format!("alice:{secret}@")), "{html}");
    assert!(!html.contains(&format!("Bearer {secret}")), "{html}");
    let made = gw.store().device_by_secret(&hash_token(&secret)).await;
    assert_eq!(made.unwrap().unwrap().kind, "app-password");
}

#[tokio::test]
async fn a_device_credential_through_forward_auth() {
    let gw = Gw::new(&devices_config("")).await;
    Browser::open(&gw.app, DEVICES, &ALICE).await;
    let (_, token) = device(&gw, "alice", &["api", "media"]).await;
    let verify = |uri: &str| Call::get("/.vestibule/verify").header("X-Original-URI", uri);
    // Consumed: the proxy is told to send the app no Authorization.
    let r = verify("/api/x")
        .header("Authorization", &format!("Bearer {token}"))
        .send(&gw.app)
        .await;
    r.assert_plain(200);
    assert_eq!(r.header("remote-user"), Some("alice"));
    assert_eq!(r.header("x-vestibule-authorization"), Some(""));
    // In the query, the proxy would forward it to the app: refused.
    let r = verify(&format!("/media/a.mp3?vestibule_token={token}"))
        .send(&gw.app)
        .await;
    r.assert_plain(400);
    assert_eq!(r.header("remote-user"), None);
    // Unknown credential: 401 with a Bearer challenge.
    let r = verify("/api/x")
        .header(
            "Authorization",
            "Bearer vst_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"vestibule\"")
    );
    // A route the device was not given.
    let r = verify("/secret")
        .header("Authorization", &format!("Bearer {token}"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
}

#[tokio::test]
async fn revoking_needs_the_token_and_ownership() {
    let gw = Gw::new(&devices_config("")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let m = Browser::open(&gw.app, DEVICES, &MALLORY).await;
    let (id, _) = device(&gw, "alice", &["api"]).await;
    let revoke = |who: &Browser, body: String| who.call("POST", REVOKE).form(&body).send(&gw.app);

    assert_eq!(revoke(&b, format!("csrf={}", b.csrf)).await.status, 422);
    for bad in ["", "nope", m.csrf.as_str()] {
        let r = revoke(&b, format!("csrf={bad}&id={id}")).await;
        assert_eq!(r.status, 403, "{bad}");
    }
    // Someone else's device is not found, for them.
    let r = revoke(&m, format!("csrf={}&id={id}", m.csrf)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "You have no such device.\n");
    assert!(exists(&gw, id).await);

    let r = revoke(&b, format!("csrf={}&id={id}", b.csrf)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(DEVICES));
    r.assert_page_headers();
    assert!(!exists(&gw, id).await);
    let r = revoke(&b, format!("csrf={}&id={id}", b.csrf)).await;
    assert_eq!(r.status, 404, "already gone");
    // Anonymous: 401 before anything else.
    let r = Call::post(REVOKE)
        .form(&format!("csrf={}&id={id}", b.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn admins_revoke_anyones_device_with_the_token() {
    let gw = Gw::new(&devices_config("")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let (id, _) = device(&gw, "alice", &["api"]).await;
    // Alice may revoke her own device, but not through the admin form.
    let r = b
        .call("POST", ADMIN_REVOKE)
        .form(&format!("csrf={}&id={id}", b.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 403);
    assert!(exists(&gw, id).await);

    let a = Browser::open(&gw.app, DEVICES, &ROOT).await;
    let r = a.call("GET", "/.vestibule/admin").send(&gw.app).await;
    assert!(r.text().contains("phone") && r.text().contains("alice"));
    // Revoking starts on a confirmation page that names the device.
    let confirm = format!("/.vestibule/admin/devices/{id}/revoke");
    assert!(r.text().contains(&confirm));
    let r = a.call("GET", &confirm).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_page_headers();
    assert!(r.text().contains("alice") && r.text().contains("phone"));
    assert!(r.text().contains(&format!("name=\"id\" value=\"{id}\"")));
    assert!(exists(&gw, id).await, "asking changes nothing");
    let revoke = |body: String| a.call("POST", ADMIN_REVOKE).form(&body).send(&gw.app);
    for bad in ["", "nope", b.csrf.as_str()] {
        let r = revoke(format!("csrf={bad}&id={id}")).await;
        assert_eq!(r.status, 403, "{bad}");
    }
    assert_eq!(revoke(format!("csrf={}", a.csrf)).await.status, 422);
    let r = revoke(format!("csrf={}&id=999999", a.csrf)).await;
    assert_eq!(r.status, 404);
    assert!(exists(&gw, id).await);

    let r = revoke(format!("csrf={}&id={id}", a.csrf)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/.vestibule/admin"));
    r.assert_page_headers();
    assert!(!exists(&gw, id).await);
    // A flash message says it worked, once.
    let flash = flash_cookie(&r);
    let r = a
        .call("GET", "/.vestibule/admin")
        .header("Cookie", &format!("{}; {flash}", a.cookie))
        .send(&gw.app)
        .await;
    assert!(r.text().contains("The device is revoked"), "{}", r.text());
    assert!(
        r.set_cookies()
            .iter()
            .any(|c| c.starts_with("vestibule_flash=;"))
    );
}

/// Starts a pairing for `api` from browser `b`: the code and the id.
async fn start_pairing(gw: &Gw, b: &Browser) -> (String, i64) {
    let r = b
        .call("POST", PAIR_START)
        .form(&format!("csrf={}&route=api", b.csrf))
        .send(&gw.app)
        .await;
    // POST/redirect/GET: a reload of the pairing page starts nothing.
    assert_eq!(r.status, 303, "{}", r.text());
    r.assert_page_headers();
    let page = r.header("location").unwrap().to_owned();
    let id = page
        .strip_prefix("/.vestibule/devices/pair/")
        .unwrap()
        .parse()
        .unwrap();
    let r = b.call("GET", &page).send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let html = r.text();
    assert!(html.contains("<svg"), "a QR code");
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "waits by reloading"
    );
    let code = between(&html, "id=\"pairing-code\">", "<").to_owned();
    (code, id)
}

#[tokio::test]
async fn starting_a_pairing_needs_the_token_and_an_allowed_route() {
    let gw = Gw::new(&devices_config("")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let start = |body: String| b.call("POST", PAIR_START).form(&body).send(&gw.app);
    for bad in [
        "route=api".to_owned(),
        format!("csrf={}x&route=api", b.csrf),
    ] {
        assert_eq!(start(bad.clone()).await.status, 403, "{bad}");
    }
    for bad in ["", "&route=plain", "&route=secret"] {
        let r = start(format!("csrf={}{bad}", b.csrf)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let (code, _) = start_pairing(&gw, &b).await;
    assert_eq!(code.len(), 11, "{code}");
}

#[tokio::test]
async fn a_pairing_issues_a_credential_once_after_confirmation() {
    let gw = Gw::new(&devices_config("")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let m = Browser::open(&gw.app, DEVICES, &MALLORY).await;
    let (code, id) = start_pairing(&gw, &b).await;
    let status_page = format!("/.vestibule/devices/pair/{id}");

    // The device's side needs no front: it comes from anywhere.
    let claim = |body: &str| Call::post(CLAIM).from(UNTRUSTED).json(body).send(&gw.app);
    let poll = |body: &str| Call::post(POLL).from(UNTRUSTED).json(body).send(&gw.app);

    json_error(&claim("not json").await, 400, "invalid_request");
    json_error(
        &claim(&format!(r#"{{"code":"{code}"}}"#)).await,
        400,
        "invalid_request",
    );
    json_error(
        &claim(r#"{"code":"00000-00000","name":"Pixel"}"#).await,
        404,
        "invalid_code",
    );

    // Typed in lower case without the dash: still the code.
    let typed = code.replace('-', "").to_lowercase();
    let r = claim(&format!(r#"{{"code":"{typed}","name":"Pixel 8"}}"#)).await;
    assert_eq!(r.status, 202, "{}", r.text());
    r.assert_page_headers();
    let j = r.json();
    assert_eq!(j["status"], "pending");
    assert_eq!(j["poll"], POLL);
    let claim_secret = j["claim"].as_str().unwrap().to_owned();
    // Single use.
    json_error(
        &Call::post(CLAIM)
            .form(&format!("code={code}&name=Intruder"))
            .send(&gw.app)
            .await,
        404,
        "invalid_code",
    );
    let claim_body = format!(r#"{{"claim":"{claim_secret}"}}"#);
    json_error(&poll("{}").await, 400, "invalid_request");
    let r = poll(&claim_body).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["status"], "pending");

    // The owner sees the device's name; nobody else sees the pairing. The
    // code is no longer shown, and the page waits for her answer.
    let r = b.call("GET", &status_page).send(&gw.app).await;
    assert_eq!(r.status, 200);
    r.assert_page_headers();
    assert!(r.text().contains("Pixel 8") && r.text().contains("from 127.0.0.2, "));
    assert!(!r.text().contains(&code) && !r.text().contains("http-equiv"));
    // It is listed on her devices page.
    let r = b.call("GET", DEVICES).send(&gw.app).await;
    assert!(
        r.text().contains("Pixel 8 asks to be paired"),
        "{}",
        r.text()
    );
    for (who, path, want) in [
        (&m, status_page.as_str(), 404),
        (&b, "/.vestibule/devices/pair/999999", 404),
        (&b, "/.vestibule/devices/pair/abc", 400),
    ] {
        let r = who.call("GET", path).send(&gw.app).await;
        assert_eq!(r.status, want, "{path}: {}", r.text());
    }

    // Deciding needs the token; someone else's decision finds nothing to decide.
    let decide =
        |who: &Browser, body: String| who.call("POST", &status_page).form(&body).send(&gw.app);
    for bad in ["", "nope", m.csrf.as_str()] {
        let r = decide(&b, format!("csrf={bad}&decision=confirm")).await;
        assert_eq!(r.status, 403, "{bad}");
    }
    let r = decide(&b, format!("csrf={}&decision=maybe", b.csrf)).await;
    assert_eq!(r.status, 400);
    let r = decide(&m, format!("csrf={}&decision=confirm", m.csrf)).await;
    assert_eq!(r.status, 409);
    assert_eq!(poll(&claim_body).await.status, 202, "nothing issued yet");

    let r = decide(&b, format!("csrf={}&decision=confirm", b.csrf)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some(status_page.as_str()));
    r.assert_page_headers();
    let r = poll(&claim_body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.assert_page_headers();
    let j = r.json();
    assert_eq!(j["status"], "issued");
    assert_eq!(j["user"], "alice");
    assert_eq!(j["routes"], serde_json::json!(["api"]));
    let credential = j["credential"].as_str().unwrap().to_owned();
    // Collected exactly once.
    json_error(&poll(&claim_body).await, 410, "expired_token");
    // Confirmed already: a second decision is too late.
    let r = decide(&b, format!("csrf={}&decision=refuse", b.csrf)).await;
    assert_eq!(r.status, 409);

    let r = Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/api/x")
        .header("Authorization", &format!("Bearer {credential}"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("alice"));
}

#[tokio::test]
async fn a_refused_pairing_issues_nothing() {
    let gw = Gw::new(&devices_config("")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let (code, id) = start_pairing(&gw, &b).await;
    let r = Call::post(CLAIM)
        .form(&format!("code={code}&name=Tablet"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 202);
    let claim = r.json()["claim"].as_str().unwrap().to_owned();
    let r = b
        .call("POST", &format!("/.vestibule/devices/pair/{id}"))
        .form(&format!("csrf={}&decision=refuse", b.csrf))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 303);
    let r = Call::post(POLL)
        .form(&format!("claim={claim}"))
        .send(&gw.app)
        .await;
    json_error(&r, 403, "access_denied");
    assert!(gw.store().devices_of(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn pairing_guesses_are_rate_limited_per_address() {
    let gw = Gw::new(&devices_config("[devices]\nfailures_per_minute = 2\n")).await;
    let b = Browser::open(&gw.app, DEVICES, &ALICE).await;
    let (code, _) = start_pairing(&gw, &b).await;
    let guess = |code: String| {
        Call::post(CLAIM)
            .from(UNTRUSTED)
            .form(&format!("code={code}&name=Guesser"))
            .send(&gw.app)
    };
    for i in 0..2 {
        json_error(&guess(format!("0000{i}-00000")).await, 404, "invalid_code");
    }
    let r = guess("00009-00000".into()).await;
    json_error(&r, 429, "slow_down");
    assert!(r.header("retry-after").is_some());
    // Blocked: even the right code, and the poll endpoint.
    json_error(&guess(code.clone()).await, 429, "slow_down");
    let r = Call::post(POLL)
        .from(UNTRUSTED)
        .form("claim=vsp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .send(&gw.app)
        .await;
    json_error(&r, 429, "slow_down");
    // Another address is not blocked.
    let r = Call::post(CLAIM)
        .form(&format!("code={code}&name=Phone"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
}

#[tokio::test]
async fn without_accounts_pairing_is_not_enabled() {
    let gw = Gw::new(&config("", "", &route("app", "/", NO_UPSTREAM, ""))).await;
    for path in [CLAIM, POLL] {
        let r = Call::post(path)
            .json(r#"{"code":"ABCDE-FGH12","name":"x","claim":"vsp_x"}"#)
            .send(&gw.app)
            .await;
        json_error(&r, 404, "not_enabled");
    }
}

#[tokio::test]
async fn device_routes_take_only_their_methods() {
    let gw = Gw::new(&devices_config("")).await;
    assert_405s(
        &gw.app,
        &[
            ("POST", DEVICES, "GET,HEAD"),
            ("GET", NEW, "POST"),
            ("GET", REVOKE, "POST"),
            ("GET", ADMIN_REVOKE, "POST"),
            ("GET", PAIR_START, "POST"),
            ("PUT", "/.vestibule/devices/pair/1", "GET,HEAD,POST"),
            ("PUT", CLAIM, "GET,HEAD,POST"),
            ("GET", POLL, "POST"),
        ],
    )
    .await;
}
