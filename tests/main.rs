//! End-to-end tests: the built `journey` binary on real files, asserting what a user sees.

mod support;

mod alerts;
mod delivery;
mod dry_run;
mod examples;
mod fuzz;
mod hardening;
mod html;
mod listen;
mod logic;
mod metrics;
mod postgres;
mod proxy;
mod rendering;
mod reports;
mod secrets;
mod shares;
mod snapshots;
mod state;
mod store_files;
mod streams;
mod structure;
mod test_command;
mod tls;
mod tools;
mod validation;
