//! The `uplift` command line: the server and the operator commands, sharing one
//! configuration.

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use clap::{ArgGroup, Args, Parser, Subcommand};
use serde_json::json;

use crate::{
    access::Role,
    auth::Keys,
    config::Settings,
    db, openapi, pipeline, seed,
    service::{clients, folders, roles},
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
    /// Register, list or delete client applications (client credentials).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Upgrade deployments through a running server's bulk call (for CI). Exit code 0:
    /// all upgraded; 2: some items failed; 1: any other error.
    Upgrade(UpgradeArgs),
    /// Create demo data (`--demo`) or a volume of deployments (`--deployments N`) and
    /// print its ids and tokens as JSON.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["demo", "deployments"])))]
    Seed {
        /// A demo tenant with folders, grants, apps and deployments on older versions.
        #[arg(long)]
        demo: bool,
        /// A tenant with one folder and this many deployments, all with an upgrade
        /// waiting (for benchmarks).
        #[arg(long)]
        deployments: Option<usize>,
        /// With --deployments: how many apps (three published versions each).
        #[arg(long, default_value_t = 4, requires = "deployments")]
        apps: usize,
        /// With --deployments: write the deployment ids to this file, one per line.
        #[arg(long, requires = "deployments")]
        ids_file: Option<std::path::PathBuf>,
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

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its id and secret as JSON (the secret only this once).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Space-separated scopes the client may ask for, out of Apps, Apps.Read,
        /// Apps.Write and OR.Folders.Read.
        #[arg(long)]
        scope: String,
    },
    /// Print the tenant's clients, one JSON object per line (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        /// Also list deleted clients (with `deleted_at`).
        #[arg(long)]
        include_deleted: bool,
    },
    /// Delete a client: it gets no new tokens, the tokens it holds stop working, and
    /// its role assignments are removed.
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("credentials").required(true).args(["token", "client_id"])))]
pub struct UpgradeArgs {
    /// The UiPath base URL, e.g. http://127.0.0.1:8080/local/apps_/default/api/v1/default.
    #[arg(long, env = "UPLIFT_BASE_URL")]
    pub base_url: String,
    /// Tenant id, sent as X-UiPath-Internal-TenantId.
    #[arg(long, env = "UPLIFT_TENANT")]
    pub tenant: String,
    /// Folder key, sent as X-UiPath-FolderKey.
    #[arg(long, env = "UPLIFT_FOLDER")]
    pub folder: String,
    /// A bearer token (better passed as UPLIFT_TOKEN than on the command line).
    #[arg(long, env = "UPLIFT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A registered client's id; a token is requested with it and --client-secret.
    #[arg(long, env = "UPLIFT_CLIENT_ID", requires = "client_secret")]
    pub client_id: Option<String>,
    /// The client's secret (better passed as UPLIFT_CLIENT_SECRET).
    #[arg(
        long,
        env = "UPLIFT_CLIENT_SECRET",
        hide_env_values = true,
        requires = "client_id"
    )]
    pub client_secret: Option<String>,
    /// Token endpoint; default: /identity_/connect/token on the base URL's host.
    #[arg(long, env = "UPLIFT_TOKEN_URL")]
    pub token_url: Option<String>,
    /// Ask what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop starting new items once this many have failed (the rest are `skipped`).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_failures: Option<u64>,
    /// Sent as Idempotency-Key, so a retried step does the work once.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Seconds to wait for the whole call.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Deployment ids; when none are given, one per line on standard input.
    pub ids: Vec<String>,
}

/// `uplift upgrade`: needs no configuration or database, only the network. Returns
/// the process exit code (0 all upgraded, 2 some items failed, 1 any other error).
pub async fn upgrade(args: UpgradeArgs) -> ExitCode {
    let mut stderr = std::io::stderr();
    let ids = if !args.ids.is_empty() {
        args.ids
    } else if std::io::stdin().is_terminal() {
        // Waiting on a terminal for ids nobody is going to type would look like a hang.
        eprintln!(
            "error: no deployment ids: pass them as arguments or one per line on standard input"
        );
        return ExitCode::from(pipeline::EXIT_ERROR);
    } else {
        match pipeline::read_ids(std::io::stdin().lock()) {
            Ok(ids) => ids,
            Err(e) => {
                eprintln!("error: reading deployment ids from standard input: {e}");
                return ExitCode::from(pipeline::EXIT_ERROR);
            }
        }
    };
    let credentials = match (args.token, args.client_id, args.client_secret) {
        (_, Some(id), Some(secret)) => pipeline::Credentials::Client { id, secret },
        (Some(token), _, _) => pipeline::Credentials::Token(token),
        // clap's argument group and `requires` rule the other combinations out.
        _ => {
            eprintln!("error: pass --token, or --client-id with --client-secret");
            return ExitCode::from(pipeline::EXIT_ERROR);
        }
    };
    let job = pipeline::Upgrade {
        base_url: args.base_url,
        tenant: args.tenant,
        folder: args.folder,
        credentials,
        token_url: args.token_url,
        dry_run: args.dry_run,
        max_failures: args.max_failures.map(|n| n as usize),
        idempotency_key: args.idempotency_key,
        ids,
        timeout: Duration::from_secs(args.timeout),
    };
    let code = pipeline::run(&job, &mut std::io::stdout(), &mut stderr).await;
    ExitCode::from(code)
}

/// Runs a command; its exit code is 0 unless it is `upgrade`'s (errors are `Err`).
pub async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
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
        // main runs it before loading any configuration; the settings are not used.
        Command::Upgrade(args) => return Ok(upgrade(args).await),
        Command::Client(ClientCommand::Create {
            tenant,
            name,
            scope,
        }) => {
            let db = db::connect_and_migrate(&settings).await?;
            let created = clients::create(&db, &tenant, &name, &scope).await?;
            println!(
                "{}",
                json!({
                    "client_id": created.client.client_id,
                    "client_secret": created.secret,
                    "tenant": created.client.tenant_id,
                    "name": created.client.name,
                    "scope": created.client.scopes,
                })
            );
        }
        Command::Client(ClientCommand::List {
            tenant,
            include_deleted,
        }) => {
            let db = db::connect_and_migrate(&settings).await?;
            for client in clients::list(&db, &tenant, include_deleted).await? {
                let mut line = json!({
                    "client_id": client.client_id,
                    "tenant": client.tenant_id,
                    "name": client.name,
                    "scope": client.scopes,
                    "created_at": client.created_at,
                });
                if include_deleted {
                    line["deleted_at"] = json!(client.deleted_at);
                }
                println!("{line}");
            }
        }
        Command::Client(ClientCommand::Delete { tenant, client_id }) => {
            let db = db::connect_and_migrate(&settings).await?;
            match clients::delete(&db, &tenant, &client_id).await? {
                clients::Deleted::Now { roles_removed } => {
                    eprintln!("client deleted; {roles_removed} role assignment(s) removed")
                }
                clients::Deleted::Already => eprintln!("client was already deleted"),
            }
        }
        Command::Seed {
            deployments: Some(deployments),
            apps,
            ids_file,
            ..
        } => {
            let db = db::connect_and_migrate(&settings).await?;
            let keys = Keys::from_settings(&settings)?;
            let size = seed::Volume { deployments, apps };
            let (summary, ids) = seed::volume(&db, &settings, &keys, &size).await?;
            if let Some(path) = ids_file {
                let mut text = ids.join("\n");
                text.push('\n');
                std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::Seed { .. } => {
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
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
