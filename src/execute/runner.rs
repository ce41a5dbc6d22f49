//! The runner: entries start in input order, `--concurrency` at a time; one customer's entries
//! never overlap; an entry key is taken once per run; results reach the sink in input order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;

use super::entries::{Candidate, Rejected};
use super::executor::Executor;
use super::recorder::{NoRecorder, Recorder};
use super::result::{EntryError, EntryResult};
use super::safety::Safety;
use super::stop::Stop;
use super::walk::Walk;
use crate::journey::Journey;
use crate::render::EnvVars;
use crate::state::{EntryStatus, Store};

/// Stripes of the per-customer lock: bounded memory, and one customer's entries always share one.
const CUSTOMER_STRIPES: usize = 4096;

/// What the runner needs besides journeys and entries.
#[derive(Clone)]
pub struct RunSettings {
    /// The run's clock at start.
    pub now: DateTime<Utc>,
    /// Environment variables (with placeholders for dry-runs).
    pub env: EnvVars,
    /// Entries in flight at once.
    pub concurrency: usize,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// Keep each request in the results (for `--show` and expectations).
    pub keep_requests: bool,
    /// Where attempts and dead letters go.
    pub recorder: Arc<dyn Recorder>,
    /// Checks before a real send (URL, plain http); `None` for dry-runs.
    pub safety: Option<Safety>,
    /// The state store of a real run.
    pub state: Option<Arc<Store>>,
    /// Waits count as elapsed (real runs; dry-runs always simulate them).
    pub fast_forward: bool,
    /// `--retry-failed`: failed entries walk on from their failed step.
    pub retry_failed: bool,
    /// Set when the run must stop starting entries and attempts.
    pub stop: Arc<Stop>,
    /// `--suppress`: customers never entered.
    pub suppress: Arc<crate::suppress::Suppressions>,
    /// Deliveries per customer and channel in this run, for caps when there is no store.
    pub sent_log: Arc<SentLog>,
    /// Rate limits and circuit breakers (real runs only).
    pub protect: Option<Arc<super::protect::Protection>>,
}

/// Deliveries per customer and channel, in memory.
#[derive(Debug, Default)]
pub struct SentLog(Mutex<std::collections::HashMap<CustomerChannel, Vec<DateTime<Utc>>>>);

/// A customer id and a channel.
type CustomerChannel = (String, String);

impl SentLog {
    /// Remembers a delivery.
    pub fn add(&self, customer: &str, channel: &str, at: DateTime<Utc>) {
        if let Ok(mut m) = self.0.lock() {
            m.entry((customer.to_string(), channel.to_string()))
                .or_default()
                .push(at);
        }
    }

    /// Deliveries after `since`.
    pub fn count(&self, customer: &str, channel: &str, since: DateTime<Utc>) -> u32 {
        let Ok(m) = self.0.lock() else { return 0 };
        m.get(&(customer.to_string(), channel.to_string()))
            .map_or(0, |v| v.iter().filter(|t| **t > since).count() as u32)
    }
}

impl RunSettings {
    /// Settings for a dry-run: nothing recorded, no send checks.
    pub fn dry(
        now: DateTime<Utc>,
        env: EnvVars,
        concurrency: usize,
        seed: u64,
        keep_requests: bool,
    ) -> RunSettings {
        RunSettings {
            now,
            env,
            concurrency,
            seed,
            keep_requests,
            recorder: Arc::new(NoRecorder),
            safety: None,
            state: None,
            fast_forward: true,
            retry_failed: false,
            stop: Arc::default(),
            suppress: Arc::default(),
            sent_log: Arc::default(),
            protect: None,
        }
    }
}

/// Runs every candidate and hands each result to `sink`, in input order.
///
/// Entries run as tasks on the runtime's worker threads, so a batch uses every core. Each entry
/// takes its customer's lock before its task is spawned, in input order: one customer's entries
/// start in the order they came and never overlap.
pub async fn run<E: Executor>(
    journeys: &[Journey],
    candidates: impl IntoIterator<Item = Candidate>,
    exec: &E,
    settings: &RunSettings,
    mut sink: impl FnMut(EntryResult),
) {
    let shared = Arc::new(Shared {
        journeys: journeys.to_vec(),
        exec: exec.clone(),
        settings: settings.clone(),
        taken: Mutex::new(HashSet::new()),
        stripes: (0..CUSTOMER_STRIPES)
            .map(|_| Arc::new(tokio::sync::Mutex::new(())))
            .collect(),
    });
    let started = futures_util::stream::iter(candidates).then(|c| start(&shared, c));
    let stream = started.buffered(settings.concurrency.max(1));
    futures_util::pin_mut!(stream);
    while let Some(result) = stream.next().await {
        if let Some(result) = result {
            sink(result);
        }
    }
}

/// Takes the candidate's customer lock (waiting for an earlier entry of the same customer) and
/// spawns its entry.
async fn start<E: Executor>(
    shared: &Arc<Shared<E>>,
    c: Candidate,
) -> futures_util::future::BoxFuture<'static, Option<EntryResult>> {
    let customer = match &c {
        Candidate::Invalid(_) => None,
        Candidate::Entry(e) | Candidate::Resume(e, _) => Some(&e.customer.id),
    };
    let turn = match customer {
        None => None,
        Some(id) => {
            let stripe = Arc::clone(&shared.stripes[stripe(id)]);
            Some(match Arc::clone(&stripe).try_lock_owned() {
                Ok(turn) => turn,
                Err(_) => stripe.lock_owned().await,
            })
        }
    };
    let shared = Arc::clone(shared);
    let task = tokio::spawn(async move {
        let _turn = turn;
        shared.entry(c).await
    });
    Box::pin(async move {
        match task.await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    })
}

/// What every entry of a run shares.
struct Shared<E> {
    journeys: Vec<Journey>,
    exec: E,
    settings: RunSettings,
    taken: Mutex<HashSet<u64>>,
    stripes: Vec<Arc<tokio::sync::Mutex<()>>>,
}

impl<E: Executor> Shared<E> {
    /// Runs one candidate; `None` when there is nothing to report (a due wait already walked).
    async fn entry(&self, c: Candidate) -> Option<EntryResult> {
        let (e, resumed) = match c {
            Candidate::Invalid(r) => return Some(rejected(r)),
            Candidate::Entry(e) => (e, None),
            Candidate::Resume(e, key) => (e, Some(key)),
        };
        if self.settings.stop.is_set() {
            return None;
        }
        let walk = Walk::new(&self.journeys[e.journey], &e, &self.exec, &self.settings);
        if self.settings.suppress.matches(&e.customer) {
            return Some(walk.suppressed());
        }
        let walk = match &resumed {
            Some(key) => walk.with_key(key),
            None => match walk.enter() {
                Ok(walk) => walk,
                Err(invalid) => return Some(*invalid),
            },
        };
        if !self
            .taken
            .lock()
            .expect("not poisoned")
            .insert(key_hash(walk.key()))
        {
            return resumed.is_none().then(|| walk.already_done());
        }
        let Some(store) = &self.settings.state else {
            return Some(walk.run().await);
        };
        let journey = &self.journeys[e.journey].name;
        let stored = match store
            .enter(walk.key(), journey, &e.customer.id, e.started)
            .await
        {
            Ok(stored) => stored,
            Err(why) => return Some(walk.interrupted(&why)),
        };
        Some(match stored {
            None => walk.run().await,
            Some(s) => match s.status {
                EntryStatus::Done(_) => walk.already_done(),
                EntryStatus::Failed if !self.settings.retry_failed => walk.already_done(),
                EntryStatus::Waiting if s.due.is_some_and(|d| d > self.settings.now) => {
                    walk.still_waiting()
                }
                _ => walk.resume(s).run().await,
            },
        })
    }
}

/// Entry keys taken in this run are kept as 64-bit hashes: 8 bytes an entry, whatever the batch.
fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

fn stripe(customer: &str) -> usize {
    customer.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    }) as usize
        % CUSTOMER_STRIPES
}

fn rejected(r: Rejected) -> EntryResult {
    let mut out = EntryResult::new(r.journey, &r.customer, r.event, r.key);
    out.outcome = "invalid".into();
    out.error = Some(EntryError { message: r.message });
    out
}
