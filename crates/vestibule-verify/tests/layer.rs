//! The tower layer, driving the example app's router in-process: 401 with
//! a short, uninformative body unless exactly one valid assertion came.

mod common;
#[path = "../examples/support/whoami_app.rs"]
mod whoami_app;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use common::{AUDIENCE, ISSUER, alice, now};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vestibule_jose::testing::{TestSigner, assertion, forged_assertions};
use vestibule_verify::{AssertionLayer, Identity, Jwks, Policy, Verifier};

fn verifier(signers: &[&TestSigner]) -> Verifier {
    let keys = Jwks::parse(TestSigner::jwks_json(signers).as_bytes()).unwrap();
    Verifier::pinned(keys, Policy::new(ISSUER, AUDIENCE))
}

async fn call(app: &Router, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = http::Request::get("/hello");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn the_example_app_greets_a_verified_user_and_refuses_everyone_else() {
    let signer = TestSigner::es256("k1");
    let other = TestSigner::es256("k2");
    let app = whoami_app::app(verifier(&[&signer, &other]));
    let token = assertion(&signer, &alice(now()));

    let (status, body) = call(&app, &[("X-Vestibule-Assertion", &token)]).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["greeting"], "Hello, Alice A!");
    assert_eq!(json["username"], "alice");
    assert_eq!(json["groups"], serde_json::json!(["admins", "users"]));
    assert_eq!(json["auth_method"], "header");

    // No assertion, two of them (even if both are valid), garbage, and
    // every forgery: the same 401, the same body.
    let mut refused = vec![
        vec![],
        vec![
            ("x-vestibule-assertion", token.as_str()),
            ("X-Vestibule-Assertion", token.as_str()),
        ],
        vec![("x-vestibule-assertion", "garbage")],
    ];
    let forged = forged_assertions(&signer, &other, &alice(now()));
    refused.extend(
        forged
            .iter()
            .map(|(_, t)| vec![("x-vestibule-assertion", t.as_str())]),
    );
    for headers in refused {
        assert_eq!(
            call(&app, &headers).await,
            (401, "invalid assertion\n".to_owned()),
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn the_header_is_configurable_and_the_identity_is_an_extension() {
    let signer = TestSigner::ed25519("k1");
    let layer = AssertionLayer::new(verifier(&[&signer]))
        .with_header(http::HeaderName::from_static("x-app-identity"));
    let app = Router::new()
        .route(
            "/hello",
            get(|Extension(who): Extension<Identity>| async move { who.subject }),
        )
        .layer(layer);
    let token = assertion(&signer, &alice(now()));
    assert_eq!(
        call(&app, &[("X-App-Identity", &token)]).await,
        (200, "a-1".into())
    );
    // The default header no longer counts.
    assert_eq!(
        call(&app, &[("X-Vestibule-Assertion", &token)]).await.0,
        401
    );
}
