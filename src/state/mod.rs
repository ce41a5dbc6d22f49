//! The state store (SQLite, WAL): what every entry and delivery has come to, so a re-run never
//! sends again what was delivered, resumes what was interrupted and never re-enters what ended.
//!
//! One thread owns the connection. It takes messages in batches and writes each batch in one
//! transaction; a "before" record is acknowledged only after its batch is committed, so a
//! delivery is always recorded before its first attempt, and many are committed together.

pub mod lock;
pub mod schema;
pub mod show;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::execute::recorder::Snapshot;

/// Why the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another run holds the lock (exit 75).
    #[error("the state store {path} is in use by another run ({holder}); wait for it to finish")]
    Locked {
        /// The store.
        path: String,
        /// Who holds it.
        holder: String,
    },
    /// It cannot be read or written (exit 3).
    #[error("the state store {path} cannot be used: {why}")]
    Unusable {
        /// The store.
        path: String,
        /// Why.
        why: String,
    },
}

/// How an entry stands in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryStatus {
    /// Started, not ended (interrupted, or deferred).
    Active,
    /// Parked in a wait.
    Waiting,
    /// Ended with this outcome.
    Done(String),
    /// Ended failed.
    Failed,
}

/// An entry as stored.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Its status.
    pub status: EntryStatus,
    /// The step to walk from.
    pub start_step: usize,
    /// When a wait is due.
    pub due: Option<DateTime<Utc>>,
    /// The context to walk on with (after a wait).
    pub snapshot: Option<Snapshot>,
    /// Deliveries by step id.
    pub deliveries: HashMap<String, StoredDelivery>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    /// `pending` (recorded, outcome unknown), `ok`, `failed` or `deferred`.
    pub status: String,
    /// The last HTTP status.
    pub http_status: Option<u16>,
    /// What the step saved, to walk on with.
    pub saved: serde_json::Map<String, serde_json::Value>,
}

/// A delivery about to be sent, as the store records it.
#[derive(Debug, Clone, Copy)]
pub struct Pending<'a> {
    /// The delivery id.
    pub id: &'a str,
    /// The entry key.
    pub entry: &'a str,
    /// The step id.
    pub step: &'a str,
    /// The customer id.
    pub customer: &'a str,
    /// The step's channel, for frequency caps.
    pub channel: Option<&'a str>,
    /// The entry's clock.
    pub at: DateTime<Utc>,
}

/// A parked entry that is due.
#[derive(Debug, Clone)]
pub struct DueEntry {
    /// The entry key.
    pub key: String,
    /// The journey.
    pub journey: String,
    /// The customer id.
    pub customer: String,
}

enum Msg {
    Load(String, oneshot::Sender<Result<Option<StoredEntry>, String>>),
    Enter {
        key: String,
        journey: String,
        customer: String,
        started: String,
        reply: oneshot::Sender<Result<Option<StoredEntry>, String>>,
    },
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
        key: String,
        status: String,
        outcome: Option<String>,
    },
    Park {
        key: String,
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
}

/// The open store; cheap to share.
pub struct Store {
    tx: Mutex<mpsc::Sender<Msg>>,
    path: PathBuf,
    failure: Arc<Mutex<Option<String>>>,
    _lock: lock::Lock,
}

fn unusable(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unusable {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

impl Store {
    /// Opens (creating, 0600) and migrates the store, and takes its lock.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| unusable(path, e))?;
        }
        let lock = lock::acquire(path).map_err(|e| match e {
            lock::LockError::Held(holder) => StoreError::Locked {
                path: path.display().to_string(),
                holder,
            },
            lock::LockError::Io(why) => unusable(path, why),
        })?;
        let conn = connect(path).map_err(|e| unusable(path, e))?;
        let failure = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let fail = Arc::clone(&failure);
        std::thread::Builder::new()
            .name("state-store".into())
            .spawn(move || worker(conn, rx, fail))
            .map_err(|e| unusable(path, e))?;
        Ok(Store {
            tx: Mutex::new(tx),
            path: path.to_path_buf(),
            failure,
            _lock: lock,
        })
    }

    /// Remembers the shard on first use; refuses a run of another shard (or of none).
    pub async fn check_shard(&self, shard: Option<(u64, u64)>) -> Result<(), String> {
        let given = shard.map(|(k, n)| format!("{k}/{n}"));
        let stored = self.ask(|reply| Msg::Shard(given.clone(), reply)).await?;
        match (stored, given) {
            (Some(s), Some(g)) if s != g => {
                Err(format!("this store belongs to shard {s}, not {g}"))
            }
            (Some(s), None) => Err(format!("this store belongs to shard {s}: pass --shard {s}")),
            _ => Ok(()),
        }
    }

    /// Where the store is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first write error, if any (the run must stop: exit 3).
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn send(&self, msg: Msg) {
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(msg);
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Msg,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply));
        answer
            .await
            .unwrap_or_else(|_| Err("the state store stopped".into()))
    }

    /// The stored entry, if any.
    pub async fn load(&self, key: &str) -> Result<Option<StoredEntry>, String> {
        self.ask(|r| Msg::Load(key.to_string(), r)).await
    }

    /// The stored entry, or `None` after recording it as a new, active one: one round trip.
    pub async fn enter(
        &self,
        key: &str,
        journey: &str,
        customer: &str,
        started: DateTime<Utc>,
    ) -> Result<Option<StoredEntry>, String> {
        let started = crate::clock::rfc3339(started);
        self.ask(|reply| Msg::Enter {
            key: key.into(),
            journey: journey.into(),
            customer: customer.into(),
            started,
            reply,
        })
        .await
    }

    /// Records a delivery as pending and returns once that is committed: only then may it be sent.
    pub async fn before(&self, d: &Pending<'_>) -> Result<(), String> {
        self.ask(|reply| Msg::Before {
            id: d.id.into(),
            entry: d.entry.into(),
            step: d.step.into(),
            customer: d.customer.into(),
            channel: d.channel.map(str::to_string),
            at: crate::clock::rfc3339(d.at),
            reply,
        })
        .await
    }

    /// Deliveries of `channel` to `customer` sent after `since` (pending ones count: they may
    /// have arrived).
    pub async fn count(
        &self,
        customer: &str,
        channel: &str,
        since: DateTime<Utc>,
    ) -> Result<u32, String> {
        let since = crate::clock::rfc3339(since);
        self.ask(|reply| Msg::Count {
            customer: customer.into(),
            channel: channel.into(),
            since,
            reply,
        })
        .await
    }

    /// Records a delivery's outcome and what its step saved.
    pub fn after(
        &self,
        entry: &str,
        step: &str,
        status: &str,
        http_status: Option<u16>,
        saved: &serde_json::Value,
        attempts: u32,
    ) {
        let saved = saved.to_string();
        self.send(Msg::After {
            entry: entry.into(),
            step: step.into(),
            status: status.into(),
            http_status,
            saved,
            attempts,
        });
    }

    /// Ends an entry: `done` with its outcome, or `failed`.
    pub fn end(&self, key: &str, failed: bool, outcome: &str) {
        let status = if failed { "failed" } else { "done" };
        self.send(Msg::End {
            key: key.into(),
            status: status.into(),
            outcome: Some(outcome.into()),
        });
    }

    /// Marks an entry active again (resumed, or to be retried).
    pub fn reactivate(&self, key: &str) {
        self.send(Msg::End {
            key: key.into(),
            status: "active".into(),
            outcome: None,
        });
    }

    /// Parks an entry until `due`, to walk on from `start_step` with `snapshot`.
    pub fn park(&self, key: &str, start_step: usize, due: DateTime<Utc>, snapshot: &Snapshot) {
        let snapshot = serde_json::to_string(snapshot).unwrap_or_default();
        self.send(Msg::Park {
            key: key.into(),
            start_step,
            due: crate::clock::rfc3339(due),
            snapshot,
        });
    }

    /// Parked entries due at `now`.
    pub async fn due(&self, now: DateTime<Utc>) -> Result<Vec<DueEntry>, String> {
        self.ask(|r| Msg::Due(crate::clock::rfc3339(now), r)).await
    }

    /// Waits until everything sent so far is committed.
    pub async fn flush(&self) -> Result<(), String> {
        self.ask(Msg::Flush).await?;
        match self.failure() {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

/// Opens (creating 0600), switches to WAL and migrates.
pub(crate) fn connect(path: &Path) -> Result<Connection, String> {
    let existed = path.exists();
    if !existed {
        crate::output::private_file(path, b"").map_err(|e| e.to_string())?;
    }
    let mut conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("cannot switch to WAL (journal mode `{mode}`)"));
    }
    // WAL with NORMAL sync: a commit survives the process dying (SIGKILL included); only the
    // checkpoints fsync, and they come every 10,000 pages instead of 1,000.
    for (name, value) in [
        ("synchronous", "NORMAL"),
        ("wal_autocheckpoint", "10000"),
        ("cache_size", "-65536"),
    ] {
        conn.pragma_update(None, name, value)
            .map_err(|e| e.to_string())?;
    }
    schema::migrate(&mut conn).map_err(|e| e.to_string())??;
    Ok(conn)
}

/// Most writes one transaction holds before it commits.
const MAX_BATCH: usize = 4096;
/// Longest a transaction stays open when nothing waits on it.
const MAX_OPEN: std::time::Duration = std::time::Duration::from_millis(50);

/// The writer. It keeps one transaction open while messages come; it commits as soon as a
/// "before" (or a flush) waits for its acknowledgement and the queue is momentarily empty, or
/// after [`MAX_BATCH`] writes, or [`MAX_OPEN`]: many deliveries share one commit, and nothing is
/// acknowledged before it is committed.
fn worker(mut conn: Connection, rx: mpsc::Receiver<Msg>, failure: Arc<Mutex<Option<String>>>) {
    while let Ok(first) = rx.recv() {
        let mut acks = Vec::new();
        let result = transaction(&mut conn, first, &rx, &mut acks);
        if let Err(e) = &result
            && let Ok(mut f) = failure.lock()
        {
            f.get_or_insert_with(|| e.clone());
        }
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

type Ack = oneshot::Sender<Result<(), String>>;

fn transaction(
    conn: &mut Connection,
    first: Msg,
    rx: &mpsc::Receiver<Msg>,
    acks: &mut Vec<Ack>,
) -> Result<(), String> {
    let opened = std::time::Instant::now();
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let now = crate::clock::rfc3339(Utc::now());
    let mut next = Some(first);
    let mut handled = 0;
    while let Some(msg) = next.take() {
        handle(&tx, msg, &now, acks).map_err(|e| e.to_string())?;
        handled += 1;
        if handled == MAX_BATCH {
            break;
        }
        // Take another message only when it will be handled in this transaction.
        next = match rx.try_recv() {
            Ok(m) => Some(m),
            Err(_) if !acks.is_empty() => None,
            Err(_) => rx
                .recv_timeout(MAX_OPEN.saturating_sub(opened.elapsed()))
                .ok(),
        };
    }
    tx.commit().map_err(|e| e.to_string())
}

fn handle(
    tx: &rusqlite::Transaction<'_>,
    msg: Msg,
    now: &str,
    acks: &mut Vec<Ack>,
) -> rusqlite::Result<()> {
    match msg {
        Msg::Load(key, reply) => {
            let _ = reply.send(load(tx, &key).map_err(|e| e.to_string()));
        }
        Msg::Enter {
            key,
            journey,
            customer,
            started,
            reply,
        } => {
            let found = load(tx, &key)?;
            if found.is_none() {
                exec(
                    tx,
                    "INSERT INTO entries (key, journey, customer, status, started, updated) VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
                    params![key, journey, customer, started, now],
                )?;
            }
            let _ = reply.send(Ok(found));
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
            exec(
                tx,
                "INSERT INTO deliveries (id, entry_key, step, status, updated, customer, channel, sent_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7)
                 ON CONFLICT(entry_key, step) DO UPDATE SET status = 'pending', updated = ?4, sent_at = ?7",
                params![id, entry, step, now, customer, channel, at],
            )?;
            acks.push(reply);
        }
        Msg::Count {
            customer,
            channel,
            since,
            reply,
        } => {
            let n = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM deliveries WHERE customer = ?1 AND channel = ?2 AND sent_at > ?3
                     AND status IN ('ok', 'pending')",
                )?
                .query_row(params![customer, channel, since], |r| r.get::<_, u32>(0))?;
            let _ = reply.send(Ok(n));
        }
        Msg::After {
            entry,
            step,
            status,
            http_status,
            saved,
            attempts,
        } => {
            exec(
                tx,
                "UPDATE deliveries SET status = ?3, http_status = ?4, saved = ?5, attempts = attempts + ?6, updated = ?7 WHERE entry_key = ?1 AND step = ?2",
                params![entry, step, status, http_status, saved, attempts, now],
            )?;
        }
        Msg::End {
            key,
            status,
            outcome,
        } => {
            exec(
                tx,
                "UPDATE entries SET status = ?2, outcome = ?3, updated = ?4 WHERE key = ?1",
                params![key, status, outcome, now],
            )?;
        }
        Msg::Park {
            key,
            start_step,
            due,
            snapshot,
        } => {
            exec(
                tx,
                "UPDATE entries SET status = 'waiting', start_step = ?2, due = ?3, snapshot = ?4, updated = ?5 WHERE key = ?1",
                params![key, start_step as i64, due, snapshot, now],
            )?;
        }
        Msg::Due(at, reply) => {
            let _ = reply.send(due(tx, &at).map_err(|e| e.to_string()));
        }
        Msg::Shard(given, reply) => {
            let stored: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if stored.is_none()
                && let Some(g) = &given
            {
                exec(
                    tx,
                    "INSERT INTO meta (key, value) VALUES ('shard', ?1)",
                    params![g],
                )?;
            }
            let _ = reply.send(Ok(stored));
        }
        Msg::Flush(reply) => acks.push(reply),
    }
    Ok(())
}

/// Runs one statement, compiled once per connection.
fn exec(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

fn load(tx: &rusqlite::Transaction<'_>, key: &str) -> rusqlite::Result<Option<StoredEntry>> {
    let row = tx
        .query_row(
            "SELECT status, outcome, start_step, due, snapshot FROM entries WHERE key = ?1",
            [key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            },
        )
        .optional()?;
    let Some((status, outcome, start_step, due, snapshot)) = row else {
        return Ok(None);
    };
    let status = match status.as_str() {
        "waiting" => EntryStatus::Waiting,
        "done" => EntryStatus::Done(outcome.unwrap_or_else(|| "completed".into())),
        "failed" => EntryStatus::Failed,
        _ => EntryStatus::Active,
    };
    let mut stmt = tx.prepare_cached(
        "SELECT step, status, http_status, saved FROM deliveries WHERE entry_key = ?1",
    )?;
    let deliveries = stmt
        .query_map([key], |r| {
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
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok(Some(StoredEntry {
        status,
        start_step: start_step as usize,
        due: due.and_then(|d| crate::clock::parse(&d).ok()),
        snapshot: snapshot.and_then(|s| serde_json::from_str(&s).ok()),
        deliveries,
    }))
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
