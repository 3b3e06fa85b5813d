//! The admin commands' command line: clap types, and which module runs
//! each command (see [`crate::admin`] for the rules they follow).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use vestibule_store::AccountStatus;

use super::context::{finish, open};
use super::{
    audit as audit_log, ca as ca_cmds, clients as client_cmds, devices as device_cmds,
    grants as grant_cmds, keys as key_cmds, migrate as migrate_cmd, sessions as session_cmds,
    users as user_cmds,
};
use crate::accounts::admin::StatusAction;
use crate::config::HumanDuration;

/// `--config`, shared by every admin command.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// The gateway's configuration file (its `[database]` and `[accounts]`).
    #[arg(
        long,
        short,
        global = true,
        env = "VESTIBULE_CONFIG",
        default_value = "vestibule.toml"
    )]
    pub config: PathBuf,
}

/// `vestibule users …`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List accounts, in id order.
    List {
        /// Only accounts with this status.
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one account: attributes, identities, sessions.
    Show {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending account: it may sign in.
    Approve {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Disable an account and revoke its sessions.
    Disable {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Delete an account with its identities and sessions.
    Delete {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
    },
    /// Link another identity to an account (the same person at another
    /// source, or under a new subject).
    Link {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
        /// The identity to attach, as SOURCE:SUBJECT.
        identity: String,
    },
    /// Unlink an identity from an account (never its last one); the
    /// sessions it opened end.
    Unlink {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
        /// The identity to detach, as SOURCE:SUBJECT.
        identity: String,
    },
}

/// An account status, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    /// Waiting for approval.
    Pending,
    /// May sign in.
    Active,
    /// Refused.
    Disabled,
}

impl From<StatusArg> for AccountStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Pending => Self::Pending,
            StatusArg::Active => Self::Active,
            StatusArg::Disabled => Self::Disabled,
        }
    }
}

/// `vestibule sessions …`.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List sessions, oldest first.
    List {
        /// Only this account's sessions.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke every session of an account.
    Revoke {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        #[arg(long)]
        user: String,
    },
}

/// `vestibule devices …`.
#[derive(Debug, Subcommand)]
// Alike SessionsCommand above: the same List arguments; Revoke differs (one device or all).
pub enum DevicesCommand {
    /// List device credentials, in id order.
    List {
        /// Only this account's devices.
        #[arg(long)]
        user: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one device credential (by its id), or every device of an
    /// account (`--user`). Running gateways refuse it within a second.
    Revoke {
        /// The device id (see `devices list`).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<i64>,
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        #[arg(long)]
        user: Option<String>,
    },
}

/// `vestibule keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the assertion signing keys: published, signing, retired.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a new signing key now, whatever the schedule. It is published at
    /// once and signs after `[keys] publish_ahead`, so verifiers' caches
    /// know it first; the key it replaces stays published until its tokens
    /// have expired.
    Rotate {
        /// Sign with the new key at once (a key that must go now, e.g. one
        /// that leaked). Verifiers that cached the key set refetch it on
        /// the unknown kid.
        #[arg(long)]
        immediately: bool,
    },
}

/// `vestibule ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// List the client-certificate CAs: the current one and retired ones.
    Show,
    /// Make a new CA that signs new device certificates; those of the
    /// previous one stay valid until they expire or are revoked.
    Rotate,
    /// Print every CA certificate still valid (PEM), for a front that
    /// checks client certificates itself.
    Export,
}

/// `vestibule clients add`.
#[derive(Debug, Args)]
pub struct ClientAddArgs {
    /// The `client_id`: letters, digits, `.`, `_` and `-`, at most 64.
    pub client_id: String,
    /// A public client (native, mobile, single-page): no secret, PKCE.
    #[arg(long)]
    pub public: bool,
    /// Shown on the consent page (default: the client id).
    #[arg(long)]
    pub name: Option<String>,
    /// A redirect URI, matched exactly (repeat for several).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may return to (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// A grant type (repeat; default authorization_code and
    /// refresh_token).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// A scope the client may ask for (repeat; default openid profile
    /// email groups offline_access).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// `explicit` (default) or `implicit`.
    #[arg(long)]
    pub consent: Option<String>,
    /// `RS256` (default), `ES256` or `EdDSA`.
    #[arg(long)]
    pub id_token_alg: Option<String>,
    /// `opaque` (default) or `jwt`.
    #[arg(long)]
    pub access_token_format: Option<String>,
    /// OIDC Back-Channel Logout endpoint (https, or http on loopback).
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// Only members of this group may use it (repeat for several).
    #[arg(long = "allowed-group")]
    pub allowed_groups: Vec<String>,
    /// A confidential client that sends no PKCE (Gitea, Portainer,
    /// MinIO).
    #[arg(long)]
    pub no_pkce: bool,
}

/// `vestibule clients …`: the OpenID Connect clients kept in the store.
#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Register a client. A confidential client's secret is printed once.
    Add(Box<ClientAddArgs>),
    /// List clients: the configuration file's and the store's.
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one stored client's registration.
    Show {
        /// The `client_id`.
        client_id: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Give a stored confidential client a new secret (printed once); the
    /// old one stops working at once.
    RotateSecret {
        /// The `client_id`.
        client_id: String,
    },
    /// Remove a stored client with its consents, codes, grants and tokens.
    Remove {
        /// The `client_id`.
        client_id: String,
    },
}

/// `vestibule grants …`: apps with access (OpenID Connect grants).
#[derive(Debug, Subcommand)]
pub enum GrantsCommand {
    /// List an account's grants, oldest first.
    List {
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        account: String,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke one grant (by its id), or every grant of an account
    /// (`--all ACCOUNT`), with its refresh and access tokens; the user's
    /// consent to that client is forgotten.
    Revoke {
        /// The grant id (see `grants list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Id, SOURCE:SUBJECT, or a username that matches one account.
        #[arg(long, value_name = "ACCOUNT")]
        all: Option<String>,
    },
}

/// `vestibule audit …`.
#[derive(Debug, Clone, Args)]
pub struct AuditArgs {
    /// Only entries this recent, e.g. `30m`, `1h`, `7d`.
    #[arg(long, value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Only entries with exactly this action (`approve`, `disable`,
    /// `provision`, `session-start`…).
    #[arg(long)]
    pub action: Option<String>,
    /// Only entries with exactly this subject (`account:12`,
    /// `authentik:<uid>`…).
    #[arg(long)]
    pub subject: Option<String>,
    /// At most this many entries (with `--follow`: at first).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Keep printing new entries (oldest first) until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    HumanDuration::parse(s).map(|d| d.0)
}

/// Runs `vestibule users …`.
pub async fn users(config: &Path, cmd: UsersCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        UsersCommand::List { status, json } => user_cmds::list(&ctx, status, json).await,
        UsersCommand::Show { account, json } => user_cmds::show(&ctx, &account, json).await,
        UsersCommand::Approve { account } => {
            user_cmds::set_status(&ctx, &account, StatusAction::Approve).await
        }
        UsersCommand::Enable { account } => {
            user_cmds::set_status(&ctx, &account, StatusAction::Enable).await
        }
        UsersCommand::Disable { account } => {
            user_cmds::set_status(&ctx, &account, StatusAction::Disable).await
        }
        UsersCommand::Delete { account } => user_cmds::delete(&ctx, &account).await,
        UsersCommand::Link { account, identity } => {
            user_cmds::link(&ctx, &account, &identity).await
        }
        UsersCommand::Unlink { account, identity } => {
            user_cmds::unlink(&ctx, &account, &identity).await
        }
    })
}

/// Runs `vestibule sessions …`.
pub async fn sessions(config: &Path, cmd: SessionsCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        SessionsCommand::List { user, json } => {
            session_cmds::list(&ctx, user.as_deref(), json).await
        }
        SessionsCommand::Revoke { user } => session_cmds::revoke(&ctx, &user).await,
    })
}

/// Runs `vestibule devices …`.
pub async fn devices(config: &Path, cmd: DevicesCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        DevicesCommand::List { user, json } => device_cmds::list(&ctx, user.as_deref(), json).await,
        DevicesCommand::Revoke { id: Some(id), .. } => device_cmds::revoke(&ctx, id).await,
        DevicesCommand::Revoke { user, .. } => {
            device_cmds::revoke_all(&ctx, user.as_deref().unwrap_or("")).await
        }
    })
}

/// Runs `vestibule keys …`.
pub async fn keys(config: &Path, cmd: KeysCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        KeysCommand::List { json } => key_cmds::list(&ctx, json).await,
        KeysCommand::Rotate { immediately } => key_cmds::rotate(&ctx, immediately).await,
    })
}

/// Runs `vestibule ca …`.
pub async fn ca(config: &Path, cmd: CaCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        CaCommand::Show => ca_cmds::show(&ctx).await,
        CaCommand::Rotate => ca_cmds::rotate(&ctx).await,
        CaCommand::Export => ca_cmds::export(&ctx).await,
    })
}

/// Runs `vestibule clients …`.
pub async fn clients(config: &Path, cmd: ClientsCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        ClientsCommand::Add(args) => client_cmds::add(&ctx, *args).await,
        ClientsCommand::List { json } => client_cmds::list(&ctx, json).await,
        ClientsCommand::Show { client_id, json } => client_cmds::show(&ctx, &client_id, json).await,
        ClientsCommand::RotateSecret { client_id } => {
            client_cmds::rotate_secret(&ctx, &client_id).await
        }
        ClientsCommand::Remove { client_id } => client_cmds::remove(&ctx, &client_id).await,
    })
}

/// Runs `vestibule grants …`.
pub async fn grants(config: &Path, cmd: GrantsCommand) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(match cmd {
        GrantsCommand::List { account, json } => grant_cmds::list(&ctx, &account, json).await,
        GrantsCommand::Revoke { id: Some(id), .. } => grant_cmds::revoke(&ctx, id).await,
        GrantsCommand::Revoke { all, .. } => {
            grant_cmds::revoke_all(&ctx, all.as_deref().unwrap_or("")).await
        }
    })
}

/// Runs `vestibule audit …`.
pub async fn audit(config: &Path, args: AuditArgs) -> ExitCode {
    let ctx = match open(config).await {
        Ok(c) => c,
        Err(f) => return f.exit(),
    };
    finish(audit_log::run(&ctx, args).await)
}

/// Runs `vestibule migrate`: brings the schema up to date and exits.
pub async fn migrate(config: &Path) -> ExitCode {
    finish(migrate_cmd::run(config).await)
}
