//! The runner: entries start in input order, `--concurrency` at a time; one customer's entries
//! never overlap; an entry key is taken once per run; results reach the sink in input order.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::entries::{Candidate, Rejected};
use super::executor::Executor;
use super::recorder::{NoRecorder, Recorder};
use super::result::{EntryError, EntryResult, Outcome};
use super::safety::Safety;
use super::stop::Stop;
use super::walk::Walk;
use crate::journey::Journey;
use crate::render::EnvVars;
use crate::state::{EntryStatus, Storage};

/// Stripes of the per-customer lock: bounded memory, and one customer's entries always share one.
const CUSTOMER_STRIPES: usize = 4096;

/// Entries dealt to lanes and not yet reported, at most: the reader keeps ahead of the lanes so
/// neither waits on the other, in bounded memory. Results are reported in input order, so a lane
/// that waits for a core holds back the reader, and the other lanes run dry. Measured on a
/// dry-run of 300,000 entries on 2 cores, alternating pairs, against 1,024: 512 made 0.86x the
/// entries a second, 2,048 1.03x and 8,192 0.96x (more records in flight than the caches hold);
/// a run without a store was the same with 2,048 (0.996x). It costs about 10 MB at peak.
const READ_AHEAD: usize = 2048;

/// Candidates or results sent to another thread at once, at most.
const CHUNK: usize = 64;

/// What the runner needs besides journeys and entries.
#[derive(Clone)]
pub struct RunSettings {
    /// The run's clock at start.
    pub now: DateTime<Utc>,
    /// Environment variables (with placeholders for dry-runs).
    pub env: EnvVars,
    /// Entries in flight at once.
    pub concurrency: usize,
    /// Lanes asked for (`JOURNEY_LANES`), instead of [`lane_count`]'s choice.
    pub lanes: Option<usize>,
    /// Seed of the backoff jitter.
    pub seed: u64,
    /// Keep each request in the results (for `--show` and expectations).
    pub keep_requests: bool,
    /// Where attempts and dead letters go.
    pub recorder: Arc<dyn Recorder>,
    /// Whether requests leave the machine, and the checks they pass first.
    pub sending: Sending,
    /// The state store: SQLite (or another backend) in a real run, memory otherwise.
    pub state: Arc<dyn Storage>,
    /// Waits count as elapsed (real runs; dry-runs always simulate them).
    pub fast_forward: bool,
    /// `--retry-failed`: failed entries walk on from their failed step.
    pub retry_failed: bool,
    /// Set when the run must stop starting entries and attempts.
    pub stop: Arc<Stop>,
    /// `--suppress`: customers never entered.
    pub suppress: Arc<crate::gate::suppression::Suppressions>,
    /// Rate limits and circuit breakers (real runs only).
    pub protect: Option<Arc<super::protect::Protection>>,
}

/// Whether a run's requests leave the machine.
#[derive(Clone)]
pub enum Sending {
    /// A dry-run or `test`: answered by mocks, checked by nothing.
    Mocked,
    /// A real run: each request passes the safety checks (origin, secrets over plain http).
    Real(Safety),
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
            lanes: None,
            seed,
            keep_requests,
            recorder: Arc::new(NoRecorder),
            sending: Sending::Mocked,
            state: Arc::new(crate::state::Memory::default()),
            fast_forward: true,
            retry_failed: false,
            stop: Arc::default(),
            suppress: Arc::default(),
            protect: None,
        }
    }
}

/// Runs every candidate and hands each result to `sink`, in input order. The sink gives back
/// what it does not keep, to be freed by the lane that made it.
///
/// Entries run in lanes, each a thread with a single-threaded runtime (tasks moving between
/// threads cost a real run more CPU than its own work); see [`lane_count`] for how many. A customer always goes to the same lane,
/// where their entries start in input order and never overlap.
pub async fn run<E: Executor>(
    journeys: &[Journey],
    candidates: impl IntoIterator<Item = Candidate>,
    exec: &E,
    settings: &RunSettings,
    mut sink: impl FnMut(EntryResult) -> Option<EntryResult>,
) {
    let common = Arc::new(LaneShared {
        journeys: journeys.to_vec(),
        settings: settings.clone(),
        taken: Mutex::default(),
    });
    // Once the run is told to stop, nothing more is read: the rest of a large file would only be
    // parsed to be skipped, delaying the exit.
    let stop = Arc::clone(&settings.stop);
    let candidates = candidates.into_iter().take_while(move |_| {
        let going = !stop.is_set();
        if !going {
            stop.skip();
        }
        going
    });
    let concurrency = settings.concurrency.max(1);
    let lanes = lane_count(settings, concurrency);
    let width = concurrency.div_ceil(lanes);
    let spawned = (lanes > 1)
        .then(|| spawn_lanes(lanes, width, &common, exec))
        .and_then(Result::ok);
    let Some(spawned) = spawned else {
        let lane = Lane::new(common, exec.clone());
        let candidates = futures_util::stream::iter(candidates);
        return lane
            .drive(candidates, concurrency, |results| {
                for r in results.into_iter().flatten() {
                    sink(r);
                }
                true
            })
            .await;
    };
    merge(
        spawned,
        candidates.into_iter(),
        READ_AHEAD.max(concurrency),
        sink,
    )
    .await;
}

/// Lanes for a run. A dry-run is all CPU: one lane per core, and one more, because the reader
/// (this thread) takes about a quarter of the CPU: with a lane per core, the lanes ran out of
/// entries while the reader waited for a core, and 17% of two cores stood idle. A dry-run with
/// two lanes was 1.4x faster than with one, and with three took 0.92x the time of two (median of
/// 6 alternating pairs of 1,000,000 entries). A real run has one lane per two cores, with a
/// state store or without: the other core is for the kernel's network stack (half a lane's time
/// is its `writev`), the store's writer, and a receiver on the same machine. One lane on two
/// cores also reads the entries itself: no entry or result crosses a thread, and a lane that
/// always has work never sleeps. Measured on 2 cores against nginx on the same machine,
/// 200,000 entries without a store: one lane was 1.21x faster than two and took 0.81x the CPU
/// (4 alternating pairs; 900 thread switches a run against 57,000). With a store, one lane had
/// been 1.1x (SQLite) and 1.08x (PostgreSQL) faster than two (3 pairs each). On an earlier
/// machine, whose loopback was twice as fast (`wrk` 216k requests a second against 135k),
/// two lanes had been 1.13x faster than one without a store.
/// `JOURNEY_LANES` sets the number instead.
fn lane_count(settings: &RunSettings, concurrency: usize) -> usize {
    match settings.sending {
        Sending::Real(_) => real_lanes(concurrency, settings.lanes),
        Sending::Mocked => settings.lanes.unwrap_or(cores() + 1).min(concurrency),
    }
}

/// Lanes of a real run with `concurrency` entries in flight (`asked` by `JOURNEY_LANES`, or one
/// per two cores). With one, the lane runs on the caller's runtime, and so may the state store's
/// client ([`crate::state::Home::Runtime`]).
pub fn real_lanes(concurrency: usize, asked: Option<usize>) -> usize {
    asked
        .unwrap_or((cores() / 2).max(1))
        .min(concurrency.max(1))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The ends of the lanes' channels, and their threads.
struct Spawned {
    to: Vec<mpsc::UnboundedSender<ToLane>>,
    from: Vec<mpsc::UnboundedReceiver<Vec<Option<EntryResult>>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the reader sends a lane.
enum ToLane {
    /// Candidates to run.
    Deal(Vec<Candidate>),
    /// Results the sink is done with, to be freed where they were made.
    Spent(Vec<EntryResult>),
}

/// Starts `lanes` lane threads, each with `width` entries in flight at most.
fn spawn_lanes<E: Executor>(
    lanes: usize,
    width: usize,
    common: &Arc<LaneShared>,
    exec: &E,
) -> std::io::Result<Spawned> {
    let mut spawned = Spawned {
        to: Vec::new(),
        from: Vec::new(),
        threads: Vec::new(),
    };
    for n in 0..lanes {
        let (to, inbox) = mpsc::unbounded_channel();
        let (outbox, from) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let lane = Lane::new(Arc::clone(common), exec.for_lane());
        let thread = std::thread::Builder::new()
            .name(format!("journey-lane-{n}"))
            .spawn(move || {
                let inbox = futures_util::stream::unfold(inbox, |mut rx| async move {
                    loop {
                        match rx.recv().await? {
                            ToLane::Deal(chunk) => return Some((chunk, rx)),
                            ToLane::Spent(done) => drop(done),
                        }
                    }
                })
                .flat_map(futures_util::stream::iter);
                runtime.block_on(lane.drive(inbox, width, |results| outbox.send(results).is_ok()));
            })?;
        spawned.to.push(to);
        spawned.from.push(from);
        spawned.threads.push(thread);
    }
    Ok(spawned)
}

/// Deals candidates to lanes (by customer) and hands results to `sink` in input order, with at
/// most `window` entries dealt and not yet reported. Candidates and results travel in chunks:
/// one wake-up of the other thread per chunk, not per entry.
///
/// Memory goes back to the thread that allocated it: freeing another thread's blocks costs the
/// allocator an atomic hand-back and the owner a collection pass. The reader holds each
/// customer's record until the entry is reported, so that it frees the records it parsed, and
/// sends the results the sink is done with back to their lanes. Measured on a dry-run of 200,000
/// entries on 2 cores, alternating pairs: the records 1.15x entries/s (median of 9), the
/// results a further 1.03x (median of 9).
async fn merge(
    mut lanes: Spawned,
    mut candidates: impl Iterator<Item = Candidate>,
    window: usize,
    mut sink: impl FnMut(EntryResult) -> Option<EntryResult>,
) {
    let count = lanes.to.len();
    let mut order = std::collections::VecDeque::with_capacity(window);
    let mut outbox: Vec<Vec<Candidate>> = (0..count).map(|_| Vec::new()).collect();
    let mut spent: Vec<Vec<EntryResult>> = (0..count).map(|_| Vec::new()).collect();
    let mut inbox: Vec<std::collections::VecDeque<Option<EntryResult>>> =
        (0..count).map(|_| Default::default()).collect();
    let mut more = true;
    loop {
        while more && order.len() < window {
            let Some(c) = candidates.next() else {
                more = false;
                break;
            };
            let lane = lane_of(&c, count);
            // Dropped here once the entry is reported, after the lane's last use of it.
            let record = record_of(&c);
            outbox[lane].push(c);
            order.push_back((lane, record));
            if outbox[lane].len() >= CHUNK {
                more &= deal(&lanes, &mut outbox, lane);
            }
        }
        let Some(&(lane, _)) = order.front() else {
            break;
        };
        if inbox[lane].is_empty() {
            for l in 0..count {
                more &= deal(&lanes, &mut outbox, l);
            }
            match lanes.from[lane].recv().await {
                Some(results) => inbox[lane].extend(results),
                None => break,
            }
        }
        order.pop_front();
        if let Some(Some(result)) = inbox[lane].pop_front()
            && let Some(done) = sink(result)
        {
            give_back(&lanes, &mut spent, lane, done);
        }
    }
    lanes.to.clear();
    for t in lanes.threads {
        if let Err(panic) = t.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// The customer's record a candidate carries, if any.
fn record_of(c: &Candidate) -> Option<Arc<serde_json::Value>> {
    match c {
        Candidate::Entry(e) | Candidate::Resume(e, _) => Some(Arc::clone(&e.customer.record)),
        Candidate::Invalid(_) => None,
    }
}

/// Gives a result the sink is done with back to the lane that made it, a chunk at a time.
fn give_back(lanes: &Spawned, spent: &mut [Vec<EntryResult>], lane: usize, done: EntryResult) {
    spent[lane].push(done);
    if spent[lane].len() >= CHUNK {
        let done = std::mem::take(&mut spent[lane]);
        // A lane that is gone has nothing left to free: the results are freed here.
        let _ = lanes.to[lane].send(ToLane::Spent(done));
    }
}

/// Sends a lane the candidates dealt to it; `false` when the lane is gone.
fn deal(lanes: &Spawned, outbox: &mut [Vec<Candidate>], lane: usize) -> bool {
    if outbox[lane].is_empty() {
        return true;
    }
    lanes.to[lane]
        .send(ToLane::Deal(std::mem::take(&mut outbox[lane])))
        .is_ok()
}

/// The lane of a candidate: its customer's.
fn lane_of(c: &Candidate, lanes: usize) -> usize {
    match c {
        Candidate::Invalid(_) => 0,
        Candidate::Entry(e) | Candidate::Resume(e, _) => stripe(&e.customer.id) % lanes,
    }
}

/// What every lane of a run shares.
struct LaneShared {
    journeys: Vec<Journey>,
    settings: RunSettings,
    taken: Mutex<foldhash::HashSet<u64>>,
}

/// One lane: its executor and its customers' locks.
struct Lane<E> {
    common: Arc<LaneShared>,
    exec: E,
    stripes: Vec<tokio::sync::Mutex<()>>,
}

impl<E: Executor> Lane<E> {
    fn new(common: Arc<LaneShared>, exec: E) -> Self {
        Lane {
            common,
            exec,
            stripes: (0..CUSTOMER_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// Runs `candidates`, `width` at a time, handing results to `each` in order (as many as are
    /// ready at once, up to a chunk) until it says stop.
    async fn drive(
        &self,
        candidates: impl futures_util::Stream<Item = Candidate>,
        width: usize,
        mut each: impl FnMut(Vec<Option<EntryResult>>) -> bool,
    ) {
        // Boxed: an entry future is kilobytes, and the stream would otherwise copy it. In input
        // order, but an entry that finishes makes room at once: with `buffered`, entries that
        // finished behind a slower one kept their places, and the run went in lockstep.
        let mut stream = super::in_order::in_order(
            candidates.map(|c| Box::pin(self.entry(c))),
            width,
            width.saturating_mul(16).max(CHUNK),
        );
        // Real runs only: they time their requests (a dry-run may run without a timer).
        let real = matches!(self.common.settings.sending, Sending::Real(_));
        let mut tick = real.then(Tick::new);
        let mut done = false;
        while !done {
            let mut ready = Vec::new();
            std::future::poll_fn(|cx| {
                if let Some(tick) = &mut tick {
                    tick.poll(cx);
                }
                while ready.len() < CHUNK {
                    match stream.poll_next_unpin(cx) {
                        std::task::Poll::Ready(Some(r)) => ready.push(r),
                        std::task::Poll::Ready(None) => {
                            done = true;
                            break;
                        }
                        std::task::Poll::Pending if ready.is_empty() => {
                            return std::task::Poll::Pending;
                        }
                        std::task::Poll::Pending => break,
                    }
                }
                std::task::Poll::Ready(())
            })
            .await;
            if !ready.is_empty() && !each(ready) {
                break;
            }
        }
    }

    /// Runs one candidate; `None` when there is nothing to report (a due wait already walked).
    async fn entry(&self, c: Candidate) -> Option<EntryResult> {
        let (e, resumed) = match c {
            Candidate::Invalid(r) => return Some(rejected(r)),
            Candidate::Entry(e) => (e, None),
            Candidate::Resume(e, key) => (e, Some(key)),
        };
        // Nobody else's turn, nearly always: taken at once, without a future to poll.
        let lock = &self.stripes[stripe(&e.customer.id)];
        let _turn = match lock.try_lock() {
            Ok(turn) => turn,
            Err(_) => lock.lock().await,
        };
        let LaneShared {
            journeys,
            settings,
            taken,
        } = &*self.common;
        if settings.stop.is_set() {
            settings.stop.skip();
            return None;
        }
        let walk = Walk::new(&journeys[e.journey], &e, &self.exec, settings);
        if settings.suppress.matches(&e.customer) {
            return Some(walk.suppressed());
        }
        let walk = match &resumed {
            Some(key) => walk.with_key(key),
            None => match walk.enter() {
                Ok(walk) => walk,
                Err(invalid) => return Some(*invalid),
            },
        };
        if !taken
            .lock()
            .expect("not poisoned")
            .insert(crate::identity::hash_key(walk.key()))
        {
            return resumed.is_none().then(|| walk.already_done());
        }
        Some(match settings.state.keeps_entries() {
            false => Box::pin(walk.run()).await,
            // Boxed as the walk is: the store's path would otherwise make every entry's future,
            // which the lane moves into its box, 2.8 KB instead of 1.3 KB.
            true => Box::pin(self.stored(walk, &*settings.state, resumed.is_some())).await,
        })
    }

    /// Runs an entry of a run with a state store: entered there, or walked on from where it
    /// stands, or left as it is (ended, or waiting and not due).
    async fn stored(&self, walk: Walk<'_, E>, store: &dyn Storage, resumed: bool) -> EntryResult {
        let settings = &self.common.settings;
        if !resumed && !store.knows(walk.key()) && walk.kept_out() {
            // Not entered, so nothing is stored: the customer enters once they consent.
            return walk.suppressed();
        }
        let stored = match store.enter(walk.key()).await {
            Ok(stored) => stored,
            Err(why) => return walk.interrupted(&why),
        };
        match stored {
            None => Box::pin(walk.fresh().run()).await,
            Some(s) => match s.status {
                EntryStatus::Done(_) => walk.already_done(),
                EntryStatus::Failed if !settings.retry_failed => walk.already_done(),
                EntryStatus::Waiting if s.due.is_some_and(|d| d > settings.now) => {
                    walk.still_waiting()
                }
                _ => Box::pin(walk.resume(s).run()).await,
            },
        }
    }
}

/// A timer always due within a second, on the lane's runtime. tokio wakes its driver (a
/// syscall) whenever a timer is registered that is due before every timer the driver knows of.
/// Each request has a timeout; when all of a lane's entries wait on the state store, no timer is
/// known, and each of the next requests would wake the driver. With this one, none does.
struct Tick(std::pin::Pin<Box<tokio::time::Sleep>>);

/// How often the lane's timer fires.
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

impl Tick {
    fn new() -> Self {
        Tick(Box::pin(tokio::time::sleep(TICK)))
    }

    fn poll(&mut self, cx: &mut std::task::Context<'_>) {
        while self.0.as_mut().poll(cx).is_ready() {
            let next = tokio::time::Instant::now() + TICK;
            self.0.as_mut().reset(next);
        }
    }
}

/// A customer's stripe (one per lock and lane choice).
fn stripe(customer: &str) -> usize {
    crate::identity::hash_key(customer) as usize % CUSTOMER_STRIPES
}

fn rejected(r: Rejected) -> EntryResult {
    let mut out = EntryResult::new(r.journey, &r.customer, r.event, r.key);
    out.outcome = Outcome::Invalid;
    out.error = Some(EntryError { message: r.message });
    out
}
