//! `vestibule migrate`: bring the schema up to date, then exit.

use std::path::Path;

use vestibule_store::Backend;

use super::context::{Fail, account_settings};

pub(super) async fn run(config: &Path) -> Result<(), Fail> {
    let (a, _) = account_settings(config)?;
    if let Some(dir) = &a.sqlite_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            Fail::Setup(format!(
                "cannot create the data directory {}: {e}",
                dir.display()
            ))
        })?;
    }
    vestibule_store::migrate(&a.store).await?;
    let backend = Backend::of_url(&a.store.url).map_or("database", Backend::name);
    println!("the {backend} schema is up to date");
    Ok(())
}
