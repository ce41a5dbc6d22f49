//! The store's own thread: two connections (one writes and holds the run's locks, one reads),
//! messages taken in batches, each batch's writes made in one transaction with one statement
//! per kind, so the database's latency is paid per batch. A "before" record is acknowledged
//! once its transaction commits. When the server goes away, nothing new is acknowledged while
//! it reconnects, for `--state-timeout`; then the store fails and the run stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Statement};

use super::super::redo::Write;
use super::super::{Claim, DueEntry, EntryFields, StoredDelivery, StoredEntry};
use super::connect::{connect, why};
use super::target::Target;

/// What the store asks of its thread.
pub(super) enum Msg {
    /// A "before" record, acknowledged once committed.
    Before(Write, Ack),
    /// Any other write.
    Write(Write),
    Load(String, oneshot::Sender<Result<Option<StoredEntry>, String>>),
    Count {
        customer: String,
        channel: String,
        since: String,
        reply: oneshot::Sender<Result<u32, String>>,
    },
    Due(String, oneshot::Sender<Result<Vec<DueEntry>, String>>),
    /// Answered once everything sent before it is committed.
    Flush(Ack),
}

pub(super) type Ack = oneshot::Sender<Result<(), String>>;

/// Most messages one batch takes.
const MAX_BATCH: usize = 8192;
/// How often a lost server is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// What the thread needs to connect again.
pub(super) struct Dial {
    pub target: Target,
    pub password: Option<String>,
    pub claim: Claim,
    pub key: i32,
    pub timeout: Duration,
    pub shown: String,
}

/// Both connections, with their statements.
pub(super) struct Link {
    writer: Client,
    reader: Client,
    w: Writes,
    r: Reads,
}

struct Writes {
    before: Statement,
    after: Statement,
    entries: Statement,
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
        let mut writer = connect(&dial.target, pw, dial.timeout)
            .await
            .map_err(unusable)?;
        super::schema::migrate(&mut writer, &dial.target.schema, dial.key)
            .await
            .map_err(unusable)?;
        super::claim::claim(&writer, dial.key, dial.claim, &dial.shown).await?;
        let reader = connect(&dial.target, pw, dial.timeout)
            .await
            .map_err(unusable)?;
        let w = Writes::prepare(&writer).await.map_err(unusable)?;
        let r = Reads::prepare(&reader).await.map_err(unusable)?;
        Ok(Link {
            writer,
            reader,
            w,
            r,
        })
    }

    /// The keys of every stored entry, hashed: 8 bytes an entry.
    pub async fn known(&self) -> Result<foldhash::HashSet<u64>, String> {
        let rows = self
            .reader
            .query(
                "SELECT key FROM entries UNION SELECT entry_key FROM deliveries",
                &[],
            )
            .await
            .map_err(why)?;
        Ok(rows
            .iter()
            .map(|r| crate::identity::hash_key(r.get::<_, &str>(0)))
            .collect())
    }

    fn closed(&self) -> bool {
        self.writer.is_closed() || self.reader.is_closed()
    }
}

impl Writes {
    async fn prepare(c: &Client) -> Result<Writes, String> {
        Ok(Writes {
            before: c
                .prepare(
                    "INSERT INTO deliveries (id, entry_key, step, status, updated, customer, channel, sent_at)
                     SELECT i, e, s, 'pending', $7, c, ch, a
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(i, e, s, c, ch, a)
                     ON CONFLICT (entry_key, step) DO UPDATE SET status = 'pending', updated = EXCLUDED.updated, sent_at = EXCLUDED.sent_at",
                )
                .await
                .map_err(why)?,
            after: c
                .prepare(
                    "UPDATE deliveries d SET status = u.st, http_status = u.hs, saved = u.sv, attempts = d.attempts + u.at, updated = $7
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::int4[]) AS u(e, s, st, hs, sv, at)
                     WHERE d.entry_key = u.e AND d.step = u.s",
                )
                .await
                .map_err(why)?,
            entries: c
                .prepare(
                    "INSERT INTO entries (key, journey, customer, status, outcome, start_step, due, snapshot, started, updated)
                     SELECT k, j, c, st, o, ss, du, sn, sa, $10
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[])
                       AS u(k, j, c, st, o, ss, du, sn, sa)
                     ON CONFLICT (key) DO UPDATE SET status = EXCLUDED.status, updated = EXCLUDED.updated,
                       outcome = CASE WHEN EXCLUDED.status = 'waiting' THEN entries.outcome ELSE EXCLUDED.outcome END,
                       start_step = CASE WHEN EXCLUDED.status = 'waiting' THEN EXCLUDED.start_step ELSE entries.start_step END,
                       due = CASE WHEN EXCLUDED.status = 'waiting' THEN EXCLUDED.due ELSE entries.due END,
                       snapshot = CASE WHEN EXCLUDED.status = 'waiting' THEN EXCLUDED.snapshot ELSE entries.snapshot END",
                )
                .await
                .map_err(why)?,
        })
    }
}

impl Reads {
    async fn prepare(c: &Client) -> Result<Reads, String> {
        Ok(Reads {
            load: c
                .prepare(
                    "SELECT e.status, e.outcome, e.start_step, e.due, e.snapshot, d.step, d.status, d.http_status, d.saved
                     FROM (SELECT $1::text AS k) q
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
enum Read {
    Load(String, oneshot::Sender<Result<Option<StoredEntry>, String>>),
    Count {
        customer: String,
        channel: String,
        since: String,
        reply: oneshot::Sender<Result<u32, String>>,
    },
    Due(String, oneshot::Sender<Result<Vec<DueEntry>, String>>),
}

/// A read's answer, kept until the batch has gone through.
enum Answer {
    Load(Option<Box<StoredEntry>>),
    Count(u32),
    Due(Vec<DueEntry>),
}

/// The messages of one batch, sorted.
#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    befores: Vec<Ack>,
    flushes: Vec<Ack>,
    reads: Vec<Read>,
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
            Msg::Load(k, reply) => self.reads.push(Read::Load(k, reply)),
            Msg::Count {
                customer,
                channel,
                since,
                reply,
            } => self.reads.push(Read::Count {
                customer,
                channel,
                since,
                reply,
            }),
            Msg::Due(at, reply) => self.reads.push(Read::Due(at, reply)),
        }
    }

    fn len(&self) -> usize {
        self.writes.len() + self.flushes.len() + self.reads.len()
    }

    /// Answers every read, "before" and flush with `why`.
    fn refuse(self, why: &str) {
        for ack in self.befores.into_iter().chain(self.flushes) {
            let _ = ack.send(Err(why.to_string()));
        }
        for r in self.reads {
            match r {
                Read::Load(_, reply) => drop(reply.send(Err(why.to_string()))),
                Read::Count { reply, .. } => drop(reply.send(Err(why.to_string()))),
                Read::Due(_, reply) => drop(reply.send(Err(why.to_string()))),
            }
        }
    }

    fn answer(self, answers: Vec<Answer>) {
        for ack in self.befores.into_iter().chain(self.flushes) {
            let _ = ack.send(Ok(()));
        }
        for (r, a) in self.reads.into_iter().zip(answers) {
            match (r, a) {
                (Read::Load(_, reply), Answer::Load(e)) => drop(reply.send(Ok(e.map(|e| *e)))),
                (Read::Count { reply, .. }, Answer::Count(n)) => drop(reply.send(Ok(n))),
                (Read::Due(_, reply), Answer::Due(d)) => drop(reply.send(Ok(d))),
                _ => {}
            }
        }
    }
}

/// What the thread shares with the store's handle.
pub(super) struct Shared {
    /// The first failure.
    pub failure: Mutex<Option<String>>,
    /// Called once when the store fails.
    pub hook: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

/// The thread's loop: batches until every sender is gone.
pub(super) async fn serve(
    mut link: Option<Link>,
    dial: Dial,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    shared: Arc<Shared>,
) {
    // Writes that could not be made once the store failed, kept for a last try at the flush.
    let mut held: Vec<Write> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::default();
        batch.take(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(m) => batch.take(m),
                Err(_) => break,
            }
        }
        if let Some(why) = failed(&shared) {
            held.append(&mut batch.writes);
            if !batch.flushes.is_empty() && rescue(&mut link, &dial, &held).await {
                held.clear();
            }
            batch.refuse(&why);
            continue;
        }
        match through(&mut link, &dial, &batch).await {
            Ok(answers) => batch.answer(answers),
            Err(why) => {
                fail(&shared, &dial, &why);
                held.append(&mut batch.writes);
                batch.refuse(&why);
            }
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
    link: &mut Option<Link>,
    dial: &Dial,
    batch: &Batch,
) -> Result<Vec<Answer>, String> {
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
            Ok(l) => *link = Some(l),
            Err(super::super::StoreError::Unusable { .. }) => {}
            Err(other) => return Err(format!("on reconnecting: {other}")),
        }
    }
}

/// Why a try failed, and whether the session was lost (worth connecting again) or the server
/// refused (it would refuse again).
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
                    c.starts_with("08") || c.starts_with("57P")
                }
                None => e.as_db_error().is_none(),
            };
        Failure { lost, why: why(e) }
    }
}

/// A last try, at the flush of a failed store, to write what it holds: what was delivered is
/// then not forgotten if the server came back meanwhile.
async fn rescue(link: &mut Option<Link>, dial: &Dial, held: &[Write]) -> bool {
    if held.is_empty() {
        return true;
    }
    let batch = Batch {
        writes: held.to_vec(),
        ..Batch::default()
    };
    through(link, dial, &batch).await.is_ok()
}

/// One try: the writes in one transaction on the writer, the reads meanwhile on the reader.
async fn attempt(link: &Link, batch: &Batch) -> Result<Vec<Answer>, Failure> {
    let writes = write(link, &batch.writes);
    let reads = futures_util::future::join_all(batch.reads.iter().map(|r| read(link, r)));
    let (written, answers) = tokio::join!(writes, reads);
    written?;
    answers.into_iter().collect()
}

async fn read(link: &Link, r: &Read) -> Result<Answer, Failure> {
    let c = &link.reader;
    match r {
        Read::Load(key, _) => {
            let rows = c.query(&link.r.load, &[key]).await.map_err(Failure::from)?;
            Ok(Answer::Load(entry_of(&rows).map(Box::new)))
        }
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

/// The entry the load's rows make (one row of nulls: nothing stored).
fn entry_of(rows: &[tokio_postgres::Row]) -> Option<StoredEntry> {
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

/// The writes, in one transaction: a segment's befores, afters and entry rows each go as one
/// statement. A segment ends where order would matter (an outcome, then a later "before" of
/// the same delivery).
async fn write(link: &Link, writes: &[Write]) -> Result<(), Failure> {
    if writes.is_empty() {
        return Ok(());
    }
    let now = crate::clock::rfc3339(chrono::Utc::now());
    let c = &link.writer;
    c.batch_execute("BEGIN").await.map_err(Failure::from)?;
    let mut result = Ok(());
    for segment in segments(writes) {
        if let Err(e) = segment.run(c, &link.w, &now).await {
            result = Err(e);
            break;
        }
    }
    match result {
        Ok(()) => c.batch_execute("COMMIT").await.map_err(Failure::from),
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Writes that can go as one statement per kind.
#[derive(Default)]
struct Segment<'a> {
    befores: Vec<&'a Write>,
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

fn segments(writes: &[Write]) -> Vec<Segment<'_>> {
    let mut out = vec![Segment::default()];
    for w in writes {
        let seg = out.last_mut().expect("one segment at least");
        match w {
            Write::Before { entry, step, .. } => {
                if seg.afters.contains_key(&(entry.as_str(), step.as_str())) {
                    out.push(Segment::default());
                }
                out.last_mut().expect("pushed").befores.push(w);
            }
            Write::After {
                entry,
                step,
                status,
                http_status,
                saved,
                attempts,
            } => {
                let row = seg
                    .afters
                    .entry((entry.as_str(), step.as_str()))
                    .or_insert(AfterRow {
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
            Write::End { row, .. } | Write::Park { row, .. } => {
                seg.entries.shift_remove(row.key.as_str());
                seg.entries.insert(row.key.as_str(), w);
            }
        }
    }
    out
}

impl Segment<'_> {
    async fn run(&self, c: &Client, w: &Writes, now: &str) -> Result<(), Failure> {
        let befores = async {
            if self.befores.is_empty() {
                return Ok(());
            }
            let mut cols: [Vec<Option<&str>>; 6] = Default::default();
            let mut seen = std::collections::HashSet::new();
            // The last "before" of a delivery wins (a statement may touch a row once).
            for b in self.befores.iter().rev() {
                if let Write::Before {
                    id,
                    entry,
                    step,
                    customer,
                    channel,
                    at,
                } = b
                    && seen.insert((entry.as_str(), step.as_str()))
                {
                    for (col, v) in cols.iter_mut().zip([
                        Some(id.as_str()),
                        Some(entry),
                        Some(step),
                        Some(customer),
                        channel.as_deref(),
                        Some(at),
                    ]) {
                        col.push(v);
                    }
                }
            }
            let [a, b, c2, d, e, f] = &cols;
            c.execute(&w.before, &[a, b, c2, d, e, f, &now])
                .await
                .map(drop)
                .map_err(Failure::from)
        };
        let afters = async {
            if self.afters.is_empty() {
                return Ok(());
            }
            let keys = self.afters.keys();
            let entries: Vec<&str> = keys.clone().map(|(e, _)| *e).collect();
            let steps: Vec<&str> = keys.map(|(_, s)| *s).collect();
            let rows = self.afters.values();
            let status: Vec<&str> = rows.clone().map(|r| r.status).collect();
            let http: Vec<Option<i32>> =
                rows.clone().map(|r| r.http_status.map(i32::from)).collect();
            let saved: Vec<&str> = rows.clone().map(|r| r.saved).collect();
            let attempts: Vec<i32> = rows.map(|r| r.attempts as i32).collect();
            c.execute(
                &w.after,
                &[&entries, &steps, &status, &http, &saved, &attempts, &now],
            )
            .await
            .map(drop)
            .map_err(Failure::from)
        };
        let entries = async {
            if self.entries.is_empty() {
                return Ok(());
            }
            let rows = EntryRows::of(self.entries.values().copied());
            c.execute(
                &w.entries,
                &[
                    &rows.key,
                    &rows.journey,
                    &rows.customer,
                    &rows.status,
                    &rows.outcome,
                    &rows.start_step,
                    &rows.due,
                    &rows.snapshot,
                    &rows.started,
                    &now,
                ],
            )
            .await
            .map(drop)
            .map_err(Failure::from)
        };
        // Sent one after another without waiting (the connection pipelines them), run in order.
        let (b, a, e) = tokio::join!(befores, afters, entries);
        b.and(a).and(e)
    }
}

/// Entry rows as columns.
#[derive(Default)]
struct EntryRows<'a> {
    key: Vec<&'a str>,
    journey: Vec<&'a str>,
    customer: Vec<&'a str>,
    status: Vec<&'a str>,
    outcome: Vec<Option<&'a str>>,
    start_step: Vec<i32>,
    due: Vec<Option<&'a str>>,
    snapshot: Vec<Option<&'a str>>,
    started: Vec<&'a str>,
}

impl<'a> EntryRows<'a> {
    fn of(writes: impl Iterator<Item = &'a Write>) -> EntryRows<'a> {
        let mut rows = EntryRows::default();
        for w in writes {
            let (row, status, outcome, start_step, due, snapshot) = match w {
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
                _ => continue,
            };
            rows.key.push(&row.key);
            rows.journey.push(&row.journey);
            rows.customer.push(&row.customer);
            rows.status.push(status);
            rows.outcome.push(outcome);
            rows.start_step.push(start_step);
            rows.due.push(due);
            rows.snapshot.push(snapshot);
            rows.started.push(&row.started);
        }
        rows
    }
}
