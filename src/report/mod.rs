//! The run report: one model, filled as results arrive, then one file per output format.

pub(crate) mod curl;
pub(crate) mod html;
pub(crate) mod json;
pub(crate) mod junit;
pub(crate) mod metrics;
pub(crate) mod mocks;
pub(crate) mod ndjson;
pub(crate) mod paths;
pub(crate) mod show;
pub(crate) mod table;
pub mod tally;

use std::collections::BTreeMap;

use serde::Serialize;

pub use tally::Tally;

/// Which command produced the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `run --dry-run`.
    DryRun,
    /// `run`.
    Run,
    /// `test`.
    Test,
}

/// Everything a run reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// 2 for this layout (1 had no attempts, answers, rates, p99 or max).
    pub schema_version: u32,
    /// The run's id, on every report, log and dead-letter line.
    pub run_id: String,
    /// What ran.
    pub mode: Mode,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Per-step counters, journey by journey.
    pub steps: Vec<StepStats>,
    /// Entry and delivery totals.
    pub totals: Totals,
    /// The first 100 distinct errors with their counts.
    pub errors: Vec<ErrorGroup>,
    /// Distinct warnings with their counts.
    pub warnings: Vec<ErrorGroup>,
    /// Things the run says once (placeholders used, …).
    pub notices: Vec<String>,
    /// Thresholds crossed (`--max-failure-rate`, `--fail-if-empty`).
    pub thresholds: Vec<String>,
    /// The state store used, if any.
    pub state: Option<String>,
    /// This host's share of each rate limit it divided with other hosts (`--shard K/N`,
    /// `rate_share: dynamic`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_shares: Vec<crate::execute::protect::ShareUsed>,
    /// Entries per journey that ended failed or invalid before any step (an event for an
    /// unknown customer, a trigger's `where` that cannot be evaluated).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub failed_outside_steps: BTreeMap<String, u64>,
    /// What a stopped run left undone (`--max-duration`, a signal), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<Left>,
    /// The alerts that fired, and what became of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertOutcome>,
    /// Expectation results, for `test`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expectations: Vec<ExpectationResult>,
    /// What stopped the run, if anything (its exit code; `left` says what it left).
    #[serde(skip)]
    pub stopped_by: Option<crate::execute::stop::StopReason>,
    /// The state store could not write what the run recorded (exit 3).
    #[serde(skip)]
    pub store_failed: bool,
    /// Entries by journey and outcome, for `--metrics`.
    #[serde(skip)]
    pub entries_by_journey: BTreeMap<(String, String), u64>,
}

/// What a stopped run left undone: a later run takes it up.
#[derive(Debug, Clone, Serialize)]
pub struct Left {
    /// Why the run stopped: `max_duration`, `sigint`, `sigterm` or `state_store`.
    pub reason: String,
    /// Entries not finished, when the input's size is known.
    pub entries: Option<u64>,
}

/// Counters of one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepStats {
    /// The journey name.
    pub journey: String,
    /// The step id.
    pub step: String,
    /// The step kind.
    pub kind: String,
    /// Entries that reached the step.
    pub entered: u64,
    /// Successful passes.
    pub ok: u64,
    /// Failures after retries.
    pub failed: u64,
    /// Skipped for lack of consent.
    pub suppressed: u64,
    /// Dry-run: no mock, success assumed.
    pub assumed: u64,
    /// Skipped by a frequency cap.
    pub capped: u64,
    /// Attempts beyond the first.
    pub retries: u64,
    /// Attempts made in all (answered by a mock in a dry-run; an assumed delivery makes none).
    pub attempts: u64,
    /// How many attempts got each HTTP status.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub status_codes: BTreeMap<u16, u64>,
    /// Attempts that timed out.
    pub timeouts: u64,
    /// Attempts that could not connect.
    pub connect_errors: u64,
    /// Attempts whose connection was reset.
    pub resets: u64,
    /// Median latency of attempts, in milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency, in milliseconds.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: Option<f64>,
    /// The slowest attempt, in milliseconds.
    pub max_ms: Option<f64>,
    /// The latencies as a histogram, for `--metrics` (the JSON report has the percentiles).
    #[serde(skip)]
    pub histogram: Histogram,
    /// Entries that ended failed or invalid at this step (a failure `on_failure` handled is
    /// not one): what JUnit counts as this step's failures.
    pub ended_failed: u64,
}

/// Upper bounds of the latency histogram's buckets, in seconds (Prometheus' defaults).
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Latencies counted into [`BUCKETS`].
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Attempts at or under each bucket's bound (cumulative).
    pub buckets: Vec<u64>,
    /// All the latencies added up, in seconds.
    pub sum_seconds: f64,
    /// How many.
    pub count: u64,
}

impl Histogram {
    /// The histogram of latencies given in microseconds, sorted.
    pub fn of_sorted_micros(sorted: &[u32]) -> Histogram {
        let buckets = BUCKETS
            .iter()
            .map(|bound| {
                let limit = (bound * 1e6) as u32;
                sorted.partition_point(|l| *l <= limit) as u64
            })
            .collect();
        Histogram {
            buckets,
            sum_seconds: sorted.iter().map(|l| f64::from(*l) / 1e6).sum(),
            count: sorted.len() as u64,
        }
    }
}

/// Totals of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    /// Entries in all.
    pub entries: u64,
    /// Ended `completed` or with a custom label that is not `failed`.
    pub completed: u64,
    /// Ended `failed`.
    pub failed: u64,
    /// Could not be rendered.
    pub invalid: u64,
    /// Suppressed (consent).
    pub suppressed: u64,
    /// Ended by `exit_when`.
    pub exited: u64,
    /// In the control group.
    pub holdout: u64,
    /// Parked in a wait.
    pub waiting: u64,
    /// Entry keys already ended.
    pub already_done: u64,
    /// Outcome unknown after a crash, re-sent.
    pub in_doubt: u64,
    /// Ended by `on_failure: stop`.
    pub stopped: u64,
    /// Not finished: the run was stopped, or the store failed; a later run resumes them.
    pub interrupted: u64,
    /// Entries by end label.
    pub labels: BTreeMap<String, u64>,
    /// Deliveries attempted for real (a dry-run sends none).
    pub deliveries_sent: u64,
    /// Deliveries a dry-run or `test` answered from a mock (nothing left the machine).
    pub deliveries_mocked: u64,
    /// Deliveries that succeeded.
    pub deliveries_ok: u64,
    /// Deliveries that failed after their retries.
    pub deliveries_failed: u64,
    /// Dry-run deliveries assumed successful.
    pub deliveries_assumed: u64,
    /// Deliveries skipped by a frequency cap.
    pub capped: u64,
    /// `deliveries_ok / deliveries_sent`, in percent.
    pub success_rate: Option<f64>,
    /// Attempts made in all (a delivery's retries included; an assumed one makes none).
    pub attempts: u64,
    /// Attempts beyond a delivery's first, in percent of all attempts.
    pub retry_rate: Option<f64>,
    /// Attempts that timed out, in percent of all attempts.
    pub timeout_rate: Option<f64>,
    /// Entries whose delivery an earlier run left in doubt and this run sent again (with the
    /// same idempotency key), in percent of the deliveries made: the duplicates a partner's
    /// idempotency must absorb.
    pub duplicate_rate: Option<f64>,
    /// Entries per second of wall time.
    pub entries_per_second: f64,
}

/// One distinct error, how often it happened and to whom.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorGroup {
    /// The message, with file:line:col, journey and step.
    pub message: String,
    /// How many entries.
    pub count: u64,
    /// Up to three example customer ids.
    pub examples: Vec<String>,
}

/// One checked expectation.
#[derive(Debug, Clone, Serialize)]
pub struct ExpectationResult {
    /// The journey.
    pub journey: String,
    /// A unique name: `customer c_001 (fixtures/x.yaml:40)`.
    pub name: String,
    /// Where it is written.
    pub at: String,
    /// The first difference, when it failed.
    pub failure: Option<String>,
}

impl RunReport {
    /// True when any entry failed or was invalid, or a threshold was crossed.
    pub fn has_failures(&self) -> bool {
        self.totals.failed > 0 || self.totals.invalid > 0 || !self.thresholds.is_empty()
    }
}

/// What became of an alert, as the report says it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertOutcome {
    /// The journey.
    pub journey: String,
    /// The alert's name.
    pub name: String,
    /// `slack`, `teams` or `webhook`.
    pub to: String,
    /// `sent`, `failed`, or `shown` (a dry-run or `test`: nothing is sent).
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why it could not be delivered, or rendered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The body, as it was (or would be) sent.
    pub body: serde_json::Value,
}
