//! Revocation (RFC 7009) and introspection (RFC 7662) of the OpenID
//! Connect provider (issue 14), in process against a real SQLite file
//! store and the real key ring, with the clients and helpers of
//! `provider_support`.

use vestibule::accounts::now_ms;
use vestibule_store::AccountStatus;

use super::provider_support::{
    CodeSpec, ISSUER, SECRET, VERIFIER, WEB_CB, account, basic, code, exchange, form, oauth_error,
    post_token, provider_gw, refresh, tokens_ok, userinfo_get, web_code,
};
use super::*;

const REVOKE: &str = "/.vestibule/oidc/revoke";
const INTROSPECT: &str = "/.vestibule/oidc/introspect";

async fn post(gw: &Gw, path: &str, auth: Option<&str>, pairs: &[(&str, &str)]) -> Resp {
    let mut call = Call::post(path).form(&form(pairs));
    if let Some(a) = auth {
        call = call.header("Authorization", a);
    }
    call.send(&gw.app).await
}

/// Revokes `token` as `web`, asserting the RFC 7009 §2.2 answer (200 and
/// nothing to cache) whatever happened.
async fn revoke_as(gw: &Gw, client: &str, token: &str, hint: Option<&str>) {
    let mut p = vec![("token", token)];
    if let Some(h) = hint {
        p.push(("token_type_hint", h));
    }
    let r = post(gw, REVOKE, Some(&basic(client, SECRET)), &p).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.body.is_empty(), "{}", r.text());
}

async fn introspect_as(gw: &Gw, client: &str, token: &str) -> serde_json::Value {
    let r = post(
        gw,
        INTROSPECT,
        Some(&basic(client, SECRET)),
        &[("token", token)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

#[track_caller]
fn inactive(j: &serde_json::Value) {
    // §2.2 and §4: nothing but `active: false`.
    assert_eq!(*j, serde_json::json!({ "active": false }));
}

/// Tokens for ann at `web`: (access, refresh).
async fn web_tokens(gw: &Gw, ann: i64) -> (String, String) {
    let j = tokens_ok(&exchange(gw, &code(gw, web_code(ann)).await).await);
    (
        j["access_token"].as_str().unwrap().to_owned(),
        j["refresh_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn revoking_a_refresh_token_takes_its_family_and_access_tokens() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, r0) = web_tokens(&gw, ann).await;
    let j1 = tokens_ok(&refresh(&gw, &r0, None).await);
    let (a1, r1) = (
        j1["access_token"].as_str().unwrap().to_owned(),
        j1["refresh_token"].as_str().unwrap().to_owned(),
    );
    // A wrong hint is only a hint: the refresh token is found anyway.
    revoke_as(&gw, "web", &r1, Some("access_token")).await;
    oauth_error(&refresh(&gw, &r1, None).await, 400, "invalid_grant");
    // The whole family: r0's grace retry is over too, and both access
    // tokens of the family are gone.
    oauth_error(&refresh(&gw, &r0, None).await, 400, "invalid_grant");
    assert_eq!(userinfo_get(&gw, &a0).await.status, 401);
    assert_eq!(userinfo_get(&gw, &a1).await.status, 401);
    inactive(&introspect_as(&gw, "web", &a1).await);
    inactive(&introspect_as(&gw, "web", &r1).await);
    // Revoking it again, or a token that never existed: still 200.
    revoke_as(&gw, "web", &r1, Some("refresh_token")).await;
    revoke_as(&gw, "web", "vrt_never-issued", None).await;
    revoke_as(&gw, "web", "x", Some("an_unknown_hint")).await;
}

#[tokio::test]
async fn revoking_an_access_token_takes_that_token_only() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, r0) = web_tokens(&gw, ann).await;
    revoke_as(&gw, "web", &a0, None).await;
    assert_eq!(userinfo_get(&gw, &a0).await.status, 401);
    // The refresh token that came with it still works.
    let j = tokens_ok(&refresh(&gw, &r0, None).await);
    let a1 = j["access_token"].as_str().unwrap();
    assert_eq!(userinfo_get(&gw, a1).await.status, 200);
}

#[tokio::test]
async fn another_clients_token_is_not_revoked_and_the_answer_is_200() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, r0) = web_tokens(&gw, ann).await;
    // `legacy` authenticates fine but did not get these tokens (§2.1).
    revoke_as(&gw, "legacy", &a0, Some("access_token")).await;
    revoke_as(&gw, "legacy", &r0, Some("refresh_token")).await;
    assert_eq!(userinfo_get(&gw, &a0).await.status, 200);
    tokens_ok(&refresh(&gw, &r0, None).await);
}

#[tokio::test]
async fn revocation_authenticates_the_client_and_needs_a_token() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, _) = web_tokens(&gw, ann).await;
    // A wrong secret is the token endpoint's 401, and nothing is revoked.
    let r = post(&gw, REVOKE, Some(&basic("web", "wrong")), &[("token", &a0)]).await;
    oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    let r = post(&gw, REVOKE, None, &[("token", &a0)]).await;
    oauth_error(&r, 401, "invalid_client");
    assert_eq!(userinfo_get(&gw, &a0).await.status, 200);
    // `token` is required; the body must be a form.
    let r = post(&gw, REVOKE, Some(&basic("web", SECRET)), &[]).await;
    oauth_error(&r, 400, "invalid_request");
    let r = Call::post(REVOKE)
        .header("Authorization", &basic("web", SECRET))
        .json(&serde_json::json!({ "token": a0 }).to_string())
        .send(&gw.app)
        .await;
    oauth_error(&r, 400, "invalid_request");
    // A repeated parameter is ambiguous: 400, nothing revoked.
    let r = Call::post(REVOKE)
        .header("Authorization", &basic("web", SECRET))
        .form(&format!("token={a0}&token=other"))
        .send(&gw.app)
        .await;
    oauth_error(&r, 400, "invalid_request");
    assert_eq!(userinfo_get(&gw, &a0).await.status, 200);
    // A public client revokes its own token with its client_id alone.
    let c = code(
        &gw,
        CodeSpec {
            client: "native",
            redirect_uri: "http://127.0.0.1:49152/cb",
            ..web_code(ann)
        },
    )
    .await;
    let j = tokens_ok(
        &post_token(
            &gw,
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &c),
                ("redirect_uri", "http://127.0.0.1:49152/cb"),
                ("code_verifier", VERIFIER),
                ("client_id", "native"),
            ],
        )
        .await,
    );
    let native_access = j["access_token"].as_str().unwrap();
    let r = post(
        &gw,
        REVOKE,
        None,
        &[("token", native_access), ("client_id", "native")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(userinfo_get(&gw, native_access).await.status, 401);
}

#[tokio::test]
async fn introspection_of_active_tokens() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, r0) = web_tokens(&gw, ann).await;
    let now = now_ms() / 1000;
    let j = introspect_as(&gw, "web", &a0).await;
    assert_eq!(j["active"], true);
    assert_eq!(j["scope"], "email groups offline_access openid profile");
    assert_eq!(j["client_id"], "web");
    assert_eq!(j["username"], "ann");
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["sub"], ann.to_string());
    assert_eq!(j["aud"], ISSUER);
    assert_eq!(j["iss"], ISSUER);
    let (iat, exp) = (j["iat"].as_i64().unwrap(), j["exp"].as_i64().unwrap());
    assert!((now - 5..=now + 1).contains(&iat), "{j}");
    assert_eq!(j["nbf"], iat);
    assert_eq!(exp - iat, 600, "{j}");
    // An opaque token has no jti to report.
    assert!(j.get("jti").is_none(), "{j}");
    // The refresh token, with or without the hint: active, untyped.
    for hint in [None, Some("refresh_token"), Some("access_token")] {
        let mut p = vec![("token", r0.as_str())];
        if let Some(h) = hint {
            p.push(("token_type_hint", h));
        }
        let r = post(&gw, INTROSPECT, Some(&basic("web", SECRET)), &p).await;
        let j = r.json();
        assert_eq!(j["active"], true, "{j}");
        assert_eq!(j["sub"], ann.to_string());
        assert!(j.get("token_type").is_none(), "{j}");
    }
    // client_secret_post works too.
    let r = post(
        &gw,
        INTROSPECT,
        None,
        &[
            ("token", &a0),
            ("client_id", "web"),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(r.json()["active"], true);

    // A client_credentials token: the client is the subject, no user.
    let j = tokens_ok(
        &post_token(
            &gw,
            Some(&basic("svc", SECRET)),
            &[("grant_type", "client_credentials")],
        )
        .await,
    );
    let i = introspect_as(&gw, "svc", j["access_token"].as_str().unwrap()).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["sub"], "svc");
    assert_eq!(i["scope"], "api.read api.write");
    assert!(i.get("username").is_none(), "{i}");

    // A JWT access token reports its jti.
    let c = code(
        &gw,
        CodeSpec {
            client: "jwtapp",
            ..web_code(ann)
        },
    )
    .await;
    let j = tokens_ok(
        &post_token(
            &gw,
            Some(&basic("jwtapp", SECRET)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &c),
                ("redirect_uri", WEB_CB),
                ("code_verifier", VERIFIER),
            ],
        )
        .await,
    );
    let jwt = j["access_token"].as_str().unwrap();
    let i = introspect_as(&gw, "jwtapp", jwt).await;
    assert_eq!(i["active"], true);
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(i["jti"], claims["jti"]);
    assert_eq!(i["exp"], claims["exp"]);
}

#[tokio::test]
async fn introspection_says_only_inactive_for_everything_else() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, r0) = web_tokens(&gw, ann).await;
    // Unknown.
    inactive(&introspect_as(&gw, "web", "vat_never-issued").await);
    // Another client's token: not this caller's to learn about.
    inactive(&introspect_as(&gw, "legacy", &a0).await);
    inactive(&introspect_as(&gw, "legacy", &r0).await);
    // A rotated refresh token is no longer active; its successor is.
    let j = tokens_ok(&refresh(&gw, &r0, None).await);
    let r1 = j["refresh_token"].as_str().unwrap().to_owned();
    inactive(&introspect_as(&gw, "web", &r0).await);
    assert_eq!(introspect_as(&gw, "web", &r1).await["active"], true);
    // A disabled account's tokens are not active; enabled again, they are.
    gw.store()
        .set_status(ann, AccountStatus::Disabled, now_ms())
        .await
        .unwrap();
    inactive(&introspect_as(&gw, "web", &a0).await);
    inactive(&introspect_as(&gw, "web", &r1).await);
    gw.store()
        .set_status(ann, AccountStatus::Active, now_ms())
        .await
        .unwrap();
    assert_eq!(introspect_as(&gw, "web", &a0).await["active"], true);
    // An account outside the client's groups: `staffonly` wants admins.
    let c = code(
        &gw,
        CodeSpec {
            client: "staffonly",
            ..web_code(ann)
        },
    )
    .await;
    // ann is not an admin: the exchange itself is refused.
    let r = post_token(
        &gw,
        Some(&basic("staffonly", SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_grant");
    // Revoked.
    revoke_as(&gw, "web", &a0, None).await;
    inactive(&introspect_as(&gw, "web", &a0).await);
}

#[tokio::test]
async fn introspection_needs_client_authentication() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let (a0, _) = web_tokens(&gw, ann).await;
    // No credentials: 401, and not a word about the token.
    let r = post(&gw, INTROSPECT, None, &[("token", &a0)]).await;
    oauth_error(&r, 401, "invalid_client");
    assert!(r.json().get("active").is_none());
    // A wrong secret.
    let r = post(
        &gw,
        INTROSPECT,
        Some(&basic("web", "nope")),
        &[("token", &a0)],
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    // A public client naming itself proves nothing: refused too.
    let r = post(
        &gw,
        INTROSPECT,
        None,
        &[("token", &a0), ("client_id", "native")],
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    // Basic and post at once is ambiguous.
    let r = post(
        &gw,
        INTROSPECT,
        Some(&basic("web", SECRET)),
        &[("token", &a0), ("client_secret", SECRET)],
    )
    .await;
    oauth_error(&r, 400, "invalid_request");
    // `token` is required.
    let r = post(&gw, INTROSPECT, Some(&basic("web", SECRET)), &[]).await;
    oauth_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn discovery_lists_revocation_and_introspection() {
    let gw = provider_gw().await;
    let r = Call::get("/.well-known/openid-configuration")
        .host(Some("sso.example.test"))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m = r.json();
    assert_eq!(m["revocation_endpoint"], format!("{ISSUER}{REVOKE}"));
    assert_eq!(m["introspection_endpoint"], format!("{ISSUER}{INTROSPECT}"));
    assert_eq!(
        m["introspection_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(
        m["revocation_endpoint_auth_methods_supported"],
        serde_json::json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ])
    );
}
