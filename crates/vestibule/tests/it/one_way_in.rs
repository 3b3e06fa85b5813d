//! The pages' one way in, in-process (`app(state)` + `oneshot`): a session
//! the request just started keeps its `Set-Cookie` on every answer,
//! refusals and error pages included, and extractor rejections render for
//! the client that asked.
//!
//! Before the cookie layer, each of these answers dropped the cookie: the
//! CSRF refusal, the admins-only refusal and the "no such pairing" page all
//! returned before the handler's `with_cookie`, and "revoke all" cleared
//! the plain `vestibule` cookie even over HTTPS when the session already
//! existed.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use http::{Request, StatusCode, header};
use tower::ServiceExt;
use vestibule::identity::client_identity::ConnInfo;
use vestibule::state::AppState;
use vestibule_core::net::Peer;

/// The trusted front: 127.0.0.1.
const FRONT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

struct App {
    router: Router,
    // Kept for the database's lifetime.
    _dir: tempfile::TempDir,
}

/// A gateway with authelia identities from 127.0.0.1, auto provisioning,
/// `admins` as the admin group, and one route that takes Bearer device
/// credentials (so devices can be given it).
async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[log]\nlevel = \"warn\"\n\n\
         [source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\nprovisioning = \"auto\"\n\n\
         [database]\ndata_dir = \"{}\"\n\n[accounts]\nadmin_groups = [\"admins\"]\n\n\
         [[route]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"http://127.0.0.1:9\"\ncredentials = [\"bearer\"]\n",
        dir.path().join("data").display()
    );
    let file = vestibule::config::parse_with_env(&text, std::iter::empty()).unwrap();
    let (settings, diagnostics) = vestibule::config::validate(&file);
    let settings = settings.unwrap_or_else(|| panic!("config refused: {diagnostics:?}"));
    let store = vestibule::app::open_store(settings.accounts.as_ref().unwrap())
        .await
        .unwrap();
    let state = Arc::new(AppState::new(settings, Some(store)).unwrap());
    App {
        router: vestibule::app::app(state),
        _dir: dir,
    }
}

/// Sends `req` as if from the trusted front, over TLS when `tls`.
async fn send(app: &App, mut req: Request<Body>, tls: bool) -> Response {
    req.extensions_mut().insert(ConnInfo {
        tls,
        ..ConnInfo::plain(Peer::tcp(FRONT))
    });
    app.router.clone().oneshot(req).await.unwrap()
}

fn get(path: &str, user: &str, groups: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "gw.example")
        .header("Remote-User", user)
        .header("Remote-Groups", groups)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, user: &str, cookie: Option<&str>, form: &str) -> Request<Body> {
    let mut b = Request::post(path)
        .header(header::HOST, "gw.example")
        .header("Remote-User", user)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(form.to_owned())).unwrap()
}

/// Every `Set-Cookie` of a response.
fn set_cookies(r: &Response) -> Vec<String> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// Asserts the response starts a session: exactly one `Set-Cookie`, named
/// for the scheme, holding a session token. Returns `name=value`.
fn started_session(r: &Response, https: bool) -> String {
    let all = set_cookies(r);
    assert_eq!(all.len(), 1, "want one Set-Cookie, got {all:?}");
    let name = if https {
        "__Host-vestibule="
    } else {
        "vestibule="
    };
    assert!(all[0].starts_with(name), "{all:?}");
    assert!(all[0].contains("Max-Age=") && !all[0].contains("Max-Age=0"));
    let pair = all[0].split(';').next().unwrap().to_owned();
    assert!(pair[name.len()..].starts_with("vss_"), "{pair}");
    pair
}

async fn text(r: Response) -> String {
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(b.to_vec()).unwrap()
}

fn csrf_in(html: &str) -> String {
    let i = html.find("name=\"csrf\" value=\"").expect("no csrf field") + 19;
    html[i..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_csrf_refusal_keeps_the_session_it_started() {
    let app = app().await;
    // No cookie: the request starts a session, then fails the CSRF check.
    let r = send(
        &app,
        post(
            "/.vestibule/account/sessions/revoke-all",
            "dan",
            None,
            "csrf=forged",
        ),
        false,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let cookie = started_session(&r, false);
    // The cookie names a live session: the next request reuses it and
    // sends no new cookie.
    let mut req = get("/.vestibule/account", "dan", "");
    req.headers_mut()
        .insert(header::COOKIE, cookie.parse().unwrap());
    let r = send(&app, req, false).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(set_cookies(&r).is_empty(), "{:?}", set_cookies(&r));
}

#[tokio::test]
async fn the_admins_only_refusal_keeps_the_session_and_renders_for_the_client() {
    let app = app().await;
    let r = send(&app, get("/.vestibule/admin", "erin", "staff"), false).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    started_session(&r, false);
    let ct = r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(text(r).await.contains("Administrators only"));

    // The same rejection for a client that does not ask for HTML is text.
    let mut req = get("/.vestibule/admin", "erin", "staff");
    req.headers_mut().remove(header::ACCEPT);
    let r = send(&app, req, false).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let ct = r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("text/plain"), "{ct}");
    assert_eq!(
        text(r).await,
        "This page is for administrators, and your account is not one.\n"
    );
}

#[tokio::test]
async fn a_not_found_page_keeps_the_session_over_https() {
    let app = app().await;
    let r = send(&app, get("/.vestibule/devices/pair/999", "fay", ""), true).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    started_session(&r, true);
    assert!(text(r).await.contains("You have no such pairing."));
}

#[tokio::test]
async fn revoke_all_over_https_clears_the_host_cookie_of_an_existing_session() {
    let app = app().await;
    let r = send(&app, get("/.vestibule/account", "gus", ""), true).await;
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = started_session(&r, true);
    let csrf = csrf_in(&text(r).await);

    // The session already exists, so this request earns no new cookie;
    // ending every session must clear the `__Host-` one it came with.
    let r = send(
        &app,
        post(
            "/.vestibule/account/sessions/revoke-all",
            "gus",
            Some(&cookie),
            &format!("csrf={csrf}"),
        ),
        true,
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let all = set_cookies(&r);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with("__Host-vestibule=;") && all[0].contains("Max-Age=0"),
        "{all:?}"
    );
}

#[tokio::test]
async fn a_page_without_identity_clears_the_cookie_through_the_layer() {
    let app = app().await;
    let req = Request::get("/.vestibule/devices")
        .header(header::HOST, "gw.example")
        .header(header::COOKIE, "vestibule=vss_stale")
        .body(Body::empty())
        .unwrap();
    let r = send(&app, req, false).await;
    // No login_url configured: 401, and the browser drops its cookie.
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let all = set_cookies(&r);
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(
        all[0].starts_with("vestibule=;") && all[0].contains("Max-Age=0"),
        "{all:?}"
    );
    // The security headers are still on a rejection.
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
}
