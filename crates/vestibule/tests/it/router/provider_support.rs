//! What the in-process tests of the OpenID Connect provider share
//! (`provider_tokens`, `provider_device`, `provider_revoke`): the
//! provider's configuration of test clients, a gateway with its key ring
//! open as `serve` opens it, accounts, codes stored as authorize would,
//! the token endpoint's calls and the checks of their answers.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use vestibule::accounts::now_ms;
use vestibule::provider::id_token;
use vestibule_jose::{Algorithm, Compact, Jwks, Policy};
use vestibule_store::provider::NewAuthorizationCode;
use vestibule_store::{AccountStatus, NewAccount};

use super::*;

pub(super) const TOKEN: &str = "/.vestibule/oidc/token";
pub(super) const USERINFO: &str = "/.vestibule/oidc/userinfo";
pub(super) const ISSUER: &str = "https://sso.example.test";
pub(super) const WEB_CB: &str = "https://app.example.test/cb";
pub(super) const SECRET: &str = "web-secret";
pub(super) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(super) const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub(super) const ALL_SCOPES: &str = "email groups offline_access openid profile";

pub(super) use crate::support::sha256_hex;

pub(super) fn sha256(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref(),
    );
    out
}

/// `web` (confidential, secret basic or post, RS256), `legacy`
/// (confidential, no PKCE), `native` (public, ES256), `jwtapp` (JWT access
/// tokens, EdDSA ID tokens), `svc` (client_credentials only).
/// [`provider_config_with`] without routes.
pub(super) fn provider_config() -> String {
    provider_config_with("")
}

/// The provider's test clients, plus `routes` (`[[route]]` tables).
pub(super) fn provider_config_with(routes: &str) -> String {
    let h = sha256_hex(SECRET);
    let sections = format!(
        "[oidc_provider]\nissuer = \"{ISSUER}\"\nrefresh_grace = \"1s\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"web\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         redirect_uris = [\"{WEB_CB}\"]\n\n\
         [[oidc_provider.client]]\nclient_id = \"legacy\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         redirect_uris = [\"{WEB_CB}\"]\nrequire_pkce = false\n\n\
         [[oidc_provider.client]]\nclient_id = \"native\"\nkind = \"public\"\n\
         redirect_uris = [\"http://127.0.0.1/cb\"]\nid_token_alg = \"ES256\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"jwtapp\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         redirect_uris = [\"{WEB_CB}\"]\nid_token_alg = \"EdDSA\"\naccess_token_format = \"jwt\"\n\n\
         [[oidc_provider.client]]\nclient_id = \"svc\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         grants = [\"client_credentials\"]\nscopes = [\"api.read\", \"api.write\"]\nredirect_uris = [\"{WEB_CB}\"]\n\n\
         [[oidc_provider.client]]\nclient_id = \"staffonly\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         redirect_uris = [\"{WEB_CB}\"]\nallowed_groups = [\"admins\"]\n\n\
         [[oidc_provider.client]]\nclient_id = \"tv\"\nname = \"Living-room TV\"\nkind = \"public\"\n\
         grants = [\"device_code\", \"refresh_token\"]\n\n\
         [[oidc_provider.client]]\nclient_id = \"tvstaff\"\nkind = \"confidential\"\nsecret_sha256 = \"{h}\"\n\
         grants = [\"device_code\"]\nallowed_groups = [\"admins\"]\n"
    );
    accounts_config("auto", &sections, routes)
}

/// The gateway of [`provider_config`], with its key ring open as `serve`
/// opens it (a family per ID token algorithm).
pub(super) async fn provider_gw() -> Gw {
    provider_gw_of(&provider_config()).await
}

/// [`provider_gw`] with `routes` (`[[route]]` tables).
pub(super) async fn provider_gw_with(routes: &str) -> Gw {
    provider_gw_of(&provider_config_with(routes)).await
}

/// [`provider_gw`] of another configuration (`@DATA@` for the data
/// directory).
pub(super) async fn provider_gw_of(config: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let text = config.replace("@DATA@", &dir.path().join("data").display().to_string());
    let file = vestibule::config::parse_with_env(&text, std::iter::empty()).unwrap();
    let (settings, diags) = vestibule::config::validate(&file);
    let settings = settings.unwrap_or_else(|| panic!("{diags:?}"));
    let store = vestibule::app::open_store(settings.accounts.as_ref().unwrap())
        .await
        .unwrap();
    let algs = id_token::algorithms(settings.oidc_provider.as_ref());
    let ring = vestibule::keys::KeyRing::open_with(store.clone(), settings.keys.clone(), &algs)
        .await
        .unwrap();
    let mut state = AppState::new(settings, Some(store)).unwrap();
    state.signing_keys = Some(Arc::new(ring));
    let state = Arc::new(state);
    Gw {
        app: vestibule::app::app(state.clone()),
        admin: vestibule::app::admin_app(state.clone()),
        state,
        _dir: dir,
    }
}

pub(super) async fn account(gw: &Gw, user: &str, groups: &[&str]) -> i64 {
    gw.store()
        .create_account(NewAccount {
            key: IdentityKey::new("authelia", user),
            username: user.into(),
            email: Some(format!("{user}@example.test")),
            display_name: Some(format!("{user} Example")),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            org: None,
            status: AccountStatus::Active,
            now: now_ms(),
        })
        .await
        .unwrap()
        .id
}

/// What an authorization request left: a code for `client`.
pub(super) struct CodeSpec<'a> {
    pub(super) client: &'a str,
    pub(super) account: i64,
    pub(super) redirect_uri: &'a str,
    pub(super) scopes: &'a str,
    pub(super) challenge: Option<&'a str>,
    pub(super) expires_in_ms: i64,
}

pub(super) async fn code(gw: &Gw, spec: CodeSpec<'_>) -> String {
    let code = format!(
        "code-{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    );
    let now = now_ms();
    gw.store()
        .create_authorization_code(&NewAuthorizationCode {
            code_hash: sha256(&code),
            client_id: spec.client.into(),
            account_id: spec.account,
            redirect_uri: spec.redirect_uri.into(),
            scopes: spec.scopes.into(),
            nonce: Some("n-0S6_WzA2Mj".into()),
            code_challenge: spec.challenge.map(str::to_owned),
            session_ref: Some("session-one".into()),
            auth_time: now - 5_000,
            amr: vec!["pwd".into()],
            created_at: now,
            expires_at: now + spec.expires_in_ms,
        })
        .await
        .unwrap();
    code
}

pub(super) fn web_code(account: i64) -> CodeSpec<'static> {
    CodeSpec {
        client: "web",
        account,
        redirect_uri: WEB_CB,
        scopes: ALL_SCOPES,
        challenge: Some(CHALLENGE),
        expires_in_ms: 60_000,
    }
}

pub(super) fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

pub(super) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub(super) async fn post_token(gw: &Gw, auth: Option<&str>, pairs: &[(&str, &str)]) -> Resp {
    let mut call = Call::post(TOKEN).form(&form(pairs));
    if let Some(a) = auth {
        call = call.header("Authorization", a);
    }
    call.send(&gw.app).await
}

pub(super) async fn exchange(gw: &Gw, code: &str) -> Resp {
    exchange_as(gw, "web", code).await
}

/// The code exchange of confidential `client` (secret [`SECRET`], basic).
pub(super) async fn exchange_as(gw: &Gw, client: &str, code: &str) -> Resp {
    post_token(
        gw,
        Some(&basic(client, SECRET)),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_CB),
            ("code_verifier", VERIFIER),
        ],
    )
    .await
}

#[track_caller]
pub(super) fn oauth_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json()["error"], error, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[track_caller]
pub(super) fn tokens_ok(r: &Resp) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["token_type"], "Bearer");
    assert!(j["expires_in"].as_i64().unwrap() > 0);
    j
}

pub(super) async fn jwks(gw: &Gw) -> (Jwks, serde_json::Value) {
    let r = Call::get("/.vestibule/jwks.json").send(&gw.app).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (Jwks::parse(&r.body).unwrap(), r.json())
}

/// Verifies a JWT against the published set: its header and claims.
pub(super) async fn verify(
    gw: &Gw,
    jwt: &str,
    alg: Algorithm,
    typ: &str,
) -> BTreeMap<String, serde_json::Value> {
    let (set, _) = jwks(gw).await;
    let c = Compact::parse(jwt).unwrap();
    let v = c
        .verify(
            &set,
            &Policy {
                algorithms: &[alg],
                types: &[typ],
                type_required: true,
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(v.header()["typ"], typ);
    assert_eq!(v.header()["alg"], alg.as_str());
    assert!(v.kid().is_some());
    v.claims_object().unwrap().into_iter().collect()
}

pub(super) async fn userinfo_get(gw: &Gw, token: &str) -> Resp {
    Call::get(USERINFO)
        .header("Authorization", &format!("Bearer {token}"))
        .send(&gw.app)
        .await
}

pub(super) async fn refresh(gw: &Gw, token: &str, scope: Option<&str>) -> Resp {
    let mut p = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    if let Some(s) = scope {
        p.push(("scope", s));
    }
    post_token(gw, Some(&basic("web", SECRET)), &p).await
}
