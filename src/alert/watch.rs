//! Alerts with `every` during a long run: the counts so far are checked that often (at most
//! every 30 s, like the heartbeat), and an alert whose `when` holds is sent on a thread of its
//! own, at most once per its `every`; the run's own thread never waits on a channel.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{Facts, Fired, Scene};
use crate::journey::Journey;
use crate::report::{AlertOutcome, Tally};

/// How the watch's thread sends.
pub struct Sender {
    /// Keeps secrets out of what is said and written.
    pub redactor: crate::redact::Redactor,
    /// `--allow-insecure-http`.
    pub allow_insecure_http: bool,
    /// Where an alert that cannot be delivered is written.
    pub dead_letter: Option<std::path::PathBuf>,
    /// The run's id.
    pub run_id: String,
}

/// The alerts with `every`, watched while the run goes.
pub struct Watch {
    facts: Facts,
    env: crate::render::EnvVars,
    check: Duration,
    checked: Instant,
    /// When each alert (by key) was last handed to the thread.
    last: HashMap<String, Instant>,
    tx: Option<mpsc::Sender<Vec<Fired>>>,
    thread: Option<std::thread::JoinHandle<Vec<AlertOutcome>>>,
}

/// The longest wait between two checks.
const AT_MOST: Duration = Duration::from_secs(30);

impl Watch {
    /// A watch when an alert of the journeys has `every`.
    pub fn start(
        journeys: &[Journey],
        facts: Facts,
        env: crate::render::EnvVars,
        how: Sender,
    ) -> Option<Watch> {
        let check = journeys
            .iter()
            .flat_map(|j| &j.alerts)
            .filter_map(|a| a.every)
            .min()?
            .min(AT_MOST)
            .max(Duration::from_millis(100));
        let (tx, rx) = mpsc::channel::<Vec<Fired>>();
        let thread = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return Vec::new();
            };
            let sending = super::Sending {
                redactor: &how.redactor,
                allow_insecure_http: how.allow_insecure_http,
                dead_letter: how.dead_letter.as_deref(),
                run_id: &how.run_id,
            };
            let mut out = Vec::new();
            while let Ok(fired) = rx.recv() {
                out.extend(runtime.block_on(super::send_all(&fired, &sending)));
            }
            out
        });
        Some(Watch {
            facts,
            env,
            check,
            checked: Instant::now(),
            last: HashMap::new(),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// After each entry: when a check is due, the alerts with `every` whose `when` holds on the
    /// counts so far, and that were not sent within their `every`, go to the thread.
    pub fn beat(&mut self, tally: &Tally, journeys: &[Journey]) {
        if self.checked.elapsed() < self.check {
            return;
        }
        self.checked = Instant::now();
        let report = tally.snapshot();
        let scene = Scene {
            report: &report,
            facts: &self.facts,
            env: &self.env,
            marks: &[],
        };
        let last = &self.last;
        let (fired, _) = super::fire(&scene, journeys, &|journey, a| {
            a.every
                .is_some_and(|every| due(last, &super::mark(journey, &a.name), every))
        });
        let fired: Vec<Fired> = fired.into_iter().filter(|f| !f.resolution).collect();
        if fired.is_empty() {
            return;
        }
        for f in &fired {
            self.last.insert(f.key(), Instant::now());
        }
        if let Some(tx) = &self.tx {
            let _ = tx.send(fired);
        }
    }

    /// Whether an alert may be sent now: never sent during the run, or `every` ago.
    pub fn due(&self, journey: &str, a: &crate::journey::plan::AlertPlan) -> bool {
        match a.every {
            Some(every) => due(&self.last, &super::mark(journey, &a.name), every),
            None => true,
        }
    }

    /// Waits for what the thread is sending; what became of the alerts sent during the run.
    pub fn finish(&mut self) -> Vec<AlertOutcome> {
        self.tx.take();
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

fn due(last: &HashMap<String, Instant>, key: &str, every: Duration) -> bool {
    last.get(key).is_none_or(|t| t.elapsed() >= every)
}
