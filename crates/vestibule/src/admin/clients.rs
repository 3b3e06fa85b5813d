//! `vestibule clients …`: the OpenID Connect clients kept in the store
//! (issue 14), beside those the configuration file declares.
//!
//! A stored client's registration is written as `settings_json`, the
//! fields of a `[[oidc_provider.client]]` table as a JSON object (see
//! [`crate::provider::clients`]), and checked before it is stored by the
//! same rules the provider reads it with
//! ([`OidcClientConfig::from_stored`]): a registration the provider would
//! refuse is never stored.
//!
//! ## Invariants
//!
//! - A confidential client's secret is 256 random bits, printed once, and
//!   stored only as its SHA-256.
//! - An id the configuration file declares is refused: the same id in both
//!   places would make the registration that holds ambiguous.
//! - Every change appends an audit entry (subject `client:<id>`).

use serde_json::{Map, Value, json};

use super::cli::ClientAddArgs;
use super::context::{Ctx, Fail};
use super::output::{Table, print_json, when};
use crate::accounts::admin::clean;
use crate::accounts::now_ms;
use crate::config::{ClientKind, OidcClientConfig, OidcClientSettings, OidcProviderSettings};
use crate::provider::{random_token, sha256};
use vestibule_store::StoreError;
use vestibule_store::provider::StoredOidcClient;

impl ClientAddArgs {
    /// `settings_json`: only what was given, so the provider's defaults
    /// apply to the rest (as for a table of the file).
    fn settings_json(&self) -> String {
        let mut o = Map::new();
        o.insert(
            "kind".into(),
            if self.public {
                "public"
            } else {
                "confidential"
            }
            .into(),
        );
        let opt = |o: &mut Map<String, Value>, k: &str, v: &Option<String>| {
            if let Some(v) = v {
                o.insert(k.into(), v.clone().into());
            }
        };
        let list = |o: &mut Map<String, Value>, k: &str, v: &[String]| {
            if !v.is_empty() {
                o.insert(k.into(), v.into());
            }
        };
        opt(&mut o, "name", &self.name);
        list(&mut o, "redirect_uris", &self.redirect_uris);
        list(
            &mut o,
            "post_logout_redirect_uris",
            &self.post_logout_redirect_uris,
        );
        list(&mut o, "grants", &self.grants);
        list(&mut o, "scopes", &self.scopes);
        opt(&mut o, "consent", &self.consent);
        opt(&mut o, "id_token_alg", &self.id_token_alg);
        opt(&mut o, "access_token_format", &self.access_token_format);
        opt(
            &mut o,
            "backchannel_logout_uri",
            &self.backchannel_logout_uri,
        );
        list(&mut o, "allowed_groups", &self.allowed_groups);
        if self.no_pkce {
            o.insert("require_pkce".into(), false.into());
        }
        Value::Object(o).to_string()
    }
}

/// `[oidc_provider]`, or exit 2: without it no client is ever read.
fn provider(ctx: &Ctx) -> Result<&OidcProviderSettings, Fail> {
    ctx.provider.as_ref().ok_or_else(|| {
        Fail::Setup(
            "the configuration has no [oidc_provider] section: the provider is off, so no \
             client would be read"
                .into(),
        )
    })
}

/// Refuses an id the configuration file declares.
fn not_in_file(p: &OidcProviderSettings, client_id: &str) -> Result<(), Fail> {
    if p.clients.iter().any(|c| c.client_id == client_id) {
        return Err(Fail::Refused(format!(
            "the configuration file declares the client `{}`; the same id in the store would be \
             ambiguous (change it there, or remove it from the file first)",
            clean(client_id)
        )));
    }
    Ok(())
}

/// A stored client, checked by the provider's rules.
fn checked(p: &OidcProviderSettings, s: &StoredOidcClient) -> Result<OidcClientSettings, String> {
    OidcClientConfig::from_stored(
        &s.client_id,
        s.secret_hash.as_ref(),
        &s.settings_json,
        p.client_defaults,
    )
}

pub(super) async fn add(ctx: &Ctx, new: ClientAddArgs) -> Result<(), Fail> {
    let p = provider(ctx)?;
    not_in_file(p, &new.client_id)?;
    // 256 random bits (RFC 6749 §10.10: guessing must be infeasible),
    // printed once; only the SHA-256 is stored.
    let secret = (!new.public).then(|| random_token(""));
    let secret_hash = secret.as_deref().map(sha256);
    let settings_json = new.settings_json();
    if let Err(problems) = OidcClientConfig::from_stored(
        &new.client_id,
        secret_hash.as_ref(),
        &settings_json,
        p.client_defaults,
    ) {
        return Err(Fail::Setup(format!(
            "the client is not added: {}",
            clean(&problems)
        )));
    }
    let now = now_ms();
    let stored = StoredOidcClient {
        client_id: new.client_id.clone(),
        secret_hash,
        settings_json,
        created_at: now,
        updated_at: now,
    };
    let subject = format!("client:{}", new.client_id);
    match ctx.store.create_oidc_client(&stored).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            let msg = format!("a client `{}` is already stored", clean(&new.client_id));
            ctx.audit_subject("client-add", &subject, "conflict", &msg)
                .await;
            return Err(Fail::Refused(msg));
        }
        Err(e) => return Err(e.into()),
    }
    ctx.audit_subject(
        "client-add",
        &subject,
        "ok",
        if new.public {
            "public client"
        } else {
            "confidential client"
        },
    )
    .await;
    println!("added client {}", clean(&new.client_id));
    if let Some(secret) = secret {
        println!("client secret: {secret}");
        println!(
            "(shown once: only its SHA-256 is stored; `clients rotate-secret` makes a new one)"
        );
    }
    Ok(())
}

pub(super) async fn list(ctx: &Ctx, json: bool) -> Result<(), Fail> {
    let p = provider(ctx)?;
    let stored = ctx.store.oidc_clients().await?;
    let kind = |k: ClientKind| match k {
        ClientKind::Public => "public",
        ClientKind::Confidential => "confidential",
    };
    let mut rows = Vec::new();
    for c in &p.clients {
        rows.push(json!({
            "client_id": c.client_id, "name": c.name, "kind": kind(c.kind),
            "origin": "file", "redirect_uris": c.redirect_uris,
        }));
    }
    for s in &stored {
        let (name, k, uris) = match checked(p, s) {
            Ok(c) => (c.name, kind(c.kind), c.redirect_uris),
            Err(_) => ("(refused: see `clients show`)".to_owned(), "-", vec![]),
        };
        rows.push(json!({
            "client_id": s.client_id, "name": name, "kind": k, "origin": "store",
            "redirect_uris": uris, "created_at": s.created_at,
        }));
    }
    if json {
        print_json(&Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no clients");
        return Ok(());
    }
    let mut t = Table::new(&["CLIENT ID", "NAME", "KIND", "FROM", "REDIRECT URIS"]);
    let text = |v: &Value| clean(v.as_str().unwrap_or("-"));
    for r in &rows {
        let uris: Vec<&str> = r["redirect_uris"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        t.row(vec![
            text(&r["client_id"]),
            text(&r["name"]),
            text(&r["kind"]),
            text(&r["origin"]),
            clean(&uris.join(" ")),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn show(ctx: &Ctx, client_id: &str, json: bool) -> Result<(), Fail> {
    let p = provider(ctx)?;
    if p.clients.iter().any(|c| c.client_id == client_id) {
        return Err(Fail::Refused(format!(
            "`{}` is declared in the configuration file; read it there",
            clean(client_id)
        )));
    }
    let Some(s) = ctx.store.oidc_client(client_id).await? else {
        return Err(Fail::Refused(format!(
            "no stored client `{}`",
            clean(client_id)
        )));
    };
    let settings: Value = serde_json::from_str(&s.settings_json).unwrap_or(Value::Null);
    let state = match checked(p, &s) {
        Ok(_) => "valid".to_owned(),
        Err(problems) => format!("refused by the provider: {problems}"),
    };
    if json {
        print_json(&json!({
            "client_id": s.client_id,
            "confidential": s.secret_hash.is_some(),
            "created_at": s.created_at,
            "updated_at": s.updated_at,
            "settings": settings,
            "state": state,
        }));
        return Ok(());
    }
    let pretty = serde_json::to_string_pretty(&settings).unwrap_or_default();
    for (k, v) in [
        ("client id", clean(&s.client_id)),
        (
            "secret",
            if s.secret_hash.is_some() {
                "set (SHA-256 stored)"
            } else {
                "none (public)"
            }
            .to_owned(),
        ),
        ("created", format!("{} UTC", when(s.created_at))),
        ("updated", format!("{} UTC", when(s.updated_at))),
        ("state", clean(&state)),
    ] {
        println!("{:<11} {v}", format!("{k}:"));
    }
    println!("settings:\n{}", clean_lines(&pretty));
    Ok(())
}

/// `s` cleaned line by line (the newlines of pretty JSON kept).
fn clean_lines(s: &str) -> String {
    s.lines().map(clean).collect::<Vec<_>>().join("\n")
}

pub(super) async fn rotate_secret(ctx: &Ctx, client_id: &str) -> Result<(), Fail> {
    provider(ctx)?;
    let secret = random_token("");
    let subject = format!("client:{client_id}");
    if !ctx
        .store
        .set_oidc_client_secret(client_id, &sha256(&secret), now_ms())
        .await?
    {
        return Err(Fail::Refused(format!(
            "no stored confidential client `{}`",
            clean(client_id)
        )));
    }
    ctx.audit_subject("client-rotate-secret", &subject, "ok", "new secret")
        .await;
    println!("new secret for {}: {secret}", clean(client_id));
    println!("(shown once; the old secret no longer works)");
    Ok(())
}

pub(super) async fn remove(ctx: &Ctx, client_id: &str) -> Result<(), Fail> {
    provider(ctx)?;
    if !ctx.store.delete_oidc_client(client_id).await? {
        return Err(Fail::Refused(format!(
            "no stored client `{}`",
            clean(client_id)
        )));
    }
    ctx.audit_subject(
        "client-remove",
        &format!("client:{client_id}"),
        "ok",
        "with its consents, codes, grants and tokens",
    )
    .await;
    println!(
        "removed client {} with its consents, codes, grants and tokens",
        clean(client_id)
    );
    Ok(())
}
