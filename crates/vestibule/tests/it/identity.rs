//! Identity in (trusted headers) and identity out (profiles).

use crate::support::*;

/// (dialect, extra config, headers sent, expected Remote-User, expected Remote-Groups)
type PresetCase = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
);

/// For each preset: a trusted front's headers become the route's profile.
#[tokio::test]
async fn identity_reaches_upstream_for_each_preset() {
    let up = start_whoami().await;
    let cases: Vec<PresetCase> = vec![
        (
            "authelia",
            "",
            vec![
                ("Remote-User", "alice"),
                ("Remote-Groups", "admins,users"),
                ("Remote-Email", "alice@example.com"),
                ("Remote-Name", "Alice"),
            ],
            "alice",
            "admins,users",
        ),
        (
            "authentik",
            "",
            vec![
                ("X-authentik-uid", "u-42"),
                ("X-authentik-username", "bob"),
                ("X-authentik-groups", "media|users"),
                ("X-authentik-email", "bob@example.com"),
                ("X-authentik-name", "Bob"),
            ],
            "bob",
            "media,users",
        ),
        (
            "oauth2-proxy",
            "",
            vec![
                ("X-Forwarded-User", "sub-7"),
                ("X-Forwarded-Preferred-Username", "carol"),
                ("X-Forwarded-Groups", "ops"),
                ("X-Forwarded-Email", "carol@example.com"),
            ],
            "carol",
            "ops",
        ),
        (
            "oauth2-proxy",
            "",
            vec![
                ("X-Auth-Request-User", "sub-8"),
                ("X-Auth-Request-Preferred-Username", "dan"),
                ("X-Auth-Request-Groups", "a,b"),
            ],
            "dan",
            "a,b",
        ),
        (
            "georchestra",
            "",
            vec![
                ("sec-georchestra-preauthenticated", "true"),
                ("preauth-username", "pmauduit"),
                ("preauth-email", "p@example.org"),
                ("preauth-firstname", "{base64}R3LDqWdvaXJl"),
                ("preauth-lastname", "Mauduit"),
                ("preauth-org", "geo"),
                ("preauth-roles", "ROLE_USER;ROLE_ADMIN"),
                ("preauth-provider", "idp"),
                ("preauth-provider-id", "x-1"),
            ],
            "pmauduit",
            "ROLE_USER,ROLE_ADMIN",
        ),
        (
            "tailscale",
            "",
            vec![
                ("Tailscale-User-Login", "erin@example.com"),
                ("Tailscale-User-Name", "=?utf-8?q?Erin?="),
            ],
            "erin@example.com",
            "",
        ),
        (
            "custom",
            "[source.headers.custom]\nsubject = \"X-Id\"\nusername = \"X-Login\"\ngroups = \"X-Roles\"\ngroups_separator = \";\"\n",
            vec![("X-Id", "9"), ("X-Login", "frank"), ("X-Roles", "r1;r2")],
            "frank",
            "r1,r2",
        ),
    ];
    for (dialect, extra, headers, user, groups) in cases {
        let src = format!(
            "[source.headers]\ndialect = \"{dialect}\"\ntrusted_proxies = [\"127.0.0.1\"]\n{extra}"
        );
        let gw = Gateway::start(&config(&src, &route("app", "/", up, ""))).await;
        let r = Raw::get(gw.addr, TRUSTED, "/x", &headers).await;
        assert_eq!(r.status, 200, "{dialect}: {}", r.text());
        let seen = r.seen_headers();
        assert_eq!(seen["remote-user"], [user], "{dialect}");
        if groups.is_empty() {
            assert!(!seen.contains_key("remote-groups"), "{dialect}");
        } else {
            assert_eq!(seen["remote-groups"], [groups], "{dialect}");
        }
        // The dialect's own headers never reach the app.
        for (n, _) in &headers {
            let n = n.to_ascii_lowercase();
            if !n.starts_with("remote-") {
                assert!(!seen.contains_key(&n), "{dialect}: {n} leaked");
            }
        }
    }
}

/// Every output profile, from one identity.
#[tokio::test]
async fn each_profile_is_rendered() {
    let up = start_whoami().await;
    let routes = [
        route("remote", "/remote", up, ""),
        route("xf", "/xf", up, "profile = \"x-forwarded\""),
        route("grafana", "/grafana", up, "profile = \"grafana\"\ngrafana_email = true"),
        route("geo", "/geo", up, "profile = \"georchestra\""),
        route("custom", "/custom", up, "profile = \"custom\"\n[route.custom_profile]\nheaders = { \"X-App-Sub\" = \"subject\", \"X-App-Roles\" = \"groups\" }\ngroups_separator = \" \"\n"),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    let h = [
        ("Remote-User", "alice"),
        ("Remote-Groups", "admins,users"),
        ("Remote-Email", "alice@example.com"),
        ("Remote-Name", "Ålice Ørsted"),
    ];
    let get = |p: &'static str| {
        let addr = gw.addr;
        async move { Raw::get(addr, TRUSTED, p, &h).await.seen_headers() }
    };
    let s = get("/remote").await;
    assert_eq!(s["remote-name"], ["Ålice Ørsted"]);
    let s = get("/xf").await;
    assert_eq!(s["x-forwarded-user"], ["alice"]);
    assert_eq!(s["x-forwarded-groups"], ["admins,users"]);
    assert!(!s.contains_key("remote-user"));
    let s = get("/grafana").await;
    assert_eq!(s["x-webauth-user"], ["alice"]);
    assert_eq!(s["x-webauth-email"], ["alice@example.com"]);
    assert!(!s.contains_key("x-webauth-name"));
    let s = get("/geo").await;
    assert_eq!(s["sec-username"], ["alice"]);
    assert_eq!(s["sec-roles"], ["admins;users"]);
    assert_eq!(s["sec-proxy"], ["true"]);
    assert!(
        s["sec-firstname"][0].starts_with("{base64}"),
        "{:?}",
        s["sec-firstname"]
    );
    let s = get("/custom").await;
    assert_eq!(s["x-app-sub"], ["alice"]);
    assert_eq!(s["x-app-roles"], ["admins users"]);
}

/// Every spelling a client might use, from a peer that is not trusted.
const SPOOFS: &[(&str, &str)] = &[
    ("Remote-User", "admin"),
    ("remote_user", "admin"),
    ("REMOTE-USER", "admin"),
    ("Remote-Groups", "admins"),
    ("X-WEBAUTH-USER", "admin"),
    ("X_WEBAUTH_USER", "admin"),
    ("X-Forwarded-User", "admin"),
    ("X-Auth-Request-User", "admin"),
    ("X-authentik-username", "admin"),
    ("sec-username", "admin"),
    ("sec-georchestra-preauthenticated", "true"),
    ("preauth-username", "admin"),
    ("Tailscale-User-Login", "admin"),
    ("OIDC_CLAIM_sub", "admin"),
];

#[tokio::test]
async fn untrusted_peer_cannot_inject_identity_through_any_spelling() {
    let up = start_whoami().await;
    let routes = [
        route("open", "/open", up, "auth = \"optional\""),
        route(
            "geo",
            "/geo",
            up,
            "auth = \"optional\"\nprofile = \"georchestra\"",
        ),
        route("app", "/", up, ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;

    // Required route: no identity, so 401, whatever was sent.
    let r = Raw::get(gw.addr, UNTRUSTED, "/", SPOOFS).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // One spelling at a time, too (duplicates alone could mask a bug).
    for h in SPOOFS {
        let r = Raw::get(gw.addr, UNTRUSTED, "/", &[*h]).await;
        assert_eq!(r.status, 401, "{h:?}");
    }
    // Optional routes reach the app, which must see none of them.
    for path in ["/open", "/geo"] {
        let r = Raw::get(gw.addr, UNTRUSTED, path, SPOOFS).await;
        assert_eq!(r.status, 200);
        let j = r.json();
        let identity: Vec<_> = j["identity"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p[0] != "sec-proxy")
            .collect();
        assert!(identity.is_empty(), "{path}: {identity:?}");
    }
    let m = gw.metrics().await;
    let line = m
        .lines()
        .find(|l| l.starts_with("vestibule_spoofed_identity_headers_stripped_total"))
        .unwrap();
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= (SPOOFS.len() * 3) as f64, "{line}");
    assert!(
        gw.stderr().contains("untrusted peer"),
        "no warning logged: {}",
        gw.stderr()
    );
}

#[tokio::test]
async fn trusted_peer_cannot_smuggle_other_dialects_headers() {
    // The front speaks Authelia; a client's X-WEBAUTH-USER that the front
    // forgot to strip must not reach a Grafana-profile app.
    let up = start_whoami().await;
    let gw = Gateway::start(&config(
        &authelia(),
        &route("g", "/", up, "profile = \"grafana\""),
    ))
    .await;
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/",
        &[
            ("Remote-User", "bob"),
            ("X_WEBAUTH_USER", "admin"),
            ("x-webauth-user", "admin"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.seen_headers()["x-webauth-user"], ["bob"]);
}

#[tokio::test]
async fn ambiguous_identity_from_a_trusted_peer_is_400() {
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&authelia(), &route("app", "/", up, ""))).await;
    for headers in [
        vec![("Remote-User", "alice"), ("Remote-User", "admin")],
        vec![("Remote-User", "alice"), ("Remote_User", "admin")],
        vec![("remote-user", "alice"), ("REMOTE_USER", "alice")],
        vec![
            ("Remote-User", "alice"),
            ("Remote-Groups", "users"),
            ("Remote_Groups", "admins"),
        ],
    ] {
        let r = Raw::get(gw.addr, TRUSTED, "/", &headers).await;
        assert_eq!(r.status, 400, "{headers:?}");
        assert!(r.text().contains("remote-"), "{}", r.text());
    }
}

#[tokio::test]
async fn bad_identity_values_are_400_and_logged_by_header() {
    let up = start_whoami().await;
    let gw = Gateway::start(&config(&authelia(), &route("app", "/", up, ""))).await;
    let long = "a".repeat(2000);
    for (name, value) in [
        ("Remote-User", long.as_str()),
        ("Remote-Name", "bad\u{1}name"),
        ("Remote-Groups", "a|b,c"),
    ] {
        let r = Raw::get(
            gw.addr,
            TRUSTED,
            "/",
            &[("Remote-User", "alice"), (name, value)],
        )
        .await;
        assert_eq!(r.status, 400, "{name}");
    }
    // Invalid UTF-8 bytes, raw.
    let mut req =
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRemote-User: \xff\xfe\r\n\r\n".to_vec();
    let r = Raw::send(gw.addr, TRUSTED, &req).await;
    assert_eq!(r.status, 400);
    // CR inside a value is not even valid HTTP: hyper refuses it.
    req = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nRemote-User: a\rb\r\n\r\n".to_vec();
    let r = Raw::send(gw.addr, TRUSTED, &req).await;
    assert_eq!(r.status, 400);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(gw.stderr().contains("remote-user"), "{}", gw.stderr());
}

#[tokio::test]
async fn policy_and_auth_modes() {
    let up = start_whoami().await;
    let routes = [
        route("admins", "/admins", up, "allow_groups = [\"admins\"]"),
        route("carol", "/carol", up, "allow_users = [\"carol\"]"),
        route("public", "/public", up, "auth = \"public\""),
        route(
            "app",
            "/",
            up,
            "login_url = \"https://sso.example.com/login?rd={url}\"",
        ),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    let alice = [("Remote-User", "alice"), ("Remote-Groups", "admins")];
    let bob = [("Remote-User", "bob"), ("Remote-Groups", "users")];
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &alice).await.status,
        200
    );
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/admins/x", &bob).await.status,
        403
    );
    assert_eq!(Raw::get(gw.addr, TRUSTED, "/carol", &bob).await.status, 403);
    assert_eq!(
        Raw::get(gw.addr, TRUSTED, "/carol", &[("Remote-User", "carol")])
            .await
            .status,
        200
    );
    // Public: identity emptied even for a trusted, signed-in user.
    let r = Raw::get(gw.addr, TRUSTED, "/public", &alice).await;
    assert_eq!(r.status, 200);
    assert!(r.json()["identity"].as_array().unwrap().is_empty());
    // Required, anonymous: 401 for APIs, a login redirect for browsers.
    let r = Raw::get(gw.addr, TRUSTED, "/deep/page?q=1", &[]).await;
    assert_eq!(r.status, 401);
    let r = Raw::get(
        gw.addr,
        TRUSTED,
        "/deep/page?q=1",
        &[("Accept", "text/html,*/*")],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://sso.example.com/login?rd=http%3A%2F%2Fapp.test%2Fdeep%2Fpage%3Fq%3D1")
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn paths_cannot_reach_a_protected_route_as_public() {
    let up = start_whoami().await;
    let routes = [
        route("public", "/public", up, "auth = \"public\""),
        route("app", "/", up, ""),
    ]
    .concat();
    let gw = Gateway::start(&config(&authelia(), &routes)).await;
    for (path, want) in [
        ("/public/x", 200),
        ("/public/../admin", 401),
        ("/public/%2e%2e/admin", 401),
        ("/public/%2E%2E/admin", 401),
        ("/admin%2F..%2Fpublic", 400),
        ("/public/..;/admin", 400),
        ("/public//../admin", 400),
        // Both readings land on the catch-all: protected, not ambiguous.
        ("/public%2F..%2Fadmin", 401),
        ("/%70ublic/x", 200),
    ] {
        let r = Raw::get(gw.addr, UNTRUSTED, path, &[]).await;
        assert_eq!(r.status, want, "{path}: {}", r.text());
    }
}
