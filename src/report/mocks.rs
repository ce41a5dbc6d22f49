//! `--record-mocks FILE`: the real responses of a run, written as a fixture `mocks:` section so
//! that a `--dry-run` with it takes the same paths offline. One rule per entry, keyed on
//! `entry.key`, with one `sequence` item per attempt.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use indexmap::IndexMap;
use serde::Serialize;

use crate::execute::recorder::{AttemptRecord, DeadLetter, Recorder};
use crate::redact::Redactor;

/// Headers worth replaying: they steer `success`, `save` and retries.
const KEPT_HEADERS: &[&str] = &["content-type", "retry-after", "location"];

/// One recorded answer.
#[derive(Debug, Clone, Serialize)]
struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    headers: IndexMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

/// One rule of the written file.
#[derive(Debug, Serialize)]
struct Rule {
    when: String,
    sequence: Vec<Answer>,
}

/// Collects answers during the run; writes the file at the end.
pub struct MockRecorder {
    path: PathBuf,
    redactor: Redactor,
    /// `JOURNEY.STEP` → entry key → answers in attempt order.
    answers: Mutex<IndexMap<String, IndexMap<String, Vec<Answer>>>>,
}

impl MockRecorder {
    /// A recorder that will write to `path`.
    pub fn new(path: &Path, redactor: Redactor) -> MockRecorder {
        MockRecorder {
            path: path.to_path_buf(),
            redactor,
            answers: Mutex::default(),
        }
    }

    /// Writes the `mocks:` file (0600: responses may hold customer data).
    pub fn write(&self, run_id: &str) -> anyhow::Result<()> {
        let answers = self
            .answers
            .lock()
            .map_err(|_| anyhow::anyhow!("lock poisoned"))?;
        let mocks: IndexMap<&String, Vec<Rule>> = answers
            .iter()
            .map(|(step, by_entry)| {
                let rules = by_entry
                    .iter()
                    .map(|(key, seq)| Rule {
                        when: format!(
                            "entry.key == {}",
                            serde_json::to_string(key).unwrap_or_default()
                        ),
                        sequence: seq.clone(),
                    })
                    .collect();
                (step, rules)
            })
            .collect();
        let yaml = serde_yaml::to_string(&serde_json::json!({ "mocks": mocks }))?;
        let text = format!(
            "# Real responses recorded by journey run {run_id}; replay with --dry-run.\n{yaml}"
        );
        crate::output::private_file(&self.path, text.as_bytes())
    }

    fn answer(&self, r: &AttemptRecord<'_>) -> Answer {
        if let Some(kind) = r.error_kind {
            return Answer {
                status: None,
                headers: IndexMap::new(),
                body: None,
                error: Some(kind),
            };
        }
        let headers: IndexMap<String, String> = r
            .response_headers
            .map(|h| h.pairs())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| KEPT_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.to_ascii_lowercase(), self.redactor.redact(&v)))
            .collect();
        let body = (!r.response_body.is_empty()).then(|| {
            let v = serde_json::from_slice(r.response_body)
                .unwrap_or_else(|_| String::from_utf8_lossy(r.response_body).into_owned().into());
            self.redactor.redact_json(&v)
        });
        Answer {
            status: r.status,
            headers,
            body,
            error: None,
        }
    }
}

impl Recorder for MockRecorder {
    fn attempt(&self, r: &AttemptRecord<'_>) {
        let answer = self.answer(r);
        if let Ok(mut all) = self.answers.lock() {
            let step = format!("{}.{}", r.journey, r.step);
            all.entry(step)
                .or_default()
                .entry(r.entry_key.to_string())
                .or_default()
                .push(answer);
        }
    }

    fn dead_letter(&self, _: &DeadLetter) {}
}
