use std::process::ExitCode;

use clap::Parser;
use uplift::{config::Settings, telemetry};

mod cli;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap exits 2 on a usage error, but `uplift upgrade` reserves 2 for "some
            // items failed": a CI gate must not read a typo as a partial upgrade.
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Upgrade(args) = command {
        // A client of a remote server: no configuration, database or logging of its
        // own, so a CI runner needs nothing but the binary and stdout holds only JSON.
        return actix_web::rt::System::new().block_on(cli::upgrade::main(args));
    }
    if let Command::Operations(command) = command {
        return actix_web::rt::System::new().block_on(cli::operations::main(command));
    }
    if let Command::Rollout(command) = command {
        return actix_web::rt::System::new().block_on(cli::rollout::main(command));
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format);
    let result = actix_web::rt::System::new().block_on(cli::run(command, settings));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
