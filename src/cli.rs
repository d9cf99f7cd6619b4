//! weir's command line, in the library so that an application built on weir (with its own
//! [`Handler`](crate::Handler)s) gets the same commands as the `weir` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{load_config, Server, EXIT_CONFIG};

#[derive(Parser)]
#[command(
    version,
    about = "A hardened edge gateway with a bundled prefork backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the built-in default configuration without -f)
    Run {
        /// Configuration file, in Apache httpd syntax
        #[arg(short = 'f', long = "config")]
        file: Option<PathBuf>,
    },
    /// Check the configuration: prints "Syntax OK" or every error, exit status to match
    Configtest {
        #[arg(short = 'f', long = "config")]
        file: Option<PathBuf>,
    },
}

/// Parses the command line and does what it says. `register` adds the application's handlers
/// to the server before it starts.
pub fn main_with(register: impl FnOnce(Server) -> Server) -> ExitCode {
    let cli = Cli::parse();
    let (file, test_only) = match cli.command {
        Command::Run { file } => (file, false),
        Command::Configtest { file } => (file, true),
    };
    let config = match load_config(file.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
    };
    for warning in &config.warnings {
        eprintln!("{warning}");
    }
    if test_only {
        println!("Syntax OK");
        return ExitCode::SUCCESS;
    }
    let code = register(Server::new(config)).run();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
