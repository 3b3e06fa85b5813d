//! The admin commands: `vestibule users`, `sessions`, `devices`, `keys`,
//! `clients`, `grants`, `audit` and `migrate`.
//!
//! They open the database the gateway's configuration names and work on it
//! while gateways run. Every change goes through the store, which publishes
//! it on the change feed in the same transaction, so running gateways drop
//! what they cached about the account within about a second.
//!
//! ## Invariants
//!
//! - An ACCOUNT argument is a numeric id, a `SOURCE:SUBJECT` identity, or a
//!   username that matches exactly one account. It is never matched by
//!   email. A username that matches several accounts is refused (exit 1)
//!   with the list of candidates.
//! - Every mutating command appends an audit entry (actor
//!   `cli:<$USER>`, subject `account:<id>`) after the change, with the
//!   outcome, and prints what it did.
//! - `disable` and `delete` also revoke the account's sessions.
//! - Exit codes: 0 done; 1 not found, ambiguous or conflict; 2 configuration,
//!   database or argument error.
//! - Text from identity sources (usernames, groups…) is printed with control
//!   characters escaped, so a crafted name cannot rewrite the terminal.
//!
//! [`cli`] holds the command line (clap types) and dispatches to one module
//! per command group; the actions that change an account are the accounts
//! service's ([`crate::accounts::admin`]), shared with the admin page.

pub mod backup;
pub mod cli;

mod audit;
mod ca;
mod clients;
mod context;
mod devices;
mod grants;
mod keys;
mod migrate;
mod output;
mod sessions;
mod users;

pub(crate) use context::sqlite_file;
