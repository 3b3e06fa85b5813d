//! Linking without takeover (issue 15): `[source.oidc]` beside
//! `[source.headers]`, against a REAL upstream provider (a second
//! `vestibule serve` running its OpenID provider, as in `oidc_login.rs`).
//! The same person, `alice`, with the same username and email at the
//! front and at the provider: never attached to one account unless she
//! links them herself, while signed in.

use std::net::SocketAddr;
use std::sync::Arc;

use vestibule_store::{AccountStatus, AuditFilter, IdentityKey, Store, StoreConfig};

use crate::oidc_login::{
    ALICE, Down, HTML, Pair, SECRET_VAR, at, at_provider, client_block, get, location, secret_line,
    session, set_cookie, start_pair,
};
use crate::support::*;

const BOB: [(&str, &str); 3] = [
    ("Remote-User", "bob"),
    ("Remote-Groups", "users"),
    ("Remote-Email", "bob@example.test"),
];

/// The upstream provider, and a downstream gateway with `[source.headers]`
/// (`auto`) and `[source.oidc]` under `oidc_provisioning`.
async fn pair(oidc_provisioning: &str) -> Pair {
    start_pair(
        |d| client_block("gate", &secret_line(), &[d]),
        |_| Down {
            before: "[source.headers]\ndialect = \"authelia\"\ntrusted_proxies = [\"127.0.0.1\"]\n\
                     provisioning = \"auto\"\n"
                .to_owned(),
            oidc: format!(
                "client_secret_env = \"{SECRET_VAR}\"\nprovisioning = \"{oidc_provisioning}\""
            ),
            ..Down::default()
        },
        &[],
    )
    .await
}

async fn down_store(p: &Pair) -> Arc<dyn Store> {
    let db = p.down._dir.path().join("data").join("vestibule.db");
    vestibule_store::open(&StoreConfig::new(format!("sqlite://{}", db.display())))
        .await
        .unwrap()
}

/// A form POST from the trusted front.
async fn post(addr: SocketAddr, target: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let mut r = format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    Raw::send(addr, TRUSTED, r.as_bytes()).await
}

/// The form's CSRF token on a page.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

/// Someone signed in through the front: their session cookie and CSRF
/// token, from the account page.
async fn front_sign_in(p: &Pair, who: &[(&str, &str)]) -> (String, String) {
    let mut h = who.to_vec();
    h.push(HTML);
    let r = at(p.down.addr, TRUSTED, "/.vestibule/account", &h).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cookie = set_cookie(&r, "vestibule").expect("a session cookie");
    (cookie, csrf(&r.text()))
}

/// The front's headers with the session cookie.
fn with_cookie<'a>(who: &[(&'a str, &'a str)], cookie: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut h = who.to_vec();
    h.push(HTML);
    h.push(("Cookie", cookie));
    h
}

/// Alice (signed in through the front) asks to link: the provider's
/// authorization URL and the login cookie.
async fn start_link(p: &Pair, cookie: &str, token: &str) -> (String, String) {
    let c = session(cookie);
    let r = post(
        p.down.addr,
        "/.vestibule/account/link",
        &with_cookie(&ALICE, &c),
        &format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    let login = set_cookie(&r, "vestibule_oidc").expect("the login cookie");
    let authorize = location(&r);
    assert!(
        authorize.starts_with(&format!("{}/", p.issuer)),
        "{authorize}"
    );
    (authorize, login)
}

/// The callback with the login cookie, the front's headers and `cookie`
/// (a session cookie, or none).
async fn callback(cb: &str, login: &str, who: &[(&str, &str)], cookie: Option<&str>) -> Raw {
    let c = match cookie {
        Some(s) => format!("vestibule_oidc={login}; {}", session(s)),
        None => format!("vestibule_oidc={login}"),
    };
    let mut h = who.to_vec();
    h.push(HTML);
    h.push(("Cookie", &c));
    get(cb, &h).await
}

/// A sign-in through the OIDC login alone (no front headers): the
/// callback's answer.
async fn oidc_sign_in(p: &Pair) -> Raw {
    let url = format!("http://{}/.vestibule/oidc/login", p.down.addr);
    let r = get(&url, &[HTML]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let login = set_cookie(&r, "vestibule_oidc").unwrap();
    let cb = at_provider(&location(&r)).await;
    callback(&cb, &login, &[], None).await
}

async fn account_of(store: &Arc<dyn Store>, source: &str, subject: &str) -> Option<i64> {
    store
        .account_by_identity(&IdentityKey::new(source, subject))
        .await
        .unwrap()
        .map(|a| a.id)
}

/// The account(s) the provider's identities belong to (there is one
/// provider user, alice).
async fn provider_identities(store: &Arc<dyn Store>, issuer: &str) -> Vec<(i64, IdentityKey)> {
    let mut out = Vec::new();
    for a in store.accounts(None, 100).await.unwrap() {
        for k in store.identities(a.id).await.unwrap() {
            if k.source == issuer {
                out.push((a.id, k));
            }
        }
    }
    out
}

async fn audit(store: &Arc<dyn Store>, action: &str) -> Vec<(String, String)> {
    store
        .audit(&AuditFilter {
            since: None,
            action: Some(action.into()),
            subject: None,
            limit: 100,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.outcome.clone(), e.subject.clone()))
        .collect()
}

/// (a) Same username and email at the front and at the provider: with
/// `provisioning = "auto"` the provider's first sign-in gets a NEW
/// account, the front's account keeps its one identity.
#[tokio::test]
async fn same_email_from_the_provider_is_a_new_account_under_auto() {
    let p = pair("auto").await;
    let (_cookie, _) = front_sign_in(&p, &ALICE).await;
    let store = down_store(&p).await;
    let front = account_of(&store, "authelia", "alice").await.unwrap();

    let r = oidc_sign_in(&p).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let linked = provider_identities(&store, &p.issuer).await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_ne!(linked[0].0, front, "attached to the front's account");
    let new = store.account(linked[0].0).await.unwrap().unwrap();
    assert_eq!(new.status, AccountStatus::Active);
    assert_eq!(new.email.as_deref(), Some("alice@example.test"));
    assert_eq!(
        store.identities(front).await.unwrap(),
        vec![IdentityKey::new("authelia", "alice")]
    );
    // Its session is the new account's, read without any front header.
    let cookie = set_cookie(&r, "vestibule").unwrap();
    let r = at(
        p.down.addr,
        UNTRUSTED,
        "/.vestibule/account",
        &[HTML, ("Cookie", &session(&cookie))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let sessions = store.sessions_of(Some(linked[0].0)).await.unwrap();
    assert_eq!(sessions.len(), 1);
}

/// (a) With `provisioning = "approval"`: a pending account, not linked.
#[tokio::test]
async fn same_email_from_the_provider_waits_for_approval_and_is_not_linked() {
    let p = pair("approval").await;
    front_sign_in(&p, &ALICE).await;
    let store = down_store(&p).await;
    let front = account_of(&store, "authelia", "alice").await.unwrap();

    let r = oidc_sign_in(&p).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("approval"), "{}", r.text());
    assert!(set_cookie(&r, "vestibule").is_none_or(|c| c.is_empty()));
    let linked = provider_identities(&store, &p.issuer).await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_ne!(linked[0].0, front);
    let pending = store.account(linked[0].0).await.unwrap().unwrap();
    assert_eq!(pending.status, AccountStatus::Pending);
    assert_eq!(store.identities(front).await.unwrap().len(), 1);
}

/// (b) Alice links the provider while signed in through the front; the
/// provider's sign-in then reaches her account; (e) she unlinks it, which
/// ends that sign-in's session; the last identity cannot be unlinked.
#[tokio::test]
async fn link_while_signed_in_then_the_provider_reaches_the_same_account_then_unlink() {
    let p = pair("approval").await;
    let d = p.down.addr;
    let (cookie, token) = front_sign_in(&p, &ALICE).await;
    let store = down_store(&p).await;
    let front = account_of(&store, "authelia", "alice").await.unwrap();
    // The account page offers the link.
    let c = session(&cookie);
    let r = at(d, TRUSTED, "/.vestibule/account", &with_cookie(&ALICE, &c)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("/.vestibule/account/link"),
        "{}",
        r.text()
    );

    let (authorize, login) = start_link(&p, &cookie, &token).await;
    let cb = at_provider(&authorize).await;
    let r = callback(&cb, &login, &ALICE, Some(&cookie)).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(location(&r), format!("http://{d}/.vestibule/account"));
    let linked = provider_identities(&store, &p.issuer).await;
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert_eq!(linked[0].0, front, "linked to alice's account");
    assert_eq!(
        audit(&store, "identity-link").await,
        vec![(
            "ok".to_owned(),
            format!("{}:{}", p.issuer, linked[0].1.subject)
        )]
    );
    // The page lists both sign-ins, and no longer offers the link.
    let r = at(d, TRUSTED, "/.vestibule/account", &with_cookie(&ALICE, &c)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains(&p.issuer), "{}", r.text());
    assert!(!r.text().contains("/.vestibule/account/link"));

    // The provider's sign-in (no front headers, approval policy) reaches
    // alice's account at once: no new account, nothing pending.
    let r = oidc_sign_in(&p).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let oidc_cookie = set_cookie(&r, "vestibule").unwrap();
    let r = at(
        d,
        UNTRUSTED,
        "/.vestibule/account",
        &[HTML, ("Cookie", &session(&oidc_cookie))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(store.accounts(None, 100).await.unwrap().len(), 1);
    let oidc_session = store
        .session(&vestibule_core::secret::hash_token(&oidc_cookie))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(oidc_session.account_id, front);
    assert_eq!(oidc_session.source, p.issuer);

    // (e) Unlink, from the front's session: the provider's session ends.
    let r = at(d, TRUSTED, "/.vestibule/account", &with_cookie(&ALICE, &c)).await;
    let token = csrf(&r.text());
    let sub = percent_encoding::utf8_percent_encode(
        &linked[0].1.subject,
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let src = percent_encoding::utf8_percent_encode(&p.issuer, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    // Without the CSRF token: refused, nothing unlinked.
    let r = post(
        d,
        "/.vestibule/account/identities/unlink",
        &with_cookie(&ALICE, &c),
        &format!("csrf=&source={src}&subject={sub}"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(store.identities(front).await.unwrap().len(), 2);
    let r = post(
        d,
        "/.vestibule/account/identities/unlink",
        &with_cookie(&ALICE, &c),
        &format!("csrf={token}&source={src}&subject={sub}"),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        store.identities(front).await.unwrap(),
        vec![IdentityKey::new("authelia", "alice")]
    );
    assert!(
        store
            .session(&oidc_session.id_hash)
            .await
            .unwrap()
            .is_none(),
        "the provider's session ended with its identity"
    );
    let r = at(
        d,
        UNTRUSTED,
        "/.vestibule/account",
        &[HTML, ("Cookie", &session(&oidc_cookie))],
    )
    .await;
    assert_ne!(r.status, 200, "{}", r.text());
    assert_eq!(audit(&store, "identity-unlink").await.len(), 1);
    // The last one stays.
    let r = post(
        d,
        "/.vestibule/account/identities/unlink",
        &with_cookie(&ALICE, &c),
        &format!("csrf={token}&source=authelia&subject=alice"),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(store.identities(front).await.unwrap().len(), 1);
}

/// (c) The link callback links nothing without the session that asked,
/// with another signed-in account's session, or when the provider's
/// identity already belongs to another account; (d) without the CSRF
/// token the link does not even start.
#[tokio::test]
async fn link_refused_without_the_session_with_another_account_or_another_owner() {
    let p = pair("auto").await;
    let d = p.down.addr;
    let store = down_store(&p).await;
    let (cookie, token) = front_sign_in(&p, &ALICE).await;
    let alice = account_of(&store, "authelia", "alice").await.unwrap();

    // (d) No CSRF token (the form is refused: 422), or a wrong one
    // (403): no login started.
    let c = session(&cookie);
    for (body, status) in [("", 422), ("csrf=", 403), ("csrf=AAAA", 403)] {
        let r = post(
            d,
            "/.vestibule/account/link",
            &with_cookie(&ALICE, &c),
            body,
        )
        .await;
        assert_eq!(r.status, status, "{}", r.text());
        assert!(set_cookie(&r, "vestibule_oidc").is_none());
    }

    // Without the session that asked (another browser, or signed out).
    let (authorize, login) = start_link(&p, &cookie, &token).await;
    let cb = at_provider(&authorize).await;
    let r = callback(&cb, &login, &ALICE, None).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(provider_identities(&store, &p.issuer).await.is_empty());

    // Bob signed in in this browser since: his session is not the one
    // that asked.
    let (authorize, login) = start_link(&p, &cookie, &token).await;
    let (bob_cookie, _) = front_sign_in(&p, &BOB).await;
    let cb = at_provider(&authorize).await;
    let r = callback(&cb, &login, &BOB, Some(&bob_cookie)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(provider_identities(&store, &p.issuer).await.is_empty());

    // The session that asked, ended since (signed out): refused too.
    let (authorize, login) = start_link(&p, &cookie, &token).await;
    let alice_session = vestibule_core::secret::hash_token(&cookie);
    assert!(store.revoke_session(&alice_session).await.unwrap());
    let cb = at_provider(&authorize).await;
    let r = callback(&cb, &login, &ALICE, Some(&cookie)).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(provider_identities(&store, &p.issuer).await.is_empty());

    // The provider's alice signs in alone first: her own new account.
    let r = oidc_sign_in(&p).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let owned = provider_identities(&store, &p.issuer).await;
    assert_eq!(owned.len(), 1);
    assert_ne!(owned[0].0, alice);
    // Then the front's alice tries to link it: refused, nothing moves.
    let (cookie, token) = front_sign_in(&p, &ALICE).await;
    let (authorize, login) = start_link(&p, &cookie, &token).await;
    let cb = at_provider(&authorize).await;
    let r = callback(&cb, &login, &ALICE, Some(&cookie)).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("another account"), "{}", r.text());
    assert_eq!(provider_identities(&store, &p.issuer).await, owned);
    assert_eq!(store.identities(alice).await.unwrap().len(), 1);
    let refused = audit(&store, "identity-link").await;
    assert_eq!(refused.len(), 4, "{refused:?}");
    assert!(refused.iter().all(|(o, _)| o == "refused"), "{refused:?}");
}
