//! `uplift debug …`: looks inside the service for its own tooling.
//! `uplift debug sql upgrade-item` prints the statement the engine sends per item on
//! PostgreSQL, so the benchmark runs exactly that statement (no hand copy to drift).

use clap::Subcommand;
use uplift::upgrade::{POSTGRES_UPGRADE_ITEM_SQL, with_params};

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print SQL the service runs.
    #[command(subcommand)]
    Sql(SqlCommand),
}

#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// The per-item upgrade statement on PostgreSQL. $1…$8 are the deployment id, the
    /// tenant, the folder id, the target version (NULL: the latest), the change's time,
    /// the event kind, the actor and the request id.
    UpgradeItem {
        /// Replace placeholder $N by this SQL text, as `N=TEXT` (repeatable), e.g.
        /// `--param 4=NULL --param 5='now()'`.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(usize, String)>,
    },
}

fn parse_param(raw: &str) -> Result<(usize, String), String> {
    let (number, text) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not N=TEXT"))?;
    let number = number
        .trim()
        .trim_start_matches('$')
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=8).contains(n))
        .ok_or_else(|| format!("{number:?} is not a placeholder number from 1 to 8"))?;
    Ok((number, text.to_string()))
}

pub fn run(command: DebugCommand) {
    match command {
        DebugCommand::Sql(SqlCommand::UpgradeItem { params }) => {
            println!(
                "{}",
                with_params(POSTGRES_UPGRADE_ITEM_SQL.trim(), &params).trim_end()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_param_names_its_placeholder_and_keeps_the_rest_verbatim() {
        assert_eq!(parse_param("4=NULL").unwrap(), (4, "NULL".into()));
        assert_eq!(parse_param("$5=now()").unwrap(), (5, "now()".into()));
        assert_eq!(parse_param("2=a=b").unwrap(), (2, "a=b".into()));
        assert!(parse_param("9=x").is_err());
        assert!(parse_param("x").is_err());
    }
}
