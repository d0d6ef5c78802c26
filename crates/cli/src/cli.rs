//! The command line, as clap derives it. Only argument shapes live here; behaviour is in
//! `commands`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Shown by `--help` (not `-h`): the configuration that does not come from flags.
const CONFIGURATION_HELP: &str = "\
Configuration (later sources win): built-in defaults, then the TOML file given with
--config (or SAUTI_CONFIG), then these environment variables:

  SAUTI_BIND                  host:port the HTTP API listens on [default: 127.0.0.1:8080]
                              (port 0 picks a free port; the real address is logged)
  SAUTI_DATA_DIR              directory for sauti's files [default: ./sauti-data]
  SAUTI_DATABASE_URL          sqlite://PATH or postgres://USER[:PASSWORD]@HOST[:PORT]/DB
                              [default: sqlite://<SAUTI_DATA_DIR>/sauti.db]
  SAUTI_LOG                   log filter, tracing EnvFilter syntax [default: info]
                              (e.g. info,sauti_api=debug)
  SAUTI_LOG_FORMAT            text | json [default: text]; logs always go to stderr
  SAUTI_SESSION_TTL_SECONDS   lifetime of a login session token [default: 86400]
  SAUTI_BODY_LIMIT_BYTES      largest accepted request body [default: 1048576]
  SAUTI_PUBLIC_URL            sauti's base URL as providers reach it, for status
                              callbacks and DLR URLs [default: http://<SAUTI_BIND>]
  SAUTI_LEASE_SECONDS         how long a worker's claim on a message lasts before
                              another worker may take it over [default: 30]
  SAUTI_SECRET_KEY            64 hex digits: the key verification codes are derived
                              from; every node of one installation needs the same
                              [default: <SAUTI_DATA_DIR>/secret.key, made on first start]
  SAUTI_RATE_LIMIT            requests per access token (per client address without
                              one) on each node: N/s or N/s,burst=M (burst defaults to
                              2N), or off; past it the API answers 429 with Retry-After
                              [default: 200/s,burst=400]

TOML keys: bind, data_dir, database_url, log, log_format, session_ttl_seconds,
body_limit_bytes, public_url, lease_seconds, rate_limit (same meanings). Example:

  bind = \"0.0.0.0:8080\"
  database_url = \"postgres://sauti@db.internal/sauti\"
  log_format = \"json\"

Passwords in database URLs are never logged.";

/// sauti: a self-hosted platform for SMS, voice and email — contacts, campaigns,
/// one-time passwords — behind one REST API.
#[derive(Debug, Parser)]
#[command(name = "sauti", version, after_long_help = CONFIGURATION_HELP)]
pub struct Cli {
    /// TOML configuration file (see --help for keys and environment variables).
    #[arg(long, global = true, value_name = "FILE", env = "SAUTI_CONFIG")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: apply pending migrations, then serve the HTTP API until SIGINT or
    /// SIGTERM.
    #[command(after_long_help = CONFIGURATION_HELP)]
    Serve(ServeArgs),
    /// Apply pending database migrations and exit (run once before starting several
    /// nodes on PostgreSQL).
    #[command(after_long_help = CONFIGURATION_HELP)]
    Migrate,
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Import or export contacts as CSV.
    #[command(subcommand)]
    Contacts(ContactsCommand),
    /// Follow campaigns.
    #[command(subcommand)]
    Callouts(CalloutsCommand),
}

#[derive(Debug, Subcommand)]
pub enum CalloutsCommand {
    /// Show a callout's live progress: a bar, the rate achieved, the ETA and the counts by
    /// status, until it completes or stops (or Ctrl-C).
    #[command(after_long_help = CONFIGURATION_HELP)]
    Watch(WatchCalloutArgs),
}

#[derive(Debug, Args)]
pub struct WatchCalloutArgs {
    /// The callout.
    pub id: i64,
    /// Print one line of progress and exit (for scripts).
    #[arg(long)]
    pub once: bool,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    pub every: f64,
}

#[derive(Debug, Subcommand)]
pub enum ContactsCommand {
    /// Import a CSV file of contacts (the layouts `POST /api/contact_imports` takes), with
    /// a progress bar and the import's report at the end. Upserts by msisdn.
    #[command(after_long_help = CONFIGURATION_HELP)]
    Import(ImportContactsArgs),
    /// Write the account's contacts (or a group's) as CSV to stdout; re-importable.
    #[command(after_long_help = CONFIGURATION_HELP)]
    Export(ExportContactsArgs),
}

#[derive(Debug, Args)]
pub struct ImportContactsArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Add every imported contact to this group (created if it does not exist).
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// The account to import into; may be left out when there is only one.
    #[arg(long, value_name = "ID")]
    pub account: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ExportContactsArgs {
    /// Only the contacts of this group.
    #[arg(long, value_name = "NAME")]
    pub group: Option<String>,
    /// The account to export from; may be left out when there is only one.
    #[arg(long, value_name = "ID")]
    pub account: Option<i64>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What this node runs: the HTTP API, the delivery workers, or both.
    #[arg(long, value_enum, default_value_t = Role::All)]
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// HTTP API only.
    Api,
    /// Delivery workers only.
    Worker,
    /// HTTP API and delivery workers.
    All,
}

impl Role {
    /// The name as typed on the command line, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::All => "all",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account with an access token holding every permission, and print
    /// `{"account_id": …, "access_token": "…"}` on stdout. The token is shown only once.
    #[command(after_long_help = CONFIGURATION_HELP)]
    Create(CreateAccountArgs),
}

#[derive(Debug, Args)]
pub struct CreateAccountArgs {
    /// The account's display name.
    #[arg(long)]
    pub name: String,
    /// Make it a platform super admin, allowed to manage other accounts.
    #[arg(long)]
    pub super_admin: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_forms() {
        let cli = Cli::try_parse_from(["sauti", "accounts", "create", "--name", "Acme", "--super-admin"]).unwrap();
        match cli.command {
            Command::Accounts(AccountsCommand::Create(args)) => {
                assert_eq!(args.name, "Acme");
                assert!(args.super_admin);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["sauti", "serve", "--config", "/etc/sauti.toml"]).unwrap();
        assert_eq!(cli.config.as_deref(), Some(std::path::Path::new("/etc/sauti.toml")));
        match cli.command {
            Command::Serve(args) => assert_eq!(args.role, Role::All),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["sauti", "serve", "--role", "cook"]).is_err());
    }
}
