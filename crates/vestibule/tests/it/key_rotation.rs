//! Signing-key rotation between two real gateways on one real PostgreSQL
//! database, by command (`vestibule keys rotate` run with one gateway's
//! configuration) and on schedule: the new key is published by *both*
//! gateways before either signs with it, then both sign with it, and an
//! assertion signed by the old key still verifies against both published
//! sets until it has expired.
//!
//! The schedule is shortened to seconds: `publish_ahead = "4s"` needs the
//! test-only floor (`VESTIBULE_TEST_ONLY_SHORT_KEY_SCHEDULE`, honoured by
//! debug builds only), and `reload_every = "1s"`. Nothing here measures
//! speed: every check is an order of events (published on both, then
//! signed; old token expired, key still published), polled with generous
//! deadlines.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use vestibule_jose::{Algorithm, Compact, Jwks, Policy};
use vestibule_store::testkit;

use crate::support::*;

const KEK_VAR: &str = "TEST_KEK_FOR_KEY_ROTATION";
/// 32 bytes, base64.
const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Lowers the floor on `publish_ahead` (debug builds only).
const SHORT: (&str, &str) = (vestibule::config::TEST_SHORT_KEY_SCHEDULE_ENV, "1");
/// Assertion lifetime, seconds: short, so that the old key's last token
/// expires while the test watches.
const LIFETIME: i64 = 3;

fn gateway_config(url: &str, upstream: SocketAddr, rotate_every: &str) -> String {
    let src = format!(
        "[source.headers]\ndialect = \"authentik\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\nurl = \"{url}\"\n\n[accounts]\n\n\
         [keys]\npublish_ahead = \"4s\"\nrotate_every = \"{rotate_every}\"\nreload_every = \"1s\"\nkek_env = \"{KEK_VAR}\"\n\n\
         [assertions]\nissuer = \"https://sso.example.test\"\nlifetime = \"{LIFETIME}s\"\n"
    );
    config(
        &src,
        &route(
            "app",
            "/",
            upstream,
            "host = \"app.test\"\nassertion = true",
        ),
    )
}

async fn two_gateways(rotate_every: &str) -> (Gateway, Gateway) {
    let url = tokio::task::spawn_blocking(testkit::postgres_url)
        .await
        .unwrap();
    let up = start_whoami().await;
    let text = gateway_config(&url, up, rotate_every);
    let env = [(KEK_VAR, KEK), SHORT];
    let a = Gateway::start_in(tempfile::tempdir().unwrap(), &text, &env).await;
    let b = Gateway::start_in(tempfile::tempdir().unwrap(), &text, &env).await;
    (a, b)
}

const ALICE: [(&str, &str); 3] = [
    ("X-authentik-uid", "a-1"),
    ("X-authentik-username", "alice"),
    ("X-authentik-groups", "users"),
];

/// The assertion the app received through `gw`.
async fn assertion(gw: &Gateway) -> String {
    let r = Raw::get(gw.addr, TRUSTED, "/", &ALICE).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j: Value = serde_json::from_slice(&r.body).unwrap();
    let found: Vec<String> = j["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p[0].as_str()
                .unwrap()
                .eq_ignore_ascii_case("x-vestibule-assertion")
        })
        .map(|p| p[1].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

/// The published set of `gw`, and its key ids in publishing order.
struct Published {
    set: Jwks,
    kids: Vec<String>,
}

async fn jwks(gw: &Gateway) -> Published {
    let r = Raw::get(gw.addr, TRUSTED, "/.vestibule/jwks.json", &[]).await;
    assert_eq!(r.status, 200);
    // Half of `publish_ahead`.
    assert_eq!(r.header("cache-control"), Some("public, max-age=2"));
    let json: Value = serde_json::from_slice(&r.body).unwrap();
    Published {
        set: Jwks::parse(&r.body).unwrap(),
        kids: json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect(),
    }
}

fn kids(p: &Published) -> Vec<String> {
    p.kids.clone()
}

/// A token's `kid` and claims, unverified (to see which key signed it).
fn peek(token: &str) -> (String, Value) {
    let part = |i: usize| -> Value {
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&b).unwrap()
    };
    (part(0)["kid"].as_str().unwrap().to_owned(), part(1))
}

/// Verifies `token`'s signature against `set`: the key it names is
/// published there and signed it.
fn verifies(token: &str, published: &Published) -> bool {
    let policy = Policy {
        algorithms: &[Algorithm::ES256],
        types: &["vestibule-id+jwt"],
        type_required: true,
    };
    Compact::parse(token)
        .unwrap()
        .verify(&published.set, &policy)
        .is_ok()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `vestibule keys …` with `cfg`, its key-encryption key and the short
/// schedule; stdout.
async fn keys_cli(cfg: &Path, args: &[&str]) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vestibule"))
        .arg("keys")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .env("USER", "tester")
        .env(KEK_VAR, KEK)
        .env(SHORT.0, SHORT.1)
        .env_remove("RUST_LOG")
        .env_remove("VESTIBULE_CONFIG")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn listed(cfg: &Path) -> Vec<Value> {
    serde_json::from_str::<Value>(&keys_cli(cfg, &["list", "--json"]).await)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// Watches both gateways until both sign with a key other than `old`:
/// every round reads both published sets, then an assertion from each.
/// Checks that the new key was in both sets in an earlier round than the
/// first assertion naming it, and that `old_token` (signed by `old`)
/// verifies against both sets in every round until it has expired.
/// Returns the new kid.
async fn watch_switch(a: &Gateway, b: &Gateway, old: &str, old_token: &str) -> String {
    let old_exp = peek(old_token).1["exp"].as_i64().unwrap();
    let started = Instant::now();
    // Rounds in which each kid was first in both sets.
    let mut published_on_both: std::collections::HashMap<String, usize> = Default::default();
    let mut new_kid: Option<String> = None;
    let mut old_checked_after_exp = false;
    for round in 0.. {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no switch from {old} on both gateways within 60 s\n--- A ---\n{}\n--- B ---\n{}",
            a.stderr(),
            b.stderr()
        );
        let (set_a, set_b) = (jwks(a).await, jwks(b).await);
        for k in kids(&set_a) {
            if kids(&set_b).contains(&k) {
                published_on_both.entry(k).or_insert(round);
            }
        }
        // The old key's token verifies until it has expired (and for the
        // verifiers' leeway after, which this does not wait for).
        if now_secs() <= old_exp {
            assert!(
                verifies(old_token, &set_a) && verifies(old_token, &set_b),
                "round {round}: an unexpired token of {old} no longer verifies: A {:?}, B {:?}",
                kids(&set_a),
                kids(&set_b)
            );
        } else if new_kid.is_some() {
            old_checked_after_exp = true;
        }
        let (from_a, from_b) = (assertion(a).await, assertion(b).await);
        let (kid_a, claims_a) = peek(&from_a);
        let (kid_b, claims_b) = peek(&from_b);
        for (kid, claims, token, set) in [
            (&kid_a, &claims_a, &from_a, &set_a),
            (&kid_b, &claims_b, &from_b, &set_b),
        ] {
            if kid == old {
                continue;
            }
            // A new key signs only after both gateways published it.
            let first = published_on_both.get(kid.as_str()).copied();
            assert!(
                first.is_some_and(|r| r < round),
                "round {round}: {kid} signed before both gateways published it \
                 (on both since round {first:?})"
            );
            assert!(verifies(token, set));
            assert_eq!(claims["aud"], "app.test");
            new_kid.get_or_insert_with(|| kid.clone());
            assert_eq!(
                Some(kid),
                new_kid.as_ref(),
                "round {round}: two new keys at once"
            );
        }
        if kid_a != old && kid_b != old && old_checked_after_exp {
            return kid_a;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_on_one_gateway_is_published_by_both_then_signs_on_both() {
    // No scheduled rotation while this runs.
    let (a, b) = two_gateways("1h").await;
    let cfg_a = a._dir.path().join("vestibule.toml");

    // One key between them, and both sign with it.
    let keys = listed(&cfg_a).await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let first = keys[0]["kid"].as_str().unwrap().to_owned();
    assert_eq!(kids(&jwks(&a).await), vec![first.clone()]);
    assert_eq!(kids(&jwks(&b).await), vec![first.clone()]);
    let old_token = assertion(&a).await;
    assert_eq!(peek(&old_token).0, first);
    assert_eq!(peek(&assertion(&b).await).0, first);

    // The command, with gateway A's configuration.
    let out = keys_cli(&cfg_a, &["rotate"]).await;
    let keys = listed(&cfg_a).await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    let second = keys[1]["kid"].as_str().unwrap().to_owned();
    assert!(out.contains(&second), "{out}");
    let signs_from_ms = keys[1]["signs_from"].as_i64().unwrap();

    let switched_to = watch_switch(&a, &b, &first, &old_token).await;
    assert_eq!(switched_to, second);
    // No assertion names the new key from before its `signs_from`.
    let t = assertion(&b).await;
    let (kid, claims) = peek(&t);
    assert_eq!(kid, second);
    assert!(claims["iat"].as_i64().unwrap() * 1000 >= signs_from_ms - 999);

    // The first key is retired, and stays published until its last token
    // (and the verifiers' leeway) is long past.
    let keys = listed(&cfg_a).await;
    let row = keys.iter().find(|k| k["kid"] == first.as_str()).unwrap();
    assert_eq!(row["state"], "retired", "{keys:?}");
    let until = row["verify_until"].as_i64().unwrap();
    let old_exp = peek(&old_token).1["exp"].as_i64().unwrap();
    assert!(until >= (old_exp + 60) * 1000, "{until} vs exp {old_exp}");
    assert!(kids(&jwks(&a).await).contains(&first));
    assert!(kids(&jwks(&b).await).contains(&first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rotation_is_published_by_both_gateways_then_signs_on_both() {
    // A new key is due every 8 s, published 4 s before it signs.
    let (a, b) = two_gateways("8s").await;
    let cfg_a = a._dir.path().join("vestibule.toml");
    let first = listed(&cfg_a).await[0]["kid"].as_str().unwrap().to_owned();
    let old_token = assertion(&a).await;
    assert_eq!(peek(&old_token).0, first);

    // No command: the gateways' own schedule adds the key.
    let second = watch_switch(&a, &b, &first, &old_token).await;
    let token = assertion(&a).await;
    assert_eq!(peek(&token).0, second);
    assert_eq!(peek(&assertion(&b).await).0, second);

    // The keys the two gateways made between them: each rotation one key,
    // whichever gateway won it (a conditional insert), and the first key
    // retired once the second signed.
    let keys = listed(&cfg_a).await;
    let second_row = keys.iter().find(|k| k["kid"] == second.as_str()).unwrap();
    let first_row = keys.iter().find(|k| k["kid"] == first.as_str()).unwrap();
    assert_eq!(first_row["state"], "retired", "{keys:?}");
    assert_eq!(
        first_row["retired_at"], second_row["signs_from"],
        "the first key retired when the second started signing"
    );
    let mut created: Vec<i64> = keys
        .iter()
        .map(|k| k["created_at"].as_i64().unwrap())
        .collect();
    created.sort();
    for w in created.windows(2) {
        // Rotation is due `rotate_every - publish_ahead` (4 s) after the
        // newest key was made; two gateways deciding together add one.
        assert!(
            w[1] - w[0] >= 4_000,
            "two keys made {} ms apart: {keys:?}",
            w[1] - w[0]
        );
    }
}
