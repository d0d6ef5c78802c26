//! The `sauti` binary: `serve`, `migrate`, `accounts create`, `contacts import|export`,
//! `callouts watch`.
#![forbid(unsafe_code)]

mod callouts;
mod cli;
mod commands;
mod config;
mod contacts;
mod logging;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{AccountsCommand, CalloutsCommand, Cli, Command, ContactsCommand};
use crate::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Also printed (not only logged) so a failure before logging is set up, or with
            // logging filtered off, still tells the operator why.
            eprintln!("sauti: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
    logging::init(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &cli.command {
            Command::Serve(args) => commands::serve(&config, args).await,
            Command::Migrate => commands::migrate(&config).await,
            Command::Accounts(AccountsCommand::Create(args)) => commands::create_account(&config, args).await,
            Command::Contacts(ContactsCommand::Import(args)) => contacts::import(&config, args).await,
            Command::Contacts(ContactsCommand::Export(args)) => contacts::export(&config, args).await,
            Command::Callouts(CalloutsCommand::Watch(args)) => callouts::watch(&config, args).await,
        }
    })
}
