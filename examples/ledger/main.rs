//! ledger: a telemetry-ingest application built on weir as a library.
//!
//! `POST /ingest` appends the body, keyed by its `X-Request-Id`, to an append-only file and
//! fsyncs before answering 201; a repeated id answers 200 without appending again, so a device
//! that retries after a lost answer never records a reading twice. `GET /ingest/count` answers
//! the number of records. The file is `$LEDGER_FILE` (default `ledger.log`).
//!
//! Run it like weir: `cargo run --example ledger -- run -f conf/weir.conf`.

mod ledger;

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let path =
        std::env::var_os("LEDGER_FILE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("ledger.log"));
    weir::cli::main_with(|server| server.handler("/ingest", ledger::Ledger::new(path)))
}
