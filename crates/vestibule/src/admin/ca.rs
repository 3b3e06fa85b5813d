//! `vestibule ca …`: the client-certificate CA (issue 18): show, rotate,
//! export.

use vestibule_store::AuditEntry;

use super::context::{Ctx, Fail};
use super::output::{Table, when};
use crate::accounts::now_ms;
use crate::certs::ClientCa;

async fn open_ca(ctx: &Ctx) -> Result<ClientCa, Fail> {
    let kek = ctx
        .keys
        .kek
        .as_ref()
        .map(crate::keys::kek::Kek::load)
        .transpose()
        .map_err(Fail::Setup)?;
    ClientCa::open(ctx.store.clone(), kek, None)
        .await
        .map_err(Fail::Setup)
}

pub(super) async fn show(ctx: &Ctx) -> Result<(), Fail> {
    let rows = ctx.store.client_cas().await?;
    if rows.is_empty() {
        println!(
            "no client CA yet (a gateway with [client_certs] enabled makes one when it starts)"
        );
        return Ok(());
    }
    let mut t = Table::new(&["ID (SHA-256)", "AT REST", "CREATED (UTC)", "STATE"]);
    for r in &rows {
        t.row(vec![
            r.id.clone(),
            r.private_format.as_str().to_owned(),
            when(r.created_at),
            if r.retired_at.is_some() {
                "retired (its certificates stay valid)".to_owned()
            } else {
                "current (signs new certificates)".to_owned()
            },
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

pub(super) async fn rotate(ctx: &Ctx) -> Result<(), Fail> {
    let ca = open_ca(ctx).await?;
    let id = ca.rotate().await.map_err(Fail::Setup)?;
    println!(
        "client CA {id} signs new certificates; certificates of the previous CA stay valid \
         until they expire or are revoked. Fronts that check certificates themselves need the \
         new bundle: `vestibule ca export`"
    );
    let e = AuditEntry::new(
        now_ms(),
        ctx.actor.name.as_str(),
        "ca-rotate",
        format!("client-ca:{id}"),
    )
    .with_outcome("ok")
    .with_detail(ctx.actor.note.clone());
    ctx.warn_if_unaudited(ctx.store.append_audit(&e).await);
    Ok(())
}

pub(super) async fn export(ctx: &Ctx) -> Result<(), Fail> {
    let ca = open_ca(ctx).await?;
    print!("{}", ca.bundle_pem().await.map_err(Fail::Setup)?);
    Ok(())
}
