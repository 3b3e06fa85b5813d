//! `[source.oidc] client_auth` (issue 15) against a REAL upstream: a second
//! `vestibule serve` running its OpenID provider, as in `oidc_login`.
//!
//! - `client_secret_post`: the downstream signs in with its secret in the
//!   form body.
//! - `private_key_jwt`, both ends: the downstream signs a client assertion
//!   with its own signing key; the upstream, where the client is
//!   registered with the downstream's `/.vestibule/jwks.json` as its
//!   `jwks_uri`, fetches that set and verifies the assertion (RFC 7523,
//!   OIDC Core §9). Then the upstream's token endpoint is given assertions
//!   by hand, signed by the downstream's real key ring: a replayed `jti`,
//!   a foreign audience, a foreign key, a secret beside an assertion, a
//!   mismatched `client_id`, and an assertion from a secret client.

use serde_json::{Value, json};
use vestibule_core::oidc::JWT_BEARER_ASSERTION;

use crate::oidc_login::{
    Down, HTML, KEK, KEK_VAR, Pair, SECRET, SECRET_VAR, client_block, get, location, secret_line,
    set_cookie, sha256_hex, sign_in, start_pair,
};
use crate::support::*;

/// An upstream with the client `gate` registered by `client` (its
/// credential line, given the downstream's JWKS URL), and a second client
/// `withsecret` (a secret client), and a downstream whose `[source.oidc]`
/// adds `auth` (its client authentication lines).
pub(crate) async fn pair(client: impl Fn(&str) -> String, auth: &str) -> Pair {
    start_pair(
        |d| {
            client_block(
                "gate",
                &client(&format!("http://{d}/.vestibule/jwks.json")),
                &[d],
            ) + &client_block("withsecret", &secret_line(), &[d])
        },
        |_| Down {
            oidc: format!("{auth}\nprovisioning = \"auto\""),
            ..Down::default()
        },
        &[],
    )
    .await
}

/// Signs in at the downstream and reads the page it returns to.
async fn signs_in(p: &Pair) {
    let d = p.down.addr;
    let cookie = sign_in(p, &format!("http://{d}/hello")).await;
    let r = get(
        &format!("http://{d}/hello"),
        &[("Cookie", &format!("vestibule={cookie}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("alice"), "{}", r.text());
}

#[tokio::test]
async fn client_secret_post_signs_in() {
    let p = pair(
        |_| format!("secret_sha256 = \"{}\"", sha256_hex(SECRET)),
        &format!("client_auth = \"client_secret_post\"\nclient_secret_env = \"{SECRET_VAR}\""),
    )
    .await;
    signs_in(&p).await;
}

/// The downstream's key ring, opened from its store as the downstream
/// opens it (no KEK: its keys are stored plain).
async fn down_keys(p: &Pair) -> vestibule::keys::KeyRing {
    let text = format!(
        "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n",
        p.down._dir.path().join("data").display()
    );
    let file = vestibule::config::parse_with_env(&text, []).unwrap();
    let (settings, diags) = vestibule::config::validate(&file);
    let settings = settings.unwrap_or_else(|| panic!("{diags:?}"));
    let store = vestibule::app::open_store(settings.accounts.as_ref().unwrap())
        .await
        .unwrap();
    vestibule::keys::KeyRing::open(store, settings.keys.clone())
        .await
        .unwrap()
}

/// A POST of `body` to the upstream's token endpoint.
async fn token_request(p: &Pair, body: &str) -> Raw {
    let req = format!(
        "POST /.vestibule/oidc/token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        p.up.addr,
        body.len()
    );
    Raw::send(p.up.addr, TRUSTED, req.as_bytes()).await
}

fn form(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A code exchange with a bogus code, authenticated by `assertion`: 400
/// `invalid_grant` means the client authenticated, 401 `invalid_client`
/// that it did not.
fn exchange_with(assertion: &str, extra: &str) -> String {
    format!(
        "grant_type=authorization_code&code=bogus&redirect_uri=x&code_verifier=v\
         &client_assertion_type={}&client_assertion={}{extra}",
        form(JWT_BEARER_ASSERTION),
        form(assertion)
    )
}

fn assertion_claims(p: &Pair, jti: &str) -> Value {
    let now = vestibule::accounts::now_ms() / 1000;
    json!({
        "iss": "gate", "sub": "gate", "aud": format!("{}/.vestibule/oidc/token", p.issuer),
        "jti": jti, "iat": now, "exp": now + 60,
    })
}

#[tokio::test]
async fn private_key_jwt_signs_in_and_the_provider_checks_assertions() {
    let p = pair(
        |jwks| format!("jwks_uri = \"{jwks}\""),
        "client_auth = \"private_key_jwt\"",
    )
    .await;
    // The whole login: the downstream's assertion, verified upstream with
    // the keys it fetched from the downstream.
    signs_in(&p).await;

    let keys = down_keys(&p).await;
    let sign = |claims: &Value| {
        keys.current()
            .sign(Some("JWT"), claims.to_string().as_bytes())
            .unwrap()
    };
    let status = |r: &Raw| {
        (
            r.status,
            r.json()["error"].as_str().unwrap_or("").to_owned(),
        )
    };
    // A fresh assertion authenticates (the bogus code is what fails)...
    let one = sign(&assertion_claims(&p, "jti-once"));
    let r = token_request(&p, &exchange_with(&one, "")).await;
    assert_eq!(status(&r), (400, "invalid_grant".into()), "{}", r.text());
    // ...once: the same jti again is a replay (RFC 7523 §3 item 7).
    let r = token_request(&p, &exchange_with(&one, "")).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // The issuer as audience is accepted; with client_id naming it too.
    let mut c = assertion_claims(&p, "jti-issuer-aud");
    c["aud"] = json!(p.issuer);
    let r = token_request(&p, &exchange_with(&sign(&c), "&client_id=gate")).await;
    assert_eq!(status(&r), (400, "invalid_grant".into()), "{}", r.text());
    // Another party named beside the provider.
    let mut c = assertion_claims(&p, "jti-two-auds");
    c["aud"] = json!([p.issuer, "https://elsewhere.example.com/token"]);
    let r = token_request(&p, &exchange_with(&sign(&c), "")).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // An assertion that lives too long.
    let mut c = assertion_claims(&p, "jti-long");
    c["exp"] = json!(vestibule::accounts::now_ms() / 1000 + 3600);
    let r = token_request(&p, &exchange_with(&sign(&c), "")).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // Signed by a key that is not in the client's set.
    let foreign = vestibule_jose::SigningKey::generate(vestibule_jose::Algorithm::ES256).unwrap();
    let forged = foreign
        .sign(
            Some("JWT"),
            assertion_claims(&p, "jti-forged").to_string().as_bytes(),
        )
        .unwrap();
    let r = token_request(&p, &exchange_with(&forged, "")).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // client_id naming another client than the assertion.
    let c = sign(&assertion_claims(&p, "jti-other-id"));
    let r = token_request(&p, &exchange_with(&c, "&client_id=withsecret")).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // A secret beside the assertion: two methods (RFC 6749 §2.3).
    let c = sign(&assertion_claims(&p, "jti-and-secret"));
    let r = token_request(&p, &exchange_with(&c, "&client_secret=x")).await;
    assert_eq!(status(&r), (400, "invalid_request".into()), "{}", r.text());
    // A secret client has no keys: an assertion from it is refused, even
    // signed by a key the provider knows (the downstream's).
    let mut c = assertion_claims(&p, "jti-secret-client");
    c["iss"] = json!("withsecret");
    c["sub"] = json!("withsecret");
    let r = token_request(&p, &exchange_with(&sign(&c), "")).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // And the key client cannot fall back to a secret.
    let r = token_request(
        &p,
        "grant_type=authorization_code&code=bogus&redirect_uri=x&client_id=gate&client_secret=anything",
    )
    .await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
    // A wrong assertion type is not read.
    let c = sign(&assertion_claims(&p, "jti-type"));
    let body = exchange_with(&c, "").replace(
        &form(JWT_BEARER_ASSERTION),
        &form("urn:ietf:params:oauth:client-assertion-type:saml2-bearer"),
    );
    let r = token_request(&p, &body).await;
    assert_eq!(status(&r), (401, "invalid_client".into()), "{}", r.text());
}

/// A provider whose client is registered with a secret refuses the
/// downstream's assertion: the login ends on vestibule's error page, and
/// no session is made.
#[tokio::test]
async fn private_key_jwt_against_a_secret_client_is_refused() {
    let p = pair(
        |_| format!("secret_sha256 = \"{}\"", sha256_hex(SECRET)),
        "client_auth = \"private_key_jwt\"",
    )
    .await;
    let d = p.down.addr;
    let (authorize, login) = crate::oidc_login::start_login(&p, &format!("http://{d}/")).await;
    let cb = crate::oidc_login::at_provider(&authorize).await;
    let r = get(&cb, &[HTML, ("Cookie", &format!("vestibule_oidc={login}"))]).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(set_cookie(&r, "vestibule").is_none_or(|v| v.is_empty()));
    let _ = location;
}

/// A used assertion id is kept in the database, not only in the
/// provider's memory: after the provider restarts (its memory gone, as
/// at another instance sharing the database) the same assertion is still
/// a replay (RFC 7523 §3 item 7).
#[tokio::test]
async fn a_used_assertion_is_still_a_replay_after_the_provider_restarts() {
    let p = pair(
        |jwks| format!("jwks_uri = \"{jwks}\""),
        "client_auth = \"private_key_jwt\"",
    )
    .await;
    let keys = down_keys(&p).await;
    let sign = |jti: &str| {
        keys.current()
            .sign(
                Some("JWT"),
                assertion_claims(&p, jti).to_string().as_bytes(),
            )
            .unwrap()
    };
    let (used, fresh) = (sign("jti-kept"), sign("jti-fresh"));
    let r = token_request(&p, &exchange_with(&used, "")).await;
    assert_eq!(
        r.status,
        400,
        "authenticated (the bogus code fails): {}",
        r.text()
    );

    let Pair {
        up,
        down,
        up_text,
        issuer,
    } = p;
    let Gateway {
        mut child, _dir, ..
    } = up;
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    let up = Gateway::start_in(_dir, &up_text, &[(KEK_VAR, KEK)]).await;
    let p = Pair {
        up,
        down,
        up_text,
        issuer,
    };
    let r = token_request(&p, &exchange_with(&used, "")).await;
    assert_eq!(r.status, 401, "a replay after the restart: {}", r.text());
    assert_eq!(r.json()["error"], "invalid_client");
    // A fresh one still authenticates.
    let r = token_request(&p, &exchange_with(&fresh, "")).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["error"], "invalid_grant");
}
