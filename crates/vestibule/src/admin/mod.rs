//! Operators' tools: the admin CLI ([`cli`]). The admin page lives with
//! the other pages in `web/`.

pub mod cli;
