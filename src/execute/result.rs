//! What happened to one entry: its path, each step's record, its outcome. Failures are data.

use std::time::Duration;

use super::request::Request;

/// How a step ended for one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Delivered and successful, or a non-webhook step passed.
    Ok,
    /// Failed after its retries (the state of a delivery until it succeeds).
    #[default]
    Failed,
    /// Dry-run: no mock matched.
    Assumed,
    /// Skipped for lack of consent.
    Suppressed,
    /// Delivered by an earlier run (the state store says so): not sent again.
    Delivered,
    /// Skipped: the customer already had `max` deliveries of the channel within the period.
    Capped,
}

impl StepStatus {
    /// The word used in `steps.ID.outcome` and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Failed => "failed",
            StepStatus::Assumed => "assumed",
            StepStatus::Suppressed => "suppressed",
            StepStatus::Delivered => "ok",
            StepStatus::Capped => "capped",
        }
    }
}

/// One step as one entry went through it.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// The step index in its journey.
    pub index: usize,
    /// The status.
    pub status: StepStatus,
    /// Attempts made (0 for non-webhook steps).
    pub attempts: u32,
    /// The last HTTP status.
    pub http_status: Option<u16>,
    /// Latency of each attempt.
    pub latencies: Vec<Duration>,
    /// The request sent (kept for `--show` and expectations). Boxed, as is the response: a
    /// record is moved several times a step, and without them it is a third of the size.
    pub request: Option<Box<Request>>,
    /// Why it failed.
    pub error: Option<String>,
    /// The answers of the attempts before the last (`--show paths`).
    pub earlier: Vec<super::deliver::Answer>,
    /// What the step saved, as text (kept only for `--show`).
    pub saved: Vec<(String, String)>,
    /// The last attempt's transport failure (`timeout`, `connect`, `reset`), when no response
    /// came.
    pub transport: Option<&'static str>,
    /// The last response (kept only for `--show` and `--html`).
    pub response: Option<Box<super::executor::Response>>,
}

impl StepRecord {
    /// Every attempt's answer, in order: the earlier ones, then the last (a status, or the
    /// transport failure). A delivery put off after an answer (a `Retry-After` past
    /// `max_backoff`) already holds its last answer among the earlier ones.
    pub fn answers(&self) -> impl Iterator<Item = super::deliver::Answer> + '_ {
        use super::deliver::Answer;
        let last = match (self.http_status, self.transport) {
            (Some(code), _) => Some(Answer::Status(code)),
            (None, Some(kind)) => Some(Answer::Transport(kind)),
            (None, None) => None,
        };
        let last = last.filter(|_| self.earlier.len() < self.attempts as usize);
        self.earlier.iter().copied().chain(last)
    }
}

/// How an entry ended: the word in reports, the state store and `expect` (`completed`,
/// `failed`, ...), or an `end:` step's own label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// Walked to the end, or an `end: completed` step.
    #[default]
    Completed,
    /// A delivery failed and nothing handled it (or an `end: failed` step).
    Failed,
    /// A request or the trigger could not be rendered.
    Invalid,
    /// No consent, or on the `--suppress` list: never contacted.
    Suppressed,
    /// The `exit_when` event came first.
    Exited,
    /// In the holdout group: counted, never contacted.
    Holdout,
    /// Parked in a wait; a later run resumes it.
    Waiting,
    /// An earlier run ended this entry.
    AlreadyDone,
    /// A failure with `on_failure: stop`, or its host stopped.
    Stopped,
    /// The run stopped first; a later run takes it up.
    Interrupted,
    /// An `end:` step's own label (`low_risk`).
    Label(String),
}

impl Outcome {
    /// The word reports and the state store use.
    pub fn as_str(&self) -> &str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
            Outcome::Suppressed => "suppressed",
            Outcome::Exited => "exited",
            Outcome::Holdout => "holdout",
            Outcome::Waiting => "waiting",
            Outcome::AlreadyDone => "already_done",
            Outcome::Stopped => "stopped",
            Outcome::Interrupted => "interrupted",
            Outcome::Label(label) => label,
        }
    }

    /// The outcome an `end:` label (or a stored word) stands for.
    pub fn from_label(label: &str) -> Outcome {
        match label {
            "completed" => Outcome::Completed,
            "failed" => Outcome::Failed,
            "invalid" => Outcome::Invalid,
            "suppressed" => Outcome::Suppressed,
            "exited" => Outcome::Exited,
            "holdout" => Outcome::Holdout,
            "waiting" => Outcome::Waiting,
            "already_done" => Outcome::AlreadyDone,
            "stopped" => Outcome::Stopped,
            "interrupted" => Outcome::Interrupted,
            other => Outcome::Label(other.to_string()),
        }
    }

    /// Failed or invalid: what makes a run exit 1.
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Invalid)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A failure message to aggregate, and the customer it happened to.
#[derive(Debug, Clone)]
pub struct EntryError {
    /// The message, the same for every customer with the same problem.
    pub message: String,
}

/// The result of one entry.
#[derive(Debug, Clone)]
pub struct EntryResult {
    /// The journey index.
    pub journey: usize,
    /// The customer id.
    pub customer: String,
    /// The trigger event id.
    pub event: Option<String>,
    /// The entry key.
    pub key: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The step indexes walked, in order.
    pub walked: Vec<usize>,
    /// Records of each step walked.
    pub steps: Vec<StepRecord>,
    /// Why it failed or was invalid.
    pub error: Option<EntryError>,
    /// Non-fatal problems (a `save` that found nothing).
    pub warnings: Vec<String>,
    /// A delivery of an earlier run had an unknown outcome and was sent again.
    pub in_doubt: bool,
    /// Why it ended before any step, when its outcome alone does not say (`--show paths`).
    pub why: Option<String>,
    /// What a step waited for, by step index: `until 2026-11-23T11:00:00Z` (kept only for
    /// `--show` and `--html`).
    pub waited: Vec<(usize, String)>,
}

impl EntryResult {
    /// A result not yet walked.
    pub fn new(journey: usize, customer: &str, event: Option<String>, key: String) -> EntryResult {
        EntryResult {
            journey,
            customer: customer.to_string(),
            event,
            key,
            outcome: Outcome::default(),
            walked: vec![],
            steps: vec![],
            error: None,
            warnings: vec![],
            in_doubt: false,
            why: None,
            waited: vec![],
        }
    }

    /// True when the outcome counts as a failure.
    pub fn is_failure(&self) -> bool {
        self.outcome.is_failure()
    }
}
