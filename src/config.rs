//! From the command line and the captured environment to settings: every default and check, once.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cli::{self, Cli, Command, GraphFormat, Output, Show};
use crate::context::RunContext;
use crate::execute::entries::Selection;
use crate::report::Mode;

/// What to do, fully decided.
#[derive(Debug)]
pub enum Config {
    /// `validate`.
    Validate(ValidateConfig),
    /// `run --dry-run` and `test`.
    Run(RunConfig),
    /// `graph`.
    Graph {
        /// The journey file.
        journey: PathBuf,
        /// The graph language.
        format: GraphFormat,
    },
}

/// `validate` settings.
#[derive(Debug)]
pub struct ValidateConfig {
    /// Journey paths.
    pub journeys: Vec<PathBuf>,
    /// Fixture paths (may be empty).
    pub fixtures: Vec<PathBuf>,
    /// Warnings are errors.
    pub strict: bool,
    /// Environment variables.
    pub env: HashMap<String, String>,
    /// The clock.
    pub now: DateTime<Utc>,
}

/// `run` and `test` settings.
#[derive(Debug)]
pub struct RunConfig {
    /// Dry-run or test (real runs come later).
    pub mode: Mode,
    /// Journey paths.
    pub journeys: Vec<PathBuf>,
    /// Fixture paths.
    pub fixtures: Vec<PathBuf>,
    /// Which entries.
    pub selection: Selection,
    /// The run's clock.
    pub now: DateTime<Utc>,
    /// Jitter seed.
    pub seed: u64,
    /// Entries in flight.
    pub concurrency: usize,
    /// `--show`.
    pub show: Option<Show>,
    /// `--report`.
    pub report: Option<PathBuf>,
    /// `--junit`.
    pub junit: Option<PathBuf>,
    /// `--quiet`.
    pub quiet: bool,
    /// `--output`.
    pub output: Output,
    /// Colour on stdout.
    pub color: bool,
    /// A progress bar on stderr.
    pub progress: bool,
    /// Environment variables.
    pub env: HashMap<String, String>,
}

/// Builds the config; an `Err` is a usage error (exit 2).
pub fn from_cli(cli: Cli, ctx: &RunContext) -> Result<Config, String> {
    match cli.command {
        Command::Validate(a) => Ok(Config::Validate(ValidateConfig {
            journeys: a.journeys,
            fixtures: a.fixtures,
            strict: a.strict,
            env: ctx.vars.clone(),
            now: Utc::now(),
        })),
        Command::Run(a) => {
            if !a.dry_run {
                return Err("sending for real is not available in this version yet: add `--dry-run` to render and walk every entry without sending".into());
            }
            run_config(a.common, Mode::DryRun, ctx)
        }
        Command::Test(a) => run_config(a.common, Mode::Test, ctx),
        Command::Graph(a) => Ok(Config::Graph {
            journey: a.journey,
            format: a.format,
        }),
    }
}

fn run_config(a: cli::CommonRunArgs, mode: Mode, ctx: &RunContext) -> Result<Config, String> {
    let now = match &a.now {
        Some(t) => crate::clock::parse(t).map_err(|e| format!("--now: {e}"))?,
        None => Utc::now(),
    };
    if a.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    Ok(Config::Run(RunConfig {
        mode,
        journeys: a.journeys,
        fixtures: a.fixtures,
        selection: Selection {
            customers: a.customers,
            limit: a.limit,
        },
        now,
        seed: a.seed,
        concurrency: a.concurrency,
        show: a.show,
        report: a.report,
        junit: a.junit,
        quiet: a.quiet,
        output: a.output,
        color: ctx.color(),
        progress: ctx.progress_bar() && !a.quiet,
        env: ctx.vars.clone(),
    }))
}
