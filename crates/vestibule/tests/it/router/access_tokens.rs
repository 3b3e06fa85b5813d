//! The provider's access tokens at the gate (`[route.access_tokens]`,
//! issue 14), in process through forward-auth against a real SQLite file
//! store and the real key ring: tokens are minted by the real token
//! endpoint, revoked by the real revocation endpoint, and the gate's cache
//! follows the store's change feed as `serve` runs it.

use vestibule::accounts::now_ms;
use vestibule_core::credential::device_token;
use vestibule_core::secret::hash_token;
use vestibule_store::provider::NewToken;
use vestibule_store::{AccountStatus, NewDevice};

use super::provider_support::{
    CodeSpec, SECRET, VERIFIER, WEB_CB, account, basic, code, post_token, provider_gw_with,
    tokens_ok, web_code,
};
use super::*;

/// `api` takes `web` and `jwtapp` tokens; `scoped` needs `email`;
/// `svc` takes the `svc` service client; `users` names `svc` but takes
/// users only; `both` takes device credentials too, in Bearer and the
/// header.
fn routes() -> String {
    [
        "[assertions]\nissuer = \"https://gw.example.test\"\n\n".to_owned(),
        route(
            "signed",
            "/",
            NO_UPSTREAM,
            "host = \"signed.test\"\nassertion = true\naccess_tokens = { clients = [\"web\"] }",
        ),
        route(
            "api",
            "/api",
            NO_UPSTREAM,
            "access_tokens = { clients = [\"web\", \"jwtapp\"] }",
        ),
        route(
            "scoped",
            "/scoped",
            NO_UPSTREAM,
            "access_tokens = { clients = [\"web\"], scopes = [\"email\"] }",
        ),
        route(
            "svc",
            "/svc",
            NO_UPSTREAM,
            "access_tokens = { clients = [\"svc\"], service_clients = true }",
        ),
        route(
            "users",
            "/users",
            NO_UPSTREAM,
            "access_tokens = { clients = [\"svc\", \"jwtapp\"] }",
        ),
        route(
            "both",
            "/both",
            NO_UPSTREAM,
            "credentials = [\"bearer\", \"header\"]\naccess_tokens = { clients = [\"web\"], header = true }",
        ),
    ]
    .concat()
}

/// The gateway, with the cache following the change feed as `serve` does.
async fn gw() -> Gw {
    let gw = provider_gw_with(&routes()).await;
    let p = gw.state.provider.as_ref().unwrap();
    p.gate.follow_changes(&p.store);
    gw
}

/// A forward-auth check of `uri` with `auth` as `Authorization`.
async fn check(gw: &Gw, uri: &str, auth: &str) -> Resp {
    Call::get("/.vestibule/verify")
        .header("X-Original-URI", uri)
        .header("Authorization", auth)
        .send(&gw.app)
        .await
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// An access token of `client` (web or jwtapp) for `account`, through
/// the real code exchange.
async fn user_token(gw: &Gw, client: &str, account: i64, scopes: &str) -> String {
    let c = code(
        gw,
        CodeSpec {
            client,
            scopes,
            ..web_code(account)
        },
    )
    .await;
    let r = post_token(
        gw,
        Some(&basic(client, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    tokens_ok(&r)["access_token"].as_str().unwrap().to_owned()
}

/// RFC 6750 §3: the status, the `Bearer` challenge with its error.
#[track_caller]
fn challenged(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let c = r.header("www-authenticate").expect("a challenge");
    assert!(c.starts_with("Bearer realm=\"vestibule\""), "{c}");
    assert!(c.contains(&format!("error=\"{error}\"")), "{c}");
    assert_eq!(r.json()["error"], error);
    assert!(r.header("remote-user").is_none());
}

#[tokio::test]
async fn opaque_and_jwt_tokens_pass_as_their_user_where_the_client_is_listed() {
    let gw = gw().await;
    let ann = account(&gw, "ann", &["staff"]).await;
    let opaque = user_token(&gw, "web", ann, "openid email").await;
    assert!(opaque.starts_with("vat_"));
    let r = check(&gw, "/api/x", &bearer(&opaque)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("ann"));
    assert_eq!(r.header("remote-groups"), Some("staff"));
    // Consumed: the front is told to send the app no Authorization.
    assert_eq!(r.header("x-vestibule-authorization"), Some(""));
    // Again, from the cache.
    assert_eq!(check(&gw, "/api/y", &bearer(&opaque)).await.status, 200);

    let jwt = user_token(&gw, "jwtapp", ann, "openid").await;
    assert_eq!(jwt.split('.').count(), 3);
    let r = check(&gw, "/api/x", &bearer(&jwt)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("ann"));

    // A JWT whose signature does not verify never reaches the store.
    let mut forged = jwt.clone();
    forged.pop();
    forged.push(if jwt.ends_with('A') { 'B' } else { 'A' });
    challenged(
        &check(&gw, "/api/x", &bearer(&forged)).await,
        401,
        "invalid_token",
    );

    // In the route's custom header too, where that is enabled.
    let r = Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/both/x")
        .header("X-Vestibule-Token", &opaque)
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("ann"));

    // The app's own bearer token is not ours: no identity, 401 as usual.
    let r = check(&gw, "/api/x", "Bearer eyJhbGciOiJub25lIn0.e30.").await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn refusals_are_rfc_6750_challenges() {
    let gw = gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let web = user_token(&gw, "web", ann, "openid").await;
    // Another client's token: `users` lists svc and jwtapp only.
    challenged(
        &check(&gw, "/users/x", &bearer(&web)).await,
        401,
        "invalid_token",
    );
    // A missing scope: 403 insufficient_scope naming the scope (§3.1).
    let r = check(&gw, "/scoped/x", &bearer(&web)).await;
    challenged(&r, 403, "insufficient_scope");
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("scope=\"email\"")
    );
    let with_email = user_token(&gw, "web", ann, "openid email").await;
    assert_eq!(
        check(&gw, "/scoped/x", &bearer(&with_email)).await.status,
        200
    );
    // An expired token (stored as the token endpoint stores them).
    let expired = format!("vat_{}", "A".repeat(43));
    gw.store()
        .create_client_access_token(
            "svc",
            "api.read",
            &NewToken {
                token_hash: hash_token(&expired),
                expires_at: now_ms() - 1,
            },
            now_ms() - 60_000,
        )
        .await
        .unwrap();
    challenged(
        &check(&gw, "/svc/x", &bearer(&expired)).await,
        401,
        "invalid_token",
    );
    // Unknown, and malformed with our prefix.
    let unknown = format!("vat_{}", "B".repeat(43));
    challenged(
        &check(&gw, "/api/x", &bearer(&unknown)).await,
        401,
        "invalid_token",
    );
    assert_eq!(check(&gw, "/api/x", "Bearer vat_short").await.status, 401);
}

#[tokio::test]
async fn revocation_and_account_disable_are_honoured_at_once() {
    let gw = gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let t = user_token(&gw, "web", ann, "openid").await;
    assert_eq!(check(&gw, "/api/x", &bearer(&t)).await.status, 200);
    // Revoked through the revocation endpoint (RFC 7009): the store
    // publishes it, the cache drops it.
    let r = Call::post("/.vestibule/oidc/revoke")
        .header("Authorization", &basic("web", SECRET))
        .form(&format!("token={t}"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200);
    poll_until_refused(&gw, "/api/x", &t).await;

    // A disabled account: its cached token stops passing.
    let t = user_token(&gw, "web", ann, "openid").await;
    assert_eq!(check(&gw, "/api/x", &bearer(&t)).await.status, 200);
    assert!(
        gw.store()
            .set_status(ann, AccountStatus::Disabled, 0)
            .await
            .unwrap()
    );
    poll_until_refused(&gw, "/api/x", &t).await;
}

/// The feed is a background task: poll with a 1 s deadline.
async fn poll_until_refused(gw: &Gw, uri: &str, token: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        let r = check(gw, uri, &bearer(token)).await;
        if r.status == 401 {
            challenged(&r, 401, "invalid_token");
            return;
        }
        assert_eq!(r.status, 200);
        assert!(
            std::time::Instant::now() < deadline,
            "still accepted after 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn service_clients_pass_only_where_allowed_as_the_client() {
    let gw = gw().await;
    let r = post_token(
        &gw,
        Some(&basic("svc", SECRET)),
        &[("grant_type", "client_credentials"), ("scope", "api.read")],
    )
    .await;
    let t = tokens_ok(&r)["access_token"].as_str().unwrap().to_owned();
    let r = check(&gw, "/svc/x", &bearer(&t)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("remote-user"), Some("svc"));
    // `users` lists svc, but takes users only.
    challenged(
        &check(&gw, "/users/x", &bearer(&t)).await,
        401,
        "invalid_token",
    );
}

#[tokio::test]
async fn a_token_and_a_device_credential_together_are_400() {
    let gw = gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let t = user_token(&gw, "web", ann, "openid").await;
    let device = device_token(rand::random()).expose().to_owned();
    gw.store()
        .create_device(&NewDevice {
            account_id: ann,
            name: "phone".into(),
            kind: "token".into(),
            routes: vec!["both".into()],
            secret_hash: hash_token(&device),
            basic_user: None,
            created_at: now_ms(),
            expires_at: None,
        })
        .await
        .unwrap();
    // Each alone passes.
    assert_eq!(check(&gw, "/both/x", &bearer(&t)).await.status, 200);
    assert_eq!(check(&gw, "/both/x", &bearer(&device)).await.status, 200);
    // Both: ambiguous, whichever carries which.
    let r = Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/both/x")
        .header("Authorization", &bearer(&t))
        .header("X-Vestibule-Token", &device)
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/both/x")
        .header("Authorization", &bearer(&device))
        .header("X-Vestibule-Token", &t)
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
}

#[tokio::test]
async fn the_assertion_says_auth_method_oauth() {
    use base64::Engine;
    let gw = gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let t = user_token(&gw, "web", ann, "openid").await;
    let r = Call::get("/.vestibule/verify")
        .header("X-Original-URI", "/x")
        .header("X-Forwarded-Host", "signed.test")
        .header("Authorization", &bearer(&t))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.header("x-vestibule-assertion").expect("an assertion");
    let payload = a.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["auth_method"], "oauth");
    assert_eq!(claims["preferred_username"], "ann");
}
