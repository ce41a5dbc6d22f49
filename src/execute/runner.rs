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
use super::walk::Walk;
use crate::journey::Journey;
use crate::render::EnvVars;

/// Stripes of the per-customer lock: bounded memory, and one customer's entries always share one.
const CUSTOMER_STRIPES: usize = 1024;

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
        }
    }
}

/// Runs every candidate and hands each result to `sink`, in input order.
pub async fn run<E: Executor>(
    journeys: &[Journey],
    candidates: Vec<Candidate>,
    exec: &E,
    settings: &RunSettings,
    mut sink: impl FnMut(EntryResult),
) {
    let taken = Mutex::new(HashSet::new());
    let stripes: Vec<tokio::sync::Mutex<()>> = (0..CUSTOMER_STRIPES)
        .map(|_| tokio::sync::Mutex::new(()))
        .collect();
    let (taken, stripes) = (&taken, &stripes);
    let stream = futures_util::stream::iter(candidates.into_iter().map(|c| async move {
        let e = match c {
            Candidate::Invalid(r) => return rejected(r),
            Candidate::Entry(e) => e,
        };
        let _turn = stripes[stripe(&e.customer.id)].lock().await;
        let walk = match Walk::new(&journeys[e.journey], &e, exec, settings).enter() {
            Ok(walk) => walk,
            Err(invalid) => return *invalid,
        };
        let fresh = taken
            .lock()
            .expect("not poisoned")
            .insert(walk.key().to_string());
        if fresh {
            walk.run().await
        } else {
            walk.already_done()
        }
    }))
    .buffered(settings.concurrency.max(1));
    futures_util::pin_mut!(stream);
    while let Some(result) = stream.next().await {
        sink(result);
    }
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
