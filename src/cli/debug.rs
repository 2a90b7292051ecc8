//! `uplift debug …`: looks inside the service for its own tooling.
//! `uplift debug sql upgrade-item [--backend sqlite]` prints the SQL the engine sends per
//! item, `upgrade-item-where-granted` the statement a one-id call sends on PostgreSQL
//! (grant check and upgrade together), and `operation-item` the one an operation's
//! item sends (upgrade and recorded outcome together), so the benchmarks run exactly
//! those (no hand copy to drift).

use clap::{Subcommand, ValueEnum};
use uplift::{
    operations::POSTGRES_OPERATION_ITEM_SQL,
    upgrade::{
        POSTGRES_UPGRADE_ITEM_SQL, POSTGRES_UPGRADE_ITEM_WHERE_GRANTED_SQL,
        SQLITE_UPGRADE_ITEM_SQL, with_params,
    },
};

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print SQL the service runs.
    #[command(subcommand)]
    Sql(SqlCommand),
}

#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// The per-item upgrade SQL. On PostgreSQL one statement, $1…$8: the deployment id,
    /// the tenant, the folder id, the target version (NULL: the latest), the change's
    /// time, the event kind, the actor and the request id. On SQLite the statements
    /// sent together inside `BEGIN IMMEDIATE` … `COMMIT`, ?1…?11: the deployment id, the
    /// tenant, the folder id, the target version, the change's time, the actor, the
    /// request id, the operation id, the event kind, the outbox row's id and the
    /// webhook event type.
    UpgradeItem {
        #[arg(long, value_enum, default_value_t = Backend::Postgres)]
        backend: Backend,
        /// Replace placeholder N ($N on PostgreSQL, ?N on SQLite) by this SQL text, as
        /// `N=TEXT` (repeatable), e.g. `--param 4=NULL --param 5='now()'`.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(usize, String)>,
    },
    /// A one-id call's statement on PostgreSQL: the caller's grant on the folder and
    /// the upgrade in one. As `upgrade-item` on PostgreSQL, except that $3 is the
    /// folder's key and $9 the roles that grant the permission, comma-separated.
    UpgradeItemWhereGranted {
        /// As for `upgrade-item`.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(usize, String)>,
    },
    /// An operation's item on PostgreSQL: the upgrade and its recorded outcome in one
    /// statement. As `upgrade-item` on PostgreSQL for $1…$8 (the folder is the item's),
    /// then $9 the operation id, $10 the claim's lease generation, $11 the item's seq
    /// and $12 whether it is a dry run.
    OperationItem {
        /// As for `upgrade-item`.
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(usize, String)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Postgres,
    Sqlite,
}

fn parse_param(raw: &str) -> Result<(usize, String), String> {
    let (number, text) = raw
        .split_once('=')
        .ok_or_else(|| format!("{raw:?} is not N=TEXT"))?;
    let number = number
        .trim()
        .trim_start_matches(['$', '?'])
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=12).contains(n))
        .ok_or_else(|| format!("{number:?} is not a placeholder number from 1 to 12"))?;
    Ok((number, text.to_string()))
}

pub fn run(command: DebugCommand) {
    match command {
        DebugCommand::Sql(SqlCommand::UpgradeItem { backend, params }) => {
            let sql = match backend {
                Backend::Postgres => POSTGRES_UPGRADE_ITEM_SQL,
                Backend::Sqlite => SQLITE_UPGRADE_ITEM_SQL,
            };
            print_statement(sql, &params);
        }
        DebugCommand::Sql(SqlCommand::UpgradeItemWhereGranted { params }) => {
            print_statement(POSTGRES_UPGRADE_ITEM_WHERE_GRANTED_SQL, &params);
        }
        DebugCommand::Sql(SqlCommand::OperationItem { params }) => {
            print_statement(POSTGRES_OPERATION_ITEM_SQL, &params);
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
        assert_eq!(parse_param("?11='x'").unwrap(), (11, "'x'".into()));
        assert_eq!(parse_param("2=a=b").unwrap(), (2, "a=b".into()));
        assert_eq!(parse_param("12=false").unwrap(), (12, "false".into()));
        assert!(parse_param("13=x").is_err());
        assert!(parse_param("0=x").is_err());
        assert!(parse_param("x").is_err());
    }
}
