//! Step 4: which route, and may this identity use it.

use vestibule_core::identity::Identity;
use vestibule_core::policy::Decision;
use vestibule_core::route::MatchError;

use crate::state::Routes;

/// Finds the route for a host and raw path (no query), in one snapshot of
/// the routes ([`crate::state::AppState::routes`]).
pub fn find_route(
    routes: &Routes,
    host: Option<&str>,
    path: &str,
) -> Result<Option<usize>, MatchError> {
    routes.table.find(host, path)
}

/// Applies a route's policy; `route` indexes the same snapshot.
pub fn authorize(routes: &Routes, route: usize, identity: Option<&Identity>) -> Decision {
    routes.list[route].policy.evaluate(identity)
}
