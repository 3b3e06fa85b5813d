//! Browser sessions for vestibule's own pages.
//!
//! A session is made from the trusted-header identity and stays bound to it:
//!
//! - the session id is 256 random bits; only its SHA-256 is stored;
//! - it ends after `sessions.idle_timeout` unused or `absolute_timeout` in all;
//! - a request whose headers name a different subject ends it and starts a
//!   new one; a request without the header ends it (single logout follows
//!   the IdP: once the front stops vouching, the session is over);
//! - a change of the holder's roles (a privilege change) gets a new id: the
//!   stored CSRF hash is derived from the session id *and* the roles, so a
//!   changed role set no longer matches it.

use std::sync::Arc;

use http::{HeaderMap, StatusCode, header};
use rand::RngCore;
use vestibule_core::identity::Identity;
use vestibule_core::secret::{
    Secret, csrf_token, find_cookie, hash_token, is_session_token, session_token,
};
use vestibule_store::{AuditEntry, Session};

use super::cookies;
use super::extract::{CookieSlot, PageError};
use crate::accounts::{Accounts, Resolution, now_ms};
use crate::http::responses::wants_html;
use crate::identity::authenticate::SourceError;
use crate::identity::client_identity::ClientContext;
use crate::state::AppState;

/// How often "last used" is written for a session.
const SESSION_TOUCH_MS: i64 = 60_000;

/// A signed-in page request.
pub struct PageSession {
    /// Who, with roles.
    pub identity: Identity,
    /// Their account.
    pub account_id: i64,
    /// SHA-256 of the session id, to mark "this session" in lists.
    pub id_hash: [u8; 32],
    /// The CSRF token to embed in forms.
    pub csrf: String,
    /// Whether the browser reached vestibule over HTTPS, which decides the
    /// cookie's name.
    pub https: bool,
    /// Trust facts.
    pub ctx: ClientContext,
    /// When the session started (unix ms): when vestibule last saw the
    /// person sign in, the OpenID provider's `auth_time`.
    pub created_at: i64,
}

fn csrf_for(token: &Secret, identity: &Identity) -> String {
    // Bind the token to the privileges it was issued under (see module docs).
    let mut roles = identity.roles.clone();
    roles.sort();
    csrf_token(token, &roles.join(","))
}

/// Whether the browser reached vestibule over HTTPS (directly, or as a
/// trusted hop says).
pub(crate) fn https(ctx: &ClientContext, headers: &HeaderMap) -> bool {
    ctx.tls
        || (ctx.trusted_for_forwarding
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
}

/// The session token the browser presented, if it looks like one.
pub(super) fn presented_token(headers: &HeaderMap, https: bool) -> Option<&str> {
    find_cookie(
        headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
        cookies::name(https),
    )
    .filter(|t| is_session_token(t))
}

/// The page for an identity the front sent but vestibule refused. As in
/// the pipeline: which header was wrong is shown (the front's operator
/// needs it), why an assertion failed to verify only goes to the log.
pub(super) fn identity_refused(e: &SourceError) -> PageError {
    tracing::warn!(error = %e, "a page request's identity was refused");
    let (status, message) = match e {
        SourceError::Headers(e) => (
            StatusCode::BAD_REQUEST,
            format!("The identity sent by the SSO proxy was refused: {e}."),
        ),
        SourceError::Assertion(_) => (
            StatusCode::UNAUTHORIZED,
            "The sign-in your SSO portal sent could not be verified (it may have expired)."
                .to_owned(),
        ),
        SourceError::KeysUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "vestibule cannot check sign-ins right now; try again in a moment.".to_owned(),
        ),
    };
    PageError::refused(status, "Sign-in not accepted", message, "")
}

/// Where one page request's session entries go in the audit log.
pub(super) struct SessionAudit<'a> {
    pub(super) accounts: &'a Accounts,
    pub(super) ctx: &'a ClientContext,
}

impl SessionAudit<'_> {
    /// Records `action` on the session of `(source, subject)`, done.
    async fn record(&self, action: &str, (source, subject): (&str, &str), detail: &str) {
        let subject = format!("{source}:{subject}");
        let e = AuditEntry::new(now_ms(), subject.as_str(), action, subject.as_str())
            .with_client_ip(self.ctx.client_ip)
            .with_outcome("ok")
            .with_detail(detail);
        crate::accounts::record_audit(&**self.accounts.store(), &e).await;
    }
}

/// Authenticates a page request and finds, starts or ends its session;
/// the cookie that starts or ends it goes into `slot`. Called once per
/// request, by the [`super::extract::SignedIn`] extractor.
pub(super) async fn page_session(
    state: &Arc<AppState>,
    ctx: ClientContext,
    headers: &HeaderMap,
    uri: &http::Uri,
    slot: &CookieSlot,
) -> Result<PageSession, PageError> {
    let Some(accounts) = state.accounts().cloned() else {
        return Err(PageError::refused(
            StatusCode::NOT_FOUND,
            "Not available",
            "Accounts are not enabled on this gateway.",
            "",
        ));
    };
    let https = https(&ctx, headers);
    let store = accounts.store().clone();
    let audit = SessionAudit {
        accounts: &accounts,
        ctx: &ctx,
    };
    let presented = presented_token(headers, https).map(str::to_owned);
    let existing = match &presented {
        Some(t) => store.session(&hash_token(t)).await?,
        None => None,
    };

    let identity = crate::identity::authenticate::authenticate(state, &ctx, headers)
        .await
        .map_err(|e| identity_refused(&e))?;
    let Some(identity) = identity else {
        // The front no longer vouches for anyone: end the session.
        if let Some(s) = &existing {
            let _ = store.revoke_session(&s.id_hash).await;
            audit
                .record(
                    "session-end",
                    (&s.source, &s.subject),
                    "identity header gone",
                )
                .await;
        }
        // A browser goes to the SSO portal, as it would for an app.
        let login = state
            .settings
            .login_url
            .as_deref()
            .filter(|_| wants_html(headers))
            .map(|template| {
                let view = crate::urls::RequestView::of(headers, uri);
                crate::urls::fill_login_url(template, &ctx, &view)
            });
        slot.set(cookies::clear(https));
        return Err(match login {
            Some(location) => PageError::SignInAt(location),
            None => PageError::refused(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                "Sign in through your SSO portal to use this page.",
                "",
            ),
        });
    };
    let Some(source) = &state.settings.identity_source else {
        return Err(PageError::refused(
            StatusCode::UNAUTHORIZED,
            "Sign in",
            "No identity source is configured.",
            "",
        ));
    };
    let (provisioning, key_by_username) = source.policy_for(&identity.source);
    let from_oidc = source.oidc().is_some_and(|o| o.issuer == identity.source);
    let (identity, account_id) = active(
        accounts
            .resolve(identity, provisioning, key_by_username, ctx.client_ip)
            .await?,
    )?;
    let key = Accounts::key_for(&identity, key_by_username);
    let now = now_ms();
    let idle = i64::try_from(state.settings.sessions.idle.as_millis()).unwrap_or(i64::MAX);

    if let (Some(token), Some(s)) = (&presented, &existing) {
        let secret = Secret::from_exposed(token.clone());
        let csrf = csrf_for(&secret, &identity);
        let same_person =
            s.source == key.source && s.subject == key.subject && s.account_id == account_id;
        let fresh = now < s.expires_at && now - s.last_seen_at < idle;
        let same_privileges = secrets_equal_bytes(&hash_token(&csrf), &s.csrf_hash);
        if same_person && fresh && same_privileges {
            if now - s.last_seen_at > SESSION_TOUCH_MS {
                let _ = store.touch_session(&s.id_hash, now).await;
            }
            return Ok(PageSession {
                identity,
                account_id,
                id_hash: s.id_hash,
                csrf,
                https,
                ctx,
                created_at: s.created_at,
            });
        }
        // Someone else, expired, or new privileges: end it, then start over.
        let _ = store.revoke_session(&s.id_hash).await;
        let why = if !same_person {
            "identity changed"
        } else if !fresh {
            "expired"
        } else {
            "privileges changed"
        };
        audit
            .record("session-end", (&s.source, &s.subject), why)
            .await;
    }

    // An OIDC session is opened by the provider's login only (it records
    // the provider's sid): here the person signs in again.
    if from_oidc {
        slot.set(cookies::clear(https));
        return Err(match &state.settings.login_url {
            Some(template) => PageError::SignInAt(crate::urls::fill_login_url(
                template,
                &ctx,
                &crate::urls::RequestView::of(headers, uri),
            )),
            None => PageError::Status(StatusCode::UNAUTHORIZED),
        });
    }
    let (id_hash, csrf) = open_session(
        state,
        &audit,
        (account_id, &key, &identity),
        headers,
        https,
        slot,
    )
    .await?;
    Ok(PageSession {
        identity,
        account_id,
        id_hash,
        csrf,
        https,
        ctx,
        created_at: now,
    })
}

fn secrets_equal_bytes(a: &[u8; 32], b: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    bool::from(a.ct_eq(b))
}

/// The account of a resolved identity, or the page saying why there is
/// none to sign in to (shared by the header sources and the OIDC login).
pub(super) fn active(r: Resolution) -> Result<(Identity, i64), PageError> {
    Ok(match r {
        Resolution::Active {
            identity,
            account_id,
        } => (Arc::unwrap_or_clone(identity), account_id),
        Resolution::Pending => {
            return Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "Waiting for approval",
                "Your account has been created and is waiting for an administrator's approval.",
                "There is nothing else to do now.",
            ));
        }
        Resolution::Disabled => {
            return Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "Account disabled",
                "Your account is disabled.",
                "",
            ));
        }
        Resolution::DirectoryConflict(_) => {
            return Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "Waiting for an administrator",
                "Your user name or email address is already used by another account in the directory.",
                "An administrator has to sort it out; there is nothing else to do now.",
            ));
        }
        Resolution::NoAccount => {
            return Err(PageError::refused(
                StatusCode::FORBIDDEN,
                "No account",
                "There is no account for you here.",
                "",
            ));
        }
    })
}

/// Opens a new session for `identity`'s account: the row, the cookie into
/// `slot`, the audit entry. Returns the id's hash and the CSRF token.
pub(super) async fn open_session(
    state: &AppState,
    audit: &SessionAudit<'_>,
    (account_id, key, identity): (i64, &vestibule_store::IdentityKey, &Identity),
    headers: &HeaderMap,
    https: bool,
    slot: &CookieSlot,
) -> Result<([u8; 32], String), PageError> {
    let store = audit.accounts.store();
    let ctx = audit.ctx;
    let now = now_ms();
    let absolute = i64::try_from(state.settings.sessions.absolute.as_millis()).unwrap_or(i64::MAX);
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let token = session_token(random);
    let csrf = csrf_for(&token, identity);
    let id_hash = hash_token(token.expose());
    store
        .create_session(&Session {
            id_hash,
            account_id,
            source: key.source.clone(),
            subject: key.subject.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(absolute),
            csrf_hash: hash_token(&csrf),
            // So the person can tell their sessions apart; display only.
            user_agent: vestibule_core::user_agent::for_record(
                headers
                    .get_all(http::header::USER_AGENT)
                    .iter()
                    .map(http::HeaderValue::as_bytes),
            ),
            client_ip: ctx.client_ip.map(|ip| ip.to_string()),
        })
        .await?;
    if let Some(c) = cookies::set(
        https,
        token.expose(),
        state.settings.sessions.absolute.as_secs(),
    ) {
        slot.set(c);
    }
    audit
        .record("session-start", (&key.source, &key.subject), "")
        .await;
    Ok((id_hash, csrf))
}

/// Before a sensitive step (a device credential, a pairing, approving a
/// device code): a session from the `[source.oidc]` login is re-checked
/// at the provider now ([`crate::identity::oidc_recheck::recheck_now`]).
/// Refused: the session has ended, and the step is refused with a page
/// saying to sign in again; the provider unreachable: refused, try again.
pub(crate) async fn provider_still_vouches(
    state: &AppState,
    s: &PageSession,
) -> Result<(), PageError> {
    use crate::identity::oidc_recheck::{StepRefused, recheck_now};
    match recheck_now(state, &s.id_hash).await {
        Ok(()) => Ok(()),
        Err(StepRefused::Ended) => Err(PageError::refused(
            StatusCode::UNAUTHORIZED,
            "Signed out",
            "Your sign-in provider no longer accepts your sign-in, so your session here has ended. Nothing was changed.",
            "Sign in again, then try once more.",
        )),
        Err(StepRefused::Unavailable) => Err(PageError::refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in provider unavailable",
            "vestibule could not confirm your sign-in with your sign-in provider, so nothing was changed.",
            "Try again in a moment.",
        )),
    }
}
