//! `journey`: a command-line journey runner for direct and retention marketing.
//!
//! Data flows one way: files → [`journey`] model → compiled plans → entries from [`fixture`]s →
//! rendered requests ([`render`], `execute::request`) → an [`execute::executor::Executor`] →
//! entry results → [`report`] → table/files → [`exit`] code.
//!
//! The folders, each using only those above it (`tests/structure.rs` fails on a cycle):
//!
//! | folder | owns |
//! |---|---|
//! | `files`, `position`, `clock`, `identity` | paths, file:line:column, the clock, ids and hashes |
//! | [`render`] | minijinja: templates, expressions, filters, the template context |
//! | [`journey`] | the model, compiling to plans, validating graphs and templates |
//! | [`fixture`] | customers, events, mocks, expectations; NDJSON and CSV streams |
//! | `state` | the storage seam (`state::Storage`): SQLite, PostgreSQL (shared by hosts), and memory for dry-runs |
//! | `gate` | what an entry passes: suppression, holdout, consent, `exit_when`, windows, caps |
//! | [`execute`] | entries, the runner's lanes, the walk, executors (http, dry-run), retries |
//! | [`report`], `graph`, `expect` | the report and one file per format; drawings; expectations |
//! | `alert` | messages to the team's channel when a journey's results call for it |
//! | [`exit`], [`error`] | the exit code from the report; the one error type |
//! | [`command`] | one file per subcommand over one `command::prepare` |
//! | [`cli`] → [`config`] | clap, then every default and check, once; [`context`] is the environment |

pub(crate) mod alert;
pub mod cli;
pub(crate) mod clock;
pub mod command;
pub mod config;
pub mod context;
pub mod error;
pub mod execute;
pub mod exit;
pub(crate) mod expect;
pub(crate) mod files;
pub mod fixture;
pub(crate) mod gate;
pub(crate) mod graph;
pub(crate) mod identity;
pub mod journey;
pub(crate) mod listen;
pub mod output;
pub(crate) mod position;
pub(crate) mod progress;
pub(crate) mod redact;
pub mod render;
pub mod report;
pub(crate) mod state;
