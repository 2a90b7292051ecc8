//! `uplift seed --demo | --deployments N`: demo data, or a volume for benchmarks.

use clap::Args;
use sea_orm::DatabaseConnection;
use uplift::{auth::Keys, config::Settings, seed};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["demo", "deployments"])))]
pub struct SeedArgs {
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
}

pub async fn run(
    db: &DatabaseConnection,
    settings: &Settings,
    args: SeedArgs,
) -> anyhow::Result<()> {
    let keys = Keys::from_settings(settings)?;
    match args.deployments {
        Some(deployments) => {
            let size = seed::Volume {
                deployments,
                apps: args.apps,
            };
            let (summary, ids) = seed::volume(db, settings, &keys, &size).await?;
            if let Some(path) = args.ids_file {
                let mut text = ids.join("\n");
                text.push('\n');
                std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            }
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        None => {
            let demo = seed::demo(db, settings, &keys).await?;
            println!("{}", serde_json::to_string_pretty(&demo)?);
        }
    }
    Ok(())
}
