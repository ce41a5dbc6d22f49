//! `journey`: a command-line journey runner for direct and retention marketing.
//!
//! Data flows one way: files → [`journey`] model → compiled plans → entries from [`fixture`]s →
//! rendered requests ([`render`], [`execute::request`]) → an [`execute::executor::Executor`] →
//! entry results → [`report`] → table/files → [`exit`] code.

pub mod cli;
pub mod clock;
pub mod command;
pub mod config;
pub mod context;
pub mod error;
pub mod execute;
pub mod exit;
pub mod expect;
pub mod files;
pub mod fixture;
pub mod gate;
pub mod graph;
pub mod identity;
pub mod journey;
pub mod listen;
pub mod output;
pub mod position;
pub mod progress;
pub mod redact;
pub mod render;
pub mod report;
pub mod state;
