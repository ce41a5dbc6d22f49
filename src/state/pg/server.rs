//! The store's loop (a thread of its own, or a task beside the run's lane): two connections
//! (one writes and holds the run's locks, one reads), messages taken in batches, each batch's
//! writes made in one statement (a part per kind), so the database's latency is paid per batch.
//! A "before" record is acknowledged once its transaction commits. When the server goes away,
//! nothing new is acknowledged while it reconnects, for `--state-timeout`; then the store fails
//! and the run stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::Json;
use tokio_postgres::{Client, Statement};

use super::super::redo::Write;
use super::super::{Claim, DueEntry, EntryFields, StoredDelivery, StoredEntry};
use super::connect::{connect, why};
use super::target::Target;

/// What the store asks of its loop.
pub(super) enum Msg {
    /// A "before" record, acknowledged once committed.
    Before(Write, Ack),
    /// Any other write.
    Write(Write),
    /// A stored entry, loaded with the batch's others in one statement.
    Load(String, LoadReply),
    /// Any other read, answered with the batch it came in.
    Read(Read),
    /// Answered once everything sent before it is committed.
    Flush(Ack),
}

pub(super) type Ack = oneshot::Sender<Result<(), String>>;

/// Where a stored entry (or `None`, for a new one) goes.
pub(super) type LoadReply = oneshot::Sender<Result<Option<StoredEntry>, String>>;

/// Most messages one batch takes.
const MAX_BATCH: usize = 8192;
/// How often a lost server is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// What the loop needs to connect again.
pub(super) struct Dial {
    pub target: Target,
    pub password: Option<String>,
    pub claim: Claim,
    pub key: i32,
    pub timeout: Duration,
    pub shown: String,
}

/// The connections, with their statements: one writes (and holds the run's locks), one reads.
pub(super) struct Link {
    writer: Writer,
    reader: Client,
    r: Reads,
}

/// A connection that writes, with its statements.
struct Writer {
    client: Client,
    w: Writes,
}

struct Writes {
    /// A segment's befores, afters and entry rows, as one statement.
    segment: Statement,
    /// The same, when each of its rows is the first of its key ([`INSERT`]).
    fresh: Statement,
}

struct Reads {
    load: Statement,
    count: Statement,
    due: Statement,
}

impl Link {
    /// Connects both, takes the locks on the writer's session, and prepares the statements.
    /// A lock held elsewhere comes back as [`super::super::StoreError::Locked`].
    pub async fn open(dial: &Dial) -> Result<Link, super::super::StoreError> {
        let unusable = |why: String| super::super::StoreError::Unusable {
            path: dial.shown.clone(),
            why,
        };
        let pw = dial.password.as_deref();
        let mut holder = connect(&dial.target, pw, dial.timeout)
            .await
            .map_err(unusable)?;
        super::schema::migrate(&mut holder, &dial.target.schema, dial.key)
            .await
            .map_err(unusable)?;
        super::claim::claim(&holder, dial.key, dial.claim, &dial.shown).await?;
        let reader = connect(&dial.target, pw, dial.timeout)
            .await
            .map_err(unusable)?;
        // Every statement of a run finds its rows by key: an index, never a scan of the table
        // (a plan made while the table was small would otherwise scan it as it grows). No JIT:
        // a plan's cost grows with the tables, and past `jit_above_cost` each statement was
        // compiled again (10 to 40 ms each: a re-run of 1,000,000 entries took 5x as long).
        for c in [&holder, &reader] {
            c.batch_execute(
                "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; SET jit = off",
            )
            .await
            .map_err(|e| unusable(why(e)))?;
        }
        let w = Writes::prepare(&holder).await.map_err(unusable)?;
        let r = Reads::prepare(&reader).await.map_err(unusable)?;
        Ok(Link {
            writer: Writer { client: holder, w },
            reader,
            r,
        })
    }

    /// The keys of every stored entry, hashed: 8 bytes an entry.
    /// They stream in as the server sends them: a row is hashed and dropped, so a store of
    /// millions of entries costs its hashes, not its rows.
    pub async fn known(&self) -> Result<foldhash::HashSet<u64>, String> {
        use futures_util::TryStreamExt;
        let rows = self
            .reader
            .query_raw(
                "SELECT key FROM entries UNION SELECT entry_key FROM deliveries",
                std::iter::empty::<&str>(),
            )
            .await
            .map_err(why)?;
        rows.map_ok(|r| crate::identity::hash_key(r.get::<_, &str>(0)))
            .try_collect()
            .await
            .map_err(why)
    }

    fn closed(&self) -> bool {
        self.reader.is_closed() || self.writer.client.is_closed()
    }
}

impl Writes {
    async fn prepare(c: &Client) -> Result<Writes, String> {
        Ok(Writes {
            segment: c.prepare(&segment(UPSERT)).await.map_err(why)?,
            fresh: c.prepare(&segment(INSERT)).await.map_err(why)?,
        })
    }
}

/// A segment's statement: its befores (`$1`), outcomes (`$2`) and entry rows (`$3`), each one
/// JSON array read by `json_to_recordset`, written at `$4`; `how` says how rows are inserted.
/// (An array per column made 21 functions to unnest, each into a buffer of its own: 7% of the
/// server's time went to making those buffers.)
fn segment(how: [&str; 2]) -> String {
    let [befores, entries] = how;
    format!(
        "WITH befores AS (
           INSERT INTO deliveries (id, entry_key, step, status, updated, customer, channel, sent_at)
           SELECT i, e, s, 'pending', $4, c, ch, a
           FROM json_to_recordset($1::json) AS u(i text, e text, s text, c text, ch text, a text)
           {befores}
         ), afters AS (
           UPDATE deliveries d SET status = u.st, http_status = u.hs, saved = u.sv, attempts = d.attempts + CASE WHEN d.updated = $4 THEN 0 ELSE u.at END, updated = $4
           FROM json_to_recordset($2::json) AS u(e text, s text, st text, hs int4, sv text, at int4)
           WHERE d.entry_key = u.e AND d.step = u.s
         )
         INSERT INTO entries (key, journey, customer, status, outcome, start_step, due, snapshot, started, updated)
         SELECT k, j, c, st, o, ss, du, sn, sa, $4
         FROM json_to_recordset($3::json) AS u(k text, j text, c text, st text, o text, ss int4, du text, sn text, sa text)
         {entries}"
    )
}

/// Rows that may be there already (a re-run, a resumed entry, a batch sent again after the
/// server went away): inserted or updated.
const UPSERT: [&str; 2] = [
    "ON CONFLICT (entry_key, step) DO UPDATE SET status = 'pending', updated = EXCLUDED.updated, sent_at = EXCLUDED.sent_at",
    "ON CONFLICT (key) DO UPDATE SET status = EXCLUDED.status, updated = EXCLUDED.updated,
       outcome = CASE WHEN EXCLUDED.status = 'waiting' THEN entries.outcome ELSE EXCLUDED.outcome END,
       start_step = CASE WHEN EXCLUDED.status = 'waiting' THEN EXCLUDED.start_step ELSE entries.start_step END,
       due = CASE WHEN EXCLUDED.status = 'waiting' THEN EXCLUDED.due ELSE entries.due END,
       snapshot = CASE WHEN EXCLUDED.status = 'waiting' THEN EXCLUDED.snapshot ELSE entries.snapshot END",
];

/// Rows of entries the store held nothing of: plainly inserted. An insert that must first look
/// for a conflicting row walks the index twice and writes two WAL records; measured on a run
/// of 50,000 new entries, these made 5.2 WAL records an entry instead of 7.2.
const INSERT: [&str; 2] = ["", ""];

impl Reads {
    async fn prepare(c: &Client) -> Result<Reads, String> {
        Ok(Reads {
            load: c
                .prepare(
                    "SELECT e.status, e.outcome, e.start_step, e.due, e.snapshot, d.step, d.status, d.http_status, d.saved, q.k
                     FROM unnest($1::text[]) AS q(k)
                     LEFT JOIN entries e ON e.key = q.k
                     LEFT JOIN deliveries d ON d.entry_key = q.k",
                )
                .await
                .map_err(why)?,
            count: c
                .prepare(
                    "SELECT COUNT(*) FROM deliveries WHERE customer = $1 AND channel = $2 AND sent_at > $3
                     AND status IN ('ok', 'pending')",
                )
                .await
                .map_err(why)?,
            due: c
                .prepare(
                    "SELECT key, journey FROM entries WHERE status = 'waiting' AND due <= $1 ORDER BY due, key",
                )
                .await
                .map_err(why)?,
        })
    }
}

/// A read, with whom to answer.
pub(super) enum Read {
    Count {
        customer: String,
        channel: String,
        since: String,
        reply: oneshot::Sender<Result<u32, String>>,
    },
    Due(String, oneshot::Sender<Result<Vec<DueEntry>, String>>),
    /// A host's shares and pauses, told and heard.
    Coordinate(
        super::super::Coordination,
        oneshot::Sender<Result<super::super::Coordinated, String>>,
    ),
    /// A host's shares given up.
    Leave(String, Ack),
    /// The keys of the alerts that fired and are not resolved yet.
    Marks(oneshot::Sender<Result<Vec<String>, String>>),
    /// An alert's key kept (fired) or dropped (resolved).
    Mark(String, bool, Ack),
}

/// A read's answer, kept until the batch has gone through.
enum Answer {
    Count(u32),
    Due(Vec<DueEntry>),
    Coordinated(super::super::Coordinated),
    Left,
    Marks(Vec<String>),
}

/// The messages of one batch, sorted.
#[derive(Default)]
struct Batch {
    /// Written as the `updated` of every row it writes, the same each time it goes ([`stamp`]).
    stamp: String,
    writes: Vec<Write>,
    befores: Vec<Ack>,
    flushes: Vec<Ack>,
    loads: Vec<(String, LoadReply)>,
    reads: Vec<Read>,
}

/// A batch's answers: its stored entries, in the order of its loads, and its other reads'.
struct Answers {
    loads: Vec<Option<StoredEntry>>,
    reads: Vec<Answer>,
}

impl Batch {
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Before(w, ack) => {
                self.writes.push(w);
                self.befores.push(ack);
            }
            Msg::Write(w) => self.writes.push(w),
            Msg::Flush(ack) => self.flushes.push(ack),
            Msg::Load(key, reply) => self.loads.push((key, reply)),
            Msg::Read(r) => self.reads.push(r),
        }
    }

    fn len(&self) -> usize {
        self.writes.len() + self.flushes.len() + self.loads.len() + self.reads.len()
    }

    /// Answers every read, "before" and flush with `why`.
    fn refuse(self, why: &str) {
        for ack in self.befores.into_iter().chain(self.flushes) {
            let _ = ack.send(Err(why.to_string()));
        }
        for (_, reply) in self.loads {
            let _ = reply.send(Err(why.to_string()));
        }
        for r in self.reads {
            match r {
                Read::Count { reply, .. } => drop(reply.send(Err(why.to_string()))),
                Read::Due(_, reply) => drop(reply.send(Err(why.to_string()))),
                Read::Coordinate(_, reply) => drop(reply.send(Err(why.to_string()))),
                Read::Leave(_, reply) | Read::Mark(_, _, reply) => {
                    drop(reply.send(Err(why.to_string())))
                }
                Read::Marks(reply) => drop(reply.send(Err(why.to_string()))),
            }
        }
    }

    fn answer(self, answers: Answers) {
        for ack in self.befores.into_iter().chain(self.flushes) {
            let _ = ack.send(Ok(()));
        }
        for ((_, reply), e) in self.loads.into_iter().zip(answers.loads) {
            let _ = reply.send(Ok(e));
        }
        for (r, a) in self.reads.into_iter().zip(answers.reads) {
            match (r, a) {
                (Read::Count { reply, .. }, Answer::Count(n)) => drop(reply.send(Ok(n))),
                (Read::Due(_, reply), Answer::Due(d)) => drop(reply.send(Ok(d))),
                (Read::Coordinate(_, reply), Answer::Coordinated(c)) => drop(reply.send(Ok(c))),
                (Read::Leave(_, reply) | Read::Mark(_, _, reply), Answer::Left) => {
                    drop(reply.send(Ok(())))
                }
                (Read::Marks(reply), Answer::Marks(m)) => drop(reply.send(Ok(m))),
                _ => {}
            }
        }
    }
}

/// What the loop shares with the store's handle.
pub(super) struct Shared {
    /// The first failure.
    pub failure: Mutex<Option<String>>,
    /// Called once when the store fails.
    pub hook: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

/// Batches in flight at once on the writer: the next is in the server's hands while the one
/// before it commits, so its round trip and the flush of the one before overlap.
const DEPTH: usize = 2;

/// A batch, and how it went.
type Done = (Batch, Result<Answers, Failure>);

/// The loop, until every sender is gone: batches as they come, up to [`DEPTH`] in
/// flight on the one writer (which runs them in order). A batch that waits for a flush, and
/// anything after a failure, goes alone, after everything before it. When the server goes
/// away, what was in flight finishes or fails, and what failed goes through again, in order,
/// as the store reconnects.
pub(super) async fn serve(
    link: Option<Link>,
    dial: Dial,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shared: Arc<Shared>,
) {
    let mut link = link.map(Arc::new);
    // Writes that could not be made once the store failed, kept for a last try at the flush.
    let mut held: Vec<Write> = Vec::new();
    let mut inflight = futures_util::stream::FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            Some((batch, result)) = futures_util::StreamExt::next(&mut inflight), if !inflight.is_empty() => {
                let mut again = Vec::new();
                settle(batch, result, &mut again);
                if !again.is_empty() {
                    drain(&mut inflight, &mut again).await;
                    for b in again {
                        alone(&mut link, &dial, &shared, &mut held, b).await;
                    }
                }
            }
            msg = rx.recv(), if inflight.len() < DEPTH => {
                let Some(first) = msg else { break };
                let batch = collect(first, &mut rx);
                let by_itself = !batch.flushes.is_empty() || failed(&shared).is_some();
                match (by_itself, link.clone()) {
                    (false, Some(l)) => inflight.push_back(async move {
                        let result = attempt(&l, &batch).await;
                        (batch, result)
                    }),
                    _ => {
                        let mut again = Vec::new();
                        drain(&mut inflight, &mut again).await;
                        again.push(batch);
                        for b in again {
                            alone(&mut link, &dial, &shared, &mut held, b).await;
                        }
                    }
                }
            }
        }
    }
    let mut again = Vec::new();
    drain(&mut inflight, &mut again).await;
    for b in again {
        alone(&mut link, &dial, &shared, &mut held, b).await;
    }
}

/// Waits for every batch in flight, in order, answering those that went through and keeping
/// the rest (a batch after one that failed is kept too: it goes through again after it).
async fn drain(
    inflight: &mut futures_util::stream::FuturesOrdered<impl std::future::Future<Output = Done>>,
    again: &mut Vec<Batch>,
) {
    while let Some((b, r)) = futures_util::StreamExt::next(inflight).await {
        match again.is_empty() {
            true => settle(b, r, again),
            false => again.push(b),
        }
    }
}

/// The messages waiting now, up to [`MAX_BATCH`], after `first`.
fn collect(first: Msg, rx: &mut mpsc::UnboundedReceiver<Msg>) -> Batch {
    let mut batch = Batch {
        stamp: stamp(),
        ..Batch::default()
    };
    batch.take(first);
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(m) => batch.take(m),
            Err(_) => break,
        }
    }
    batch
}

/// A batch's stamp: when it was made, a nanosecond after the last batch's when the clock has not
/// moved on, so no two batches share one. It is the same each time the batch goes: a batch that
/// went through, and goes again because the server went away before it said so, finds its own
/// stamp on the rows it wrote, and the attempts of its outcomes are not added up again.
fn stamp() -> String {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let next = |last: i64| now.max(last + 1);
    let last = LAST
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| Some(next(l)))
        .unwrap_or(now);
    crate::clock::rfc3339(chrono::DateTime::from_timestamp_nanos(next(last)))
}

/// Answers a batch that went through; keeps one that failed for [`alone`].
fn settle(batch: Batch, result: Result<Answers, Failure>, failed: &mut Vec<Batch>) {
    match result {
        Ok(answers) => batch.answer(answers),
        Err(_) => failed.push(batch),
    }
}

/// One batch on its own: through the reconnecting path, or held once the store has failed.
async fn alone(
    link: &mut Option<Arc<Link>>,
    dial: &Dial,
    shared: &Shared,
    held: &mut Vec<Write>,
    mut batch: Batch,
) {
    if let Some(why) = failed(shared) {
        held.append(&mut batch.writes);
        if !batch.flushes.is_empty() && rescue(link, dial, held).await {
            held.clear();
        }
        batch.refuse(&why);
        return;
    }
    match through(link, dial, &batch).await {
        Ok(answers) => batch.answer(answers),
        Err(why) => {
            fail(shared, dial, &why);
            held.append(&mut batch.writes);
            batch.refuse(&why);
        }
    }
}

fn failed(shared: &Shared) -> Option<String> {
    shared.failure.lock().ok().and_then(|f| f.clone())
}

/// Records the failure and tells the run, once.
fn fail(shared: &Shared, dial: &Dial, why: &str) {
    let first = match shared.failure.lock() {
        Ok(mut f) if f.is_none() => {
            *f = Some(why.to_string());
            true
        }
        _ => false,
    };
    if first {
        crate::output::stderr(&format!(
            "error: the state store {} failed: {why}; stopping (no new attempts)",
            dial.shown
        ));
        if let Some(hook) = shared.hook.lock().ok().and_then(|mut h| h.take()) {
            hook();
        }
    }
}

/// Makes the batch's writes and reads, reconnecting while the server is away (for
/// `--state-timeout` from the first failure); `Err` once that runs out or the store refuses.
async fn through(
    link: &mut Option<Arc<Link>>,
    dial: &Dial,
    batch: &Batch,
) -> Result<Answers, String> {
    let mut since: Option<Instant> = None;
    let mut first_error: Option<String> = None;
    loop {
        let outcome = match link.as_ref() {
            Some(l) => attempt(l, batch).await.map_err(|mut f| {
                f.lost |= l.closed();
                f
            }),
            None => Err(Failure {
                lost: true,
                why: "not connected".into(),
            }),
        };
        let error = match outcome {
            Ok(answers) => return Ok(answers),
            Err(Failure { lost: false, why }) => return Err(why),
            Err(Failure { why, .. }) => why,
        };
        let started = *since.get_or_insert_with(Instant::now);
        let error = first_error.get_or_insert(error).clone();
        if started.elapsed() >= dial.timeout {
            return Err(format!(
                "the server did not answer for {} ({error})",
                humantime::format_duration(dial.timeout)
            ));
        }
        if since == Some(started) && link.is_some() {
            crate::output::stderr(&format!(
                "warning: the state store {} is not answering ({error}); no new attempts until it does (--state-timeout {})",
                dial.shown,
                humantime::format_duration(dial.timeout)
            ));
        }
        *link = None;
        tokio::time::sleep(RETRY).await;
        match Link::open(dial).await {
            Ok(l) => *link = Some(Arc::new(l)),
            Err(super::super::StoreError::Unusable { .. }) => {}
            Err(other) => return Err(format!("on reconnecting: {other}")),
        }
    }
}

/// Why a try failed, and whether the session was lost (worth connecting again) or the server
/// refused (it would refuse again).
#[derive(Debug)]
struct Failure {
    lost: bool,
    why: String,
}

impl From<tokio_postgres::Error> for Failure {
    /// Lost: the connection closed, a connection exception (08), an operator's intervention
    /// (57: a shutdown, a restart), or no answer from the server at all.
    fn from(e: tokio_postgres::Error) -> Failure {
        let lost = e.is_closed()
            || match e.code() {
                Some(code) => {
                    let c = code.code();
                    // 40P01/40001: two batches met on a row; going through again settles it.
                    c.starts_with("08") || c.starts_with("57P") || c.starts_with("40")
                }
                None => e.as_db_error().is_none(),
            };
        Failure { lost, why: why(e) }
    }
}

/// A last try, at the flush of a failed store, to write what it holds: what was delivered is
/// then not forgotten if the server came back meanwhile.
async fn rescue(link: &mut Option<Arc<Link>>, dial: &Dial, held: &[Write]) -> bool {
    if held.is_empty() {
        return true;
    }
    let batch = Batch {
        stamp: stamp(),
        writes: held.to_vec(),
        ..Batch::default()
    };
    through(link, dial, &batch).await.is_ok()
}

/// One try: the writes in one transaction on the writer, the reads meanwhile on the reader
/// (the batch's stored entries in one statement: a re-run of everyone loads each entry it meets).
async fn attempt(link: &Link, batch: &Batch) -> Result<Answers, Failure> {
    let writes = write(&link.writer, &batch.writes, &batch.stamp);
    let keys: Vec<&str> = batch.loads.iter().map(|(key, _)| key.as_str()).collect();
    let loads = load(link, &keys);
    let reads = futures_util::future::join_all(batch.reads.iter().map(|r| read(link, r)));
    let (written, loads, reads) = tokio::join!(writes, loads, reads);
    written?;
    Ok(Answers {
        loads: loads?,
        reads: reads.into_iter().collect::<Result<_, _>>()?,
    })
}

/// The stored entries of `keys`, in their order, in one statement.
async fn load(link: &Link, keys: &[&str]) -> Result<Vec<Option<StoredEntry>>, Failure> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let rows = link
        .reader
        .query(&link.r.load, &[&keys])
        .await
        .map_err(Failure::from)?;
    let mut by_key: HashMap<&str, Vec<&tokio_postgres::Row>> = HashMap::new();
    for r in &rows {
        by_key.entry(r.get(9)).or_default().push(r);
    }
    Ok(keys
        .iter()
        .map(|k| entry_of(by_key.get(k).map_or(&[][..], Vec::as_slice)))
        .collect())
}

async fn read(link: &Link, r: &Read) -> Result<Answer, Failure> {
    let c = &link.reader;
    match r {
        Read::Count {
            customer,
            channel,
            since,
            ..
        } => {
            let row = c
                .query_one(&link.r.count, &[customer, channel, since])
                .await
                .map_err(Failure::from)?;
            Ok(Answer::Count(row.get::<_, i64>(0) as u32))
        }
        Read::Coordinate(co, _) => coordinate(c, co).await.map(Answer::Coordinated),
        Read::Leave(holder, _) => {
            c.execute("DELETE FROM rate_leases WHERE holder = $1", &[holder])
                .await
                .map_err(Failure::from)?;
            Ok(Answer::Left)
        }
        Read::Marks(_) => {
            let rows = c
                .query(
                    "SELECT key FROM meta WHERE key LIKE 'alert:%' ORDER BY key",
                    &[],
                )
                .await
                .map_err(Failure::from)?;
            Ok(Answer::Marks(rows.iter().map(|r| r.get(0)).collect()))
        }
        Read::Mark(key, fired, _) => {
            let sql = match fired {
                true => {
                    "INSERT INTO meta (key, value) VALUES ($1, now()::text) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                }
                false => "DELETE FROM meta WHERE key = $1",
            };
            c.execute(sql, &[key]).await.map_err(Failure::from)?;
            Ok(Answer::Left)
        }
        Read::Due(at, _) => {
            let rows = c.query(&link.r.due, &[at]).await.map_err(Failure::from)?;
            Ok(Answer::Due(
                rows.iter()
                    .map(|r| DueEntry {
                        key: r.get(0),
                        journey: r.get(1),
                    })
                    .collect(),
            ))
        }
    }
}

/// Leases the host its share of each limit for two seconds (a host that dies drops out
/// within them): an even split among the hosts holding a lease, but never more than the others
/// leave free, so a host that joins waits for the others to give up theirs (each does within
/// half a second) instead of sending over the limit meanwhile; and at first no more than 1/N,
/// since hosts that start together do not see each other's leases yet. Also records the pauses the
/// host was asked for and reads which partner hosts are paused. The database's clock decides,
/// so the hosts' clocks need not agree.
async fn coordinate(
    c: &Client,
    co: &super::super::Coordination,
) -> Result<super::super::Coordinated, Failure> {
    let keys: Vec<&str> = co.limits.iter().map(|(k, _)| k.as_str()).collect();
    let others = c
        .query(
            "SELECT key, count(*), coalesce(sum(share), 0)::float8 FROM rate_leases
             WHERE key = ANY($1) AND holder <> $2 AND expires >= now() GROUP BY key",
            &[&keys, &co.holder],
        )
        .await
        .map_err(Failure::from)?;
    let others: HashMap<String, (i64, f64)> = others
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let shares: HashMap<String, f64> = co
        .limits
        .iter()
        .map(|(key, limit)| {
            let others = others.get(key).copied().unwrap_or((0, 0.0));
            let first = co.first.then_some(co.hosts);
            (key.clone(), share_of(*limit, others, first))
        })
        .collect();
    let mine: Vec<f64> = keys.iter().map(|k| shares[*k]).collect();
    let lease_params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&keys, &co.holder, &mine];
    let lease = c.execute(
        "INSERT INTO rate_leases (key, holder, share, expires)
         SELECT k, $2, s, now() + interval '2 seconds' FROM unnest($1::text[], $3::float8[]) AS u(k, s)
         ON CONFLICT (key, holder) DO UPDATE SET share = EXCLUDED.share, expires = EXCLUDED.expires",
        &lease_params,
    );
    let (leased, pauses) = tokio::join!(lease, pauses(c, &co.pauses));
    leased.map_err(Failure::from)?;
    let pauses = pauses?;
    Ok(super::super::Coordinated { shares, pauses })
}

/// A host's share of `limit`: an even split among it and the `others` holding a lease (how
/// many, and how much they hold), never more than they leave free, and on its `first` lease
/// (`Some(N)`) no more than 1/N; at least a hundredth of the even split, so it keeps asking.
fn share_of(limit: f64, (others, held): (i64, f64), first: Option<u64>) -> f64 {
    let even = limit / (others + 1) as f64;
    let cap = first.map_or(f64::MAX, |n| limit / n.max(1) as f64);
    even.min(limit - held).min(cap).max(even / 100.0)
}

/// Records the pauses partners asked this host for, and reads every partner host paused now,
/// with how much longer.
async fn pauses(
    c: &Client,
    told: &[(String, std::time::Duration)],
) -> Result<Vec<(String, std::time::Duration)>, Failure> {
    let hosts: Vec<&str> = told.iter().map(|(h, _)| h.as_str()).collect();
    let secs: Vec<f64> = told.iter().map(|(_, d)| d.as_secs_f64()).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&hosts, &secs];
    let record = c.execute(
        "INSERT INTO pauses (host, until)
         SELECT h, now() + make_interval(secs => s) FROM unnest($1::text[], $2::float8[]) AS u(h, s)
         ON CONFLICT (host) DO UPDATE SET until = GREATEST(pauses.until, EXCLUDED.until)",
        &params,
    );
    let read = c.query(
        "SELECT host, extract(epoch FROM until - now())::float8 FROM pauses WHERE until > now()",
        &[],
    );
    let (recorded, heard) = tokio::join!(record, read);
    recorded.map_err(Failure::from)?;
    Ok(heard
        .map_err(Failure::from)?
        .iter()
        .map(|r| {
            let left: f64 = r.get(1);
            (r.get(0), std::time::Duration::from_secs_f64(left.max(0.0)))
        })
        .collect())
}

/// The entry the load's rows make (one row of nulls: nothing stored).
fn entry_of(rows: &[&tokio_postgres::Row]) -> Option<StoredEntry> {
    let first = rows.first()?;
    let row: Option<EntryFields> = first.get::<_, Option<String>>(0).map(|status| {
        (
            status,
            first.get(1),
            first.get::<_, Option<i32>>(2).unwrap_or(0) as i64,
            first.get(3),
            first.get(4),
        )
    });
    let deliveries: HashMap<String, StoredDelivery> = rows
        .iter()
        .filter_map(|r| {
            let step: String = r.get::<_, Option<String>>(5)?;
            let status: String = r.get::<_, Option<String>>(6)?;
            let http: Option<i32> = r.get(7);
            let saved: Option<String> = r.get(8);
            let d = super::super::stored_delivery(
                &status,
                http.and_then(|h| u16::try_from(h).ok()),
                saved.as_deref(),
            );
            Some((step, d))
        })
        .collect();
    super::super::stored_entry(row, deliveries)
}

/// The writes, in one transaction sent as one pipeline (BEGIN, a segment's befores, afters
/// and entry rows each as one statement, COMMIT), so the batch costs one round trip. A
/// segment ends where order would matter (an outcome, then a later "before" of the same
/// delivery). A statement that fails aborts the transaction, and its COMMIT rolls back.
async fn write(writer: &Writer, writes: &[Write], now: &str) -> Result<(), Failure> {
    if writes.is_empty() {
        return Ok(());
    }
    let c = &writer.client;
    let segments = segments(writes);
    if let [one] = &segments[..] {
        // One statement is a transaction of its own. A row taken for new that is there after
        // all (this batch went through once already, and the server went away before it said
        // so) rolls it back: it goes again with rows that may be there.
        if one.fresh() {
            match one.run(c, &writer.w.fresh, now).await {
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {}
                done => return done.map_err(Failure::from),
            }
        }
        return one
            .run(c, &writer.w.segment, now)
            .await
            .map_err(Failure::from);
    }
    let begin = c.batch_execute("BEGIN");
    let statements = futures_util::future::join_all(segments.iter().map(|s| async {
        s.run(c, &writer.w.segment, now)
            .await
            .map_err(Failure::from)
    }));
    let commit = c.batch_execute("COMMIT");
    let (begun, made, committed) = tokio::join!(begin, statements, commit);
    begun.map_err(Failure::from)?;
    made.into_iter().collect::<Result<(), Failure>>()?;
    committed.map_err(Failure::from)
}

/// Writes that can go as one statement: no row is touched twice by it.
#[derive(Default)]
struct Segment<'a> {
    /// "Before" records by delivery (the last wins).
    befores: indexmap::IndexMap<(&'a str, &'a str), &'a Write>,
    /// Outcomes by delivery, merged (the last status, the attempts added up).
    afters: indexmap::IndexMap<(&'a str, &'a str), AfterRow<'a>>,
    entries: indexmap::IndexMap<&'a str, &'a Write>,
}

struct AfterRow<'a> {
    status: &'a str,
    http_status: Option<u16>,
    saved: &'a str,
    attempts: u32,
}

/// The writes in segments: a new one starts where a delivery's "before" and outcome would
/// meet in one statement (order matters there; a statement sees neither's effect).
fn segments(writes: &[Write]) -> Vec<Segment<'_>> {
    let mut out = vec![Segment::default()];
    for w in writes {
        match w {
            Write::Before(b) => {
                let key = (b.entry.as_str(), b.step.as_str());
                if last(&mut out).afters.contains_key(&key) {
                    out.push(Segment::default());
                }
                let seg = last(&mut out);
                seg.befores.shift_remove(&key);
                seg.befores.insert(key, w);
            }
            Write::After {
                entry,
                step,
                status,
                http_status,
                saved,
                attempts,
            } => {
                let key = (entry.as_str(), step.as_str());
                if last(&mut out).befores.contains_key(&key) {
                    out.push(Segment::default());
                }
                let row = last(&mut out).afters.entry(key).or_insert(AfterRow {
                    status,
                    http_status: *http_status,
                    saved,
                    attempts: 0,
                });
                row.status = status;
                row.http_status = *http_status;
                row.saved = saved;
                row.attempts += attempts;
            }
            // An alert's mark goes as a read of its own ([`Read::Mark`]).
            Write::Mark { .. } => {}
            Write::End { row, .. } | Write::Park { row, .. } => {
                let seg = last(&mut out);
                seg.entries.shift_remove(row.key.as_str());
                seg.entries.insert(row.key.as_str(), w);
            }
        }
    }
    out
}

fn last<'s, 'a>(segments: &'s mut [Segment<'a>]) -> &'s mut Segment<'a> {
    segments.last_mut().expect("one segment at least")
}

impl Segment<'_> {
    /// True when each of its rows is the first of its key: its entries were new to the store.
    fn fresh(&self) -> bool {
        let before = |w: &&Write| matches!(w, Write::Before(b) if b.fresh);
        let entry = |w: &&Write| match w {
            Write::End { row, .. } | Write::Park { row, .. } => row.fresh,
            _ => false,
        };
        self.befores.values().all(before) && self.entries.values().all(entry)
    }

    async fn run(
        &self,
        c: &Client,
        statement: &Statement,
        now: &str,
    ) -> Result<(), tokio_postgres::Error> {
        let befores: Vec<BeforeJson> = self
            .befores
            .values()
            .filter_map(|w| BeforeJson::of(w))
            .collect();
        let afters: Vec<AfterJson> = self
            .afters
            .iter()
            .map(|((e, s), r)| AfterJson {
                e,
                s,
                st: r.status,
                hs: r.http_status.map(i32::from),
                sv: r.saved,
                at: r.attempts as i32,
            })
            .collect();
        let entries: Vec<EntryJson> = self
            .entries
            .values()
            .filter_map(|w| EntryJson::of(w))
            .collect();
        c.execute(
            statement,
            &[&Json(&befores), &Json(&afters), &Json(&entries), &now],
        )
        .await
        .map(drop)
    }
}

/// A "before" record, as a row of `json_to_recordset`.
#[derive(Debug, serde::Serialize)]
struct BeforeJson<'a> {
    i: &'a str,
    e: &'a str,
    s: &'a str,
    c: &'a str,
    ch: Option<&'a str>,
    a: &'a str,
}

impl<'a> BeforeJson<'a> {
    fn of(w: &'a Write) -> Option<BeforeJson<'a>> {
        match w {
            Write::Before(b) => Some(BeforeJson {
                i: &b.id,
                e: &b.entry,
                s: &b.step,
                c: &b.customer,
                ch: b.channel.as_deref(),
                a: &b.at,
            }),
            _ => None,
        }
    }
}

/// An outcome, as a row of `json_to_recordset`.
#[derive(Debug, serde::Serialize)]
struct AfterJson<'a> {
    e: &'a str,
    s: &'a str,
    st: &'a str,
    hs: Option<i32>,
    sv: &'a str,
    at: i32,
}

/// An entry row, as a row of `json_to_recordset`.
#[derive(Debug, serde::Serialize)]
struct EntryJson<'a> {
    k: &'a str,
    j: &'a str,
    c: &'a str,
    st: &'a str,
    o: Option<&'a str>,
    ss: i32,
    du: Option<&'a str>,
    sn: Option<&'a str>,
    sa: &'a str,
}

impl<'a> EntryJson<'a> {
    fn of(w: &'a Write) -> Option<EntryJson<'a>> {
        let (row, st, o, ss, du, sn) = match w {
            Write::End {
                row,
                status,
                outcome,
            } => (row, status.as_str(), Some(outcome.as_str()), 0, None, None),
            Write::Park {
                row,
                start_step,
                due,
                snapshot,
            } => (
                row,
                "waiting",
                None,
                *start_step as i32,
                Some(due.as_str()),
                Some(snapshot.as_str()),
            ),
            _ => return None,
        };
        Some(EntryJson {
            k: &row.key,
            j: &row.journey,
            c: &row.customer,
            st,
            o,
            ss,
            du,
            sn,
            sa: &row.started,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::super::redo::Write;

    fn before(entry: &str, step: &str) -> Write {
        Write::before_of(entry, step)
    }

    fn after(entry: &str, step: &str, status: &str, attempts: u32) -> Write {
        Write::after_of(entry, step, status, attempts)
    }

    #[test]
    fn a_batch_is_one_statement_unless_a_delivery_would_meet_itself() {
        let plain = [
            before("e1", "a"),
            after("e2", "a", "ok", 1),
            before("e3", "a"),
        ];
        let one = segments(&plain);
        assert_eq!(one.len(), 1);
        assert_eq!((one[0].befores.len(), one[0].afters.len()), (2, 1));
        // A step walked twice: its outcome, then its next "before", in order.
        let again = [after("e1", "a", "ok", 1), before("e1", "a")];
        assert_eq!(segments(&again).len(), 2);
        let then = [before("e1", "a"), after("e1", "a", "failed", 3)];
        assert_eq!(segments(&then).len(), 2);
    }

    #[test]
    fn a_share_is_an_even_split_of_what_the_others_leave_free() {
        assert_eq!(share_of(40.0, (0, 0.0), None), 40.0, "alone");
        assert_eq!(share_of(40.0, (1, 20.0), None), 20.0, "two");
        assert_eq!(share_of(40.0, (0, 0.0), Some(2)), 20.0, "first lease: 1/N");
        assert_eq!(
            share_of(40.0, (1, 40.0), None),
            0.2,
            "a newcomer waits for room"
        );
    }

    fn fresh_before(entry: &str, step: &str) -> Write {
        let mut w = before(entry, step);
        if let Write::Before(b) = &mut w {
            b.fresh = true;
        }
        w
    }

    fn fresh_end(key: &str) -> Write {
        Write::End {
            row: crate::state::redo::Row {
                key: key.into(),
                journey: "j".into(),
                customer: "c".into(),
                started: "t".into(),
                fresh: true,
            },
            status: "done".into(),
            outcome: "completed".into(),
        }
    }

    #[test]
    fn a_segment_is_fresh_only_when_each_of_its_rows_is() {
        let fresh = [fresh_before("e1", "a"), fresh_end("e2")];
        assert!(segments(&fresh)[0].fresh());
        let mixed = [fresh_before("e1", "a"), before("e3", "a")];
        assert!(!segments(&mixed)[0].fresh());
    }

    /// On the database named by `JOURNEY_TEST_POSTGRES` (skipped, and said, without it): a batch
    /// of rows taken for new that goes through twice (the server went away before it answered
    /// the first time) is written once, not refused.
    /// A writer on a schema of its own (`None` without `JOURNEY_TEST_POSTGRES`).
    async fn writer_on(schema: &str) -> Option<Writer> {
        let Ok(base) = std::env::var("JOURNEY_TEST_POSTGRES") else {
            eprintln!("JOURNEY_TEST_POSTGRES is not set: this PostgreSQL test did not run");
            return None;
        };
        let target = Target::parse(
            &format!("{base}?schema={schema}"),
            &std::collections::HashMap::new(),
        )
        .unwrap();
        let mut client = connect(&target, None, Duration::from_secs(10))
            .await
            .unwrap();
        super::super::schema::migrate(&mut client, schema, 1)
            .await
            .unwrap();
        Some(Writer {
            w: Writes::prepare(&client).await.unwrap(),
            client,
        })
    }

    /// One number that `sql` reads, then the schema dropped.
    async fn read_and_drop(writer: &Writer, schema: &str, sql: &str) -> i64 {
        let n: i64 = writer.client.query_one(sql, &[]).await.unwrap().get(0);
        writer
            .client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
        n
    }

    const STAMP: &str = "2026-12-06T00:00:00.000000001Z";

    #[tokio::test(flavor = "current_thread")]
    async fn fresh_rows_sent_again_are_written_once() {
        let schema = format!("unit_fresh_{}", std::process::id());
        let Some(writer) = writer_on(&schema).await else {
            return;
        };
        let batch = [fresh_before("e1", "a"), fresh_end("e1")];
        let first = write(&writer, &batch, STAMP).await;
        let again = write(&writer, &batch, STAMP).await;
        let rows = read_and_drop(
            &writer,
            &schema,
            "SELECT (SELECT COUNT(*) FROM deliveries) + (SELECT COUNT(*) FROM entries)",
        )
        .await;
        assert!(first.is_ok() && again.is_ok(), "both went through");
        assert_eq!(rows, 2, "one delivery and one entry");
    }

    /// The server went away after it committed a batch and before it said so: the batch goes
    /// again, with its own stamp, and its outcomes' attempts are counted once. An outcome of a
    /// later batch (a later run's) adds its own.
    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_that_goes_again_counts_its_attempts_once() {
        let schema = format!("unit_again_{}", std::process::id());
        let Some(writer) = writer_on(&schema).await else {
            return;
        };
        write(&writer, &[before("e1", "a")], &stamp())
            .await
            .unwrap();
        let outcome = [after("e1", "a", "failed", 3)];
        let once = stamp();
        write(&writer, &outcome, &once).await.unwrap();
        write(&writer, &outcome, &once).await.unwrap();
        write(&writer, &[after("e1", "a", "ok", 1)], &stamp())
            .await
            .unwrap();
        let attempts =
            read_and_drop(&writer, &schema, "SELECT attempts::int8 FROM deliveries").await;
        assert_eq!(attempts, 4, "3 counted once, then 1");
    }

    #[test]
    fn no_two_batches_share_a_stamp() {
        let stamps: Vec<String> = (0..1000).map(|_| stamp()).collect();
        let distinct: std::collections::HashSet<&String> = stamps.iter().collect();
        assert_eq!(distinct.len(), stamps.len());
    }

    #[test]
    fn outcomes_of_one_delivery_in_one_statement_are_merged() {
        let twice = [after("e1", "a", "failed", 3), after("e1", "a", "ok", 1)];
        let seg = segments(&twice);
        let row = &seg[0].afters[&("e1", "a")];
        assert_eq!((row.status, row.attempts), ("ok", 4));
    }
}
