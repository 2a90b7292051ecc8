//! `uplift token`: prints a bearer token signed with the service's key.

use std::time::Duration;

use clap::Args;
use uplift::{auth::Keys, config::Settings};

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

pub fn run(settings: &Settings, args: TokenArgs) -> anyhow::Result<()> {
    let keys = Keys::from_settings(settings)?;
    let ttl = Duration::from_secs(args.ttl.unwrap_or(settings.token_ttl_seconds));
    if ttl.as_secs() > settings.max_token_lifetime_seconds {
        anyhow::bail!(
            "--ttl {} exceeds max_token_lifetime_seconds ({}): the token would be refused",
            ttl.as_secs(),
            settings.max_token_lifetime_seconds
        );
    }
    println!(
        "{}",
        keys.issue(&args.tenant, &args.subject, &args.scope, ttl)?
    );
    Ok(())
}
