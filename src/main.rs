use std::process::ExitCode;

use clap::Parser;
use uplift::{
    cli::{self, Cli, Command},
    config::Settings,
    telemetry,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(settings.log_format);
    let result = actix_web::rt::System::new()
        .block_on(cli::run(cli.command.unwrap_or(Command::Serve), settings));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
