//! weir-prefork: the prefork pool and the process machinery every single-threaded role shares.
//!
//! Runs in the supervisor (the fork primitive, signals, privileges), in the pool master and in
//! every worker. Strictly single-threaded: nothing here starts a thread, and [`fork::fork_child`]
//! refuses to fork a process that has more than one. This is the only crate that forks.
//!
//! Signals in single-threaded roles are blocked and read from a `signalfd` in the role's poll loop
//! ([`signals::SignalReader`]); workers, which block in `accept()`, instead take SIGTERM through a
//! handler that only sets a flag and interrupts the `accept()`.

pub mod fork;
pub mod master;
pub mod privileges;
pub mod signals;
pub mod title;
pub mod worker;

pub use fork::{fork_child, Role};
pub use master::PoolSettings;
pub use weir_scoreboard::{memory, Scoreboard, Slot, State};
pub use worker::{AfterRequest, ConnectionHandler};
