//! A JWK Set fetched over HTTP from a live server on loopback: cached,
//! refetched on an unknown `kid` (rate-limited), rotation, fail closed.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use common::{AUDIENCE, ISSUER, alice, now};
use vestibule_jose::testing::{TestSigner, assertion};
use vestibule_verify::{Error, Policy, Verifier};

/// A JWKS endpoint whose document the test changes, counting GETs.
#[derive(Clone, Default)]
struct KeyServer {
    document: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
}

impl KeyServer {
    async fn start(signers: &[&TestSigner]) -> (Self, SocketAddr) {
        let server = Self::default();
        server.publish(signers);
        let app = axum::Router::new()
            .route(
                "/.vestibule/jwks.json",
                get(|State(s): State<KeyServer>| async move {
                    s.fetches.fetch_add(1, Ordering::SeqCst);
                    s.document.lock().unwrap().clone()
                }),
            )
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, addr)
    }

    fn publish(&self, signers: &[&TestSigner]) {
        *self.document.lock().unwrap() = TestSigner::jwks_json(signers);
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn verifier(addr: SocketAddr) -> Verifier {
    Verifier::fetch(
        &format!("http://{addr}/.vestibule/jwks.json"),
        Policy::new(ISSUER, AUDIENCE),
    )
    .unwrap()
}

#[tokio::test]
async fn rotation_old_tokens_verify_until_they_expire_new_kids_are_fetched_once() {
    let old = TestSigner::es256("old");
    let (server, addr) = KeyServer::start(&[&old]).await;
    let verifier = verifier(addr).with_min_refetch(Duration::from_millis(1500));

    // First use fetches; the next uses hit the cache.
    let before = assertion(&old, &alice(now()));
    assert_eq!(verifier.verify(&before).await.unwrap().username, "alice");
    assert_eq!(verifier.verify(&before).await.unwrap().username, "alice");
    assert_eq!(server.fetches(), 1);

    // The gateway rotates: the new key is published (newest first) and
    // signs; the old one stays published until its tokens expire.
    let new = TestSigner::es256("new");
    server.publish(&[&new, &old]);
    // The rate limit (here 1.5 s since the first fetch) holds back the
    // refetch an unknown kid would cause ...
    let after = assertion(&new, &alice(now()));
    assert_eq!(verifier.verify(&after).await, Err(Error::UnknownKey));
    assert_eq!(server.fetches(), 1);
    // ... and lets it through once the interval has passed.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(verifier.verify(&after).await.is_ok());
    assert_eq!(server.fetches(), 2);
    // The old key's token still verifies, from the same fetch; once
    // expired it does not.
    assert!(verifier.verify(&before).await.is_ok());
    assert_eq!(server.fetches(), 2);
    let expired = assertion(&old, &alice(now() - 600));
    assert_eq!(verifier.verify(&expired).await, Err(Error::Expired));
}

#[tokio::test]
async fn an_unknown_kid_refetches_at_most_once_per_ten_seconds() {
    let old = TestSigner::es256("old");
    let (server, addr) = KeyServer::start(&[&old]).await;
    let verifier = verifier(addr);
    // Cold cache: the first token is a key id nobody publishes.
    let stranger = TestSigner::es256("invented");
    let token = assertion(&stranger, &alice(now()));
    assert_eq!(verifier.verify(&token).await, Err(Error::UnknownKey));
    assert_eq!(server.fetches(), 1);
    // A flood of invented kids fetches nothing more.
    for i in 0..20 {
        let t = assertion(&stranger.with_kid(&format!("k{i}")), &alice(now()));
        assert_eq!(verifier.verify(&t).await, Err(Error::UnknownKey));
    }
    assert_eq!(server.fetches(), 1);
    // The known key still verifies from the cache meanwhile.
    assert!(
        verifier
            .verify(&assertion(&old, &alice(now())))
            .await
            .is_ok()
    );
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn an_unreachable_or_broken_key_set_fails_closed() {
    let signer = TestSigner::es256("k1");
    let token = assertion(&signer, &alice(now()));
    // Nothing listens.
    let closed = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    assert_eq!(
        verifier(closed).verify(&token).await,
        Err(Error::KeysUnavailable)
    );
    // Something answers, but not a JWK Set.
    let (server, addr) = KeyServer::start(&[&signer]).await;
    *server.document.lock().unwrap() = "<html>maintenance</html>".into();
    assert!(matches!(
        verifier(addr).verify(&token).await,
        Err(Error::InvalidKeySet(_))
    ));
    // A 404.
    let wrong_path = Verifier::fetch(
        &format!("http://{addr}/nothing-here"),
        Policy::new(ISSUER, AUDIENCE),
    )
    .unwrap();
    assert_eq!(wrong_path.verify(&token).await, Err(Error::KeysUnavailable));
    // Not an http(s) URL at all.
    for url in [
        "file:///etc/jwks.json",
        "/.vestibule/jwks.json",
        "not a url",
    ] {
        assert_eq!(
            Verifier::fetch(url, Policy::new(ISSUER, AUDIENCE)).unwrap_err(),
            Error::KeysUnavailable,
            "{url}"
        );
    }
}
