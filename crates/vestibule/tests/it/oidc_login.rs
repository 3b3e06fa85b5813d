//! `[source.oidc]` (issue 15) against a REAL upstream provider: a second
//! `vestibule serve` running its own OpenID provider (`[oidc_provider]`)
//! with the downstream gateway registered as a confidential client. Both
//! are the real binary on loopback, each with its own SQLite file; the
//! browser is this test, following redirects by hand.
//!
//! Logout tokens for the back-channel tests are signed by the upstream's
//! own key ring, opened from its store with its KEK, exactly as it signs
//! ID tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};
use vestibule_core::oidc::BACKCHANNEL_LOGOUT_EVENT;
use vestibule_core::secret::hash_token;
use vestibule_jose::Algorithm;
use vestibule_store::{Store, StoreConfig};

use crate::support::*;

pub(crate) const KEK_VAR: &str = "TEST_KEK_FOR_OIDC_LOGIN";
pub(crate) const KEK: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub(crate) const SECRET_VAR: &str = "TEST_OIDC_CLIENT_SECRET";
pub(crate) const SECRET: &str = "downstream-client-secret-0123456789";
pub(crate) const ALICE: [(&str, &str); 4] = [
    ("Remote-User", "alice"),
    ("Remote-Groups", "users"),
    ("Remote-Email", "alice@example.test"),
    ("Remote-Name", "Alice Example"),
];
pub(crate) const HTML: (&str, &str) = ("Accept", "text/html");

pub(crate) struct Pair {
    pub(crate) up: Gateway,
    pub(crate) down: Gateway,
    pub(crate) up_text: String,
    pub(crate) issuer: String,
}

pub(crate) fn sha256_hex(s: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A confidential client `id` at the upstream, authenticated by
/// `credential` (its `secret_sha256` or `jwks_uri` line), which may come
/// back to each of `downstreams`.
pub(crate) fn client_block(id: &str, credential: &str, downstreams: &[SocketAddr]) -> String {
    let quoted = |f: &dyn Fn(&SocketAddr) -> String| {
        downstreams
            .iter()
            .map(|d| format!("\"{}\"", f(d)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[[oidc_provider.client]]\nclient_id = \"{id}\"\nkind = \"confidential\"\n{credential}\n\
         redirect_uris = [{}]\npost_logout_redirect_uris = [{}]\nconsent = \"implicit\"\n\n",
        quoted(&|d| format!("http://{d}/.vestibule/oidc/callback")),
        quoted(&|d| format!("http://{d}/")),
    )
}

/// The `secret_sha256` line of a client whose secret is [`SECRET`].
pub(crate) fn secret_line() -> String {
    format!("secret_sha256 = \"{}\"", sha256_hex(SECRET))
}

/// The upstream's configuration: a provider at `p` (its own users from a
/// trusted front) with `clients` (their `[[oidc_provider.client]]` blocks).
pub(crate) fn provider_config(
    p: SocketAddr,
    dir: &std::path::Path,
    clients: &str,
    app: SocketAddr,
) -> String {
    format!(
        "[server]\nlisten = [\"{p}\"]\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\n\n\
         [source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\n\n[keys]\nkek_env = \"{KEK_VAR}\"\n\n\
         [oidc_provider]\nissuer = \"http://{p}\"\n\n{clients}{}",
        dir.join("data").display(),
        route("app", "/", app, ""),
    )
}

/// The upstream's configuration with one client, `gate`, whose secret is
/// [`SECRET`] and which may come back to each of `downstreams`.
pub(crate) fn upstream_config(
    p: SocketAddr,
    dir: &std::path::Path,
    downstreams: &[SocketAddr],
    app: SocketAddr,
) -> String {
    provider_config(
        p,
        dir,
        &client_block("gate", &secret_line(), downstreams),
        app,
    )
}

/// What a downstream gateway's configuration adds to the common part
/// ([`gateway_config`]); empty by default.
#[derive(Default)]
pub(crate) struct Down {
    /// Sections before `[source.oidc]` (another source).
    pub(crate) before: String,
    /// `[source.oidc]` lines after its issuer, client and callback.
    pub(crate) oidc: String,
    /// Sections after `[accounts]`.
    pub(crate) after: String,
    /// The app route's own lines.
    pub(crate) route: String,
}

/// A downstream gateway's configuration: `[source.oidc]` at `d` against
/// `issuer` as client `gate`, over `database` (a `[database]` body), with
/// what `down` adds.
pub(crate) fn gateway_config(
    d: SocketAddr,
    issuer: &str,
    database: &str,
    app: SocketAddr,
    down: &Down,
) -> String {
    let Down {
        before,
        oidc,
        after,
        route: route_lines,
    } = down;
    format!(
        "[server]\nlisten = [\"{d}\"]\nadmin_listen = \"127.0.0.1:0\"\n\n[log]\nlevel = \"info\"\n\n\
         [client_ip]\ntrusted_hops = [\"127.0.0.1\"]\n\n{before}\n\
         [source.oidc]\npreset = \"generic\"\nissuer = \"{issuer}\"\nclient_id = \"gate\"\n\
         redirect_url = \"http://{d}/.vestibule/oidc/callback\"\n{oidc}\n\n\
         [database]\n{database}\n\n[accounts]\n\n{after}\n\n{}",
        route("app", "/", app, route_lines),
    )
}

/// A downstream gateway's configuration: `[source.oidc]` at `d` against
/// `issuer`, over `database` (a `[database]` body).
pub(crate) fn downstream_config(
    d: SocketAddr,
    issuer: &str,
    database: &str,
    app: SocketAddr,
) -> String {
    downstream_config_with(d, issuer, database, app, "", "")
}

/// [`downstream_config`] with `oidc_extra` added to `[source.oidc]` and
/// `down_extra` sections appended.
pub(crate) fn downstream_config_with(
    d: SocketAddr,
    issuer: &str,
    database: &str,
    app: SocketAddr,
    oidc_extra: &str,
    down_extra: &str,
) -> String {
    gateway_config(
        d,
        issuer,
        database,
        app,
        &secret_down(d, oidc_extra, down_extra),
    )
}

/// The usual downstream: client secret [`SECRET`], logout back to `/`,
/// `auto` provisioning and `oidc_extra`; Bearer credentials on the app;
/// `down_extra` sections appended.
fn secret_down(d: SocketAddr, oidc_extra: &str, down_extra: &str) -> Down {
    Down {
        oidc: format!(
            "client_secret_env = \"{SECRET_VAR}\"\npost_logout_redirect_url = \"http://{d}/\"\n\
             provisioning = \"auto\"\n{oidc_extra}"
        ),
        after: down_extra.to_owned(),
        route: "credentials = [\"bearer\"]".to_owned(),
        ..Down::default()
    }
}

/// The upstream provider, started: it and its configuration.
pub(crate) async fn start_upstream(
    p: SocketAddr,
    downstreams: &[SocketAddr],
    app: SocketAddr,
) -> (Gateway, String) {
    let dir = tempfile::tempdir().unwrap();
    let text = upstream_config(p, dir.path(), downstreams, app);
    (Gateway::start_in(dir, &text, &[(KEK_VAR, KEK)]).await, text)
}

/// A downstream gateway, started.
pub(crate) async fn start_downstream(
    d: SocketAddr,
    issuer: &str,
    database: &str,
    app: SocketAddr,
    dir: tempfile::TempDir,
) -> Gateway {
    let text = downstream_config(d, issuer, database, app);
    Gateway::start_in(dir, &text, &[(SECRET_VAR, SECRET)]).await
}

async fn pair() -> Pair {
    pair_with("", "", &[]).await
}

/// The pair, with `oidc_extra` added to the downstream's `[source.oidc]`,
/// `down_extra` sections appended to its configuration and `down_env`
/// in its environment.
pub(crate) async fn pair_with(
    oidc_extra: &str,
    down_extra: &str,
    down_env: &[(&str, &str)],
) -> Pair {
    start_pair(
        |d| client_block("gate", &secret_line(), &[d]),
        |d| secret_down(d, oidc_extra, down_extra),
        down_env,
    )
    .await
}

/// Starts an app, an upstream provider with `clients(d)` and a downstream
/// gateway at `d` with `down(d)`, each with its own SQLite file; the
/// downstream gets [`SECRET`] in its environment, plus `down_env`.
pub(crate) async fn start_pair(
    clients: impl FnOnce(SocketAddr) -> String,
    down: impl FnOnce(SocketAddr) -> Down,
    down_env: &[(&str, &str)],
) -> Pair {
    let app = start_whoami().await;
    let (p, d) = (closed_port().await, closed_port().await);
    let issuer = format!("http://{p}");
    let up_dir = tempfile::tempdir().unwrap();
    let up_text = provider_config(p, up_dir.path(), &clients(d), app);
    let up = Gateway::start_in(up_dir, &up_text, &[(KEK_VAR, KEK)]).await;
    let down_dir = tempfile::tempdir().unwrap();
    let database = format!("data_dir = \"{}\"", down_dir.path().join("data").display());
    let down_text = gateway_config(d, &issuer, &database, app, &down(d));
    let mut env = vec![(SECRET_VAR, SECRET)];
    env.extend_from_slice(down_env);
    let down = Gateway::start_in(down_dir, &down_text, &env).await;
    Pair {
        up,
        down,
        up_text,
        issuer,
    }
}

/// `http://host:port/path?q` → the address and the request target.
pub(crate) fn split(url: &str) -> (SocketAddr, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let i = rest.find('/').unwrap_or(rest.len());
    (rest[..i].parse().unwrap(), rest[i..].to_owned())
}

/// The value a `Set-Cookie` of the response gives `name`.
pub(crate) fn set_cookie(r: &Raw, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .find_map(|(_, v)| {
            let first = v.split(';').next()?;
            let (n, val) = first.split_once('=')?;
            (n == name).then(|| val.to_owned())
        })
}

pub(crate) fn location(r: &Raw) -> String {
    r.header("location")
        .unwrap_or_else(|| panic!("no Location: {} {}", r.status, r.text()))
        .to_owned()
}

/// The query parameter `name` of `url`, decoded.
pub(crate) fn param(url: &str, name: &str) -> Option<String> {
    let q = url.split_once('?')?.1;
    q.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// A GET from `from` with `Host` the address itself, as a browser sends
/// it (the support client's requests say `app.test`).
pub(crate) async fn at(
    addr: SocketAddr,
    from: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Raw {
    let mut r = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    Raw::send(addr, from, r.as_bytes()).await
}

/// `url` with the query parameter `name` set to `value` (encoded).
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, q) = url.split_once('?').unwrap();
    let enc = percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC);
    let q: Vec<String> = q
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k == name => format!("{k}={enc}"),
            _ => p.to_owned(),
        })
        .collect();
    let out = format!("{base}?{}", q.join("&"));
    assert_ne!(out, url, "{name} was not in the URL");
    out
}

pub(crate) async fn get(url: &str, headers: &[(&str, &str)]) -> Raw {
    let (addr, target) = split(url);
    at(addr, TRUSTED, &target, headers).await
}

/// A login started at the downstream: (the provider's authorization URL,
/// the login cookie).
pub(crate) async fn start_login(p: &Pair, return_to: &str) -> (String, String) {
    start_login_at(p.down.addr, &p.issuer, return_to).await
}

/// [`start_login`] at the downstream `down` of `issuer`.
async fn start_login_at(down: SocketAddr, issuer: &str, return_to: &str) -> (String, String) {
    let url = format!(
        "http://{}/.vestibule/oidc/login?return_to={}",
        down,
        percent_encoding::utf8_percent_encode(return_to, percent_encoding::NON_ALPHANUMERIC)
    );
    let r = get(&url, &[HTML]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = set_cookie(&r, "vestibule_oidc").expect("the login cookie");
    let authorize = location(&r);
    assert!(authorize.starts_with(&format!("{issuer}/")), "{authorize}");
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(param(&authorize, "response_type").as_deref(), Some("code"));
    for name in ["state", "nonce", "code_challenge"] {
        assert!(
            param(&authorize, name).is_some_and(|v| v.len() >= 43),
            "{name}"
        );
    }
    (authorize, cookie)
}

/// Alice signs in at the provider: the callback URL it sends her to.
pub(crate) async fn at_provider(authorize: &str) -> String {
    let mut h = ALICE.to_vec();
    h.push(HTML);
    let r = get(authorize, &h).await;
    assert!(matches!(r.status, 302 | 303), "{} {}", r.status, r.text());
    location(&r)
}

/// The whole login: the downstream session cookie.
pub(crate) async fn sign_in(p: &Pair, return_to: &str) -> String {
    sign_in_at(p.down.addr, &p.issuer, return_to).await
}

/// [`sign_in`] at the downstream `down` of `issuer`.
pub(crate) async fn sign_in_at(down: SocketAddr, issuer: &str, return_to: &str) -> String {
    let (authorize, login) = start_login_at(down, issuer, return_to).await;
    let cb = at_provider(&authorize).await;
    let r = get(&cb, &[HTML, ("Cookie", &format!("vestibule_oidc={login}"))]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), return_to);
    set_cookie(&r, "vestibule").expect("a session cookie")
}

pub(crate) fn session(cookie: &str) -> String {
    format!("vestibule={cookie}")
}

/// The id of the account whose session `cookie` is, in `store`.
pub(crate) async fn account_of(store: &Arc<dyn Store>, cookie: &str) -> i64 {
    store
        .session(&vestibule_core::secret::hash_token(cookie))
        .await
        .unwrap()
        .expect("the session, in the store")
        .account_id
}

pub(crate) async fn down_store(p: &Pair) -> Arc<dyn Store> {
    let db = p.down._dir.path().join("data").join("vestibule.db");
    vestibule_store::open(&StoreConfig::new(format!("sqlite://{}", db.display())))
        .await
        .unwrap()
}

#[tokio::test]
async fn login_round_trip_then_app_routes_in_path_and_forward_auth_then_logout() {
    let p = pair().await;
    let d = p.down.addr;
    // Without a session a browser is sent to the OIDC login, with the
    // page it asked for as the return address.
    let r = at(d, UNTRUSTED, "/hello", &[HTML]).await;
    assert!(matches!(r.status, 302 | 303), "{} {}", r.status, r.text());
    let to_login = location(&r);
    assert!(
        to_login.starts_with(&format!("http://{d}/.vestibule/oidc/login?return_to=")),
        "{to_login}"
    );
    assert_eq!(
        param(&to_login, "return_to").as_deref(),
        Some(format!("http://{d}/hello").as_str())
    );

    let cookie = sign_in(&p, &format!("http://{d}/hello")).await;
    // In-path: the app gets alice, from any peer (the cookie is the
    // identity, no front vouches for it).
    let r = at(d, UNTRUSTED, "/hello", &[("Cookie", &session(&cookie))]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("alice"), "{}", r.text());
    // Forward-auth: the same session, described by a trusted front.
    let fa = [
        ("Cookie", session(&cookie)),
        ("X-Forwarded-Method", "GET".to_owned()),
        ("X-Forwarded-Proto", "http".to_owned()),
        ("X-Forwarded-Host", d.to_string()),
        ("X-Forwarded-Uri", "/hello".to_owned()),
    ];
    let fa: Vec<(&str, &str)> = fa.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = at(d, TRUSTED, "/.vestibule/verify", &fa).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Without the cookie forward-auth says 401 with the login URL.
    let r = at(d, TRUSTED, "/.vestibule/verify", &fa[1..]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.header("x-vestibule-login-url")
            .is_some_and(|u| u.contains("/.vestibule/oidc/login?return_to=")),
        "{:?}",
        r.headers
    );
    // The session records the provider's sub and sid.
    let store = down_store(&p).await;
    let link = store
        .oidc_session_link(&hash_token(&cookie))
        .await
        .unwrap()
        .expect("the session's OIDC record");
    assert_eq!(link.issuer, p.issuer);
    assert!(link.sid.is_some());

    // Logout ends the session here and goes to the provider's
    // end_session_endpoint with the ID token and the registered URL.
    let r = at(
        d,
        UNTRUSTED,
        "/.vestibule/logout",
        &[HTML, ("Cookie", &session(&cookie))],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let end = location(&r);
    assert!(end.starts_with(&format!("{}/", p.issuer)), "{end}");
    // The ID token is kept with the session's other provider tokens (the
    // plaintext column is for rows from before them).
    assert!(link.id_token.is_empty());
    let hint = param(&end, "id_token_hint").expect("id_token_hint");
    assert_eq!(hint.split('.').count(), 3, "{hint}");
    assert_eq!(
        param(&end, "post_logout_redirect_uri").as_deref(),
        Some(format!("http://{d}/").as_str())
    );
    let r = at(
        d,
        UNTRUSTED,
        "/hello",
        &[HTML, ("Cookie", &session(&cookie))],
    )
    .await;
    assert!(matches!(r.status, 302 | 303), "{}", r.status);
    // The provider takes the hint: 303 back to the registered URL.
    let r = get(&end, &[HTML]).await;
    assert!(matches!(r.status, 302 | 303), "{} {}", r.status, r.text());
}

#[tokio::test]
async fn callback_refuses_wrong_state_wrong_issuer_wrong_nonce_and_a_second_use() {
    let p = pair().await;
    let d = p.down.addr;
    let back = format!("http://{d}/hello");
    let refused = async |cb: &str, login: &str| {
        let r = get(cb, &[HTML, ("Cookie", &format!("vestibule_oidc={login}"))]).await;
        assert!(set_cookie(&r, "vestibule").is_none(), "no session");
        r.status
    };

    // Wrong state: 400, and the login is used up.
    let (authorize, login) = start_login(&p, &back).await;
    let cb = at_provider(&authorize).await;
    let forged = with_param(&cb, "state", "forged");
    assert_eq!(refused(&forged, &login).await, 400);
    assert_eq!(refused(&cb, &login).await, 400, "a login is taken once");

    // Issuer mismatch (RFC 9207): 400.
    let (authorize, login) = start_login(&p, &back).await;
    let cb = at_provider(&authorize).await;
    let iss = param(&cb, "iss").expect("the provider sends iss");
    assert_eq!(iss, p.issuer);
    let mixed = with_param(&cb, "iss", "http://127.0.0.1:1");
    assert_eq!(refused(&mixed, &login).await, 400);

    // Without the browser's login cookie: 400.
    let (authorize, _) = start_login(&p, &back).await;
    let cb = at_provider(&authorize).await;
    assert_eq!(refused(&cb, "someone-else").await, 400);

    // Wrong nonce: the provider is asked with another nonce than the one
    // stored, so its ID token carries that one: 401.
    let (authorize, login) = start_login(&p, &back).await;
    let other = with_param(&authorize, "nonce", "not-the-one-sent");
    let cb = at_provider(&other).await;
    assert_eq!(refused(&cb, &login).await, 401);

    // And the right one still works.
    sign_in(&p, &back).await;
}

/// The upstream's key ring, opened from its store with its KEK.
async fn upstream_keys(p: &Pair) -> vestibule::keys::KeyRing {
    upstream_ring(&p.up, &p.up_text).await
}

/// The key ring of the upstream `up` started with `up_text`.
pub(crate) async fn upstream_ring(up: &Gateway, up_text: &str) -> vestibule::keys::KeyRing {
    let file =
        vestibule::config::parse_with_env(up_text, [(KEK_VAR.to_owned(), KEK.to_owned())]).unwrap();
    let (settings, diags) = vestibule::config::validate(&file);
    let settings = settings.unwrap_or_else(|| panic!("{diags:?}"));
    let store = vestibule::app::open_store(settings.accounts.as_ref().unwrap())
        .await
        .unwrap();
    let algs = vestibule::provider::id_token::algorithms(settings.oidc_provider.as_ref());
    // The same KEK as the upstream's, from a file: this process's
    // environment is not the upstream's.
    let kek = up._dir.path().join("kek");
    std::fs::write(&kek, KEK).unwrap();
    let mut keys = settings.keys.clone();
    keys.kek = Some(vestibule::config::KekSource::File(kek));
    vestibule::keys::KeyRing::open_with(store, keys, &algs)
        .await
        .unwrap()
}

/// POSTs `token` to the back-channel logout endpoint of the gateway at `d`.
pub(crate) async fn post_logout_token(d: SocketAddr, token: &str) -> Raw {
    let body = format!("logout_token={token}");
    let req = format!(
        "POST /.vestibule/oidc/backchannel-logout HTTP/1.1\r\nHost: {d}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    Raw::send(d, TRUSTED, req.as_bytes()).await
}

pub(crate) fn now_s() -> i64 {
    vestibule::accounts::now_ms() / 1000
}

#[tokio::test]
async fn backchannel_logout_ends_the_session_and_refuses_bad_tokens() {
    let p = pair().await;
    let d = p.down.addr;
    let cookie = sign_in(&p, &format!("http://{d}/hello")).await;
    let store = down_store(&p).await;
    let link = store
        .oidc_session_link(&hash_token(&cookie))
        .await
        .unwrap()
        .unwrap();
    let sid = link.sid.clone().unwrap();
    let ring = upstream_keys(&p).await;
    let mut n = 0;
    let mut claims = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        n += 1;
        let mut c = json!({
            "iss": p.issuer, "aud": "gate", "iat": now_s(), "exp": now_s() + 120,
            "jti": format!("jti-{n}"), "sid": sid,
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        });
        f(c.as_object_mut().unwrap());
        c
    };
    let sign = |c: &Value| {
        vestibule::provider::id_token::sign(&ring, Algorithm::RS256, "logout+jwt", c).unwrap()
    };
    let post = async |token: &str| post_logout_token(d, token).await;
    let alive = async || {
        at(d, UNTRUSTED, "/hello", &[("Cookie", &session(&cookie))])
            .await
            .status
            == 200
    };
    assert!(alive().await);

    // Each of these is 400 with a JSON error, no-store, and ends nothing.
    let other_ring_token = {
        // A signature the provider's keys do not verify: the token's
        // payload with another token's signature.
        let a = sign(&claims(&|_| {}));
        let b = sign(&claims(&|c| {
            c.insert("sub".into(), "x".into());
        }));
        let (head_a, _) = a.rsplit_once('.').unwrap();
        let (_, sig_b) = b.rsplit_once('.').unwrap();
        format!("{head_a}.{sig_b}")
    };
    let bad = [
        ("bad signature", other_ring_token),
        (
            "wrong aud",
            sign(&claims(&|c| {
                c.insert("aud".into(), "someone-else".into());
            })),
        ),
        (
            "nonce present",
            sign(&claims(&|c| {
                c.insert("nonce".into(), "n".into());
            })),
        ),
        (
            "missing events",
            sign(&claims(&|c| {
                c.remove("events");
            })),
        ),
        (
            "expired iat",
            sign(&claims(&|c| {
                c.insert("iat".into(), (now_s() - 3600).into());
                c.remove("exp");
            })),
        ),
        ("alg none", {
            use base64::Engine as _;
            let b64 =
                |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "logout+jwt"})),
                b64(&claims(&|_| {}))
            )
        }),
    ];
    for (why, token) in &bad {
        let r = post(token).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"), "{why}");
        assert_eq!(r.json()["error"], "invalid_request", "{why}");
        assert!(alive().await, "{why} ended nothing");
    }

    // A good token naming the sid: 200, no-store, and the session ends.
    let good = sign(&claims(&|_| {}));
    let r = post(&good).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(!alive().await, "the session ended");
    // Replayed: 400.
    let r = post(&good).await;
    assert_eq!(r.status, 400, "{}", r.text());
    // Nothing to end any more: still 200.
    let r = post(&sign(&claims(&|_| {}))).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // `sub` alone ends every session of that user from this issuer.
    let c1 = sign_in(&p, &format!("http://{d}/hello")).await;
    let c2 = sign_in(&p, &format!("http://{d}/hello")).await;
    let sub = link.subject.clone();
    let r = post(&sign(&claims(&|c| {
        c.remove("sid");
        c.insert("sub".into(), sub.clone().into());
    })))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for c in [c1, c2] {
        let r = at(d, UNTRUSTED, "/hello", &[("Cookie", &session(&c))]).await;
        assert_ne!(r.status, 200);
    }
}
