//! A reload swaps the routes under running requests: a decision keeps the
//! snapshot it was made on, down to the response, and the next request is
//! decided on the new routes.

use http::{HeaderMap, HeaderValue};
use vestibule::http::decide::decide;
use vestibule::http::refusal::Refusal;
use vestibule::identity::client_identity::ConnInfo;
use vestibule::state::Routes;
use vestibule::urls::RequestView;
use vestibule_core::net::Peer;

use super::*;

fn alice() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("remote-user", HeaderValue::from_static("alice"));
    h.insert("host", HeaderValue::from_static("app.test"));
    h
}

fn view(headers: &HeaderMap) -> RequestView<'_> {
    RequestView {
        host: Some("app.test"),
        path: "/admins/x",
        path_and_query: "/admins/x",
        headers,
    }
}

const CONN: ConnInfo = ConnInfo::plain(Peer::Tcp(TRUSTED));

#[tokio::test]
async fn a_decision_keeps_its_routes_and_the_next_gets_the_new_ones() {
    let open = config("", "", &route("app", "/", NO_UPSTREAM, ""));
    let state = state(&open).await;
    let headers = alice();
    let pass = decide(&state, CONN, view(&headers))
        .await
        .expect("alice may use the one route");

    // A reload puts an admins-only route under /admins/ meanwhile.
    let strict = config(
        "",
        "",
        &(route("app", "/", NO_UPSTREAM, "")
            + &route(
                "admins",
                "/admins/",
                NO_UPSTREAM,
                "allow_groups = [\"admins\"]",
            )),
    );
    let file = vestibule::config::parse_with_env(&strict, std::iter::empty()).unwrap();
    let settings = vestibule::config::validate(&file).0.unwrap();
    state.replace_routes(Routes::new(&settings, &state.metrics));

    // The request under way finishes on the routes it was decided on.
    assert_eq!(pass.routes.list.len(), 1);
    assert_eq!(pass.routes.list[pass.route].name, "app");

    // The next one is decided, and refused, on the new routes.
    let refused = decide(&state, CONN, view(&headers))
        .await
        .expect_err("alice is not an admin");
    assert!(
        matches!(refused.refusal, Refusal::Forbidden { .. }),
        "{:?}",
        refused.refusal
    );
    let route = refused.refusal.route().unwrap();
    assert_eq!(refused.routes.list[route].name, "admins");
    assert_eq!(state.routes().list.len(), 2);
}
