//! `tenantry`: the one binary. Parses the command line, opens the configuration and the
//! catalog, runs the command, and turns errors into a message and an exit code:
//! 0 success, 1 an operation failed, 2 bad input or configuration (nothing was written).

mod app_files;
mod backend;
mod cli;
mod commands;
mod context;
mod exit;
mod output;
mod progress;

use clap::Parser;
use cli::{Cli, LogFormat};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn init_logging(cli: &Cli) {
    let default = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => builder.json().with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match commands::run(&cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit::code_of(&e);
            eprintln!("error: {}", exit::describe(&e));
            ExitCode::from(code)
        }
    }
}
