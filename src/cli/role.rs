//! `uplift role assign|revoke`.

use clap::{Args, Subcommand};
use sea_orm::DatabaseConnection;
use uplift::{access::Role, service::roles};

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

pub async fn run(db: &DatabaseConnection, command: RoleCommand) -> anyhow::Result<()> {
    let message = match command {
        RoleCommand::Assign(args) => {
            let created =
                roles::assign(db, &args.tenant, &args.subject, args.role, args.folder()).await?;
            if created {
                "role assigned"
            } else {
                "role was already assigned"
            }
        }
        RoleCommand::Revoke(args) => {
            let removed =
                roles::revoke(db, &args.tenant, &args.subject, args.role, args.folder()).await?;
            if removed > 0 {
                "role revoked"
            } else {
                "no such assignment"
            }
        }
    };
    eprintln!("{message}");
    Ok(())
}

impl RoleArgs {
    fn folder(&self) -> Option<&str> {
        self.folder.as_deref()
    }
}
