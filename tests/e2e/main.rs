//! End-to-end tests: each starts the real weir binary on ephemeral loopback ports.

mod support;

mod apps;
mod attacks;
mod cgi;
mod config;
mod edge_rules;
mod fairness;
mod observability;
mod operations;
mod pool;
mod processes;
mod serving;
mod static_files;
