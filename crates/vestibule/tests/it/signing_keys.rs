//! The assertion signing keys through the real binary: made at first
//! start, sealed under the key-encryption key, published at
//! `/.vestibule/jwks.json` on both listeners, listed and rotated by
//! `vestibule keys`, and shared by every gateway on the same database.

use std::path::Path;

use serde_json::Value;

use crate::support::*;

const KEK_VAR: &str = "TEST_KEK_FOR_VESTIBULE_KEYS";
/// 32 bytes, base64.
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn gateway_config(data: &Path, upstream: std::net::SocketAddr) -> String {
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n\n[keys]\nkek_env = \"{KEK_VAR}\"\n",
        data.display()
    );
    config(&src, &route("app", "/", upstream, ""))
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn keys_cli(cfg: &Path, args: &[&str], kek: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"));
    cmd.arg("keys")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("USER", "tester")
        .env_remove("SUDO_USER")
        .env_remove("VESTIBULE_CONFIG")
        .env_remove("RUST_LOG")
        .env_remove(KEK_VAR);
    if let Some(k) = kek {
        cmd.env(KEK_VAR, k);
    }
    let out = cmd.output().await.unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn listed(cfg: &Path) -> Vec<Value> {
    let o = keys_cli(cfg, &["list", "--json"], Some(KEK)).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    serde_json::from_str::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The published key ids, in publishing order, after checking the
/// response's headers and that the set parses as a JWK Set.
async fn published(addr: std::net::SocketAddr) -> Vec<String> {
    let r = Raw::get(addr, TRUSTED, "/.vestibule/jwks.json", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/jwk-set+json"));
    // Half of the default `publish_ahead` (1h): a cached set holds a new
    // key before it signs.
    assert_eq!(r.header("cache-control"), Some("public, max-age=1800"));
    let set = vestibule_jose::Jwks::parse(&r.body).unwrap();
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    let json: Value = serde_json::from_slice(&r.body).unwrap();
    json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            for private in ["d", "p", "q", "dp", "dq", "qi"] {
                assert!(
                    k.get(private).is_none(),
                    "a private member `{private}` is published"
                );
            }
            k["kid"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn kid_and_state(keys: &[Value]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn keys_are_made_sealed_published_rotated_and_shared() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = gateway_config(&data, up);
    let gw = Gateway::start_in(dir, &text, &[(KEK_VAR, KEK)]).await;
    let cfg = gw._dir.path().join("vestibule.toml");

    // First start: one key, signing, sealed, published on both listeners.
    let keys = listed(&cfg).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["sealed"], true);
    assert_eq!(keys[0]["state"], "signing");
    let first = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(published(gw.addr).await, vec![first.clone()]);
    assert_eq!(published(gw.admin.unwrap()).await, vec![first.clone()]);

    // Rotating needs the key-encryption key (listing does not).
    let o = keys_cli(&cfg, &["rotate"], None).await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains(KEK_VAR), "{}", o.stderr);
    assert_eq!(listed(&cfg).await.len(), 1);

    // On command: published ahead, the first key still signs.
    let o = keys_cli(&cfg, &["rotate"], Some(KEK)).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let keys = listed(&cfg).await;
    let ahead = keys[1]["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        kid_and_state(&keys),
        vec![
            (first.clone(), "signing".to_owned()),
            (ahead.clone(), "published".to_owned())
        ]
    );
    assert!(o.stdout.contains(&ahead), "{}", o.stdout);

    // Immediately: the new key signs, the first one is retired but stays
    // published (its tokens may still be live).
    let o = keys_cli(&cfg, &["rotate", "--immediately"], Some(KEK)).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let keys = listed(&cfg).await;
    let now_signing = keys[2]["kid"].as_str().unwrap().to_owned();
    assert_eq!(
        kid_and_state(&keys),
        vec![
            (first.clone(), "retired".to_owned()),
            (ahead.clone(), "published".to_owned()),
            (now_signing.clone(), "signing".to_owned()),
        ]
    );

    // A second gateway on the same database serves the same set: the
    // signing key first, then the one ahead, then the retired one.
    let second_dir = tempfile::tempdir().unwrap();
    let second = Gateway::start_in(second_dir, &text, &[(KEK_VAR, KEK)]).await;
    assert_eq!(
        published(second.addr).await,
        vec![now_signing, ahead, first]
    );
    assert_eq!(
        listed(&cfg).await.len(),
        3,
        "the second gateway made no key of its own"
    );

    // Without its key-encryption key a gateway refuses to start.
    let third_dir = tempfile::tempdir().unwrap();
    let cfg3 = third_dir.path().join("vestibule.toml");
    std::fs::write(&cfg3, &text).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .args(["serve", "--config"])
        .arg(&cfg3)
        .env_remove(KEK_VAR)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(KEK_VAR), "{stderr}");
}

/// With `[oidc_provider]`, `serve` makes a key family per algorithm in use
/// (ES256 for assertions, RS256 for ID tokens by default, EdDSA for the
/// client that asks for it); each signs, all are published with their
/// algorithm, and `vestibule keys rotate` rotates every family.
#[tokio::test]
async fn the_provider_adds_a_family_per_id_token_algorithm() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = format!(
        "{}\n[oidc_provider]\nissuer = \"http://127.0.0.1:9999\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"app\"\nkind = \"public\"\n\
         redirect_uris = [\"http://127.0.0.1/cb\"]\nid_token_alg = \"EdDSA\"\n",
        gateway_config(&data, up)
    );
    let gw = Gateway::start_in(dir, &text, &[(KEK_VAR, KEK)]).await;
    let cfg = gw._dir.path().join("vestibule.toml");
    let keys = listed(&cfg).await;
    let mut algs: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    algs.sort_unstable();
    assert_eq!(
        algs,
        [
            ("ES256", "signing"),
            ("EdDSA", "signing"),
            ("RS256", "signing")
        ]
    );
    assert_eq!(published(gw.addr).await.len(), 3);
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/jwks.json", &[]).await;
    let json: Value = serde_json::from_slice(&r.body).unwrap();
    for k in json["keys"].as_array().unwrap() {
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["alg"].is_string() && k["kid"].is_string(), "{k}");
    }
    // The command knows nothing of the provider, yet rotates every
    // family that has a live key.
    let o = keys_cli(&cfg, &["rotate"], Some(KEK)).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let keys = listed(&cfg).await;
    assert_eq!(keys.len(), 6);
    for alg in ["ES256", "RS256", "EdDSA"] {
        let mut states: Vec<&str> = keys
            .iter()
            .filter(|k| k["alg"] == alg)
            .map(|k| k["state"].as_str().unwrap())
            .collect();
        states.sort_unstable();
        assert_eq!(states, ["published", "signing"], "{alg}");
    }
}

/// The kid of the assertion an app receives through `addr`, after
/// verifying it against the set `addr` publishes.
async fn signed_by(addr: std::net::SocketAddr) -> String {
    let alice = [
        ("X-authentik-uid", "a-1"),
        ("X-authentik-username", "alice"),
    ];
    let r = Raw::get(addr, TRUSTED, "/", &alice).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j: Value = r.json();
    let token = j["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p[0].as_str()
                .unwrap()
                .eq_ignore_ascii_case("x-vestibule-assertion")
        })
        .map(|p| p[1].as_str().unwrap().to_owned())
        .expect("the app received an assertion");
    let set = Raw::get(addr, TRUSTED, "/.vestibule/jwks.json", &[]).await;
    let set = vestibule_jose::Jwks::parse(&set.body).unwrap();
    let policy = vestibule_jose::Policy {
        algorithms: &[vestibule_jose::Algorithm::ES256],
        types: &["vestibule-id+jwt"],
        type_required: true,
    };
    let v = vestibule_jose::Compact::parse(&token)
        .unwrap()
        .verify(&set, &policy)
        .unwrap();
    v.kid().unwrap().to_owned()
}

/// Stops `gw`, keeping its directory (configuration and data).
async fn stop(gw: Gateway) -> tempfile::TempDir {
    let Gateway {
        mut child, _dir, ..
    } = gw;
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    _dir
}

/// A key made before a key-encryption key was configured is sealed in
/// place when a gateway starts with one: the row no longer holds the
/// PKCS#8 key, the gateway still signs with it, the published set is the
/// same, and the sealing is audited once (a later start changes nothing).
#[tokio::test]
async fn keys_stored_plain_are_sealed_when_a_kek_is_configured() {
    let up = start_whoami().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = |keys: &str| {
        let src = format!(
            "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
             [database]\ndata_dir = \"{}\"\n\n[accounts]\n\n{keys}\
             [assertions]\nissuer = \"https://sso.example.test\"\n",
            data.display()
        );
        config(
            &src,
            &route("app", "/", up, "host = \"app.test\"\nassertion = true"),
        )
    };
    let plain_text = text("");
    let sealed_text = text(&format!("[keys]\nkek_env = \"{KEK_VAR}\"\n\n"));
    let store_url = format!("sqlite://{}", data.join("vestibule.db").display());

    // Without a key-encryption key: stored plain.
    let gw = Gateway::start_in(dir, &plain_text, &[]).await;
    let before = published(gw.addr).await;
    let plain_kid = signed_by(gw.addr).await;
    let cfg = gw._dir.path().join("vestibule.toml");
    assert_eq!(listed(&cfg).await[0]["sealed"], false);
    let store = vestibule_store::open(&vestibule_store::StoreConfig::new(store_url.clone()))
        .await
        .unwrap();
    let plain_row = store.signing_keys().await.unwrap().remove(0);
    assert_eq!(
        plain_row.private_format,
        vestibule_store::PrivateKeyFormat::Plain
    );
    let dir = stop(gw).await;

    // With one: sealed in place at start.
    let gw = Gateway::start_in(dir, &sealed_text, &[(KEK_VAR, KEK)]).await;
    let rows = store.signing_keys().await.unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.kid, plain_row.kid);
    assert_eq!(plain_kid, plain_row.kid);
    assert_eq!(
        row.private_format,
        vestibule_store::PrivateKeyFormat::Aes256Gcm
    );
    assert!(
        !row.private_key
            .windows(plain_row.private_key.len())
            .any(|w| w == &plain_row.private_key[..]),
        "the sealed row still holds the PKCS#8 key"
    );
    assert!(
        vestibule_jose::SigningKey::from_pkcs8_der(
            vestibule_jose::Algorithm::ES256,
            &row.private_key
        )
        .is_err()
    );
    assert_eq!(listed(&cfg).await[0]["sealed"], true);
    // The same set, and the key still signs.
    assert_eq!(published(gw.addr).await, before);
    assert_eq!(signed_by(gw.addr).await, plain_row.kid);
    let audited = store
        .audit(&vestibule_store::AuditFilter {
            since: None,
            action: Some("key-seal".into()),
            subject: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].subject, format!("key:{}", plain_row.kid));

    // Starting again changes nothing.
    let dir = stop(gw).await;
    let gw = Gateway::start_in(dir, &sealed_text, &[(KEK_VAR, KEK)]).await;
    assert_eq!(store.signing_keys().await.unwrap()[0], rows[0]);
    assert_eq!(published(gw.addr).await, before);
}
