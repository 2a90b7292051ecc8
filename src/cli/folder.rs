//! `uplift folder create|list`.

use clap::Subcommand;
use sea_orm::DatabaseConnection;
use serde_json::json;
use uplift::{config::Settings, service::folders};

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

pub async fn run(
    db: &DatabaseConnection,
    settings: &Settings,
    command: FolderCommand,
) -> anyhow::Result<()> {
    match command {
        FolderCommand::Create {
            tenant,
            name,
            parent,
            region,
        } => {
            let region = region.unwrap_or_else(|| settings.default_region.clone());
            let folder = folders::create(db, &tenant, &name, parent.as_deref(), &region).await?;
            println!("{}", folder.key);
        }
        FolderCommand::List { tenant } => {
            let all = folders::list(db, &tenant).await?;
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
    }
    Ok(())
}
