//! Operators' tools: the admin CLI ([`cli`]), backups ([`backup`]). The admin page lives with
//! the other pages in `web/`.

pub mod backup;
pub mod cli;
