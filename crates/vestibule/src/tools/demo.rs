//! `vestibule demo`: a working gateway in one command, on loopback only.
//!
//! Three servers start:
//! - a **demo SSO front**: a login page where you pick a user, then a proxy
//!   that strips client-sent identity headers and sets Authelia-style
//!   `Remote-*` ones, as Authelia behind Caddy would. It connects to
//!   vestibule from its own loopback address, `127.0.0.3`;
//! - **vestibule**, trusting identity headers from `127.0.0.3` only;
//! - **whoami**, showing what it received.
//!
//! vestibule is also the demo's OpenID Connect provider (issuer: the
//! front's origin), with one registered client, the demo app at
//! `/.demo/app` ([`super::demo_app`]), which signs in through it.
//!
//! Nothing here is meant for production: the front has no passwords.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Query, Request, State};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, Uri, header};
use rand::RngCore;
use serde::Deserialize;
use vestibule_core::headers::IdentityHeaders;

use crate::config;
use crate::tools::{ToolClient, tool_client};

/// The address the demo front connects from; vestibule trusts only it.
pub const FRONT_SOURCE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// The demo's vestibule configuration. `{whoami}` and `{front}` are filled
/// in at start-up.
pub const DEMO_CONFIG: &str = r#"# vestibule demo configuration (loopback only).
[server]
listen = ["127.0.0.1:0"]
admin_listen = "127.0.0.1:0"

[source.headers]
dialect = "authelia"
# Only the demo front's address may send identity headers.
trusted_proxies = ["127.0.0.3"]
# New people wait for an admin (alice) to approve them.
provisioning = "approval"

[database]
# Embedded SQLite, kept between demo runs.
data_dir = "{data}"

[accounts]
admin_groups = ["admins"]
[accounts.roles]
admin = ["admins"]

[client_certs]
# Certificate devices (docs/client-certificates.md): made on the devices
# page. The demo has no TLS listener of its own, so using one needs a
# front that terminates TLS and forwards it.
enabled = true

[auth]
login_url = "{front}/.demo/login?rd={url}"
# /.vestibule/logout ends vestibule's session, then the front's.
logout_url = "{front}/.demo/logout?rd={url}"

[oidc_provider]
# vestibule as an OpenID Connect provider (docs/oidc-provider.md); the
# issuer is the front's origin, where browsers reach vestibule.
issuer = "{front}"

[[oidc_provider.client]]
# The demo app on the front ({front}/.demo/app): a public client, so
# PKCE (S256) and no secret; it asks for consent.
client_id = "demo-app"
name = "Demo app"
kind = "public"
redirect_uris = ["{front}/.demo/app/callback"]

[[route]]
name = "public"
path_prefix = "/public"
upstream = "{whoami}"
auth = "public"

[[route]]
name = "admins"
path_prefix = "/admins"
upstream = "{whoami}"
allow_groups = ["admins"]

[[route]]
name = "grafana"
path_prefix = "/grafana"
upstream = "{whoami}"
profile = "grafana"
grafana_email = true
grafana_name = true

[[route]]
name = "georchestra"
path_prefix = "/georchestra"
upstream = "{whoami}"
profile = "georchestra"

[[route]]
name = "whoami"
path_prefix = "/"
upstream = "{whoami}"
# Devices (curl, apps) may come in with their own credential:
# create one on /.vestibule/devices.
credentials = ["basic", "bearer", "header"]
"#;

/// A signed-in demo user.
#[derive(Debug, Clone)]
struct DemoUser {
    username: String,
    name: String,
    email: String,
    groups: String,
}

struct Front {
    origin: String,
    vestibule: SocketAddr,
    client: ToolClient,
    sessions: Mutex<HashMap<String, DemoUser>>,
}

/// Options of `vestibule demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the demo front listens (loopback only).
    pub listen: SocketAddr,
}

/// Where the demo keeps its database, relative to the working directory.
pub const DEMO_DATA_DIR: &str = "vestibule-demo-data";

/// Where a running demo writes the configuration it runs with, inside its
/// data directory: the admin commands read the same database through it.
pub const DEMO_CONFIG_FILE: &str = "vestibule-demo.toml";

/// The whoami address `--print-config` names: where `vestibule whoami`
/// listens by default (a running demo picks a free port instead).
pub const PRINTED_WHOAMI: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);

/// What `vestibule demo --print-config` prints: the demo's configuration
/// for a front on `listen` and a database under `cwd`, complete enough for
/// `vestibule check` and the admin commands (`vestibule users --config …`).
pub fn printed_config(listen: SocketAddr, cwd: &std::path::Path) -> String {
    format!(
        "# The app is `vestibule whoami` on its default address; a running demo\n\
         # writes the configuration it actually uses to {DEMO_DATA_DIR}/{DEMO_CONFIG_FILE}.\n{}",
        demo_config_text(
            PRINTED_WHOAMI,
            &format!("http://{listen}"),
            &cwd.join(DEMO_DATA_DIR)
        )
    )
}

/// `path` as one shell word: as it is when plain, else single-quoted.
fn shell_word(path: &std::path::Path) -> String {
    let s = path.display().to_string();
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:@%".contains(&b))
    {
        s
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The demo configuration with its addresses filled in.
pub fn demo_config_text(whoami: SocketAddr, front: &str, data_dir: &std::path::Path) -> String {
    DEMO_CONFIG
        .replace("{whoami}", &format!("http://{whoami}"))
        .replace("{front}", front)
        .replace("{data}", &data_dir.display().to_string().replace('\\', "/"))
}

/// The demo's people: alice and bob may come in, carol waits for approval.
async fn seed_accounts(store: &std::sync::Arc<dyn vestibule_store::Store>) -> Result<(), String> {
    use vestibule_store::{AccountStatus, IdentityKey, NewAccount};
    for (user, name, groups, status) in [
        (
            "alice",
            "Alice Liddell",
            vec!["admins", "users"],
            AccountStatus::Active,
        ),
        ("bob", "Bob Ørsted", vec!["users"], AccountStatus::Active),
        (
            "carol",
            "Carol Danvers",
            vec!["guests"],
            AccountStatus::Pending,
        ),
    ] {
        let key = IdentityKey::new("authelia", user);
        if store
            .account_by_identity(&key)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            continue;
        }
        store
            .create_account(NewAccount {
                key,
                username: user.into(),
                email: Some(format!("{user}@example.com")),
                display_name: Some(name.into()),
                groups: groups.into_iter().map(String::from).collect(),
                org: None,
                status,
                now: crate::accounts::now_ms(),
            })
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Starts the demo and serves until `shutdown` resolves.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    if !opts.listen.ip().is_loopback() {
        return Err(format!(
            "the demo only listens on loopback addresses (127.0.0.1, ::1), not {}: it has no passwords",
            opts.listen.ip()
        ));
    }
    let front_listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}: {e} (choose another with --listen)",
                opts.listen
            )
        })?;
    let front_addr = front_listener.local_addr().map_err(|e| e.to_string())?;
    let origin = format!("http://{front_addr}");

    let whoami_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let whoami_addr = whoami_listener.local_addr().map_err(|e| e.to_string())?;
    let whoami = tokio::spawn(crate::tools::whoami::serve(whoami_listener));

    let data_dir = std::env::current_dir()
        .map_err(|e| e.to_string())?
        .join(DEMO_DATA_DIR);
    let text = demo_config_text(whoami_addr, &origin, &data_dir);
    let file = config::parse_with_env(&text, std::iter::empty()).map_err(|e| e.to_string())?;
    let (settings, diags) = config::validate(&file);
    let settings = settings.ok_or_else(|| {
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let running = crate::app::spawn(settings).await?;
    if let Some(accounts) = running.state.accounts() {
        seed_accounts(accounts.store()).await?;
    }
    // The admin commands need a configuration naming this database: the
    // one the demo runs with (spawn created the directory).
    let config_file = data_dir.join(DEMO_CONFIG_FILE);
    std::fs::write(&config_file, &text)
        .map_err(|e| format!("cannot write {}: {e}", config_file.display()))?;
    let vestibule_addr = *running
        .http_addrs
        .first()
        .ok_or("vestibule has no listener")?;

    let front = Arc::new(Front {
        origin: origin.clone(),
        vestibule: vestibule_addr,
        client: tool_client(
            Duration::from_secs(5),
            Duration::from_secs(90),
            Some(IpAddr::V4(FRONT_SOURCE_IP)),
        ),
        sessions: Mutex::new(HashMap::new()),
    });
    let demo_app = Arc::new(super::demo_app::DemoApp::new(
        origin.clone(),
        vestibule_addr,
        front.client.clone(),
    ));
    let app = Router::new()
        .route("/.demo/login", get(login_page).post(login))
        .route("/.demo/logout", get(logout))
        .fallback(proxy)
        .with_state(front)
        .merge(super::demo_app::routes(demo_app));

    print_banner(
        &origin,
        vestibule_addr,
        whoami_addr,
        running.admin_addr,
        &data_dir,
        &config_file,
    );
    let served = axum::serve(front_listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    running.shutdown().await;
    whoami.abort();
    served.map_err(|e| e.to_string())
}

fn print_banner(
    front: &str,
    vestibule: SocketAddr,
    whoami: SocketAddr,
    admin: Option<SocketAddr>,
    data_dir: &std::path::Path,
    config_file: &std::path::Path,
) {
    let data_dir = data_dir.display();
    let admin_cmd = format!("vestibule users --config {}", shell_word(config_file));
    let admin = admin.map_or_else(|| "off".to_owned(), |a| format!("http://{a}/metrics"));
    println!(
        r#"
  vestibule DEMO — not for production; everything listens on loopback only.

  Open {front}/ in a browser and sign in as alice (admins) or bob (users).

  Running:
    demo SSO front  {front}
                    sets Remote-User/-Groups/-Email/-Name like Authelia behind Caddy,
                    and connects to vestibule from 127.0.0.3
    vestibule       http://{vestibule}
                    trusts identity headers only from 127.0.0.3
    whoami app      http://{whoami}
                    shows exactly what it received
    metrics         {admin}

  Try:
    {front}/             whoami as you (Remote-* headers)
    {front}/admins       group admins only: alice passes, bob gets 403
    {front}/public       public route: no identity is forwarded
    {front}/grafana      Grafana's X-WEBAUTH-* headers
    {front}/georchestra  geOrchestra's sec-* headers
    {front}/.demo/logout sign out, then reload: vestibule sends you to the login page
    {front}/.vestibule/logout?return_to=/public
                         what an app's "sign out" link should use: vestibule's session,
                         then the front's, then back to /public (only listed origins)
    {front}/.vestibule/account  your account and sessions, as vestibule keeps them

  OpenID Connect (vestibule as the provider for apps that speak it):
    {front}/.demo/app    the demo app: "Sign in with vestibule (OIDC)" runs the code
                         flow with PKCE, asks your consent, then shows the ID token's
                         claims and userinfo
    {front}/.vestibule/apps  the apps holding access to your account: revoke one there
    {front}/.well-known/openid-configuration  the provider's discovery document

  Devices (apps that cannot sign in: phones, WebDAV, scripts):
    sign in, open {front}/.vestibule/devices and add a device for "whoami"
    a token:        curl -H 'Authorization: Bearer vst_…' {front}/   → whoami, as you
    an app password: curl -u 'alice:vst_…' {front}/                   → the same, over Basic
    (each kind works only its own way); revoke it on the page: curl gets 401 at once

  Accounts (kept in {data_dir}/vestibule.db):
    sign in as carol: her account waits for approval, the app is never reached
    sign in as alice and open {front}/.vestibule/admin: approve carol
    sign in as carol again: she is in. Anyone you type in waits for approval too.

  Administration from a terminal, on this demo's database (also to recover
  when no admin can sign in):
    {admin_cmd} list
    {admin_cmd} approve carol
    {admin_cmd} enable alice

  Spoofing, straight at vestibule (you are 127.0.0.1, not the trusted 127.0.0.3):
    curl -i -H 'Remote-User: admin' http://{vestibule}/
      → 401: the header is ignored and stripped
    curl -i -H 'Remote-User: admin' -H 'Accept: text/html' http://{vestibule}/public
      → the app receives no Remote-User at all

  Press Ctrl-C to stop.
"#
    );
}

#[derive(Template)]
#[template(path = "demo_login.html")]
struct LoginPage {
    rd: String,
    current: Option<String>,
}

#[derive(Deserialize)]
struct LoginQuery {
    rd: Option<String>,
}

const COOKIE: &str = "demo_sso";

fn session_id(req_headers: &http::HeaderMap) -> Option<String> {
    req_headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

fn current_user(front: &Front, headers: &http::HeaderMap) -> Option<DemoUser> {
    let id = session_id(headers)?;
    front.sessions.lock().ok()?.get(&id).cloned()
}

async fn login_page(
    State(front): State<Arc<Front>>,
    Query(q): Query<LoginQuery>,
    req: Request,
) -> Response {
    let page = LoginPage {
        rd: q.rd.unwrap_or_default(),
        current: current_user(&front, req.headers()).map(|u| u.username),
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct LoginForm {
    preset: Option<String>,
    username: Option<String>,
    name: Option<String>,
    groups: Option<String>,
    rd: Option<String>,
}

fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

async fn login(State(front): State<Arc<Front>>, Form(f): Form<LoginForm>) -> Response {
    let user = match f.preset.as_deref() {
        Some("alice") => DemoUser {
            username: "alice".into(),
            name: "Alice Liddell".into(),
            email: "alice@example.com".into(),
            groups: "admins,users".into(),
        },
        Some("bob") => DemoUser {
            username: "bob".into(),
            name: "Bob Ørsted".into(),
            email: "bob@example.com".into(),
            groups: "users".into(),
        },
        Some("carol") => DemoUser {
            username: "carol".into(),
            name: "Carol Danvers".into(),
            email: "carol@example.com".into(),
            groups: "guests".into(),
        },
        _ => {
            let username = clean(f.username.as_deref().unwrap_or(""));
            if username.is_empty() {
                return (StatusCode::BAD_REQUEST, "Pick a user or type a username.\n")
                    .into_response();
            }
            DemoUser {
                email: format!("{username}@example.com"),
                name: clean(f.name.as_deref().unwrap_or("")),
                groups: clean(f.groups.as_deref().unwrap_or("")),
                username,
            }
        }
    };
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let id = vestibule_store::hex(&raw);
    if let Ok(mut s) = front.sessions.lock() {
        s.insert(id.clone(), user);
    }
    // Only go back to this front's own pages: no open redirect, even in a demo.
    let rd =
        f.rd.filter(|rd| rd.starts_with(&format!("{}/", front.origin)))
            .unwrap_or_else(|| format!("{}/", front.origin));
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&rd) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"))
    {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
struct LogoutQuery {
    rd: Option<String>,
}

async fn logout(
    State(front): State<Arc<Front>>,
    Query(q): Query<LogoutQuery>,
    req: Request,
) -> Response {
    if let Some(id) = session_id(req.headers())
        && let Ok(mut s) = front.sessions.lock()
    {
        s.remove(&id);
    }
    // Back to where vestibule's logout said, on this front only.
    let rd =
        q.rd.filter(|rd| rd.starts_with(&format!("{}/", front.origin)))
            .unwrap_or_else(|| "/.demo/login".to_owned());
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&rd) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("demo_sso=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"),
    );
    resp
}

/// Forwards to vestibule the way Authelia behind Caddy would: client copies
/// of identity headers removed, the session's identity set.
async fn proxy(State(front): State<Arc<Front>>, req: Request) -> Response {
    let user = current_user(&front, req.headers());
    let (mut parts, body) = req.into_parts();
    // Like a real front, strip identity headers but pass a device's own
    // credential header on (it is in vestibule's `x-vestibule-` namespace,
    // which the built-in list strips wholesale).
    let device_credential = parts
        .headers
        .get_all("x-vestibule-token")
        .iter()
        .cloned()
        .collect::<Vec<_>>();
    IdentityHeaders::builtin().strip(&mut parts.headers);
    for v in device_credential {
        parts.headers.append("x-vestibule-token", v);
    }
    crate::http::forward::remove_hop_by_hop(&mut parts.headers);
    let host = parts.headers.get(header::HOST).cloned();
    if let Some(u) = &user {
        for (name, value) in [
            ("remote-user", &u.username),
            ("remote-name", &u.name),
            ("remote-email", &u.email),
            ("remote-groups", &u.groups),
        ] {
            if let Ok(v) = HeaderValue::from_bytes(value.as_bytes()) {
                parts.headers.insert(name, v);
            }
        }
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    if let Some(h) = host {
        parts.headers.insert("x-forwarded-host", h);
    }
    parts
        .headers
        .insert("x-forwarded-for", HeaderValue::from_static("127.0.0.1"));
    let pq = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    parts.uri = match Uri::builder()
        .scheme("http")
        .authority(front.vestibule.to_string())
        .path_and_query(pq)
        .build()
    {
        Ok(u) => u,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    parts.version = http::Version::HTTP_11;
    match front
        .client
        .request(http::Request::from_parts(parts, body))
        .await
    {
        Ok(resp) => {
            let (mut p, b) = resp.into_parts();
            crate::http::forward::remove_hop_by_hop(&mut p.headers);
            Response::from_parts(p, Body::new(b))
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("demo front: vestibule is unreachable: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_clean() {
        let text = demo_config_text(
            "127.0.0.1:1".parse().unwrap(),
            "http://127.0.0.1:9000",
            std::path::Path::new("/tmp/demo-data"),
        );
        let file = config::parse_with_env(&text, std::iter::empty()).unwrap();
        let (settings, diags) = config::validate(&file);
        // Plain HTTP on loopback: the only thing to say is that cookies are
        // not `__Host-`/Secure, which a demo on 127.0.0.1 accepts.
        let keys: Vec<&str> = diags.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["sessions"], "{diags:?}");
        assert!(settings.is_some());
    }
}
