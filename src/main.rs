//! The `weir` binary: the command line, with no application handlers of its own.

fn main() -> std::process::ExitCode {
    weir::cli::main_with(|server| server)
}
