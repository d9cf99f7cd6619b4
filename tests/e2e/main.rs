//! End-to-end tests: each starts the real weir binary on ephemeral loopback ports.

mod support;

mod aliases;
mod apache_config;
mod apps;
mod attacks;
mod auth_basic;
mod bodies;
mod bodies_edge;
mod cert_data;
mod cgi;
mod config;
mod contract;
mod directory_sections;
mod edge_rules;
mod error_documents;
mod fairness;
mod fault_table;
mod faults;
mod h2_parity;
mod h2_stalls;
mod hardening15;
mod httpoxy;
mod ipv6_sources;
mod observability;
mod one_meaning;
mod operations;
mod pool;
mod privileges;
mod processes;
mod proxy_trust;
mod serving;
mod site_error_logs;
mod spill;
mod static_files;
mod vhosts;
