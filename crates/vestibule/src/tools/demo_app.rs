//! The demo's OpenID Connect app: a tiny relying party served by the demo
//! front under `/.demo/app`, registered with the demo's provider as the
//! public client `demo-app`. "Sign in with vestibule (OIDC)" runs the
//! authorization code flow with PKCE (RFC 7636, `S256`) against the demo
//! gateway and shows what the app got: the ID token's claims (signature
//! checked against the gateway's JWK Set) and the userinfo answer.
//!
//! Like the rest of the demo it is for seeing the flow, not for copying:
//! a real app keeps its state in a signed session, not in a process map.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde::Deserialize;
use vestibule_jose::{Algorithm, Compact, Jwks, Policy};

use crate::tools::ToolClient;

/// The demo app's `client_id`, as the demo configuration registers it.
pub const CLIENT_ID: &str = "demo-app";
/// Where the demo app lives on the front.
pub const APP_PATH: &str = "/.demo/app";
/// The app's redirect URI path (registered exactly, on the front's origin).
pub const CALLBACK_PATH: &str = "/.demo/app/callback";
/// What the app asks for.
const SCOPE: &str = "openid profile email groups";
/// The cookie that binds a sign-in to the browser that started it
/// (RFC 6749 §10.12: `state` against CSRF on the redirect URI).
const STATE_COOKIE: &str = "demo_app_state";
/// How long a started sign-in may take.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// A sign-in in progress: what the callback must check.
struct Pending {
    verifier: String,
    nonce: String,
    started: Instant,
}

/// The demo app's state.
pub struct DemoApp {
    /// The front's origin: the provider's issuer, and the app's origin.
    pub issuer: String,
    /// vestibule's own listener, for the back-channel calls (token, JWKS,
    /// userinfo) that a real app would make to the issuer.
    pub vestibule: SocketAddr,
    /// The HTTP client.
    pub client: ToolClient,
    pending: Mutex<HashMap<String, Pending>>,
}

impl DemoApp {
    /// The app for the provider at `issuer`.
    pub fn new(issuer: String, vestibule: SocketAddr, client: ToolClient) -> Self {
        Self {
            issuer,
            vestibule,
            client,
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.issuer)
    }
}

/// The app's routes.
pub fn routes(app: Arc<DemoApp>) -> Router {
    Router::new()
        .route(APP_PATH, get(home))
        .route("/.demo/app/login", get(login))
        .route(CALLBACK_PATH, get(callback))
        .with_state(app)
}

#[derive(Template)]
#[template(path = "demo_app.html")]
struct AppPage {
    /// What went wrong, in words.
    error: Option<String>,
    /// The verified ID token's claims, pretty JSON.
    id_token: Option<String>,
    /// The userinfo answer, pretty JSON.
    userinfo: Option<String>,
    /// The name to greet.
    name: Option<String>,
}

fn page(p: AppPage, status: StatusCode) -> Response {
    match p.render() {
        Ok(h) => (status, Html(h)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn failed(why: impl Into<String>) -> Response {
    page(
        AppPage {
            error: Some(why.into()),
            id_token: None,
            userinfo: None,
            name: None,
        },
        StatusCode::BAD_REQUEST,
    )
}

async fn home() -> Response {
    page(
        AppPage {
            error: None,
            id_token: None,
            userinfo: None,
            name: None,
        },
        StatusCode::OK,
    )
}

fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// `GET /.demo/app/login`: starts the flow (OIDC Core §3.1.2.1) with a
/// fresh `state`, `nonce` and PKCE verifier (RFC 7636 §4.1: 32 random
/// bytes, base64url; the challenge is its SHA-256, §4.2).
async fn login(State(app): State<Arc<DemoApp>>) -> Response {
    let (state, nonce, verifier) = (random(), random(), random());
    let challenge = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
    );
    if let Ok(mut p) = app.pending.lock() {
        p.retain(|_, v| v.started.elapsed() < PENDING_TTL);
        p.insert(
            state.clone(),
            Pending {
                verifier,
                nonce: nonce.clone(),
                started: Instant::now(),
            },
        );
    }
    let q = form(&[
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", &app.redirect_uri()),
        ("scope", SCOPE),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let to = format!("{}{}?{q}", app.issuer, crate::provider::AUTHORIZE_PATH);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{STATE_COOKIE}={state}; Path={APP_PATH}; HttpOnly; SameSite=Lax"
    )) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `application/x-www-form-urlencoded` of `pairs`.
fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn state_cookie(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == STATE_COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// `GET /.demo/app/callback`: checks `state` against the browser's cookie
/// and `iss` against the issuer (RFC 9207 §2.4), redeems the code with the
/// verifier, verifies the ID token (signature from the JWK Set, `iss`,
/// `aud`, `nonce`: OIDC Core §3.1.3.7) and calls userinfo.
async fn callback(
    State(app): State<Arc<DemoApp>>,
    Query(q): Query<CallbackQuery>,
    req: Request,
) -> Response {
    let Some(state) = q
        .state
        .filter(|s| state_cookie(req.headers()).as_ref() == Some(s))
    else {
        return failed("This answer does not belong to a sign-in this browser started (state).");
    };
    let Some(pending) = app.pending.lock().ok().and_then(|mut p| p.remove(&state)) else {
        return failed("This sign-in is unknown or was already finished.");
    };
    if q.iss.as_deref() != Some(app.issuer.as_str()) {
        return failed("The answer names another issuer (iss).");
    }
    if let Some(e) = q.error {
        return failed(format!(
            "The gateway answered {e}: {}",
            q.error_description.unwrap_or_default()
        ));
    }
    let Some(code) = q.code else {
        return failed("The answer has no code.");
    };
    match finish(&app, &code, &pending).await {
        Ok(p) => page(p, StatusCode::OK),
        Err(e) => failed(e),
    }
}

async fn finish(app: &DemoApp, code: &str, pending: &Pending) -> Result<AppPage, String> {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &app.redirect_uri()),
        ("client_id", CLIENT_ID),
        ("code_verifier", &pending.verifier),
    ]);
    let tokens = call(
        app,
        http::Method::POST,
        crate::provider::TOKEN_PATH,
        Some(("application/x-www-form-urlencoded", body)),
        None,
    )
    .await?;
    let tokens: serde_json::Value =
        serde_json::from_slice(&tokens).map_err(|e| format!("the token answer: {e}"))?;
    let (Some(id_token), Some(access)) =
        (tokens["id_token"].as_str(), tokens["access_token"].as_str())
    else {
        return Err(format!("the token endpoint answered {tokens}"));
    };
    let jwks = call(app, http::Method::GET, "/.vestibule/jwks.json", None, None).await?;
    let set = Jwks::parse(&jwks).map_err(|e| format!("the JWK Set: {e:?}"))?;
    let verified = Compact::parse(id_token)
        .map_err(|e| format!("the ID token: {e:?}"))?
        .verify(
            &set,
            &Policy {
                algorithms: &[Algorithm::RS256],
                types: &["JWT"],
                type_required: false,
            },
        )
        .map_err(|e| format!("the ID token's signature: {e:?}"))?;
    let claims = verified
        .claims_object()
        .map_err(|e| format!("the ID token's claims: {e:?}"))?;
    if claims.get("iss").and_then(|v| v.as_str()) != Some(app.issuer.as_str())
        || claims.get("aud").and_then(|v| v.as_str()) != Some(CLIENT_ID)
        || claims.get("nonce").and_then(|v| v.as_str()) != Some(pending.nonce.as_str())
    {
        return Err("the ID token is not for this app, this issuer or this sign-in".into());
    }
    let userinfo = call(
        app,
        http::Method::GET,
        crate::provider::USERINFO_PATH,
        None,
        Some(access),
    )
    .await?;
    let userinfo: serde_json::Value =
        serde_json::from_slice(&userinfo).map_err(|e| format!("the userinfo answer: {e}"))?;
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    Ok(AppPage {
        error: None,
        name: claims
            .get("name")
            .or_else(|| claims.get("preferred_username"))
            .and_then(|v| v.as_str())
            .map(str::to_owned),
        id_token: Some(pretty(&serde_json::Value::Object(claims))),
        userinfo: Some(pretty(&userinfo)),
    })
}

/// A call to the gateway's endpoint `path`, on the issuer's authority (the
/// front's `Host`), answered 200; the body.
async fn call(
    app: &DemoApp,
    method: http::Method,
    path: &str,
    body: Option<(&str, String)>,
    bearer: Option<&str>,
) -> Result<bytes::Bytes, String> {
    let host = app
        .issuer
        .split_once("://")
        .map_or(app.issuer.as_str(), |(_, h)| h);
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", app.vestibule))
        .header(header::HOST, host);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some((ct, text)) => b.header(header::CONTENT_TYPE, ct).body(Body::from(text)),
        None => b.body(Body::empty()),
    }
    .map_err(|e| e.to_string())?;
    let resp = app
        .client
        .request(req)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{path}: {e}"))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(format!(
            "{path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    Ok(bytes)
}
