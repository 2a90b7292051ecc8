//! The `uplift` command line: the server and the operator commands, sharing one
//! configuration.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::{
    access::Role,
    auth::Keys,
    config::Settings,
    db, openapi, seed,
    service::{folders, roles},
    startup::Application,
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
    /// Create demo data and print its ids and tokens as JSON.
    Seed {
        /// A demo tenant with folders, grants, apps and deployments on older versions.
        #[arg(long, required = true)]
        demo: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub tenant: String,
    #[arg(long)]
    pub subject: String,
    /// Space-separated scopes, e.g. "Apps.Write OR.Folders.Read".
    #[arg(long, default_value = "Apps OR.Folders.Read")]
    pub scope: String,
    /// Lifetime in seconds (default: the configured token lifetime, one hour).
    #[arg(long)]
    pub ttl: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum FolderCommand {
    /// Create a folder and print its key.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Key of the parent folder.
        #[arg(long)]
        parent: Option<String>,
        /// Region (Rainbond's region_name); default: the configured default region.
        #[arg(long)]
        region: Option<String>,
    },
    /// Print the tenant's folders, one JSON object per line.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    #[arg(long)]
    pub tenant: String,
    /// The token subject (`sub`) the role is for.
    #[arg(long)]
    pub subject: String,
    /// Administrator, FolderAdministrator or AutomationUser.
    #[arg(long)]
    pub role: Role,
    /// Folder key; tenant-wide when omitted.
    #[arg(long)]
    pub folder: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    Assign(RoleArgs),
    Revoke(RoleArgs),
}

pub async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            db::connect_and_migrate(&settings).await?;
            eprintln!("migrations applied");
        }
        Command::Token(args) => {
            let keys = Keys::from_settings(&settings)?;
            let ttl = Duration::from_secs(args.ttl.unwrap_or(settings.token_ttl_seconds));
            println!(
                "{}",
                keys.issue(&args.tenant, &args.subject, &args.scope, ttl)?
            );
        }
        Command::Folder(FolderCommand::Create {
            tenant,
            name,
            parent,
            region,
        }) => {
            let db = db::connect_and_migrate(&settings).await?;
            let region = region.unwrap_or_else(|| settings.default_region.clone());
            let folder = folders::create(&db, &tenant, &name, parent.as_deref(), &region).await?;
            println!("{}", folder.key);
        }
        Command::Folder(FolderCommand::List { tenant }) => {
            let db = db::connect_and_migrate(&settings).await?;
            let all = folders::list(&db, &tenant).await?;
            for folder in &all {
                let parent_key = folder
                    .parent_id
                    .and_then(|pid| all.iter().find(|f| f.id == pid))
                    .map(|p| p.key.clone());
                println!(
                    "{}",
                    json!({
                        "key": folder.key,
                        "id": folder.id,
                        "name": folder.name,
                        "region": folder.region,
                        "parentKey": parent_key,
                    })
                );
            }
        }
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&openapi::document(&settings))?
            );
        }
        Command::Seed { demo: _ } => {
            let db = db::connect_and_migrate(&settings).await?;
            let keys = Keys::from_settings(&settings)?;
            let demo = seed::demo(&db, &settings, &keys).await?;
            println!("{}", serde_json::to_string_pretty(&demo)?);
        }
        Command::Role(RoleCommand::Assign(args)) => {
            let db = db::connect_and_migrate(&settings).await?;
            let created = roles::assign(
                &db,
                &args.tenant,
                &args.subject,
                args.role,
                args.folder.as_deref(),
            )
            .await?;
            eprintln!(
                "{}",
                if created {
                    "role assigned"
                } else {
                    "role was already assigned"
                }
            );
        }
        Command::Role(RoleCommand::Revoke(args)) => {
            let db = db::connect_and_migrate(&settings).await?;
            let removed = roles::revoke(
                &db,
                &args.tenant,
                &args.subject,
                args.role,
                args.folder.as_deref(),
            )
            .await?;
            eprintln!(
                "{}",
                if removed > 0 {
                    "role revoked"
                } else {
                    "no such assignment"
                }
            );
        }
    }
    Ok(())
}
