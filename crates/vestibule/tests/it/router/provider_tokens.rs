//! The OpenID Connect provider's back half (issue 14): the token endpoint
//! and userinfo, against a real SQLite file store and the real key ring.
//! Codes are stored directly through `ProviderStore`, as authorize would.
//! ID tokens and JWT access tokens are verified with vestibule-jose against
//! the JWK Set the gateway publishes.

use std::time::Duration;

use vestibule::accounts::now_ms;
use vestibule::provider::id_token;
use vestibule_core::oidc_token::{TokenHash, at_hash};
use vestibule_jose::Algorithm;
use vestibule_store::AccountStatus;

use super::provider_support::*;
use super::*;

#[tokio::test]
async fn a_code_becomes_tokens_and_a_verifiable_id_token() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &["staff"]).await;
    let c = code(&gw, web_code(ann)).await;
    let j = tokens_ok(&exchange(&gw, &c).await);
    let access = j["access_token"].as_str().unwrap();
    assert!(access.starts_with("vat_") && access.len() == 47);
    assert!(j["refresh_token"].as_str().unwrap().starts_with("vrt_"));
    assert_eq!(j["scope"], ALL_SCOPES);
    let claims = verify(
        &gw,
        j["id_token"].as_str().unwrap(),
        Algorithm::RS256,
        "JWT",
    )
    .await;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], "web");
    assert_eq!(claims["sub"], ann.to_string());
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["sid"], id_token::sid("session-one"));
    assert_eq!(claims["at_hash"], at_hash(TokenHash::Sha256, access));
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 600);
    let auth_time = claims["auth_time"].as_i64().unwrap();
    assert!(
        auth_time <= iat && iat - auth_time < 60,
        "{auth_time} {iat}"
    );
    // The scoped claims are in the ID token itself.
    assert_eq!(claims["preferred_username"], "ann");
    assert_eq!(claims["name"], "ann Example");
    assert_eq!(claims["email"], "ann@example.test");
    assert_eq!(claims["email_verified"], false);
    assert_eq!(claims["groups"], serde_json::json!(["staff"]));

    // userinfo: the same claims, by GET with the header and by POST with
    // the form body (RFC 6750 §2.2).
    let r = userinfo_get(&gw, access).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let u = r.json();
    assert_eq!(u["sub"], ann.to_string());
    for k in [
        "preferred_username",
        "name",
        "email",
        "email_verified",
        "groups",
    ] {
        assert_eq!(u[k], claims[k], "{k}");
    }
    let r = Call::post(USERINFO)
        .form(&form(&[("access_token", access)]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["sub"], ann.to_string());
    // Both at once: 400; none: 401 with a bare challenge; unknown: 401
    // invalid_token.
    let r = Call::post(USERINFO)
        .header("Authorization", &format!("Bearer {access}"))
        .form(&form(&[("access_token", access)]))
        .send(&gw.app)
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = Call::get(USERINFO).send(&gw.app).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"vestibule\"")
    );
    let r = userinfo_get(&gw, "vat_nope").await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    // A disabled account: userinfo refuses its tokens at once.
    gw.store()
        .set_status(ann, AccountStatus::Disabled, now_ms())
        .await
        .unwrap();
    let r = userinfo_get(&gw, access).await;
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn client_authentication_basic_post_none_and_refusals() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    // client_secret_post.
    let c = code(&gw, web_code(ann)).await;
    let r = post_token(
        &gw,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
            ("client_id", "web"),
            ("client_secret", SECRET),
        ],
    )
    .await;
    tokens_ok(&r);
    let c = code(&gw, web_code(ann)).await;
    let grant = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", WEB_CB.to_owned()),
            ("code_verifier", VERIFIER.to_owned()),
        ]
    };
    let pairs = |extra: &[(&'static str, &str)]| {
        let mut v: Vec<(&str, String)> = grant(&c);
        v.extend(extra.iter().map(|(k, x)| (*k, (*x).to_owned())));
        v
    };
    let send = |auth: Option<String>, p: Vec<(&'static str, String)>| {
        let gw = &gw;
        async move {
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            post_token(gw, auth.as_deref(), &p).await
        }
    };
    // Wrong secret, by Basic: 401 with a Basic challenge.
    let r = send(Some(basic("web", "wrong")), pairs(&[])).await;
    oauth_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic "));
    // Wrong secret, by post: 401 without one.
    let r = send(
        None,
        pairs(&[("client_id", "web"), ("client_secret", "wrong")]),
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    assert_eq!(r.header("www-authenticate"), None);
    // Both methods at once: 400 (RFC 6749 §2.3).
    let r = send(
        Some(basic("web", SECRET)),
        pairs(&[("client_secret", SECRET)]),
    )
    .await;
    oauth_error(&r, 400, "invalid_request");
    // Basic and another client_id in the body.
    let r = send(
        Some(basic("web", SECRET)),
        pairs(&[("client_id", "legacy")]),
    )
    .await;
    oauth_error(&r, 400, "invalid_request");
    // A confidential client without its secret, an unknown client, a
    // public client with a secret, a Bearer header.
    let r = send(None, pairs(&[("client_id", "web")])).await;
    oauth_error(&r, 401, "invalid_client");
    let r = send(Some(basic("nobody", SECRET)), pairs(&[])).await;
    oauth_error(&r, 401, "invalid_client");
    let r = send(
        None,
        pairs(&[("client_id", "native"), ("client_secret", "x")]),
    )
    .await;
    oauth_error(&r, 401, "invalid_client");
    let r = send(Some("Bearer abc".into()), pairs(&[])).await;
    oauth_error(&r, 401, "invalid_client");
    // A repeated parameter, and a body that is not a form.
    let r = Call::post(TOKEN)
        .header("Authorization", &basic("web", SECRET))
        .form("grant_type=authorization_code&grant_type=authorization_code")
        .send(&gw.app)
        .await;
    oauth_error(&r, 400, "invalid_request");
    let r = Call::post(TOKEN)
        .header("Authorization", &basic("web", SECRET))
        .json("{\"grant_type\":\"authorization_code\"}")
        .send(&gw.app)
        .await;
    oauth_error(&r, 400, "invalid_request");
    assert_eq!(Call::get(TOKEN).send(&gw.app).await.status, 405);
    // The code survived every refused attempt.
    tokens_ok(&send(Some(basic("web", SECRET)), pairs(&[])).await);
}

#[tokio::test]
async fn pkce_redirect_expiry_and_binding_are_enforced() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let c = code(&gw, web_code(ann)).await;
    let try_with = |verifier: Option<&'static str>,
                    redirect: &'static str,
                    code: String,
                    client: &'static str| {
        let gw = &gw;
        async move {
            let mut p = vec![
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect),
            ];
            if let Some(v) = verifier {
                p.push(("code_verifier", v));
            }
            post_token(gw, Some(&basic(client, SECRET)), &p).await
        }
    };
    // Missing and wrong verifier.
    oauth_error(
        &try_with(None, WEB_CB, c.clone(), "web").await,
        400,
        "invalid_grant",
    );
    let wrong = "0123456789012345678901234567890123456789abc";
    oauth_error(
        &try_with(Some(wrong), WEB_CB, c.clone(), "web").await,
        400,
        "invalid_grant",
    );
    // Redirect mismatch (a trailing slash).
    let r = try_with(
        Some(VERIFIER),
        "https://app.example.test/cb/",
        c.clone(),
        "web",
    )
    .await;
    oauth_error(&r, 400, "invalid_grant");
    // Another client's code.
    let r = try_with(Some(VERIFIER), WEB_CB, c.clone(), "legacy").await;
    oauth_error(&r, 400, "invalid_grant");
    // Still redeemable by its own client.
    tokens_ok(&try_with(Some(VERIFIER), WEB_CB, c, "web").await);

    // A verifier for a code without a challenge: a PKCE downgrade
    // (RFC 9700 §2.1.1); without a verifier, fine for the client that
    // opted out of PKCE, refused for one that did not.
    let spec = |client| CodeSpec {
        client,
        challenge: None,
        ..web_code(ann)
    };
    let c = code(&gw, spec("legacy")).await;
    oauth_error(
        &try_with(Some(VERIFIER), WEB_CB, c.clone(), "legacy").await,
        400,
        "invalid_grant",
    );
    tokens_ok(&try_with(None, WEB_CB, c, "legacy").await);
    let c = code(&gw, spec("web")).await;
    oauth_error(
        &try_with(None, WEB_CB, c, "web").await,
        400,
        "invalid_grant",
    );

    // Expired.
    let c = code(
        &gw,
        CodeSpec {
            expires_in_ms: -1,
            ..web_code(ann)
        },
    )
    .await;
    oauth_error(
        &try_with(Some(VERIFIER), WEB_CB, c, "web").await,
        400,
        "invalid_grant",
    );

    // A disabled account, and one outside the client's allowed groups.
    let c = code(&gw, web_code(ann)).await;
    gw.store()
        .set_status(ann, AccountStatus::Disabled, now_ms())
        .await
        .unwrap();
    oauth_error(
        &try_with(Some(VERIFIER), WEB_CB, c, "web").await,
        400,
        "invalid_grant",
    );
    let bob = account(&gw, "bob", &["staff"]).await;
    let c = code(
        &gw,
        CodeSpec {
            client: "staffonly",
            ..web_code(bob)
        },
    )
    .await;
    oauth_error(
        &try_with(Some(VERIFIER), WEB_CB, c, "staffonly").await,
        400,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_replayed_code_revokes_what_it_issued() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let c = code(&gw, web_code(ann)).await;
    let j = tokens_ok(&exchange(&gw, &c).await);
    let access = j["access_token"].as_str().unwrap();
    assert_eq!(userinfo_get(&gw, access).await.status, 200);
    oauth_error(&exchange(&gw, &c).await, 400, "invalid_grant");
    // The first redemption's tokens are dead.
    assert_eq!(userinfo_get(&gw, access).await.status, 401);
    let r = post_token(
        &gw,
        Some(&basic("web", SECRET)),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", j["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    oauth_error(&r, 400, "invalid_grant");
    assert_eq!(security_events(&gw, "oidc.code-replay", ann).await, 1);
}

#[tokio::test]
async fn refresh_tokens_rotate_with_a_grace_window_then_reuse_revokes_the_family() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &["staff"]).await;
    let j = tokens_ok(&exchange(&gw, &code(&gw, web_code(ann)).await).await);
    let r0 = j["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(&gw, &r0, None).await;
    let j1 = tokens_ok(&r);
    let (r1, a1) = (
        j1["refresh_token"].as_str().unwrap().to_owned(),
        j1["access_token"].as_str().unwrap().to_owned(),
    );
    assert_ne!(r1, r0);
    // A refreshed ID token: same sub, sid and auth_time, no nonce.
    let first = verify(
        &gw,
        j["id_token"].as_str().unwrap(),
        Algorithm::RS256,
        "JWT",
    )
    .await;
    let again = verify(
        &gw,
        j1["id_token"].as_str().unwrap(),
        Algorithm::RS256,
        "JWT",
    )
    .await;
    for k in ["sub", "sid", "auth_time", "iss", "aud"] {
        assert_eq!(first[k], again[k], "{k}");
    }
    assert!(!again.contains_key("nonce"));
    assert_eq!(again["at_hash"], at_hash(TokenHash::Sha256, &a1));
    // A retry with r0 inside the window: the same successors.
    let j1b = tokens_ok(&refresh(&gw, &r0, None).await);
    assert_eq!(j1b["refresh_token"], r1.as_str());
    assert_eq!(j1b["access_token"], a1.as_str());
    // Narrowing is allowed, and the access token carries the narrower
    // scope; widening is refused without rotating.
    let j2 = tokens_ok(&refresh(&gw, &r1, Some("openid email")).await);
    assert_eq!(j2["scope"], "email openid");
    let a2 = j2["access_token"].as_str().unwrap();
    let u = userinfo_get(&gw, a2).await.json();
    assert!(u.get("email").is_some() && u.get("groups").is_none(), "{u}");
    let r2 = j2["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(&gw, &r2, Some("openid admin")).await;
    oauth_error(&r, 400, "invalid_scope");
    let j3 = tokens_ok(&refresh(&gw, &r2, None).await);
    let (r3, a3) = (
        j3["refresh_token"].as_str().unwrap().to_owned(),
        j3["access_token"].as_str().unwrap().to_owned(),
    );
    assert_eq!(userinfo_get(&gw, &a3).await.status, 200);
    // After the window, r2 again is a reuse: the family dies, r3 and a3
    // with it; it is counted.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    oauth_error(&refresh(&gw, &r2, None).await, 400, "invalid_grant");
    oauth_error(&refresh(&gw, &r3, None).await, 400, "invalid_grant");
    assert_eq!(userinfo_get(&gw, &a3).await.status, 401);
    assert!(
        gw.state
            .metrics
            .render()
            .contains("vestibule_oidc_refresh_token_reuse_total 1"),
        "{}",
        gw.state.metrics.render()
    );
    assert_eq!(security_events(&gw, "oidc.refresh-reuse", ann).await, 1);
}

/// How many audit entries of `action` name the account.
async fn security_events(gw: &Gw, action: &str, account: i64) -> usize {
    let entries = gw
        .store()
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some(action.into()),
            subject: Some(format!("account:{account}")),
            limit: 10,
        })
        .await
        .unwrap();
    for e in &entries {
        assert_eq!(e.outcome, "denied");
        assert!(e.actor.starts_with("client:"), "{e:?}");
    }
    entries.len()
}

#[tokio::test]
async fn a_refresh_checks_the_account_again() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    let j = tokens_ok(&exchange(&gw, &code(&gw, web_code(ann)).await).await);
    gw.store()
        .set_status(ann, AccountStatus::Disabled, now_ms())
        .await
        .unwrap();
    let r = refresh(&gw, j["refresh_token"].as_str().unwrap(), None).await;
    oauth_error(&r, 400, "invalid_grant");
    // Without offline_access, no refresh token at all.
    gw.store()
        .set_status(ann, AccountStatus::Active, now_ms())
        .await
        .unwrap();
    let c = code(
        &gw,
        CodeSpec {
            scopes: "openid profile",
            ..web_code(ann)
        },
    )
    .await;
    let j = tokens_ok(&exchange(&gw, &c).await);
    assert!(j.get("refresh_token").is_none(), "{j}");
    assert!(j.get("id_token").is_some());
}

/// `[oidc_provider] max_sso_age`: a refresh needs the account seen
/// through the SSO front within it, as device credentials do.
#[tokio::test]
async fn a_refresh_needs_a_recent_sso_sign_in_with_max_sso_age() {
    let config = provider_config().replace(
        "refresh_grace = \"1s\"",
        "refresh_grace = \"1s\"\nmax_sso_age = \"1h\"",
    );
    let gw = provider_gw_of(&config).await;
    let ann = account(&gw, "ann", &[]).await;
    let j = tokens_ok(&exchange(&gw, &code(&gw, web_code(ann)).await).await);
    // Seen just now: the refresh passes.
    let j = tokens_ok(&refresh(&gw, j["refresh_token"].as_str().unwrap(), None).await);
    // Last seen two hours ago: refused, and the token is not consumed.
    let hour = 3_600_000;
    gw.store()
        .touch_seen(ann, now_ms() - 2 * hour)
        .await
        .unwrap();
    let stale = refresh(&gw, j["refresh_token"].as_str().unwrap(), None).await;
    oauth_error(&stale, 400, "invalid_grant");
    // Seen again (a sign-in through the front): the same token works.
    gw.store().touch_seen(ann, now_ms()).await.unwrap();
    tokens_ok(&refresh(&gw, j["refresh_token"].as_str().unwrap(), None).await);
}

#[tokio::test]
async fn client_credentials_and_grant_type_errors() {
    let gw = provider_gw().await;
    let r = post_token(
        &gw,
        Some(&basic("svc", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let j = tokens_ok(&r);
    assert_eq!(j["scope"], "api.read api.write");
    assert!(j.get("refresh_token").is_none() && j.get("id_token").is_none());
    // No user behind it: userinfo refuses.
    assert_eq!(
        userinfo_get(&gw, j["access_token"].as_str().unwrap())
            .await
            .status,
        403
    );
    let r = post_token(
        &gw,
        Some(&basic("svc", SECRET)),
        &[("grant_type", "client_credentials"), ("scope", "api.read")],
    )
    .await;
    assert_eq!(tokens_ok(&r)["scope"], "api.read");
    let r = post_token(
        &gw,
        Some(&basic("svc", SECRET)),
        &[("grant_type", "client_credentials"), ("scope", "openid")],
    )
    .await;
    oauth_error(&r, 400, "invalid_scope");
    // Not this client's grant; a public client never.
    let r = post_token(
        &gw,
        Some(&basic("web", SECRET)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    oauth_error(&r, 400, "unauthorized_client");
    let r = post_token(
        &gw,
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "native"),
        ],
    )
    .await;
    oauth_error(&r, 400, "unauthorized_client");
    let r = post_token(
        &gw,
        Some(&basic("svc", SECRET)),
        &[("grant_type", "password")],
    )
    .await;
    oauth_error(&r, 400, "unsupported_grant_type");
    let r = post_token(&gw, Some(&basic("svc", SECRET)), &[("scope", "x")]).await;
    oauth_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn jwt_access_tokens_and_per_client_algorithms() {
    let gw = provider_gw().await;
    let ann = account(&gw, "ann", &[]).await;
    // jwtapp: RFC 9068 access token, EdDSA ID token.
    let c = code(
        &gw,
        CodeSpec {
            client: "jwtapp",
            ..web_code(ann)
        },
    )
    .await;
    let r = exchange_as(&gw, "jwtapp", &c).await;
    let j = tokens_ok(&r);
    let access = j["access_token"].as_str().unwrap();
    let at = verify(&gw, access, Algorithm::EdDSA, "at+jwt").await;
    assert_eq!(at["iss"], ISSUER);
    assert_eq!(at["aud"], ISSUER);
    assert_eq!(at["sub"], ann.to_string());
    assert_eq!(at["client_id"], "jwtapp");
    assert_eq!(at["scope"], ALL_SCOPES);
    assert!(at["jti"].as_str().is_some_and(|s| s.len() >= 43));
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        600
    );
    assert!(at.contains_key("auth_time"));
    let id = verify(
        &gw,
        j["id_token"].as_str().unwrap(),
        Algorithm::EdDSA,
        "JWT",
    )
    .await;
    assert_eq!(id["aud"], "jwtapp");
    // EdDSA over Ed25519: at_hash is SHA-512's left half.
    assert_eq!(id["at_hash"], at_hash(TokenHash::Sha512, access));
    // The JWT is stored too: userinfo takes it, and a replay kills it.
    assert_eq!(userinfo_get(&gw, access).await.status, 200);

    // native: a public client (`none`), PKCE, ES256, loopback redirect.
    let c = code(
        &gw,
        CodeSpec {
            client: "native",
            redirect_uri: "http://127.0.0.1:49152/cb",
            ..web_code(ann)
        },
    )
    .await;
    let r = post_token(
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
    .await;
    let j = tokens_ok(&r);
    let id = verify(
        &gw,
        j["id_token"].as_str().unwrap(),
        Algorithm::ES256,
        "JWT",
    )
    .await;
    assert_eq!(id["aud"], "native");
    assert_eq!(
        id["at_hash"],
        at_hash(TokenHash::Sha256, j["access_token"].as_str().unwrap())
    );
}

#[tokio::test]
async fn the_jwk_set_has_every_family_with_kid_use_and_alg() {
    let gw = provider_gw().await;
    let (_, doc) = jwks(&gw).await;
    let mut algs: Vec<&str> = doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
            assert_eq!(k["use"], "sig", "{k}");
            assert!(k.get("d").is_none() && k.get("p").is_none());
            k["alg"].as_str().unwrap()
        })
        .collect();
    // Assertions keep ES256 (the default), first; then the provider's.
    assert_eq!(algs[0], "ES256");
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);
}

/// A stored client's `id_token_alg` gets its key family even when no
/// client of the file uses that algorithm: made on demand at the token
/// endpoint, so a client added by `vestibule clients` while the server
/// runs is served too (before the fix, the ID token could not be signed:
/// a 500).
#[tokio::test]
async fn a_stored_clients_algorithm_gets_its_key_family() {
    use vestibule_store::provider::StoredOidcClient;
    let h = sha256_hex(SECRET);
    let gw = provider_gw_of(&accounts_config(
        "auto",
        &format!(
            "[oidc_provider]\nissuer = \"{ISSUER}\"\n\n\
             [[oidc_provider.client]]\nclient_id = \"web\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
             redirect_uris = [\"{WEB_CB}\"]\n"
        ),
        "",
    ))
    .await;
    let ann = account(&gw, "ann", &[]).await;
    // Added while the gateway runs, as `vestibule clients add` does.
    gw.store()
        .create_oidc_client(&StoredOidcClient {
            client_id: "added".into(),
            secret_hash: Some(sha256(SECRET)),
            settings_json: format!(
                r#"{{"kind":"confidential","redirect_uris":["{WEB_CB}"],"id_token_alg":"EdDSA"}}"#
            ),
            created_at: 0,
            updated_at: 0,
        })
        .await
        .unwrap();
    let c = code(
        &gw,
        CodeSpec {
            client: "added",
            ..web_code(ann)
        },
    )
    .await;
    let r = exchange_as(&gw, "added", &c).await;
    let j = tokens_ok(&r);
    let claims = verify(
        &gw,
        j["id_token"].as_str().unwrap(),
        Algorithm::EdDSA,
        "JWT",
    )
    .await;
    assert_eq!(claims["aud"], "added");
}

/// A stored client removed, or its secret rotated, by `vestibule clients`
/// stops working once the registry's short cache has passed
/// (`STORED_CLIENT_TTL`, under a second): the wait is that bound, not a
/// speed measurement.
#[tokio::test]
async fn a_removed_or_rotated_stored_client_stops_working_within_the_cache_ttl() {
    use vestibule_store::provider::StoredOidcClient;
    let gw = provider_gw().await;
    let client = |id: &str| {
        StoredOidcClient {
        client_id: id.into(),
        secret_hash: Some(sha256(SECRET)),
        settings_json: r#"{"kind":"confidential","grants":["client_credentials"],"scopes":["api"],"redirect_uris":["https://x.test/cb"]}"#.into(),
        created_at: 0,
        updated_at: 0,
    }
    };
    let cc = [("grant_type", "client_credentials")];
    for id in ["gone", "rotated"] {
        gw.store().create_oidc_client(&client(id)).await.unwrap();
        tokens_ok(&post_token(&gw, Some(&basic(id, SECRET)), &cc).await);
    }
    assert!(gw.store().delete_oidc_client("gone").await.unwrap());
    assert!(
        gw.store()
            .set_oidc_client_secret("rotated", &sha256("new-secret"), 1)
            .await
            .unwrap()
    );
    let ttl = vestibule::provider::clients::STORED_CLIENT_TTL;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let r = post_token(&gw, Some(&basic("gone", SECRET)), &cc).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = post_token(&gw, Some(&basic("rotated", SECRET)), &cc).await;
    assert_eq!(r.status, 401, "{}", r.text());
    tokens_ok(&post_token(&gw, Some(&basic("rotated", "new-secret")), &cc).await);
}
