//! The writer thread: owns the connection, takes messages in batches, answers reads at once and
//! acknowledges "before" records only after their transaction is committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, Statement, params};
use tokio::sync::oneshot;

use super::{DueEntry, EntryStatus, StoredDelivery, StoredEntry};

/// What the store asks of the writer.
pub(super) enum Msg {
    Load(String, oneshot::Sender<Result<Option<StoredEntry>, String>>),
    Before {
        id: String,
        entry: String,
        step: String,
        customer: String,
        channel: Option<String>,
        at: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
    After {
        entry: String,
        step: String,
        status: String,
        http_status: Option<u16>,
        saved: String,
        attempts: u32,
    },
    End {
        row: Row,
        status: &'static str,
        outcome: String,
    },
    Park {
        row: Row,
        start_step: usize,
        due: String,
        snapshot: String,
    },
    Due(String, oneshot::Sender<Result<Vec<DueEntry>, String>>),
    Shard(
        Option<String>,
        oneshot::Sender<Result<Option<String>, String>>,
    ),
    Count {
        customer: String,
        channel: String,
        since: String,
        reply: oneshot::Sender<Result<u32, String>>,
    },
    Flush(oneshot::Sender<Result<(), String>>),
    /// Messages made together, in order.
    Batch(Vec<Msg>),
}

/// What an entry's row is made with: it is written first when the entry ends or parks.
pub(super) struct Row {
    pub key: String,
    pub journey: String,
    pub customer: String,
    pub started: String,
}

/// Most writes one transaction holds before it commits.
const MAX_BATCH: usize = 4096;
/// Longest a transaction stays open when nothing waits on it.
const MAX_OPEN: std::time::Duration = std::time::Duration::from_millis(50);

/// The writer. It keeps one transaction open while messages come; it commits as soon as a
/// "before" (or a flush) waits for its acknowledgement and the queue is momentarily empty, or
/// after [`MAX_BATCH`] writes, or [`MAX_OPEN`]: many deliveries share one commit, and nothing is
/// acknowledged before it is committed.
pub(super) fn worker(
    conn: Connection,
    rx: mpsc::Receiver<Msg>,
    failure: Arc<Mutex<Option<String>>>,
    mut checkpoints: super::checkpoint::Checkpoints,
) {
    let mut hot = match Hot::prepare(&conn) {
        Ok(hot) => hot,
        Err(e) => return fail_all(&rx, &failure, e.to_string()),
    };
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let result = transaction(&conn, &mut hot, first, &rx, &mut acks);
        if let Err(e) = &result
            && let Ok(mut f) = failure.lock()
        {
            f.get_or_insert_with(|| e.clone());
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
        // After the acknowledgements: what waited on this commit goes on meanwhile.
        checkpoints.committed(&conn);
    }
    // The checkpoint thread's connection closes first: the writer's, closing last, copies
    // what is left into the database and removes the WAL, so the file stands alone.
    drop(checkpoints);
    drop(hot);
    drop(conn);
}

/// Records the failure and drops every message, so whoever waits on one hears the store stopped.
fn fail_all(rx: &mpsc::Receiver<Msg>, failure: &Mutex<Option<String>>, why: String) {
    if let Ok(mut f) = failure.lock() {
        f.get_or_insert(why);
    }
    while rx.recv().is_ok() {}
}

type Ack = oneshot::Sender<Result<(), String>>;

/// The statements every entry runs, compiled once for the writer's life: looking them up in
/// rusqlite's statement cache (hashing the SQL, handing the statement back) cost 12% of the
/// writer's instructions.
struct Hot<'c> {
    before: Statement<'c>,
    after: Statement<'c>,
    end: Statement<'c>,
}

impl<'c> Hot<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Hot<'c>> {
        Ok(Hot {
            before: conn.prepare(
                "INSERT INTO deliveries (id, entry_key, step, status, updated, customer, channel, sent_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7)
                 ON CONFLICT(entry_key, step) DO UPDATE SET status = 'pending', updated = ?4, sent_at = ?7",
            )?,
            after: conn.prepare(
                "UPDATE deliveries SET status = ?3, http_status = ?4, saved = ?5, attempts = attempts + ?6, updated = ?7 WHERE entry_key = ?1 AND step = ?2",
            )?,
            end: conn.prepare(
                "INSERT INTO entries (key, journey, customer, status, outcome, started, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(key) DO UPDATE SET status = ?4, outcome = ?5, updated = ?7",
            )?,
        })
    }
}

fn transaction(
    conn: &Connection,
    hot: &mut Hot<'_>,
    first: Msg,
    rx: &mpsc::Receiver<Msg>,
    acks: &mut Vec<Ack>,
) -> Result<(), String> {
    let opened = std::time::Instant::now();
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let now = crate::clock::rfc3339(Utc::now());
    let mut next = Some(first);
    let mut handled = 0;
    while let Some(msg) = next.take() {
        handle(&tx, hot, msg, &now, acks).map_err(|e| e.to_string())?;
        handled += 1;
        if handled == MAX_BATCH {
            break;
        }
        // Take another message only when it will be handled in this transaction.
        next = match rx.try_recv() {
            Ok(m) => Some(m),
            // Before committing, let the threads that are about to ask join this commit.
            Err(_) if !acks.is_empty() => {
                std::thread::yield_now();
                rx.try_recv().ok()
            }
            Err(_) => rx
                .recv_timeout(MAX_OPEN.saturating_sub(opened.elapsed()))
                .ok(),
        };
    }
    tx.commit().map_err(|e| e.to_string())
}

fn handle(
    tx: &rusqlite::Transaction<'_>,
    hot: &mut Hot<'_>,
    msg: Msg,
    now: &str,
    acks: &mut Vec<Ack>,
) -> rusqlite::Result<()> {
    match msg {
        Msg::Load(key, reply) => {
            let _ = reply.send(load(tx, &key).map_err(|e| e.to_string()));
        }
        Msg::Before {
            id,
            entry,
            step,
            customer,
            channel,
            at,
            reply,
        } => {
            hot.before
                .execute(params![id, entry, step, now, customer, channel, at])?;
            acks.push(reply);
        }
        Msg::Count {
            customer,
            channel,
            since,
            reply,
        } => {
            let _ = reply.send(Ok(count(tx, &customer, &channel, &since)?));
        }
        Msg::After {
            entry,
            step,
            status,
            http_status,
            saved,
            attempts,
        } => {
            hot.after.execute(params![
                entry,
                step,
                status,
                http_status,
                saved,
                attempts,
                now
            ])?;
        }
        Msg::End {
            row,
            status,
            outcome,
        } => {
            hot.end.execute(params![
                row.key,
                row.journey,
                row.customer,
                status,
                outcome,
                row.started,
                now
            ])?;
        }
        Msg::Park {
            row,
            start_step,
            due,
            snapshot,
        } => park(tx, &row, start_step, &due, &snapshot, now)?,
        Msg::Due(at, reply) => {
            let _ = reply.send(due(tx, &at).map_err(|e| e.to_string()));
        }
        Msg::Shard(given, reply) => {
            let _ = reply.send(Ok(shard(tx, given.as_deref())?));
        }
        Msg::Flush(reply) => acks.push(reply),
        Msg::Batch(msgs) => {
            for msg in msgs {
                handle(tx, hot, msg, now, acks)?;
            }
        }
    }
    Ok(())
}

/// Deliveries of `channel` to `customer` sent after `since` (pending ones count: they may have
/// arrived).
fn count(tx: &Connection, customer: &str, channel: &str, since: &str) -> rusqlite::Result<u32> {
    tx.prepare_cached(
        "SELECT COUNT(*) FROM deliveries WHERE customer = ?1 AND channel = ?2 AND sent_at > ?3
         AND status IN ('ok', 'pending')",
    )?
    .query_row(params![customer, channel, since], |r| r.get(0))
}

/// Writes a parked entry's row: the step to walk on from, when, and with what.
fn park(
    tx: &rusqlite::Transaction<'_>,
    row: &Row,
    start_step: usize,
    due: &str,
    snapshot: &str,
    now: &str,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO entries (key, journey, customer, status, start_step, due, snapshot, started, updated)
         VALUES (?1, ?2, ?3, 'waiting', ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT(key) DO UPDATE SET status = 'waiting', start_step = ?4, due = ?5, snapshot = ?6, updated = ?8",
        params![
            row.key,
            row.journey,
            row.customer,
            start_step as i64,
            due,
            snapshot,
            row.started,
            now
        ],
    )
    .map(drop)
}

/// The shard the store belongs to; the first run with one (`given`) records it.
fn shard(tx: &rusqlite::Transaction<'_>, given: Option<&str>) -> rusqlite::Result<Option<String>> {
    let stored: Option<String> = tx
        .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if stored.is_none()
        && let Some(g) = given
    {
        exec(
            tx,
            "INSERT INTO meta (key, value) VALUES ('shard', ?1)",
            params![g],
        )?;
    }
    Ok(stored)
}

/// Runs one statement, compiled once per connection.
fn exec(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

/// The entry under `key` with its deliveries. An entry's row is written when it ends or parks:
/// one with deliveries and no row was interrupted, and stands active at its first step.
fn load(tx: &Connection, key: &str) -> rusqlite::Result<Option<StoredEntry>> {
    let row = tx
        .prepare_cached(
            "SELECT status, outcome, start_step, due, snapshot FROM entries WHERE key = ?1",
        )?
        .query_row([key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .optional()?;
    let deliveries = deliveries(tx, key)?;
    let Some((status, outcome, start_step, due, snapshot)) = row else {
        return Ok((!deliveries.is_empty()).then(|| StoredEntry {
            status: EntryStatus::Active,
            start_step: 0,
            due: None,
            snapshot: None,
            deliveries,
        }));
    };
    let status = match status.as_str() {
        "waiting" => EntryStatus::Waiting,
        "done" => EntryStatus::Done(outcome.unwrap_or_else(|| "completed".into())),
        "failed" => EntryStatus::Failed,
        _ => EntryStatus::Active,
    };
    Ok(Some(StoredEntry {
        status,
        start_step: start_step as usize,
        due: due.and_then(|d| crate::clock::parse(&d).ok()),
        snapshot: snapshot.and_then(|s| serde_json::from_str(&s).ok()),
        deliveries,
    }))
}

/// An entry's deliveries by step id.
fn deliveries(tx: &Connection, key: &str) -> rusqlite::Result<HashMap<String, StoredDelivery>> {
    let mut stmt = tx.prepare_cached(
        "SELECT step, status, http_status, saved FROM deliveries WHERE entry_key = ?1",
    )?;
    stmt.query_map([key], |r| {
        let saved: Option<String> = r.get(3)?;
        let saved = saved
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        Ok((
            r.get::<_, String>(0)?,
            StoredDelivery {
                status: r.get(1)?,
                http_status: r.get(2)?,
                saved,
            },
        ))
    })?
    .collect()
}

fn due(tx: &rusqlite::Transaction<'_>, at: &str) -> rusqlite::Result<Vec<DueEntry>> {
    let mut stmt = tx.prepare_cached(
        "SELECT key, journey, customer FROM entries WHERE status = 'waiting' AND due <= ?1 ORDER BY due, key",
    )?;
    stmt.query_map([at], |r| {
        Ok(DueEntry {
            key: r.get(0)?,
            journey: r.get(1)?,
            customer: r.get(2)?,
        })
    })?
    .collect()
}
