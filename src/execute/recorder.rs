//! What a run writes as it goes, besides the report: one record per attempt, and dead letters.

use serde::{Deserialize, Serialize};

pub use crate::state::Snapshot;

/// One attempt, for `--log`.
#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord<'a> {
    /// The journey.
    pub journey: &'a str,
    /// The step.
    pub step: &'a str,
    /// The entry key.
    pub entry_key: &'a str,
    /// The entry's trace id.
    pub trace_id: &'a str,
    /// The delivery id (idempotency key).
    pub delivery_id: &'a str,
    /// 1 for the first try.
    pub attempt: u32,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// The transport error, when none came.
    pub error: Option<String>,
    /// Time to the full response, in milliseconds.
    pub latency_ms: f64,
    /// The response came from a mock (a dry-run or `test`): nothing was sent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mocked: bool,
    /// The request, for its body with secret fields masked (only with `--log-bodies`).
    #[serde(skip)]
    pub request: &'a super::request::Request,
    /// The response body (only with `--log-bodies`).
    #[serde(skip)]
    pub response_body: &'a [u8],
    /// The response headers (for `--record-mocks`).
    #[serde(skip)]
    pub response_headers: Option<&'a super::executor::Headers>,
    /// `timeout`, `connect` or `reset` when no response came (for `--record-mocks`).
    #[serde(skip)]
    pub error_kind: Option<&'static str>,
}

/// Everything needed to render and send a failed delivery again; it holds no secret, since
/// secrets are read from the environment when the request is rendered again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The journey name.
    pub journey: String,
    /// The journey file (absolute), to render the step again.
    pub journey_file: String,
    /// The step id.
    pub step: String,
    /// The entry key.
    pub entry_key: String,
    /// The delivery id (idempotency key), the same on replay.
    pub delivery_id: String,
    /// The customer id.
    pub customer: String,
    /// The trigger event id.
    pub event: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The last status.
    pub status: Option<u16>,
    /// Why it failed.
    pub error: String,
    /// The entry's context when the step was rendered.
    pub snapshot: Snapshot,
    /// The state store of the run that wrote it (canonical path): `replay` records its outcome
    /// there, as the run would have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Receives attempts and dead letters as they happen.
pub trait Recorder: Send + Sync {
    /// One attempt was made.
    fn attempt(&self, record: &AttemptRecord<'_>);
    /// A delivery failed and nothing handles it.
    fn dead_letter(&self, letter: &DeadLetter);
}

/// Hands every record to each of several recorders.
pub struct Fanout(pub Vec<std::sync::Arc<dyn Recorder>>);

impl Recorder for Fanout {
    fn attempt(&self, record: &AttemptRecord<'_>) {
        self.0.iter().for_each(|r| r.attempt(record));
    }
    fn dead_letter(&self, letter: &DeadLetter) {
        self.0.iter().for_each(|r| r.dead_letter(letter));
    }
}

/// Records nothing (dry-runs, tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoRecorder;

impl Recorder for NoRecorder {
    fn attempt(&self, _: &AttemptRecord<'_>) {}
    fn dead_letter(&self, _: &DeadLetter) {}
}
