//! The claim mappings of the fronts vestibule knows.

use super::ClaimMapping;

impl ClaimMapping {
    /// Preset names, for configuration.
    pub const PRESETS: [&'static str; 4] = ["pomerium", "cloudflare", "authentik", "oidc"];

    /// Pomerium's `X-Pomerium-Jwt-Assertion`: `sub` (the user id; `user`
    /// repeats it), `email`, `name`, `groups` (group ids and names). It has
    /// no login-name claim unless the operator adds `preferred_username`
    /// through `jwt_claims_headers`, so the username is that, else the
    /// email.
    pub fn pomerium() -> Self {
        // The same claim names as authentik's.
        Self::authentik()
    }

    /// Cloudflare Access's `Cf-Access-Jwt-Assertion`: `sub` (the user's
    /// uuid) and `email`; groups are not in the token (they come from the
    /// separate get-identity endpoint). The username is the email.
    pub fn cloudflare() -> Self {
        Self::of(&[], Some("email"), None, None, None, None)
    }

    /// authentik's `X-authentik-jwt` (the proxy provider's ID token): `sub`,
    /// `preferred_username`, `email`, `name`, `groups`. Its `given_name`
    /// is the full name again, so it is not mapped.
    pub fn authentik() -> Self {
        Self::of(
            &["preferred_username"],
            Some("email"),
            Some("name"),
            None,
            None,
            Some("groups"),
        )
    }

    /// OpenID Connect standard claims (OIDC Core §5.1) plus the common
    /// `groups`: `sub`, `preferred_username`, `email`, `name`,
    /// `given_name`, `family_name`, `groups`.
    pub fn oidc() -> Self {
        Self::of(
            &["preferred_username"],
            Some("email"),
            Some("name"),
            Some("given_name"),
            Some("family_name"),
            Some("groups"),
        )
    }

    /// A preset by its configuration name (see [`ClaimMapping::PRESETS`]).
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "pomerium" => Some(Self::pomerium()),
            "cloudflare" => Some(Self::cloudflare()),
            "authentik" => Some(Self::authentik()),
            "oidc" => Some(Self::oidc()),
            _ => None,
        }
    }
}
