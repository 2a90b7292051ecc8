//! `uplift operations list|show|items|cancel`: the folder's durable operations, from a
//! running server over HTTP (the connection options of `uplift upgrade`). JSON on
//! stdout; exit 0 when the call worked, 1 when it did not; `show --wait` follows the
//! operation and ends like `uplift upgrade --async --wait` (0, 2 or 1).

use std::{io::Write, process::ExitCode};

use clap::{Args, Subcommand};
use reqwest::{Method, Url};

use super::{
    follow::{self, Watch, operation_url},
    remote::{EXIT_ERROR, EXIT_OK, Remote, Session},
};

#[derive(Debug, Subcommand)]
pub enum OperationsCommand {
    /// Print one page of the folder's operations, newest first, as JSON
    /// (`{count, value}`; the monitors without their result).
    List {
        #[command(flatten)]
        remote: Remote,
        /// Only operations in this status.
        #[arg(long, value_parser = ["NotStarted", "Running", "Succeeded", "Failed", "Canceled"])]
        status: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Print an operation's monitor as JSON (status, counters, and once finished its
    /// result when small enough).
    Show {
        #[command(flatten)]
        remote: Remote,
        /// The operation's id.
        id: String,
        /// Follow it to its end (progress on stderr; the timeout bounds the wait) and
        /// print its final answer in the bulk call's shape; exit 0 Succeeded, 2 items
        /// failed or canceled, 1 otherwise. Ctrl-C stops following, not the operation.
        #[arg(long)]
        wait: bool,
    },
    /// Print one page of an operation's items with their outcomes as JSON
    /// (`{count, value}`, in order).
    Items {
        #[command(flatten)]
        remote: Remote,
        /// The operation's id.
        id: String,
        /// Only items in this state.
        #[arg(long, value_parser = ["pending", "running", "updated", "unchanged", "failed", "skipped", "canceled"])]
        status: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// Cancel an operation: no new item starts, items in flight finish, the rest become
    /// `canceled`; prints its monitor. Exit 1 (the problem on stderr) when it had
    /// already finished.
    Cancel {
        #[command(flatten)]
        remote: Remote,
        /// The operation's id.
        id: String,
    },
}

/// Which page of a list.
#[derive(Debug, Args)]
pub struct Page {
    /// Entries per page, 0 to 1000 (the server's default: 100).
    #[arg(long)]
    top: Option<u64>,
    /// Entries to skip.
    #[arg(long)]
    skip: Option<u64>,
}

impl Page {
    fn add_to(&self, url: &mut Url, status: Option<&str>) {
        {
            let mut query = url.query_pairs_mut();
            if let Some(status) = status {
                query.append_pair("status", status);
            }
            if let Some(top) = self.top {
                query.append_pair("top", &top.to_string());
            }
            if let Some(skip) = self.skip {
                query.append_pair("skip", &skip.to_string());
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
    }
}

impl OperationsCommand {
    fn remote(&self) -> &Remote {
        match self {
            OperationsCommand::List { remote, .. }
            | OperationsCommand::Show { remote, .. }
            | OperationsCommand::Items { remote, .. }
            | OperationsCommand::Cancel { remote, .. } => remote,
        }
    }
}

/// `uplift operations …`: needs no configuration or database. Returns the exit code.
pub async fn main(command: OperationsCommand) -> ExitCode {
    ExitCode::from(run(&command, &mut std::io::stdout(), &mut std::io::stderr()).await)
}

pub async fn run(
    command: &OperationsCommand,
    stdout: &mut impl Write,
    stderr: &mut impl Write,
) -> u8 {
    let session = match Session::open(command.remote()).await {
        Ok(session) => session,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            return EXIT_ERROR;
        }
    };
    let (method, url) = match command {
        OperationsCommand::List { status, page, .. } => {
            let mut url = session.url("operations");
            page.add_to(&mut url, status.as_deref());
            (Method::GET, url)
        }
        OperationsCommand::Show { id, .. } => (Method::GET, operation_url(&session, id, &[])),
        OperationsCommand::Items {
            id, status, page, ..
        } => {
            let mut url = operation_url(&session, id, &["items"]);
            page.add_to(&mut url, status.as_deref());
            (Method::GET, url)
        }
        OperationsCommand::Cancel { id, .. } => {
            (Method::POST, operation_url(&session, id, &["cancel"]))
        }
    };
    let reply = match session
        .send(session.request(method, url.clone()), &url)
        .await
    {
        Ok(reply) => reply.success(),
        Err(e) => Err(e),
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            let _ = writeln!(stderr, "error: {e:#}");
            return EXIT_ERROR;
        }
    };
    if let OperationsCommand::Show {
        wait: true, remote, ..
    } = command
    {
        return match Watch::from_reply(&session, &reply) {
            Ok(watch) => {
                follow::wait_and_report(
                    &session,
                    watch,
                    remote.timeout(),
                    "uplift operations",
                    stdout,
                    stderr,
                )
                .await
            }
            Err(e) => {
                let _ = writeln!(stderr, "error: {e:#}");
                EXIT_ERROR
            }
        };
    }
    let _ = writeln!(stdout, "{}", reply.body.trim_end());
    let _ = stdout.flush();
    EXIT_OK
}
