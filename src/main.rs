//! weir's command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "weir",
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (file, test_only) = match cli.command {
        Command::Run { file } => (file, false),
        Command::Configtest { file } => (file, true),
    };
    let config = match weir::load_config(file.as_deref()) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(weir::EXIT_CONFIG as u8);
        }
    };
    if test_only {
        println!("Syntax OK");
        return ExitCode::SUCCESS;
    }
    ExitCode::from(weir::Server::new(config).run() as u8)
}
