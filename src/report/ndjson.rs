//! NDJSON files written during a run: `--log` (one line per attempt) and the dead-letter file.
//! Every line carries the run id; every line passes the redactor; files are private (0600).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::execute::recorder::{AttemptRecord, DeadLetter, Recorder};
use crate::redact::Redactor;

/// Writes attempt lines and dead letters as they happen.
pub struct NdjsonRecorder {
    run_id: String,
    redactor: Redactor,
    log: Option<Mutex<BufWriter<File>>>,
    log_bodies: bool,
    /// `None` in a dry-run or `test`: nothing was sent, so nothing is to be sent again.
    dead_path: Option<PathBuf>,
    dead: Mutex<Option<File>>,
    dead_count: AtomicU64,
    failures: Mutex<Vec<String>>,
    vault: crate::redact::Vault,
}

impl NdjsonRecorder {
    /// Opens `--log` now (append); the dead-letter file is created only when a letter comes.
    pub fn new(
        run_id: &str,
        redactor: Redactor,
        log: Option<&Path>,
        log_bodies: bool,
        dead_letter: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let log = log
            .map(|p| crate::output::append_private(p).map(|f| Mutex::new(BufWriter::new(f))))
            .transpose()?;
        Ok(NdjsonRecorder {
            run_id: run_id.to_string(),
            redactor,
            log,
            log_bodies,
            dead_path: dead_letter.map(Path::to_path_buf),
            dead: Mutex::new(None),
            dead_count: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
            vault: Default::default(),
        })
    }

    /// Writes the secrets a dead letter's snapshot holds as references, so `replay` sends
    /// them with its own values and the file never holds one.
    pub fn with_vault(mut self, vault: crate::redact::Vault) -> Self {
        self.vault = vault;
        self
    }

    /// How many dead letters this run wrote.
    pub fn dead_letters(&self) -> u64 {
        self.dead_count.load(Ordering::SeqCst)
    }

    /// The dead-letter file.
    pub fn dead_letter_path(&self) -> Option<&Path> {
        self.dead_path.as_deref()
    }

    /// Errors writing the files (reported at the end; a run does not stop for them).
    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Flushes the log.
    pub fn flush(&self) {
        if let Some(log) = &self.log
            && let Ok(mut w) = log.lock()
            && let Err(e) = w.flush()
        {
            self.fail(format!("cannot write the log: {e}"));
        }
    }

    fn line<T: Serialize>(&self, record: &T, extra: &[(&str, serde_json::Value)]) -> String {
        let mut map = serde_json::Map::new();
        map.insert("run_id".into(), self.run_id.clone().into());
        map.insert(
            "at".into(),
            crate::clock::rfc3339(chrono::Utc::now()).into(),
        );
        if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(record) {
            map.extend(fields);
        }
        for (k, v) in extra {
            map.insert((*k).to_string(), v.clone());
        }
        let mut text = self
            .redactor
            .redact(&serde_json::Value::Object(map).to_string());
        text.push('\n');
        text
    }

    fn fail(&self, message: String) {
        if let Ok(mut f) = self.failures.lock() {
            f.push(message);
        }
    }

    fn append_dead(&self, text: &str) -> std::io::Result<()> {
        let mut slot = self
            .dead
            .lock()
            .map_err(|_| std::io::Error::other("lock poisoned"))?;
        if slot.is_none() {
            let Some(path) = &self.dead_path else {
                return Ok(());
            };
            *slot = Some(crate::output::append_private(path).map_err(std::io::Error::other)?);
        }
        let f = slot.as_mut().expect("opened above");
        f.write_all(text.as_bytes())?;
        f.flush()
    }
}

fn text(bytes: &[u8]) -> serde_json::Value {
    String::from_utf8_lossy(bytes).into_owned().into()
}

impl Recorder for NdjsonRecorder {
    fn attempt(&self, r: &AttemptRecord<'_>) {
        let Some(log) = &self.log else { return };
        let bodies = if self.log_bodies {
            vec![
                ("request_body", text(&r.request.masked_body())),
                ("response_body", text(r.response_body)),
            ]
        } else {
            vec![]
        };
        let line = self.line(r, &bodies);
        if let Ok(mut w) = log.lock()
            && let Err(e) = w.write_all(line.as_bytes())
        {
            self.fail(format!("cannot write the log: {e}"));
        }
    }

    fn dead_letter(&self, letter: &DeadLetter) {
        if self.dead_path.is_none() {
            return;
        }
        let mut sealed = letter.clone();
        sealed.snapshot.vars = self.vault.seal(&letter.snapshot.vars).into_owned();
        sealed.snapshot.saved = self.vault.seal(&letter.snapshot.saved).into_owned();
        let line = self.line(&sealed, &[]);
        match self.append_dead(&line) {
            Ok(()) => {
                self.dead_count.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => self.fail(format!(
                "cannot write the dead-letter file {}: {e}",
                self.dead_path.as_deref().unwrap_or(Path::new("")).display()
            )),
        }
    }
}
