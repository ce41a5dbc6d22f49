//! The command line, as clap derive types; help text lives in the doc comments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run marketing journeys: render every webhook against your customers, dry-run it, test it.
#[derive(Debug, Parser)]
#[command(name = "journey", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check journey files; with --fixtures, also render every request of every entry.
    Validate(ValidateArgs),
    /// Run journeys over fixtures: send for real, or --dry-run.
    Run(Box<RunArgs>),
    /// Dry-run journeys and check every `expect` in the fixtures.
    Test(Box<TestArgs>),
    /// Draw a journey as a Mermaid, Graphviz or SVG graph.
    Graph(GraphArgs),
    /// Send dead-lettered deliveries again, with the same idempotency keys.
    Replay(ReplayArgs),
    /// A local webhook receiver on 127.0.0.1: prints requests, checks signatures, flags duplicates.
    Listen(ListenArgs),
    /// See what a state store holds, or drop what is old.
    State {
        /// What to do.
        #[command(subcommand)]
        action: StateAction,
    },
    /// Print the JSON Schema of the journey file format (for editors).
    Schema,
    /// Print shell completions.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// `journey listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The port on 127.0.0.1 (0 picks a free one and prints it).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// An environment variable holding a signing secret to verify with (repeatable).
    #[arg(long, value_name = "NAME")]
    pub secret_env: Vec<String>,
    /// A YAML file of answers: status, body, headers, delay per path; sequences; failure rates.
    #[arg(long, value_name = "FILE")]
    pub respond: Option<PathBuf>,
    /// Append each request as an NDJSON line to this file.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// `journey replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A dead-letter file written by `journey run`.
    pub file: PathBuf,
    /// Send to hosts over plain http even when the request carries a secret.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Do not ask before sending (cron has no terminal and is never asked).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also trust the certificates in this PEM file (a private CA), as `run --cacert`.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Show this client certificate (PEM), as `run --client-cert`.
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// `journey validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Journey files or folders of *.yaml / *.yml.
    #[arg(required = true)]
    pub journeys: Vec<PathBuf>,
    /// Fixture files or folders: render every request of every entry too.
    #[arg(long = "fixtures", short = 'f')]
    pub fixtures: Vec<PathBuf>,
    /// Treat warnings (unreachable steps) as errors.
    #[arg(long)]
    pub strict: bool,
    /// The delimiter of CSV fixtures, as `run` reads them: one character, or `\t` (or `tab`).
    #[arg(long, default_value = ",", value_parser = parse_delimiter)]
    pub csv_delimiter: u8,
    /// A YAML file of `alerts:` for every journey (checked like the journeys' own).
    #[arg(long = "alert", value_name = "FILE")]
    pub alerts: Vec<PathBuf>,
    /// Text, or one JSON document for scripts and CI.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Flags shared by `run` and `test`.
#[derive(Debug, Args)]
pub struct CommonRunArgs {
    /// Journey files or folders of *.yaml / *.yml.
    #[arg(required = true)]
    pub journeys: Vec<PathBuf>,
    /// Fixture files or folders (customers, events, mocks, expect).
    #[arg(long = "fixtures", short = 'f')]
    pub fixtures: Vec<PathBuf>,
    /// Entries in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Only this customer (repeatable).
    #[arg(long = "customer")]
    pub customers: Vec<String>,
    /// Only the first N new entries (parked ones that are due still resume).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Freeze the clock at this RFC 3339 instant.
    #[arg(long)]
    pub now: Option<String>,
    /// Seed of the retry jitter.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print each rendered request.
    #[arg(long, value_enum)]
    pub show: Option<Show>,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Write a JUnit XML report to this file.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Write one self-contained HTML page of the run: each journey's canvas with its counts,
    /// per-step figures, and each customer's path, requests and responses.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// At most this many entries in detail on the --html page (failed and invalid ones first).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub html_entries: usize,
    /// Write the run's counters and latency histograms for Prometheus (node_exporter's
    /// textfile collector) to this file, at the end and every 30 s.
    #[arg(long, value_name = "FILE.prom")]
    pub metrics: Option<PathBuf>,
    /// Print nothing but errors.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Write one NDJSON line per attempt to this file (a dry-run's are marked `mocked`).
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Include request and response bodies in the --log lines (secret fields masked).
    #[arg(long)]
    pub log_bodies: bool,
    /// Only the customers of shard K of N (sha256 of the id): N hosts split one export.
    #[arg(long, value_name = "K/N", value_parser = crate::execute::entries::parse_shard)]
    pub shard: Option<(u64, u64)>,
    /// A YAML file of `alerts:` for every journey of the run: who to tell when it fails.
    #[arg(long = "alert", value_name = "FILE")]
    pub alerts: Vec<PathBuf>,
    /// The delimiter of CSV fixtures: one character, or `\t` (or `tab`) for tab-separated files.
    #[arg(long, default_value = ",", value_parser = parse_delimiter)]
    pub csv_delimiter: u8,
    /// What stdout carries at the end.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `journey run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flags shared with `test`.
    #[command(flatten)]
    pub common: CommonRunArgs,
    /// Send nothing: answer from mocks, assume success where none matches.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation on a terminal.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The state store: a SQLite file, or postgres://USER@HOST:PORT/DB[?schema=NAME] shared by
    /// several hosts (default: .journey/state.sqlite beside the first journey; or JOURNEY_STATE).
    #[arg(long, value_name = "FILE|URL", value_hint = clap::ValueHint::FilePath)]
    pub state: Option<String>,
    /// Run without the state store: a re-run sends again.
    #[arg(long, conflicts_with = "state")]
    pub no_state: bool,
    /// How long a PostgreSQL store may stay away mid-run (no new attempts meanwhile) before the
    /// run stops as SIGTERM would, with exit 3.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::journey::duration::parse)]
    pub state_timeout: std::time::Duration,
    /// Walk failed entries on from their failed step.
    #[arg(long)]
    pub retry_failed: bool,
    /// Only resume parked waits that are due (no fixtures needed).
    #[arg(long)]
    pub resume_only: bool,
    /// At most this many attempts over the whole run, e.g. `50/s`.
    #[arg(long, value_name = "N/s", value_parser = crate::journey::duration::parse_rate)]
    pub rate: Option<f64>,
    /// Stop starting new attempts after this long (e.g. `50m`), as SIGTERM would.
    #[arg(long, value_name = "DURATION", value_parser = crate::journey::duration::parse)]
    pub max_duration: Option<std::time::Duration>,
    /// Count waits as elapsed instead of parking entries.
    #[arg(long)]
    pub fast_forward: bool,
    /// Where unhandled failures go (default: .journey/dead-letter.ndjson beside the first journey).
    #[arg(long)]
    pub dead_letter: Option<PathBuf>,
    /// Send to hosts over plain http even when the request carries a secret.
    #[arg(long)]
    pub allow_insecure_http: bool,
    /// Exit 1 when more than this percentage of deliveries failed.
    #[arg(long, value_name = "PCT")]
    pub max_failure_rate: Option<f64>,
    /// Exit 1 when no customer entered any journey.
    #[arg(long)]
    pub fail_if_empty: bool,
    /// A file of customer ids, emails or sha256 of emails (one a line): never entered.
    #[arg(long, value_name = "FILE")]
    pub suppress: Option<PathBuf>,
    /// Write the real responses as a fixture `mocks:` section, to replay the run with --dry-run.
    #[arg(long, value_name = "FILE")]
    pub record_mocks: Option<PathBuf>,
    /// Send through this proxy (every scheme), over HTTP_PROXY, HTTPS_PROXY and ALL_PROXY;
    /// NO_PROXY still applies, and loopback is never proxied.
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    pub proxy: Option<String>,
    /// Send to every target directly, whatever the environment's proxies say.
    #[arg(long)]
    pub no_proxy: bool,
    /// Also trust the certificates in this PEM file (a private CA), beside the system's.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Show this client certificate (PEM) to servers that ask for one (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// The private key (PEM) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

/// `journey test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// The flags shared with `run`.
    #[command(flatten)]
    pub common: CommonRunArgs,
}

/// `journey graph`.
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// One journey file.
    pub journey: PathBuf,
    /// The graph language.
    #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
    pub format: GraphFormat,
}

/// `--show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Show {
    /// What happened to each entry, step by step, and why it ended as it did.
    Paths,
    /// Method, URL, headers and pretty body of each request.
    Requests,
    /// A runnable curl command per request (secrets as shell variable references).
    Curl,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// The results table.
    Table,
    /// One JSON document (the report).
    Json,
}

/// `--format` of `graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Mermaid flowchart.
    Mermaid,
    /// Graphviz dot.
    Dot,
    /// SVG, laid out by journey itself (the HTML report's canvas, without counts).
    Svg,
}

/// `journey state ...`.
#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Entries by status and outcome, parked waits, deliveries in doubt.
    Show {
        /// The journeys whose store to read, as `run` takes them: the store is
        /// `.journey/state.sqlite` beside the first (default: the current folder).
        journeys: Vec<PathBuf>,
        /// The state store, a file or a postgres:// URL (default: JOURNEY_STATE, else the one
        /// `run` would use).
        #[arg(long, value_name = "FILE|URL", value_hint = clap::ValueHint::FilePath)]
        state: Option<String>,
        /// Text, or one JSON document for scripts.
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Delete ended entries last updated longer ago than --older-than.
    Prune {
        /// The journeys whose store to prune, as `run` takes them.
        journeys: Vec<PathBuf>,
        /// The state store, a file or a postgres:// URL (default: JOURNEY_STATE, else the one
        /// `run` would use).
        #[arg(long, value_name = "FILE|URL", value_hint = clap::ValueHint::FilePath)]
        state: Option<String>,
        /// How old an ended entry must be to go.
        #[arg(long, default_value = "90d", value_parser = crate::journey::duration::parse)]
        older_than: std::time::Duration,
    },
    /// Copy a store between SQLite and PostgreSQL (the target must be empty), holding both.
    Copy {
        /// The store to copy: a file or a postgres:// URL.
        #[arg(value_name = "FROM")]
        from: String,
        /// Where to: a postgres:// URL or a new file.
        #[arg(value_name = "TO")]
        to: String,
    },
}

/// `--csv-delimiter`: one ASCII character, or `\t` / `tab`.
fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "\\t" | "tab" => Ok(b'\t'),
        _ if text.len() == 1 && text.is_ascii() => Ok(text.as_bytes()[0]),
        _ => Err(format!(
            "give one ASCII character, like `;` or `|`, or `\\t` for tab-separated files, not `{text}`"
        )),
    }
}
