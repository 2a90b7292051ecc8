//! `uplift debug …`: looks inside the service for its own tooling.
//! `uplift debug sql upgrade-item` prints the statement the engine sends per item on
//! PostgreSQL, and `upgrade-item-where-granted` the one a one-id call sends (grant
//! check and upgrade together), so the benchmark runs exactly those statements (no
//! hand copy to drift).

use clap::Subcommand;
use uplift::upgrade::{
    POSTGRES_UPGRADE_ITEM_SQL, POSTGRES_UPGRADE_ITEM_WHERE_GRANTED_SQL, with_params,
};

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
    /// A one-id call's statement on PostgreSQL: the caller's grant on the folder and
    /// the upgrade in one. As `upgrade-item`, except that $3 is the folder's key and $9
    /// the roles that grant the permission, comma-separated.
    UpgradeItemWhereGranted {
        /// As for `upgrade-item`.
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
        .filter(|n| (1..=9).contains(n))
        .ok_or_else(|| format!("{number:?} is not a placeholder number from 1 to 9"))?;
    Ok((number, text.to_string()))
}

pub fn run(command: DebugCommand) {
    match command {
        DebugCommand::Sql(SqlCommand::UpgradeItem { params }) => {
            print_statement(POSTGRES_UPGRADE_ITEM_SQL, &params);
        }
        DebugCommand::Sql(SqlCommand::UpgradeItemWhereGranted { params }) => {
            print_statement(POSTGRES_UPGRADE_ITEM_WHERE_GRANTED_SQL, &params);
        }
    }
}

fn print_statement(sql: &str, params: &[(usize, String)]) {
    println!("{}", with_params(sql.trim(), params).trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_param_names_its_placeholder_and_keeps_the_rest_verbatim() {
        assert_eq!(parse_param("4=NULL").unwrap(), (4, "NULL".into()));
        assert_eq!(parse_param("$5=now()").unwrap(), (5, "now()".into()));
        assert_eq!(parse_param("2=a=b").unwrap(), (2, "a=b".into()));
        assert!(parse_param("10=x").is_err());
        assert!(parse_param("0=x").is_err());
        assert!(parse_param("x").is_err());
    }
}
