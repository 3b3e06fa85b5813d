//! Step 4: which route, and may this identity use it.

use vestibule_core::identity::Identity;
use vestibule_core::policy::Decision;
use vestibule_core::route::MatchError;

use crate::state::AppState;

/// Finds the route for a host and raw path (no query).
pub fn find_route(
    state: &AppState,
    host: Option<&str>,
    path: &str,
) -> Result<Option<usize>, MatchError> {
    state.settings.route_table.find(host, path)
}

/// Applies a route's policy.
pub fn authorize(state: &AppState, route: usize, identity: Option<&Identity>) -> Decision {
    state.settings.routes[route].policy.evaluate(identity)
}
