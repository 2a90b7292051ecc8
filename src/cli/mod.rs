//! The `uplift` command line: the server and the operator commands, sharing one
//! configuration. One module per command; this one parses, opens the database the
//! way each command needs it, and dispatches.

mod client;
mod debug;
mod folder;
mod follow;
pub mod operations;
mod remote;
mod role;
pub mod rollout;
mod seed;
mod token;
pub mod upgrade;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use sea_orm::DatabaseConnection;
use uplift::{config::Settings, db, http};

pub use self::{
    client::ClientCommand, debug::DebugCommand, folder::FolderCommand,
    operations::OperationsCommand, role::RoleCommand, rollout::RolloutCommand, seed::SeedArgs,
    token::TokenArgs, upgrade::UpgradeArgs,
};

#[derive(Debug, Parser)]
#[command(
    name = "uplift",
    version,
    about = "Upgrades deployed apps to their latest published version, in bulk, safely."
)]
pub struct Cli {
    /// Configuration file (default: ./uplift.toml when present).
    #[arg(long, env = "UPLIFT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print a bearer token signed with the service's key.
    Token(TokenArgs),
    /// Manage folders.
    #[command(subcommand)]
    Folder(FolderCommand),
    /// Grant or revoke roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Print the OpenAPI document (as served at /openapi.json).
    Openapi,
    /// Register, list or delete client applications (client credentials).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Upgrade deployments through a running server's bulk call, or with --async as a
    /// durable operation (for CI). Exit code 0: all upgraded; 2: some items failed (or
    /// the operation was canceled); 1: any other error.
    Upgrade(UpgradeArgs),
    /// List, show (and follow), page the items of, or cancel a running server's
    /// operations. Exit code 0, or 1 when a call failed; `show --wait` ends like
    /// `upgrade --async --wait`.
    #[command(subcommand)]
    Operations(OperationsCommand),
    /// Create, watch, approve, pause, resume, abort, retry or roll back a running
    /// server's progressive rollouts (tenant scope). Exit code 0, or 1 when a call
    /// failed; `status --watch` ends 0 when the rollout succeeded, 2 when it ended
    /// otherwise.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Create demo data (`--demo`) or a volume of deployments (`--deployments N`) and
    /// print its ids and tokens as JSON.
    Seed(SeedArgs),
    /// Print what the service runs inside (for benchmarks and debugging).
    #[command(subcommand)]
    Debug(DebugCommand),
}

/// What a command needs of the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatabaseUse {
    /// Nothing: the command reads no data.
    None,
    /// Reads only: the schema must already exist; nothing is migrated.
    Read,
    /// Writes: pending migrations are applied first.
    Write,
}

impl Command {
    fn database_use(&self) -> DatabaseUse {
        match self {
            Command::Token(_)
            | Command::Openapi
            | Command::Upgrade(_)
            | Command::Operations(_)
            | Command::Rollout(_)
            | Command::Debug(_) => DatabaseUse::None,
            Command::Folder(FolderCommand::List { .. })
            | Command::Client(ClientCommand::List { .. }) => DatabaseUse::Read,
            // The server migrates in `Application::build`.
            Command::Serve => DatabaseUse::None,
            Command::Migrate
            | Command::Folder(_)
            | Command::Client(_)
            | Command::Role(_)
            | Command::Seed(_) => DatabaseUse::Write,
        }
    }
}

/// The one place a command opens the database.
async fn open(
    settings: &Settings,
    use_: DatabaseUse,
) -> anyhow::Result<Option<DatabaseConnection>> {
    Ok(match use_ {
        DatabaseUse::None => None,
        DatabaseUse::Read => Some(db::connect(settings).await?),
        DatabaseUse::Write => Some(db::connect_and_migrate(settings).await?),
    })
}

/// Runs a command; its exit code is 0 unless it is `upgrade`'s or `operations`' (errors
/// are `Err`).
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    let database = open(&settings, command.database_use()).await?;
    // `database_use` says which commands get one.
    let db = || {
        database
            .as_ref()
            .expect("the command's database was opened")
    };
    match command {
        Command::Serve => {
            let app = http::Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => eprintln!("migrations applied"),
        Command::Token(args) => token::run(&settings, args)?,
        Command::Folder(command) => folder::run(db(), &settings, command).await?,
        Command::Role(command) => role::run(db(), command).await?,
        Command::Client(command) => client::run(db(), command).await?,
        Command::Seed(args) => seed::run(db(), &settings, args).await?,
        Command::Debug(command) => debug::run(command),
        Command::Openapi => println!(
            "{}",
            serde_json::to_string_pretty(&http::openapi::document(&settings))?
        ),
        // main runs it before loading any configuration; the settings are not used.
        Command::Upgrade(args) => return Ok(upgrade::main(args).await),
        Command::Operations(command) => return Ok(operations::main(command).await),
        Command::Rollout(command) => return Ok(rollout::main(command).await),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::upgrade::UpgradeArgs;

    fn parse(extra: &[&str]) -> Result<UpgradeArgs, clap::Error> {
        let mut args = vec![
            "uplift",
            "upgrade",
            "--base-url",
            "http://h/o/apps_/default/api/v1/default",
            "--tenant",
            "t",
            "--folder",
            "f",
        ];
        args.extend_from_slice(extra);
        match Cli::try_parse_from(args)?.command {
            Some(Command::Upgrade(args)) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn upgrade_takes_a_token_or_a_client_id_with_its_secret_but_not_both() {
        assert!(parse(&["--token", "x", "id-1"]).is_ok());
        let args = parse(&["--client-id", "c", "--client-secret", "s", "a", "b"]).unwrap();
        assert_eq!(args.ids, ["a", "b"]);
        assert!(parse(&[]).is_err(), "no credentials");
        assert!(parse(&["--client-id", "c"]).is_err(), "no secret");
        assert!(parse(&["--client-secret", "s"]).is_err(), "no client id");
        assert!(parse(&["--token", "x", "--client-id", "c", "--client-secret", "s"]).is_err());
        assert!(parse(&["--token", "x", "--max-failures", "0"]).is_err());
    }

    #[test]
    fn selector_flags_need_async_and_exclude_listed_ids() {
        let args = parse(&["--token", "x", "--async", "--tag", "eu", "--tag", "prod"]).unwrap();
        assert_eq!(args.tags, ["eu", "prod"]);
        assert!(parse(&["--token", "x", "--async", "--all"]).is_ok());
        assert!(
            parse(&["--token", "x", "--tag", "eu"]).is_err(),
            "no --async"
        );
        assert!(parse(&["--token", "x", "--async", "--all", "id-1"]).is_err());
        assert!(parse(&["--token", "x", "--async", "--all", "--app", "a"]).is_err());
        assert!(parse(&["--token", "x", "--async", "--include-subfolders", "id-1"]).is_err());
        assert!(
            parse(&["--token", "x", "--wait", "id-1"]).is_err(),
            "no --async"
        );
        assert!(
            parse(&[
                "--token",
                "x",
                "--async",
                "--wait",
                "--max-failures",
                "5%",
                "a"
            ])
            .is_ok()
        );
    }

    #[test]
    fn operations_commands_take_the_connection_options_of_upgrade() {
        let parsed = Cli::try_parse_from([
            "uplift",
            "operations",
            "show",
            "op-1",
            "--wait",
            "--base-url",
            "http://h/x",
            "--tenant",
            "t",
            "--folder",
            "f",
            "--token",
            "x",
        ])
        .unwrap();
        assert!(matches!(
            parsed.command,
            Some(Command::Operations(OperationsCommand::Show {
                wait: true,
                ..
            }))
        ));
        assert!(
            Cli::try_parse_from([
                "uplift",
                "operations",
                "list",
                "--base-url",
                "http://h/x",
                "--tenant",
                "t",
                "--folder",
                "f"
            ])
            .is_err(),
            "no credentials"
        );
    }
}
