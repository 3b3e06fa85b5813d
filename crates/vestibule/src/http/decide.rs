//! The one decision pipeline: client identity, then authentication, then
//! authorization. In-path proxying calls it with the request itself;
//! forward-auth calls it with the original request described by the front.
//! There is no second code path for the decision.

use vestibule_core::identity::Identity;
use vestibule_core::policy::Decision;

use vestibule_core::credential::{
    Carrier, CarrierError, CredentialKind, Presented, find_credential,
};

use vestibule_core::access_token::{
    OneCredential, PresentedAccess, find_access_token, one_credential,
};

use crate::accounts::Resolution;
use crate::devices::Verdict;
use crate::http::refusal::Refusal;
use crate::identity::authenticate::{Authenticated, SourceError, authenticate_shared};
use crate::identity::cache::Entry;
use crate::identity::client_identity::{self, ClientContext, ConnInfo};
use crate::policy::authorize::{authorize, find_route};
use crate::provider::gate::Verdict as GateVerdict;
use std::sync::Arc;

use crate::state::{AppState, Routes};
use crate::urls::RequestView;

/// A request that may pass.
#[derive(Debug, Clone)]
pub struct Pass {
    /// Index into `routes`.
    pub route: usize,
    /// The snapshot of the routes the decision was made on; the response
    /// uses the same one.
    pub routes: Arc<Routes>,
    /// The identity to inject (`None` for anonymous or public), shared
    /// with the identity cache when it comes from there unchanged.
    pub identity: Option<Arc<Identity>>,
    /// The identity cache's entry `identity` is, with the renderings of
    /// the route profiles: see [`Pass::render_each`].
    pub cached: Option<Arc<Entry>>,
    /// Trust facts.
    pub ctx: ClientContext,
    /// Where the request carried a device credential, which must not reach
    /// the app.
    pub credential: Option<Carrier>,
    /// The device whose credential the identity comes from (not the SSO
    /// front's).
    pub device_id: Option<i64>,
    /// The client whose access token the identity comes from
    /// (`[route.access_tokens]`): the assertion's `auth_method` is then
    /// `oauth`.
    pub oauth_client: Option<String>,
}

impl Pass {
    /// Hands every header of the route's profile, rendered for the
    /// identity (empty values without one), to `emit`: from the identity
    /// cache's memo when the identity is the cached one itself (a hit
    /// clones reference counts), else rendered afresh. Either way what
    /// `profile.render_each(identity)` gives.
    pub fn render_each(&self, emit: impl FnMut(&http::HeaderName, http::HeaderValue)) {
        let profile = &self.routes.list[self.route].profile;
        match (&self.cached, &self.identity) {
            (Some(e), Some(id)) if Arc::ptr_eq(&e.identity, id) => e.render_each(profile, emit),
            _ => profile.render_each(self.identity.as_deref(), emit),
        }
    }
}

/// A refused request, with what answering and logging it needs.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub refusal: Refusal,
    /// Trust facts.
    pub ctx: ClientContext,
    /// The snapshot of the routes the refusal's route index points into.
    pub routes: Arc<Routes>,
}

/// Decides whether a request may pass, and as whom.
pub async fn decide(
    state: &AppState,
    conn: ConnInfo,
    req: RequestView<'_>,
) -> Result<Pass, Refused> {
    let ctx = client_identity::resolve(&state.settings, conn, req.headers);
    // One snapshot for the whole request: a reload may swap the routes
    // meanwhile, and an index must never meet another table.
    let routes = state.routes();
    let refuse = |refusal: Refusal| Refused {
        refusal,
        ctx,
        routes: routes.clone(),
    };

    // vestibule's own prefix is never an app's: its endpoints are routed
    // before this pipeline, so a request that gets here under any reading
    // or letter case of the prefix (`/%2evestibule/`, `/x/../.VESTIBULE/`)
    // is one an app could serve as vestibule's page. Refused, not
    // forwarded.
    match vestibule_core::path::reaches_reserved_prefix(req.path, crate::app::OWN_PREFIX) {
        Ok(false) => {}
        Ok(true) => {
            return Err(refuse(Refusal::BadRequest {
                public: format!(
                    "This path is a spelling of vestibule's reserved `{}/` prefix, and not one of its pages.",
                    crate::app::OWN_PREFIX
                ),
                detail: format!("reserved prefix {} reached", crate::app::OWN_PREFIX),
            }));
        }
        Err(e) => {
            return Err(refuse(Refusal::BadRequest {
                public: "The request path is malformed or ambiguous.".into(),
                detail: e.to_string(),
            }));
        }
    }
    let route = match find_route(&routes, req.host, req.path) {
        Ok(Some(r)) => r,
        Ok(None) => return Err(refuse(Refusal::NoRoute)),
        Err(e) => {
            return Err(refuse(Refusal::BadRequest {
                public: "The request path is malformed or ambiguous.".into(),
                detail: e.to_string(),
            }));
        }
    };
    // A protocol switch other than WebSocket (h2c above all) would turn the
    // connection into a tunnel no later request of which is decided here.
    // 400, as for any framing vestibule cannot vouch for; in forward-auth
    // mode the front passes it on (nginx turns it into a 500).
    if let Err(e) = vestibule_core::upgrade::check_upgrade(req.headers) {
        return Err(refuse(Refusal::BadRequest {
            public: "This protocol upgrade is not allowed; only WebSocket is.".into(),
            detail: e.to_string(),
        }));
    }

    let identity = match authenticate_shared(state, &ctx, req.headers).await {
        Ok(id) => id,
        Err(SourceError::Headers(e)) => {
            return Err(refuse(Refusal::BadRequest {
                public: format!("The identity sent by the SSO proxy was refused: {e}."),
                detail: e.to_string(),
            }));
        }
        Err(SourceError::Assertion(e)) => {
            return Err(refuse(Refusal::BadAssertion {
                route,
                detail: e.to_string(),
            }));
        }
        Err(SourceError::KeysUnavailable) => {
            return Err(refuse(Refusal::Unavailable {
                route,
                detail: "assertion signing keys not loaded".into(),
            }));
        }
    };

    let mut cached = None;
    // Public routes forward nobody, so they need no account either.
    let public = routes.list[route].policy.auth == vestibule_core::policy::AuthMode::Public;
    let identity = match (identity, state.accounts(), &state.settings.identity_source) {
        (Some(id), Some(accounts), Some(source)) if !public => {
            let (provisioning, key_by_username) = source.policy_for(&id.identity().source);
            // A cached identity brings its account key along: the lookup
            // borrows it.
            let resolved = match id {
                Authenticated::Cached(e) => {
                    let key = e.account_key(key_by_username);
                    let r = accounts
                        .resolve_shared(e.identity.clone(), key, provisioning, ctx.client_ip)
                        .await;
                    cached = Some(e);
                    r
                }
                // Boxed, as the credential checks below: a path that
                // allocates anyway, whose future inline would grow this
                // one, moved on every request (issue 17).
                Authenticated::Fresh(id) => {
                    Box::pin(accounts.resolve(id, provisioning, key_by_username, ctx.client_ip))
                        .await
                }
            };
            match resolved {
                Ok(Resolution::Active { identity, .. }) => Some(identity),
                Ok(Resolution::Pending) => return Err(refuse(Refusal::AccountPending { route })),
                Ok(Resolution::Disabled) => return Err(refuse(Refusal::AccountDisabled { route })),
                Ok(Resolution::NoAccount) => return Err(refuse(Refusal::NoAccount { route })),
                Ok(Resolution::DirectoryConflict(detail)) => {
                    return Err(refuse(Refusal::DirectoryConflict { route, detail }));
                }
                Err(e) => {
                    return Err(refuse(Refusal::Unavailable {
                        route,
                        detail: e.to_string(),
                    }));
                }
            }
        }
        (id, _, _) => id.map(|a| match a {
            Authenticated::Cached(e) => {
                let identity = e.identity.clone();
                cached = Some(e);
                identity
            }
            Authenticated::Fresh(id) => Arc::new(id),
        }),
    };

    // A device credential, on routes that accept one. The SSO front's
    // identity wins when both are present; the credential is stripped
    // either way, so the secret never reaches the app.
    let certificate = if public {
        None
    } else {
        presented_certificate(state, &routes, route, conn, &ctx, &req).map_err(refuse)?
    };
    let mut oauth_client = None;
    let (identity, credential, device_id) = if public {
        (identity, None, None)
    } else if let Some(cert) = certificate.filter(|_| identity.is_none()) {
        // One credential per request: a certificate and a token at once
        // could name two devices.
        match presented_any(state, &routes, route, &req) {
            Ok(None) => {}
            Ok(Some(_)) | Err(_) => {
                return Err(refuse(Refusal::BadRequest {
                    public: "The request carries a client certificate and another device credential; send one.".into(),
                    detail: "client certificate and device credential together".into(),
                }));
            }
        }
        match Box::pin(verify_credential(state, &routes, route, &ctx, &cert)).await {
            Ok((id, device)) => (Some(Arc::new(id)), Some(cert.carrier), Some(device)),
            Err(r) => return Err(refuse(r)),
        }
    } else {
        match presented_any(state, &routes, route, &req) {
            Ok(None) => (identity, None, None),
            // A malformed value in a carrier that is ours is still ours to
            // strip when the front's identity carries the request.
            Err((carrier, _)) if identity.is_some() && carrier.is_some() => {
                (identity, carrier, None)
            }
            Err((_, r)) => return Err(refuse(r)),
            Ok(Some(c)) if identity.is_some() => (identity, Some(carrier_of(&c)), None),
            Ok(Some(OneCredential::Device(p))) => {
                match Box::pin(verify_credential(state, &routes, route, &ctx, &p)).await {
                    Ok((id, device)) => (Some(Arc::new(id)), Some(p.carrier), Some(device)),
                    Err(r) => return Err(refuse(r)),
                }
            }
            Ok(Some(OneCredential::Access(a))) => {
                match Box::pin(verify_access(state, &routes, route, &a)).await {
                    Ok((id, client)) => {
                        oauth_client = Some(client);
                        (Some(Arc::new(id)), Some(a.carrier), None)
                    }
                    Err(r) => return Err(refuse(r)),
                }
            }
        }
    };

    match authorize(&routes, route, identity.as_deref()) {
        Decision::Allow { forward_identity } => Ok(Pass {
            route,
            routes: routes.clone(),
            identity: if forward_identity { identity } else { None },
            cached,
            ctx,
            credential,
            device_id,
            oauth_client,
        }),
        Decision::Unauthenticated => Err(refuse(Refusal::Unauthenticated { route })),
        Decision::Forbidden => Err(refuse(Refusal::Forbidden {
            route,
            username: identity.map(|i| i.username.clone()).unwrap_or_default(),
        })),
    }
}

/// The client certificate a request comes with: from vestibule's own TLS
/// handshake, or, from a trusted peer only, in the configured forwarded
/// header (a malformed or repeated one is 400). Read only with
/// `[client_certs]` on; for anyone else the header is an identity header,
/// stripped unread.
fn presented_certificate(
    state: &AppState,
    routes: &Routes,
    route: usize,
    conn: ConnInfo,
    ctx: &ClientContext,
    req: &RequestView<'_>,
) -> Result<Option<Presented>, Refusal> {
    let Some(cc) = &state.settings.client_certs else {
        return Ok(None);
    };
    let fingerprint = match (conn.client_cert, &cc.forwarded) {
        (Some(fp), _) => Some(fp),
        (None, Some(source)) if ctx.trusted_for_identity => {
            vestibule_core::client_cert::read_forwarded_cert(req.headers, source).map_err(|e| {
                Refusal::BadRequest {
                    public: format!("The client certificate the proxy forwarded was refused: {e}."),
                    detail: format!("{e} (route {})", routes.list[route].name),
                }
            })?
        }
        _ => None,
    };
    Ok(fingerprint.map(|fp| Presented {
        carrier: Carrier::ClientCertificate,
        token: vestibule_core::secret::Secret::from_exposed(fp.to_hex()),
        basic_user: None,
    }))
}

/// The device credential a request carries, on routes that accept one.
/// An error names the carrier when it is known (a malformed value).
fn presented_credential(
    routes: &Routes,
    route: usize,
    req: &RequestView<'_>,
) -> Result<Option<Presented>, (Option<Carrier>, Refusal)> {
    let rs = &routes.list[route];
    if !rs.carriers.any() {
        return Ok(None);
    }
    let query = vestibule_core::path::target_query(req.path_and_query);
    match find_credential(req.headers, query, &rs.carriers) {
        Ok(p) => Ok(p),
        Err(CarrierError::Ambiguous) => Err((
            None,
            Refusal::BadRequest {
                public: "The request carries more than one device credential.".into(),
                detail: "ambiguous device credential".into(),
            },
        )),
        Err(e @ CarrierError::Malformed { carrier, .. }) => Err((
            Some(carrier),
            Refusal::BadCredential {
                route,
                public: "The device credential is malformed.",
                detail: e.to_string(),
            },
        )),
    }
}

fn carrier_of(c: &OneCredential) -> Carrier {
    match c {
        OneCredential::Device(p) => p.carrier,
        OneCredential::Access(a) => a.carrier,
    }
}

/// The one credential a request carries, a device credential or one of
/// the provider's access tokens, on routes that accept them; both at once
/// are ambiguous (400), by `core::access_token::one_credential`.
fn presented_any(
    state: &AppState,
    routes: &Routes,
    route: usize,
    req: &RequestView<'_>,
) -> Result<Option<OneCredential>, (Option<Carrier>, Refusal)> {
    let rs = &routes.list[route];
    let (Some(at), Some(p)) = (&rs.access_tokens, &state.provider) else {
        return presented_credential(routes, route, req).map(|d| d.map(OneCredential::Device));
    };
    let query = vestibule_core::path::target_query(req.path_and_query);
    let device = if rs.carriers.any() {
        find_credential(req.headers, query, &rs.carriers)
    } else {
        Ok(None)
    };
    let access = find_access_token(
        req.headers,
        &at.carriers,
        &p.issuer,
        rs.carriers.header.is_some() && rs.carriers.header == at.carriers.header,
    );
    let access_error = access.as_ref().err().cloned();
    match one_credential(device, access) {
        Ok(c) => Ok(c),
        Err(CarrierError::Ambiguous) => Err((
            None,
            Refusal::BadRequest {
                public: "The request carries more than one credential (device credentials or access tokens); send one.".into(),
                detail: "ambiguous credentials (device credential and access token, or two of either)".into(),
            },
        )),
        // Something with our token prefix that is not a token: RFC 6750
        // §3.1 `invalid_token`, as for any token that does not pass.
        Err(e @ CarrierError::Malformed { carrier, .. }) if access_error.as_ref() == Some(&e) => {
            Err((
                Some(carrier),
                Refusal::BadAccessToken {
                    route,
                    insufficient_scope: None,
                    detail: "malformed access token",
                },
            ))
        }
        Err(e @ CarrierError::Malformed { carrier, .. }) => Err((
            Some(carrier),
            Refusal::BadCredential {
                route,
                public: "The credential is malformed.",
                detail: e.to_string(),
            },
        )),
    }
}

/// The identity an access token stands for, and its client.
async fn verify_access(
    state: &AppState,
    routes: &Routes,
    route: usize,
    presented: &PresentedAccess,
) -> Result<(Identity, String), Refusal> {
    let rs = &routes.list[route];
    let (Some(at), Some(p)) = (&rs.access_tokens, &state.provider) else {
        return Err(Refusal::BadAccessToken {
            route,
            insufficient_scope: None,
            detail: "access tokens are not accepted here",
        });
    };
    let roles = state
        .settings
        .accounts
        .as_ref()
        .map(|a| a.roles.as_slice())
        .unwrap_or_default();
    let verdict = p
        .gate
        .verify(p, state.signing_keys.as_deref(), roles, presented, &at.rule)
        .await
        .map_err(|e| Refusal::Unavailable {
            route,
            detail: e.to_string(),
        })?;
    match verdict {
        GateVerdict::Allowed {
            identity,
            client_id,
        } => Ok((*identity, client_id)),
        GateVerdict::Invalid(detail) => Err(Refusal::BadAccessToken {
            route,
            insufficient_scope: None,
            detail,
        }),
        GateVerdict::InsufficientScope => Err(Refusal::BadAccessToken {
            route,
            insufficient_scope: Some(at.rule.scopes.join(" ")),
            detail: "the token lacks a scope this route requires",
        }),
    }
}

/// The owner a device credential stands for, and the device's id.
async fn verify_credential(
    state: &AppState,
    routes: &Routes,
    route: usize,
    ctx: &ClientContext,
    presented: &Presented,
) -> Result<(Identity, i64), Refusal> {
    let rs = &routes.list[route];
    let Some(devices) = state.devices() else {
        return Err(Refusal::BadCredential {
            route,
            public: "Device credentials are not enabled on this gateway.",
            detail: "device credential sent, but accounts are off".into(),
        });
    };
    let verdict = devices
        .verify(presented, &rs.name, rs.max_sso_age, ctx.client_ip)
        .await
        .map_err(|e| Refusal::Unavailable {
            route,
            detail: e.to_string(),
        })?;
    let counters = &state.device_auth;
    match &verdict {
        Verdict::Allowed { .. } => counters.authenticated.inc(),
        Verdict::Unknown | Verdict::Expired | Verdict::WrongUser => counters.rejected.inc(),
        Verdict::RateLimited { .. } => counters.rate_limited.inc(),
        _ => counters.refused.inc(),
    };
    let carrier = presented.carrier;
    if carrier == Carrier::ClientCertificate {
        let refused = |public: &'static str, detail: &str| Refusal::CertificateRefused {
            route,
            public,
            detail: detail.to_owned(),
        };
        match verdict {
            Verdict::Unknown => {
                return Err(refused(
                    "This client certificate is not one of this gateway's devices: it was revoked, or issued elsewhere. Make a new one on your devices page.",
                    "unknown or revoked client certificate",
                ));
            }
            Verdict::Expired => {
                return Err(refused(
                    "This client certificate has expired. Renew it on your devices page.",
                    "expired client certificate",
                ));
            }
            Verdict::WrongCarrier { .. } => {
                return Err(refused(
                    "This client certificate is not one of this gateway's devices.",
                    "client certificate matches a device of another kind",
                ));
            }
            _ => {}
        }
    }
    let bad = |public: &'static str, detail: &str| Refusal::BadCredential {
        route,
        public,
        detail: format!("{detail} (sent as {})", carrier.as_str()),
    };
    match verdict {
        Verdict::Allowed {
            identity,
            device_id,
        } => Ok((*identity, device_id)),
        Verdict::Unknown => Err(bad(
            "This device credential is not recognised: it was revoked, or mistyped.",
            "unknown device credential",
        )),
        Verdict::Expired => Err(bad(
            "This device credential has expired. Create a new one on your devices page.",
            "expired device credential",
        )),
        Verdict::WrongCarrier { kind } => Err(bad(
            match kind {
                Some(CredentialKind::AppPassword) => {
                    "This is an app password: send it only as the password of HTTP Basic, with your user name."
                }
                Some(CredentialKind::Token) => {
                    "This is a token: send it as a Bearer token or in the app's credential header, not as a password."
                }
                Some(CredentialKind::Certificate) => {
                    "This device holds a client certificate: install it on the device instead of sending a secret."
                }
                None => {
                    "This device credential is of a kind this gateway does not know. Create a new one."
                }
            },
            "device credential sent in a way its kind does not allow",
        )),
        Verdict::WrongUser => Err(bad(
            "The user name does not match this app password.",
            "Basic user name does not match the credential's owner",
        )),
        Verdict::WrongRoute => Err(Refusal::CredentialNotForRoute { route }),
        Verdict::Pending => Err(Refusal::AccountPending { route }),
        Verdict::Disabled => Err(Refusal::AccountDisabled { route }),
        Verdict::SsoStale => Err(Refusal::SsoStale { route }),
        Verdict::RateLimited { retry_after } => Err(Refusal::TooManyFailures {
            route,
            retry_after: retry_after.as_secs_f64().ceil() as u64,
        }),
    }
}

/// The signed assertion to send the app with a request that passed, on
/// routes with `assertion = true` and an identity to vouch for. `Err`
/// (answered 503) when it cannot be signed: the route promised the app an
/// assertion, so the request does not go without one.
pub fn assertion(state: &AppState, pass: &Pass) -> Result<Option<http::HeaderValue>, String> {
    use crate::keys::assertion::AuthMethod;
    let route = &pass.routes.list[pass.route];
    let (Some(audience), Some(identity)) = (&route.assertion_audience, &pass.identity) else {
        return Ok(None);
    };
    let (Some(assertions), Some(ring)) = (&state.assertions, &state.signing_keys) else {
        return Err("assertion signing keys are not loaded".into());
    };
    let method = match (&state.identity_reader, pass.device_id) {
        _ if pass.oauth_client.is_some() => AuthMethod::OAuth,
        (_, Some(device)) => AuthMethod::Device(device),
        (Some(crate::state::IdentityReader::Jwt { .. }), None) => AuthMethod::Jwt,
        (Some(crate::state::IdentityReader::Oidc { .. }), None) => AuthMethod::Session,
        // The second source's session (`[source.oidc]` beside the front).
        (_, None)
            if state
                .also_oidc
                .as_ref()
                .is_some_and(|u| u.settings().issuer == identity.source) =>
        {
            AuthMethod::Session
        }
        _ => AuthMethod::Header,
    };
    let now = crate::accounts::now_ms() / 1000;
    assertions
        .assertion(ring, identity, method, audience, now)
        .map(Some)
}
