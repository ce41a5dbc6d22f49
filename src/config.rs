//! From the command line and the captured environment to settings: every default and check, once.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use crate::cli::{self, Cli, Command, GraphFormat, Output, Show};
use crate::context::RunContext;
use crate::execute::entries::Selection;
use crate::report::Mode;
use crate::state::{Location, StorePath};

/// What to do, fully decided.
#[derive(Debug)]
pub enum Config {
    /// `validate`.
    Validate(ValidateConfig),
    /// `run --dry-run` and `test`.
    Run(Box<RunConfig>),
    /// `replay`.
    Replay(Box<ReplayConfig>),
    /// `state show|prune|copy`.
    State(Box<StateConfig>),
    /// `schema`.
    Schema,
    /// `completions`.
    Completions(clap_complete::Shell),
    /// `listen`.
    Listen {
        /// The port.
        port: u16,
        /// The signing secrets' values.
        secrets: Vec<String>,
        /// The answers file.
        respond: Option<PathBuf>,
        /// The record file.
        record: Option<PathBuf>,
    },
    /// `graph`.
    Graph {
        /// The journey file.
        journey: PathBuf,
        /// The graph language.
        format: GraphFormat,
    },
}

/// `journey state ...`, fully decided.
#[derive(Debug)]
pub enum StateConfig {
    /// `state show`: text, or one JSON document.
    Show(Location, Output, crate::state::Opening),
    /// `state prune --older-than`.
    Prune(Location, std::time::Duration, crate::state::Opening),
    /// `state copy FROM TO`.
    Copy(Location, Location, crate::state::Opening),
}

/// `validate` settings: a quiet dry-run of the fixtures (when there are any), checked strictly.
#[derive(Debug)]
pub struct ValidateConfig {
    /// Warnings are errors.
    pub strict: bool,
    /// Text, or one JSON document.
    pub output: Output,
    /// The dry-run that renders every request (its fixtures may be empty: then only the
    /// journeys are checked).
    pub dry: Box<RunConfig>,
}

/// Which kind of run, with what only a real run has.
#[derive(Debug)]
pub enum RunKind {
    /// `run --dry-run`: answered by mocks.
    DryRun,
    /// `test`: a dry-run whose expectations decide.
    Test,
    /// `run`: sent for real.
    Real(Box<RealConfig>),
}

impl RunConfig {
    /// The report's mode.
    pub fn mode(&self) -> Mode {
        match self.kind {
            RunKind::DryRun => Mode::DryRun,
            RunKind::Test => Mode::Test,
            RunKind::Real(_) => Mode::Run,
        }
    }

    /// What only a real run has; `None` for a dry-run or a test.
    pub fn real(&self) -> Option<&RealConfig> {
        match &self.kind {
            RunKind::Real(real) => Some(real),
            RunKind::DryRun | RunKind::Test => None,
        }
    }
}

/// `run` and `test` settings.
#[derive(Debug)]
pub struct RunConfig {
    /// Dry-run, test or real run.
    pub kind: RunKind,
    /// `--max-failure-rate`.
    pub max_failure_rate: Option<f64>,
    /// `--fail-if-empty`.
    pub fail_if_empty: bool,
    /// `--suppress`.
    pub suppress: Option<PathBuf>,
    /// `--csv-delimiter` (an ASCII character).
    pub csv_delimiter: u8,
    /// `--alert FILE`s: alerts for every journey.
    pub alerts: Vec<PathBuf>,
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
    /// `JOURNEY_LANES`: how many lanes (threads) run the entries, instead of the default.
    pub lanes: Option<usize>,
    /// `--show`.
    pub show: Option<Show>,
    /// `--report`.
    pub report: Option<PathBuf>,
    /// `--junit`.
    pub junit: Option<PathBuf>,
    /// `--html`: the run as one page.
    pub html: Option<PathBuf>,
    /// `--html-entries`: at most this many entries in detail on the page.
    pub html_entries: usize,
    /// `--metrics`: Prometheus text for node_exporter's textfile collector.
    pub metrics: Option<PathBuf>,
    /// `--quiet`.
    pub quiet: bool,
    /// `--output`.
    pub output: Output,
    /// `--log`: one NDJSON line per attempt (also in dry-runs and `test`).
    pub log: Option<PathBuf>,
    /// `--log-bodies`.
    pub log_bodies: bool,
    /// Colour on stdout.
    pub color: bool,
    /// The width the results table fits (`COLUMNS`, else the terminal's).
    pub width: Option<u16>,
    /// A bar, a heartbeat line or nothing on stderr.
    pub progress: crate::progress::Progress,
    /// Environment variables.
    pub env: HashMap<String, String>,
}

/// What only a real run needs.
#[derive(Debug)]
pub struct RealConfig {
    /// Ask before sending (a terminal, and no `--yes`).
    pub ask: bool,
    /// `--fast-forward`: waits count as elapsed.
    pub fast_forward: bool,
    /// Where dead letters go.
    pub dead_letter: PathBuf,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// `--record-mocks`.
    pub record_mocks: Option<PathBuf>,
    /// The state store (`None` with `--no-state`).
    pub state: Option<Location>,
    /// `--state-timeout`.
    pub state_timeout: std::time::Duration,
    /// `--retry-failed`.
    pub retry_failed: bool,
    /// `--resume-only`.
    pub resume_only: bool,
    /// `--max-duration`.
    pub max_duration: Option<std::time::Duration>,
    /// `--rate`, attempts a second.
    pub rate: Option<f64>,
    /// The proxies requests go through (`--proxy`, `--no-proxy`, else the environment's).
    pub proxies: crate::execute::proxy::Proxies,
    /// `--cacert`: more certificates to trust (PEM).
    pub cacert: Option<PathBuf>,
    /// `--client-cert` and `--client-key`: the client certificate for mutual TLS (PEM).
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// `replay` settings.
#[derive(Debug)]
pub struct ReplayConfig {
    /// The dead-letter file.
    pub file: PathBuf,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// `--quiet`.
    pub quiet: bool,
    /// Ask before sending (a terminal, and no `--yes`).
    pub ask: bool,
    /// Environment variables.
    pub env: HashMap<String, String>,
    /// The environment's proxies.
    pub proxies: crate::execute::proxy::Proxies,
    /// `--cacert`.
    pub cacert: Option<PathBuf>,
    /// `--client-cert` and `--client-key`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// The most entries in flight: each holds a slot and its buffers, and a partner would see this
/// many connections.
pub const MAX_CONCURRENCY: usize = 10_000;

/// Builds the config; an `Err` is a usage error (exit 2).
pub fn from_cli(cli: Cli, ctx: &RunContext) -> Result<Config, String> {
    match cli.command {
        Command::Validate(a) => validate(a, ctx),
        Command::Run(a) => run(*a, ctx),
        Command::Test(a) => {
            needs_fixtures(&a.common, &RunKind::Test)?;
            run_config(a.common, RunKind::Test, ctx).map(|c| Config::Run(Box::new(c)))
        }
        Command::Schema => Ok(Config::Schema),
        Command::State { action } => state(action, ctx),
        Command::Completions { shell } => Ok(Config::Completions(shell)),
        Command::Listen(a) => listen(a, ctx),
        Command::Replay(a) => Ok(Config::Replay(Box::new(ReplayConfig {
            file: a.file,
            allow_insecure_http: a.allow_insecure_http,
            quiet: a.quiet,
            ask: ctx.stdin_tty && !a.yes,
            env: ctx.vars.clone(),
            proxies: crate::execute::proxy::Proxies::from_env(&ctx.vars)?,
            cacert: a.cacert,
            client_cert: a.client_cert.zip(a.client_key),
        }))),
        Command::Graph(a) => Ok(Config::Graph {
            journey: a.journey,
            format: a.format,
        }),
    }
}

fn run(a: cli::RunArgs, ctx: &RunContext) -> Result<Config, String> {
    if a.dry_run && a.record_mocks.is_some() {
        return Err(
            "--record-mocks records the responses of a real run; leave out `--dry-run`".into(),
        );
    }
    if a.common.fixtures.is_empty() && (a.dry_run || !a.resume_only) {
        return Err("--fixtures is required (only a real `--resume-only` run needs none)".into());
    }
    let kind = match a.dry_run {
        true => RunKind::DryRun,
        false => RunKind::Real(Box::new(real_config(&a, ctx)?)),
    };
    let mut c = run_config(a.common, kind, ctx)?;
    c.max_failure_rate = a.max_failure_rate;
    c.fail_if_empty = a.fail_if_empty;
    c.suppress = a.suppress;
    Ok(Config::Run(Box::new(c)))
}

fn state(action: cli::StateAction, ctx: &RunContext) -> Result<Config, String> {
    let opening = crate::state::Opening {
        vault: Default::default(),
        env: ctx.vars.clone(),
        timeout: std::time::Duration::from_secs(30),
        home: crate::state::Home::Thread,
    };
    Ok(Config::State(Box::new(match action {
        cli::StateAction::Show {
            journeys,
            state,
            output,
        } => StateConfig::Show(store_path(state, &journeys, ctx)?, output, opening),
        cli::StateAction::Prune {
            journeys,
            state,
            older_than,
        } => StateConfig::Prune(store_path(state, &journeys, ctx)?, older_than, opening),
        cli::StateAction::Copy { from, to } => StateConfig::Copy(
            Location::given(&from, &ctx.vars)?,
            Location::given(&to, &ctx.vars)?,
            opening,
        ),
    })))
}

/// The store a command names: `--state`, else `JOURNEY_STATE`, else `.journey/state.sqlite`
/// beside the first journey (a file's folder, or the folder given), as `run` and `state` both
/// find it. A `postgres://` URL names a PostgreSQL store.
fn store_path(
    given: Option<String>,
    journeys: &[PathBuf],
    ctx: &RunContext,
) -> Result<Location, String> {
    match given.or_else(|| ctx.vars.get("JOURNEY_STATE").cloned()) {
        Some(text) => Location::given(&text, &ctx.vars),
        None => Ok(Location::File(StorePath::Default(
            journey_home(journeys).join(".journey").join("state.sqlite"),
        ))),
    }
}

/// The folder of the first journey: where its `.journey/` folder goes.
fn journey_home(journeys: &[PathBuf]) -> PathBuf {
    let first = journeys.first().cloned().unwrap_or_default();
    if first.is_dir() {
        first
    } else {
        first.parent().map(PathBuf::from).unwrap_or_default()
    }
}

fn listen(a: cli::ListenArgs, ctx: &RunContext) -> Result<Config, String> {
    let secrets = a
        .secret_env
        .iter()
        .map(|name| {
            ctx.vars.get(name).cloned().ok_or_else(|| {
                format!("--secret-env {name}: the environment variable `{name}` is not set")
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Config::Listen {
        port: a.port,
        secrets,
        respond: a.respond,
        record: a.record,
    })
}

fn real_config(a: &cli::RunArgs, ctx: &RunContext) -> Result<RealConfig, String> {
    if let Some(rate) = a.max_failure_rate
        && !(0.0..=100.0).contains(&rate)
    {
        return Err(format!(
            "--max-failure-rate {rate}: give a percentage from 0 to 100"
        ));
    }
    if a.resume_only && a.no_state {
        return Err(
            "--resume-only resumes parked waits from the state store; leave out --no-state".into(),
        );
    }
    let home = journey_home(&a.common.journeys);
    let proxies = match (&a.proxy, a.no_proxy) {
        (_, true) => crate::execute::proxy::Proxies::none(),
        (Some(url), false) => crate::execute::proxy::Proxies::given(url, &ctx.vars)?,
        (None, false) => crate::execute::proxy::Proxies::from_env(&ctx.vars)?,
    };
    Ok(RealConfig {
        proxies,
        cacert: a.cacert.clone(),
        client_cert: a.client_cert.clone().zip(a.client_key.clone()),
        ask: ctx.stdin_tty && !a.yes,
        fast_forward: a.fast_forward,
        dead_letter: a
            .dead_letter
            .clone()
            .unwrap_or_else(|| home.join(".journey").join("dead-letter.ndjson")),
        allow_insecure_http: a.allow_insecure_http,
        record_mocks: a.record_mocks.clone(),
        state: match a.no_state {
            true => None,
            false => Some(store_path(a.state.clone(), &a.common.journeys, ctx)?),
        },
        state_timeout: a.state_timeout,
        retry_failed: a.retry_failed,
        resume_only: a.resume_only,
        max_duration: a.max_duration,
        rate: a.rate,
    })
}

/// `validate` runs as a quiet dry-run with every default of `run`.
fn validate(a: cli::ValidateArgs, ctx: &RunContext) -> Result<Config, String> {
    let common = cli::CommonRunArgs {
        journeys: a.journeys,
        fixtures: a.fixtures,
        concurrency: 32,
        customers: vec![],
        limit: None,
        now: None,
        seed: 0,
        show: None,
        report: None,
        junit: None,
        html: None,
        html_entries: 0,
        metrics: None,
        quiet: false,
        log: None,
        log_bodies: false,
        shard: None,
        alerts: a.alerts,
        csv_delimiter: a.csv_delimiter,
        output: Output::Table,
    };
    let mut dry = run_config(common, RunKind::DryRun, ctx)?;
    dry.progress = crate::progress::Progress::Silent;
    Ok(Config::Validate(ValidateConfig {
        strict: a.strict,
        output: a.output,
        dry: Box::new(dry),
    }))
}

/// The most lanes `JOURNEY_LANES` may ask for.
const MAX_LANES: usize = 256;

/// `JOURNEY_LANES`, when set: the lanes (threads) that run the entries.
fn lanes(ctx: &RunContext) -> Result<Option<usize>, String> {
    let Some(text) = ctx.vars.get("JOURNEY_LANES") else {
        return Ok(None);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LANES).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "JOURNEY_LANES={text}: give a number of lanes from 1 to {MAX_LANES}, or unset it"
        )),
    }
}

/// `test` reads fixtures (`run` says so itself: only a real `--resume-only` run may have none).
fn needs_fixtures(a: &cli::CommonRunArgs, kind: &RunKind) -> Result<(), String> {
    match a.fixtures.is_empty() && !matches!(kind, RunKind::Real(_)) {
        true => Err("--fixtures is required: name the fixture files or folders".into()),
        false => Ok(()),
    }
}

fn run_config(a: cli::CommonRunArgs, kind: RunKind, ctx: &RunContext) -> Result<RunConfig, String> {
    let now = match &a.now {
        Some(t) => crate::clock::parse(t).map_err(|e| format!("--now: {e}"))?,
        None => Utc::now(),
    };
    if !(1..=MAX_CONCURRENCY).contains(&a.concurrency) {
        return Err(format!(
            "--concurrency {}: give a number from 1 to {MAX_CONCURRENCY}",
            a.concurrency
        ));
    }
    let lanes = lanes(ctx)?;
    Ok(RunConfig {
        kind,
        max_failure_rate: None,
        fail_if_empty: false,
        suppress: None,
        csv_delimiter: a.csv_delimiter,
        alerts: a.alerts,
        journeys: a.journeys,
        fixtures: a.fixtures,
        selection: Selection {
            customers: a.customers,
            limit: a.limit,
            shard: a.shard,
        },
        now,
        seed: a.seed,
        concurrency: a.concurrency,
        lanes,
        // `--quiet` prints nothing but errors: not the requests either.
        show: a.show.filter(|_| !a.quiet),
        report: a.report,
        junit: a.junit,
        html: a.html,
        html_entries: a.html_entries,
        metrics: a.metrics,
        quiet: a.quiet,
        output: a.output,
        log: a.log,
        log_bodies: a.log_bodies,
        color: ctx.color(),
        width: ctx.width(),
        progress: crate::progress::Progress::choose(ctx.progress_bar(), a.quiet),
        env: ctx.vars.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn config(args: &[&str], ctx: &RunContext) -> Result<Config, String> {
        let mut all = vec!["journey"];
        all.extend_from_slice(args);
        all.extend(["--fixtures", "f.yaml"]);
        from_cli(Cli::parse_from(all), ctx)
    }

    fn run_config(args: &[&str], ctx: &RunContext) -> RunConfig {
        match config(args, ctx) {
            Ok(Config::Run(c)) => *c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dry_run_has_no_real_part_and_quiet_shows_nothing() {
        let ctx = RunContext::default();
        let c = run_config(
            &["run", "--dry-run", "j.yaml", "--show", "paths", "-q"],
            &ctx,
        );
        assert_eq!(c.mode(), Mode::DryRun);
        assert!(c.real().is_none());
        assert_eq!(c.show, None, "--quiet prints no --show output");
        assert_eq!(c.progress, crate::progress::Progress::Silent);
        assert!(!c.color);
    }

    #[test]
    fn concurrency_out_of_range_is_a_usage_error() {
        let ctx = RunContext::default();
        for n in ["0", "10001"] {
            let e = config(&["run", "--dry-run", "j.yaml", "--concurrency", n], &ctx).unwrap_err();
            assert!(e.contains("give a number from 1 to 10000"), "{e}");
        }
    }

    #[test]
    fn a_real_run_asks_on_a_terminal_only_and_finds_its_store() {
        let tty = RunContext {
            stdin_tty: true,
            ..RunContext::default()
        };
        let c = run_config(&["run", "journeys/j.yaml"], &tty);
        let real = c.real().expect("a real run");
        assert!(real.ask, "asked on a terminal");
        assert!(real.state.is_some(), "a store by default");
        let c = run_config(&["run", "journeys/j.yaml", "--yes", "--no-state"], &tty);
        let real = c.real().expect("a real run");
        assert!(!real.ask && real.state.is_none());
        let cron = run_config(&["run", "journeys/j.yaml"], &RunContext::default());
        assert!(
            !cron.real().expect("a real run").ask,
            "cron has no terminal"
        );
    }
}
