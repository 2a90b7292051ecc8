//! `Error`: what the domain (services, `access`, the engine, token checks) can fail
//! with. It names the kind of failure and says what was wrong; it picks no status code.
//! The HTTP layer maps each kind to a problem+json answer (`http::problem`), the CLI
//! prints it. Database errors are classified here and nowhere else.

use std::fmt;

use sea_orm::DbErr;

use crate::db;

#[derive(thiserror::Error)]
pub enum Error {
    /// The input is malformed; the message names what was wrong.
    #[error("{0}")]
    Invalid(String),
    /// No usable bearer token.
    #[error("{0}")]
    InvalidToken(String),
    /// The token is valid but lacks a scope the call needs (the scopes it needs).
    #[error("the token lacks the scope this call needs: {0}")]
    InsufficientScope(String),
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The change collides with the current state (a name taken, a row locked).
    #[error("{0}")]
    Conflict(String),
    /// Well-formed, but not something that can be done (a version not published).
    #[error("{0}")]
    Unprocessable(String),
    /// Too much of this work is waiting already; retry after the given time.
    #[error("{message}")]
    Busy {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("the database is unavailable; try again shortly")]
    Unavailable(#[source] DbErr),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

/// Prints the whole cause chain, so a log line explains an internal error.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_chain(self, f)
    }
}

/// `Display` of `err` and of each of its sources, one per line.
pub fn write_chain(err: &dyn std::error::Error, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{err}")?;
    let mut source = err.source();
    while let Some(cause) = source {
        writeln!(f, "caused by: {cause}")?;
        source = cause.source();
    }
    Ok(())
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        if db::is_unavailable(&err) {
            Error::Unavailable(err)
        } else if db::is_lock_conflict(&err) {
            Error::Conflict("another request is changing the same data; retry".into())
        } else if changed_meanwhile(&err) {
            // A row read a moment ago was deleted by a concurrent request before this
            // one wrote (an update that matched nothing, a row pointing at it refused):
            // a race the client can retry, not a server fault.
            Error::Conflict(
                "what this request changes was changed or removed by another request meanwhile; retry".into(),
            )
        } else {
            Error::Internal(err.into())
        }
    }
}

fn changed_meanwhile(err: &DbErr) -> bool {
    matches!(err, DbErr::RecordNotUpdated)
        || matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::ForeignKeyConstraintViolation(_))
        )
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Error::Internal(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_that_found_its_row_deleted_meanwhile_is_a_conflict_not_a_fault() {
        assert!(matches!(
            Error::from(DbErr::RecordNotUpdated),
            Error::Conflict(_)
        ));
        assert!(matches!(
            Error::from(DbErr::Custom("boom".into())),
            Error::Internal(_)
        ));
    }

    #[test]
    fn debug_output_includes_the_cause_chain() {
        let err = Error::Internal(anyhow::anyhow!("disk full").context("writing the event"));
        let text = format!("{err:?}");
        assert!(text.contains("internal error"));
        assert!(text.contains("writing the event"));
        assert!(text.contains("disk full"));
    }

    #[test]
    fn internal_details_are_not_in_the_message() {
        let err = Error::Internal(anyhow::anyhow!("password=hunter2"));
        assert_eq!(err.to_string(), "internal error");
    }
}
