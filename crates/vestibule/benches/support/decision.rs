//! The per-request decision on a cache hit (issue 17), shared by the
//! criterion bench (`benches/decision.rs`) and the allocation count
//! (`tests/decision_allocs.rs`): a real gateway state per dialect, over a
//! real SQLite store, and the request headers each SSO front sends.
//!
//! "The decision" is what every in-path request costs before its headers
//! are rewritten: trust (`client_identity::resolve`), the reserved prefix
//! and the route match, the dialect mapping, the account (a cache hit
//! after the first request), the policy, and the rendering of the route's
//! header profile.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use vestibule::http::decide::decide;
use vestibule::identity::client_identity::ConnInfo;
use vestibule::state::AppState;
use vestibule::urls::RequestView;
use vestibule_core::net::Peer;

/// One SSO front: its dialect, the profile the app wants, and the
/// identity headers it sends for alice.
pub(crate) struct Front {
    pub(crate) dialect: &'static str,
    pub(crate) profile: &'static str,
    pub(crate) identity: &'static [(&'static str, &'static str)],
}

/// The common dialects, each towards a different profile.
pub(crate) const FRONTS: &[Front] = &[
    Front {
        dialect: "authelia",
        profile: "remote",
        identity: &[
            ("remote-user", "alice"),
            ("remote-groups", "admins,users,media"),
            ("remote-email", "alice@example.com"),
            ("remote-name", "Alice Liddell"),
        ],
    },
    Front {
        dialect: "authentik",
        profile: "x-forwarded",
        identity: &[
            ("x-authentik-uid", "a1b2c3d4"),
            ("x-authentik-username", "alice"),
            ("x-authentik-email", "alice@example.com"),
            ("x-authentik-name", "Alice Liddell"),
            ("x-authentik-groups", "admins|users|media"),
        ],
    },
    Front {
        dialect: "oauth2-proxy",
        profile: "grafana",
        identity: &[
            ("x-forwarded-user", "a1b2c3d4"),
            ("x-forwarded-preferred-username", "alice"),
            ("x-forwarded-email", "alice@example.com"),
            ("x-forwarded-groups", "admins,users,media"),
        ],
    },
    Front {
        dialect: "georchestra",
        profile: "georchestra",
        identity: &[
            ("sec-georchestra-preauthenticated", "true"),
            ("preauth-username", "alice"),
            ("preauth-email", "alice@example.com"),
            ("preauth-firstname", "Alice"),
            ("preauth-lastname", "Liddell"),
            ("preauth-org", "wonderland"),
            ("preauth-roles", "ROLE_USER;ROLE_ADMINISTRATOR"),
        ],
    },
    Front {
        dialect: "tailscale",
        profile: "remote",
        identity: &[
            ("tailscale-user-login", "alice@example.com"),
            ("tailscale-user-name", "Alice Liddell"),
        ],
    },
];

/// A gateway state for `front`, its store in `dir`, and the request it
/// decides. The first decision (run here) provisions alice's account
/// and fills the cache, so every later one is a cache hit.
pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) state: Arc<AppState>,
    pub(crate) headers: HeaderMap,
    _dir: tempfile::TempDir,
}

/// The front's peer: trusted for identity.
const FRONT_PEER: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

impl Case {
    pub(crate) async fn new(front: &Front) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
[source.headers]
dialect = "{dialect}"
trusted_proxies = ["127.0.0.1"]
provisioning = "auto"
[database]
data_dir = "{data}"
[accounts]
cache_ttl = "1h"
[[route]]
name = "photos"
host = "photos.example.com"
upstream = "http://127.0.0.1:9"
profile = "{profile}"
"#,
            dialect = front.dialect,
            profile = front.profile,
            data = dir.path().display(),
        );
        let file = vestibule::config::parse_with_env(&toml, std::iter::empty()).unwrap();
        let (settings, diagnostics) = vestibule::config::validate(&file);
        let settings = settings.unwrap_or_else(|| panic!("{diagnostics:?}"));
        let store = vestibule::app::open_store(settings.accounts.as_ref().unwrap())
            .await
            .unwrap();
        let state = Arc::new(AppState::new(settings, Some(store)).unwrap());
        let case = Self {
            name: front.dialect,
            state,
            headers: request_headers(front),
            _dir: dir,
        };
        let rendered = decision(&case.state, &case.headers).await;
        assert!(
            rendered > 0,
            "{}: the profile carries the identity",
            case.name
        );
        case
    }
}

/// A current-thread runtime (as a decision is polled on one core) and a
/// case per front in [`FRONTS`], each past its first, filling decision.
pub(crate) fn cases() -> (tokio::runtime::Runtime, Vec<Case>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = FRONTS.iter().map(|f| rt.block_on(Case::new(f))).collect();
    (rt, cases)
}

/// A browser's request as the front forwards it, with the identity.
fn request_headers(front: &Front) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "photos.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "sso_session=abcdefghijklmnopqrstuvwxyz0123456789"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "photos.example.com"),
    ]
    .iter()
    .chain(front.identity)
    {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

/// One decision, as the proxy makes it, and the profile rendered for the
/// app. Returns the bytes of identity rendered (so it is not optimised
/// away, and so a test sees the identity got through).
pub(crate) async fn decision(state: &AppState, headers: &HeaderMap) -> usize {
    let view = RequestView {
        host: Some("photos.example.com"),
        path: "/albums/42",
        path_and_query: "/albums/42?size=large",
        headers,
    };
    let pass = match decide(state, ConnInfo::plain(Peer::tcp(FRONT_PEER)), view).await {
        Ok(p) => p,
        Err(r) => panic!("refused: {:?}", r.refusal),
    };
    // As `forward` renders it: each header handed over, none collected.
    let mut rendered = 0;
    pass.render_each(|_, v| rendered += v.len());
    rendered
}
