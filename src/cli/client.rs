//! `uplift client create|list|delete`: client applications (client credentials).

use clap::Subcommand;
use sea_orm::DatabaseConnection;
use serde_json::json;
use uplift::service::clients;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its id and secret as JSON (the secret only this once).
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Space-separated scopes the client may ask for, out of Apps, Apps.Read,
        /// Apps.Write and OR.Folders.Read; UiPath's Orchestrator scopes (OR.Execution,
        /// OR.Jobs.Read, …) are accepted too and grant nothing more.
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

pub async fn run(db: &DatabaseConnection, command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Create {
            tenant,
            name,
            scope,
        } => {
            let created = clients::create(db, &tenant, &name, &scope).await?;
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
        ClientCommand::List {
            tenant,
            include_deleted,
        } => {
            for client in clients::list(db, &tenant, include_deleted).await? {
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
        ClientCommand::Delete { tenant, client_id } => {
            match clients::delete(db, &tenant, &client_id).await? {
                clients::Deleted::Now { roles_removed } => {
                    eprintln!("client deleted; {roles_removed} role assignment(s) removed")
                }
                clients::Deleted::Already => eprintln!("client was already deleted"),
            }
        }
    }
    Ok(())
}
