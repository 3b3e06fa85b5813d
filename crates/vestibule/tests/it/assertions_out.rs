//! Signed identity assertions sent to apps, through the real binary: the
//! upstream receives `X-Vestibule-Assertion`, which verifies against
//! `/.vestibule/jwks.json` with the right claims; forward-auth answers carry
//! it; a client's copy never reaches the app; after `vestibule keys rotate
//! --immediately`, new assertions name the new key while the old one stays
//! published.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::Value;
use vestibule_jose::{Algorithm, Compact, Jwks, Policy};

use crate::support::*;

fn gateway_config(data: &Path, upstream: SocketAddr) -> String {
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n\n\
         [assertions]\nissuer = \"https://sso.example.test\"\n",
        data.display()
    );
    let routes = format!(
        "{}{}",
        route(
            "signed",
            "/",
            upstream,
            "host = \"App.Test\"\nassertion = true\ncredentials = [\"bearer\"]"
        ),
        route(
            "other",
            "/plain",
            upstream,
            "host = \"app.test\"\nassertion = true\nassertion_audience = \"urn:plain\"\nauth = \"optional\""
        ),
    );
    config(&src, &routes)
}

fn alice() -> Vec<(&'static str, &'static str)> {
    vec![
        ("X-authentik-uid", "a-1"),
        ("X-authentik-username", "alice"),
        ("X-authentik-email", "alice@example.com"),
        ("X-authentik-name", "Alice A"),
        ("X-authentik-groups", "admins|users"),
    ]
}

/// The assertion headers the upstream received.
fn received(r: &Raw) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let j: Value = serde_json::from_slice(&r.body).unwrap();
    j["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p[0].as_str()
                .unwrap()
                .replace('_', "-")
                .eq_ignore_ascii_case("x-vestibule-assertion")
        })
        .map(|p| p[1].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) async fn jwks(gw: &Gateway) -> Jwks {
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/jwks.json", &[]).await;
    assert_eq!(r.status, 200);
    Jwks::parse(&r.body).unwrap()
}

/// Verifies `token` against the published keys; returns its kid and claims.
pub(crate) fn verify(token: &str, set: &Jwks) -> (String, Value) {
    let policy = Policy {
        algorithms: &[Algorithm::ES256],
        types: &["vestibule-id+jwt"],
        type_required: true,
    };
    let v = Compact::parse(token).unwrap().verify(set, &policy).unwrap();
    let claims: Value = serde_json::from_slice(v.payload()).unwrap();
    (v.kid().unwrap().to_owned(), claims)
}

#[tokio::test]
async fn apps_receive_a_verifiable_assertion_in_path_and_from_forward_auth() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gw = Gateway::start_in(dir, &gateway_config(&data, up), &[]).await;
    let cfg = gw._dir.path().join("vestibule.toml");

    // In path: exactly one assertion, verifiable, with the claims.
    let mut with_forgeries = alice();
    with_forgeries.push(("X-Vestibule-Assertion", "forged"));
    with_forgeries.push(("x_vestibule_assertion", "forged"));
    let r = Raw::get(gw.addr, TRUSTED, "/x", &with_forgeries).await;
    let tokens = received(&r);
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert_ne!(tokens[0], "forged");
    let set = jwks(&gw).await;
    let (kid, claims) = verify(&tokens[0], &set);
    assert_eq!(claims["iss"], "https://sso.example.test");
    assert_eq!(claims["aud"], "app.test");
    assert_eq!(claims["sub"], "a-1");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["name"], "Alice A");
    assert_eq!(claims["groups"], serde_json::json!(["admins", "users"]));
    assert_eq!(claims["auth_method"], "header");
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64(), Some(iat));
    assert_eq!(claims["exp"].as_i64(), Some(iat + 60));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - iat).abs() <= 5, "iat {iat}, now {now}");

    // The same identity and audience again: the cached assertion.
    let again = received(&Raw::get(gw.addr, TRUSTED, "/y", &alice()).await);
    assert_eq!(again, tokens);
    // Another audience: another assertion.
    let other = received(&Raw::get(gw.addr, TRUSTED, "/plain/x", &alice()).await);
    assert_eq!(verify(&other[0], &set).1["aud"], "urn:plain");

    // Without an identity there is nothing to vouch for, and a client's
    // copy is still removed.
    let anon = received(
        &Raw::get(
            gw.addr,
            TRUSTED,
            "/plain/anonymous",
            &[("X-Vestibule-Assertion", "forged")],
        )
        .await,
    );
    assert!(anon.is_empty(), "{anon:?}");

    // A device credential: the owner, with `auth_method` and `device_id`.
    let store = vestibule_store::open(&vestibule_store::StoreConfig::new(format!(
        "sqlite://{}",
        data.join("vestibule.db").display()
    )))
    .await
    .unwrap();
    let owner = store
        .account_by_identity(&vestibule_store::IdentityKey::new("authentik", "a-1"))
        .await
        .unwrap()
        .unwrap();
    let secret = vestibule_core::credential::device_token(rand::random())
        .expose()
        .to_owned();
    let device = store
        .create_device(&vestibule_store::NewDevice {
            account_id: owner.id,
            name: "phone".into(),
            kind: "token".into(),
            routes: vec!["signed".into()],
            secret_hash: vestibule_core::secret::hash_token(&secret),
            basic_user: None,
            created_at: 0,
            expires_at: None,
        })
        .await
        .unwrap();
    let bearer = format!("Bearer {secret}");
    let by_device = received(
        &Raw::get(
            gw.addr,
            TRUSTED,
            "/d",
            &[("Authorization", bearer.as_str())],
        )
        .await,
    );
    let (_, device_claims) = verify(&by_device[0], &set);
    assert_eq!(device_claims["auth_method"], "device");
    assert_eq!(device_claims["device_id"], device.id);
    assert_eq!(device_claims["preferred_username"], "alice");
    assert!(claims.get("device_id").is_none());

    // Forward-auth: the 200 answer carries the assertion for the original
    // request's route.
    let mut fa = alice();
    fa.push(("X-Forwarded-Uri", "/z"));
    fa.push(("X-Forwarded-Host", "app.test"));
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/verify", &fa).await;
    assert_eq!(r.status, 200);
    let token = r.header("x-vestibule-assertion").unwrap();
    let (fa_kid, fa_claims) = verify(token, &set);
    assert_eq!(fa_kid, kid);
    assert_eq!(fa_claims["aud"], "app.test");
    assert_eq!(fa_claims["preferred_username"], "alice");

    // Forward-auth cannot strip a client's copy (the front builds the
    // request to the app), so a described request carrying one, in any
    // spelling, is refused and audited as a spoof attempt.
    for spelling in [
        "X-Vestibule-Assertion",
        "x-vestibule-assertion",
        "X_Vestibule_Assertion",
    ] {
        let mut spoofed = fa.clone();
        spoofed.push((spelling, token));
        let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/verify", &spoofed).await;
        assert_eq!(r.status, 400, "{spelling}: {}", r.text());
        assert!(r.header("x-vestibule-assertion").is_none());
        assert!(r.header("remote-user").is_none());
    }
    let mut audited = Vec::new();
    for _ in 0..100 {
        audited = store
            .audit(&vestibule_store::AuditFilter {
                since: None,
                action: Some("spoof-attempt".into()),
                subject: None,
                limit: 10,
            })
            .await
            .unwrap();
        if !audited.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Rate-limited like every spoof attempt: the first one is recorded.
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].subject, "x-vestibule-assertion");
    assert_eq!(audited[0].outcome, "refused");
    assert!(
        !format!("{audited:?}").contains(token),
        "the audit never holds the token"
    );
    assert!(
        gw.stderr()
            .contains("carried a client's own assertion header")
    );

    // Rotation: a key that signs at once; the gateway picks it up at its
    // next reload (`[keys] reload_every`, a minute by default; watched between
    // two gateways in key_rotation.rs), so a second gateway on
    // the same database shows what every gateway does after it.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["keys", "rotate", "--immediately", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let second = Gateway::start_in(
        tempfile::tempdir().unwrap(),
        &gateway_config(&data, up),
        &[],
    )
    .await;
    let set = jwks(&second).await;
    let fresh = received(&Raw::get(second.addr, TRUSTED, "/", &alice()).await);
    let (new_kid, _) = verify(&fresh[0], &set);
    assert_ne!(new_kid, kid);
    // The old key is still published: the old assertion still verifies.
    assert_eq!(verify(&tokens[0], &set).0, kid);
}

/// Behind a front that sends signed assertions (`[source.jwt]`), the app's
/// assertion says `auth_method: jwt`, in the header `[assertions] header`
/// names; a client's copy of that header, in any spelling, is removed
/// in-path and refused in forward-auth.
#[tokio::test]
async fn a_jwt_identity_is_vouched_for_as_jwt_in_the_configured_header() {
    use vestibule_core::jwt::testing::TestSigner;
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let front = TestSigner::es256("front");
    let jwks_file = dir.path().join("front-jwks.json");
    std::fs::write(&jwks_file, TestSigner::jwks_json(&[&front])).unwrap();
    let data = dir.path().join("data");
    let src = format!(
        "[source.jwt]\npreset = \"authentik\"\nissuer = \"https://front.test\"\naudience = [\"vestibule\"]\n\
         jwks_file = \"{}\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n\n\
         [assertions]\nissuer = \"https://sso.example.test\"\nheader = \"X-Signed-Identity\"\n",
        jwks_file.display(),
        data.display()
    );
    let text = config(
        &src,
        &route("app", "/", up, "host = \"app.test\"\nassertion = true"),
    );
    let gw = Gateway::start_in(dir, &text, &[]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = front.sign(&serde_json::json!({
        "iss": "https://front.test",
        "aud": "vestibule",
        "sub": "u-1",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "alice",
        "groups": ["users"],
    }));
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[
            ("X-authentik-jwt", token.as_str()),
            ("X-Signed-Identity", "forged"),
            ("x_signed_identity", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = r.seen_headers();
    let ours: Vec<&String> = seen
        .iter()
        .filter(|(n, _)| {
            n.replace('_', "-")
                .eq_ignore_ascii_case("x-signed-identity")
        })
        .flat_map(|(_, v)| v)
        .collect();
    assert_eq!(ours.len(), 1, "{seen:?}");
    let (_, claims) = verify(ours[0], &jwks(&gw).await);
    assert_eq!(claims["auth_method"], "jwt");
    assert_eq!(claims["sub"], "u-1");
    assert_eq!(claims["preferred_username"], "alice");
    assert_eq!(claims["aud"], "app.test");

    // Forward-auth: the answer carries it under the configured name; a
    // client's copy, any spelling, is refused.
    let fa = [
        ("X-Forwarded-Uri", "/"),
        ("X-Forwarded-Host", "app.test"),
        ("X-authentik-jwt", token.as_str()),
    ];
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/verify", &fa).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.header("x-signed-identity").is_some());
    for spelling in ["X-Signed-Identity", "X_SIGNED_IDENTITY"] {
        let mut spoofed = fa.to_vec();
        spoofed.push((spelling, "forged"));
        let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/verify", &spoofed).await;
        assert_eq!(r.status, 400, "{spelling}: {}", r.text());
    }
}
