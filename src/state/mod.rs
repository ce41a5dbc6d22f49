//! The state store (SQLite, WAL): what every entry and delivery has come to, so a re-run never
//! sends again what was delivered, resumes what was interrupted and never re-enters what ended.
//!
//! One thread owns the connection. It takes messages in batches, makes their writes in a
//! transaction it commits every 200 ms, and appends them to a redo file with one write whenever
//! its queue is momentarily empty. A "before" record is acknowledged once it is in that file, so
//! a delivery is always recorded durably before its first attempt; the next open applies what a
//! process that died left there.
//! An entry's row is written once, when it ends or parks: until then its deliveries stand for
//! it, so an entry costs three writes (before, after, end), not four.

mod checkpoint;
pub(crate) mod copy;
mod held;
pub(crate) mod lock;
mod open;
pub(crate) mod path;
pub(crate) mod pg;
mod redo;
pub(crate) mod schema;
pub(crate) mod show;
mod snapshot;
pub(crate) mod storage;
mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use tokio::sync::oneshot;

pub use open::{Claim, Home, Location, Opening, open};
pub use path::StorePath;
use redo::Write;
pub use snapshot::Snapshot;
pub use storage::{Coordinated, Coordination, Memory, Storage};
use writer::Msg;

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
    /// The path names no place a store can be (a folder that does not exist, a device, a FIFO,
    /// a folder): the input is unusable (exit 2).
    #[error("--state {path} {why}")]
    BadPath {
        /// The store as named.
        path: String,
        /// Why.
        why: String,
    },
    /// This run may not use it as it asks (another shard's store, another split): exit 2.
    #[error("the state store {path}: {why}")]
    Refused {
        /// The store.
        path: String,
        /// Why, and what to pass instead.
        why: String,
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

/// Where a stored delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Recorded before its first attempt, outcome unknown: in doubt after a crash.
    Pending,
    /// Delivered.
    Ok,
    /// Failed after its retries.
    Failed,
    /// Put off by the partner (`Retry-After` past `max_backoff`) or the run's stop.
    Deferred,
}

impl DeliveryState {
    /// The word the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Ok => "ok",
            DeliveryState::Failed => "failed",
            DeliveryState::Deferred => "deferred",
        }
    }

    /// The state a stored word stands for (an unknown word reads as failed: sent again only
    /// with `--retry-failed`).
    pub fn parse(word: &str) -> DeliveryState {
        match word {
            "pending" => DeliveryState::Pending,
            "ok" => DeliveryState::Ok,
            "deferred" => DeliveryState::Deferred,
            _ => DeliveryState::Failed,
        }
    }
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    /// Where it stands.
    pub status: DeliveryState,
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
    /// The entry had no rows in the store when this run began it: this is the delivery's first
    /// record, and a store may insert it without looking for one first.
    pub fresh: bool,
}

/// An entry, as its row is written when it ends or parks.
#[derive(Debug, Clone, Copy)]
pub struct EntryRow<'a> {
    /// The entry key.
    pub key: &'a str,
    /// The journey.
    pub journey: &'a str,
    /// The customer id.
    pub customer: &'a str,
    /// When the entry started.
    pub started: DateTime<Utc>,
    /// The entry had no rows in the store when this run began it: this is its row's first
    /// write (see [`Pending::fresh`]).
    pub fresh: bool,
}

impl EntryRow<'_> {
    fn row(&self) -> redo::Row {
        redo::Row {
            key: self.key.into(),
            journey: self.journey.into(),
            customer: self.customer.into(),
            started: crate::clock::rfc3339(self.started),
            fresh: self.fresh,
        }
    }
}

/// A parked entry that is due.
#[derive(Debug, Clone)]
pub struct DueEntry {
    /// The entry key.
    pub key: String,
    /// The journey.
    pub journey: String,
}

/// The open store; cheap to share.
pub struct Store {
    tx: Mutex<Outbox>,
    /// Hashes of the keys of the entries stored when the run began: a key not among them is
    /// new, and entering it needs no answer from the writer.
    known: foldhash::HashSet<u64>,
    path: PathBuf,
    /// The canonical path: what the lock, the redo file and dead letters name.
    real: PathBuf,
    failure: Arc<Mutex<Option<String>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Writes the writer has made, freed here, on the thread that allocated them.
    spent: Arc<writer::Spent>,
    /// Keeps secrets out of saved values and snapshots, reversibly.
    vault: crate::redact::Vault,
    _lock: lock::Lock,
}

/// The way to the writer, and the records held back to go with a batch of "before" records.
struct Outbox {
    tx: mpsc::Sender<Msg>,
    held: Vec<Msg>,
}

/// Sends what is held when dropped: the first "before" of a batch sends the batch, even if its
/// delivery is abandoned while it waits.
struct Release<'a>(&'a Store);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        if let Ok(mut out) = self.0.tx.lock()
            && !out.held.is_empty()
        {
            let held = std::mem::take(&mut out.held);
            let _ = out.tx.send(Msg::Batch(held));
        }
    }
}

pub(crate) fn unusable(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Unusable {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

impl Store {
    /// Opens (creating, 0600) and migrates the store, and takes its lock. The path is resolved
    /// first ([`path::resolve`]): the lock, the redo file and the database are named by the
    /// canonical path; messages and the summary by the path as given.
    pub fn open(store: &StorePath) -> Result<Store, StoreError> {
        let real = path::resolve(store)?;
        Self::open_at(&real, store.shown())
    }

    fn open_at(path: &Path, shown: &Path) -> Result<Store, StoreError> {
        let unusable = |why: String| unusable(shown, why);
        let lock = lock::acquire(path).map_err(|e| match e {
            lock::LockError::Held(holder) => StoreError::Locked {
                path: shown.display().to_string(),
                holder,
            },
            lock::LockError::Io(why) => unusable(why),
        })?;
        let conn = connect(path).map_err(|e| unusable(e.to_string()))?;
        let known = known_keys(&conn).map_err(|e| unusable(e.to_string()))?;
        // The checkpoint thread copies pages into the database; the writer only finishes.
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(|e| unusable(e.to_string()))?;
        let committed = redo::committed(&conn).map_err(|e| unusable(e.to_string()))?;
        let redo = redo::Redo::open(path, committed).map_err(|e| unusable(e.to_string()))?;
        let checkpoints = checkpoint::Checkpoints::start(path);
        let failure = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let fail = Arc::clone(&failure);
        let spent = Arc::new(writer::Spent::default());
        let back = Arc::clone(&spent);
        let writer = std::thread::Builder::new()
            .name("state-store".into())
            .spawn(move || writer::worker(conn, rx, fail, checkpoints, redo, back))
            .map_err(|e| unusable(e.to_string()))?;
        Ok(Store {
            tx: Mutex::new(Outbox {
                tx,
                held: Vec::new(),
            }),
            known,
            path: shown.to_path_buf(),
            real: path.to_path_buf(),
            failure,
            writer: Mutex::new(Some(writer)),
            spent,
            vault: Default::default(),
            _lock: lock,
        })
    }

    /// Writes the values of these secrets as references ([`crate::redact::Vault`]): what is
    /// saved from a response or parked with an entry never holds a secret.
    pub fn with_vault(mut self, vault: crate::redact::Vault) -> Self {
        self.vault = vault;
        self
    }

    /// Ends the writer once it has written everything sent so far, and waits for it: the WAL is
    /// then copied into the database and removed, so the file can be copied alone. Later
    /// records are dropped.
    pub fn close(&self) {
        if let Ok(mut out) = self.tx.lock() {
            let held = std::mem::take(&mut out.held);
            if !held.is_empty() {
                let _ = out.tx.send(Msg::Batch(held));
            }
            // The writer's only sender: replacing it ends the writer's loop.
            out.tx = mpsc::channel().0;
        }
        let writer = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }

    /// Remembers the shard on first use; refuses a run of another shard (or of none).
    pub async fn check_shard(&self, shard: Option<(u64, u64)>) -> Result<(), String> {
        let given = shard.map(|(k, n)| format!("{k}/{n}"));
        let stored = self.ask(|reply| Msg::Shard(given.clone(), reply)).await?;
        if stored.is_none() && given.is_some() {
            // Committed before anything is sent: a run that dies leaves its deliveries in the
            // redo file, and they must not outlive the shard they belong to.
            self.flush().await?;
        }
        match (stored, given) {
            (Some(s), Some(g)) if s != g => {
                Err(format!("this store belongs to shard {s}, not {g}"))
            }
            (Some(s), None) => Err(format!("this store belongs to shard {s}: pass --shard {s}")),
            _ => Ok(()),
        }
    }

    /// Where the store is, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the store is, canonical.
    pub fn real_path(&self) -> &Path {
        &self.real
    }

    /// The first write error, if any (the run must stop: exit 3).
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Sends `msg`, or holds it behind the records held for a batch (the writer takes messages
    /// in the order they are made).
    fn send(&self, msg: Msg) {
        self.free_spent();
        if let Ok(mut out) = self.tx.lock() {
            if out.held.is_empty() {
                let _ = out.tx.send(msg);
            } else {
                out.held.push(msg);
            }
        }
    }

    /// Frees, on this thread, the writes the writer has made and handed back
    /// ([`writer::Spent`]).
    fn free_spent(&self) {
        drop(self.spent.take());
    }

    /// Holds `msg` for a batch; true when it is the first (its sender must release the batch).
    fn hold(&self, msg: Msg) -> bool {
        match self.tx.lock() {
            Ok(mut out) => {
                out.held.push(msg);
                out.held.len() == 1
            }
            Err(_) => false,
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Msg,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply));
        answered(answer).await
    }

    /// The stored entry, if any.
    pub async fn load(&self, key: &str) -> Result<Option<StoredEntry>, String> {
        let entry = self.ask(|r| Msg::Load(key.to_string(), r)).await?;
        Ok(entry.map(|e| unseal(&self.vault, e)))
    }

    /// Whether the store held an entry under `key` when the run began.
    pub fn knows(&self, key: &str) -> bool {
        self.known.contains(&crate::identity::hash_key(key))
    }

    /// The stored entry, or `None` for a new one (a round trip only for keys stored before the
    /// run). Nothing is written yet: an entry's row is written when it ends or parks, and its
    /// deliveries stand for it until then.
    pub async fn enter(&self, key: &str) -> Result<Option<StoredEntry>, String> {
        // A key that was not stored when the run began cannot be pending in the writer either:
        // a run takes each key once, and holds the store's lock.
        if !self.knows(key) {
            return Ok(None);
        }
        self.load(key).await
    }

    /// Records a delivery as pending and returns once that is durable (in the redo file or
    /// committed): only then may it be sent.
    ///
    /// The "before" records of the deliveries that come to their turn together travel to the
    /// writer as one batch: the first is held until the runtime has run everything else that
    /// was ready, and the others join it.
    pub async fn before(&self, d: &Pending<'_>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let first = self.hold(Msg::Before(before(d), reply));
        if first {
            let _release = Release(self);
            tokio::task::yield_now().await;
        }
        answered(answer).await
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
        status: DeliveryState,
        http_status: Option<u16>,
        saved: &serde_json::Value,
        attempts: u32,
    ) {
        self.send(Msg::Write(after(
            &self.vault,
            entry,
            step,
            status,
            http_status,
            saved,
            attempts,
        )));
    }

    /// Ends an entry: `done` with its outcome, or `failed`.
    pub fn end(&self, entry: &EntryRow<'_>, failed: bool, outcome: &str) {
        self.send(Msg::Write(end(entry, failed, outcome)));
    }

    /// Opens an ended entry again (`replay` delivered its failed step): the next run walks it
    /// on from its first step, past everything delivered.
    pub fn reopen(&self, entry: &EntryRow<'_>) {
        self.send(Msg::Write(reopen(entry)));
    }

    /// Parks an entry until `due`, to walk on from `start_step` with `snapshot`.
    pub fn park(
        &self,
        entry: &EntryRow<'_>,
        start_step: usize,
        due: DateTime<Utc>,
        snapshot: &Snapshot,
    ) {
        self.send(Msg::Write(park(
            &self.vault,
            entry,
            start_step,
            due,
            snapshot,
        )));
    }

    /// Parked entries due at `now`.
    pub async fn due(&self, now: DateTime<Utc>) -> Result<Vec<DueEntry>, String> {
        self.ask(|r| Msg::Resumable(crate::clock::rfc3339(now), r))
            .await
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

/// The answer a store's thread sends back; if the thread has gone, it says so.
async fn answered<T>(answer: oneshot::Receiver<Result<T, String>>) -> Result<T, String> {
    answer
        .await
        .unwrap_or_else(|_| Err("the state store stopped".into()))
}

/// A delivery about to be sent, as both stores write it.
fn before(d: &Pending<'_>) -> Write {
    Write::Before(redo::Before {
        id: d.id.into(),
        entry: d.entry.into(),
        step: d.step.into(),
        customer: d.customer.into(),
        channel: d.channel.map(str::to_string),
        at: crate::clock::rfc3339(d.at),
        fresh: d.fresh,
    })
}

/// A delivery's outcome, its saved values sealed.
fn after(
    vault: &crate::redact::Vault,
    entry: &str,
    step: &str,
    status: DeliveryState,
    http_status: Option<u16>,
    saved: &serde_json::Value,
    attempts: u32,
) -> Write {
    Write::After {
        entry: entry.into(),
        step: step.into(),
        status: status.as_str().into(),
        http_status,
        saved: vault.seal(saved).to_string(),
        attempts,
    }
}

/// An entry's end.
fn end(entry: &EntryRow<'_>, failed: bool, outcome: &str) -> Write {
    let status = if failed { "failed" } else { "done" };
    Write::End {
        row: entry.row(),
        status: status.into(),
        outcome: outcome.into(),
    }
}

/// An ended entry opened again.
fn reopen(entry: &EntryRow<'_>) -> Write {
    Write::End {
        row: entry.row(),
        status: "active".into(),
        outcome: String::new(),
    }
}

/// A parked entry, its snapshot sealed.
fn park(
    vault: &crate::redact::Vault,
    entry: &EntryRow<'_>,
    start_step: usize,
    due: DateTime<Utc>,
    snapshot: &Snapshot,
) -> Write {
    let sealed = Snapshot {
        vars: vault.seal(&snapshot.vars).into_owned(),
        saved: vault.seal(&snapshot.saved).into_owned(),
        ..snapshot.clone()
    };
    Write::Park {
        row: entry.row(),
        start_step,
        due: crate::clock::rfc3339(due),
        snapshot: serde_json::to_string(&sealed).unwrap_or_default(),
    }
}

/// A stored entry with its secrets read back from their references.
fn unseal(vault: &crate::redact::Vault, mut e: StoredEntry) -> StoredEntry {
    for d in e.deliveries.values_mut() {
        if let serde_json::Value::Object(m) =
            vault.open(&serde_json::Value::Object(std::mem::take(&mut d.saved)))
        {
            d.saved = m;
        }
    }
    if let Some(s) = &mut e.snapshot {
        s.vars = vault.open(&s.vars);
        s.saved = vault.open(&s.saved);
    }
    e
}

/// An entry's row as stored: status, outcome, start step, due, snapshot.
pub(crate) type EntryFields = (String, Option<String>, i64, Option<String>, Option<String>);

/// The entry a row and its deliveries make. An entry's row is written when it ends or parks:
/// one with deliveries and no row was interrupted, and stands active at its first step.
fn stored_entry(
    row: Option<EntryFields>,
    deliveries: HashMap<String, StoredDelivery>,
) -> Option<StoredEntry> {
    let Some((status, outcome, start_step, due, snapshot)) = row else {
        return (!deliveries.is_empty()).then(|| StoredEntry {
            status: EntryStatus::Active,
            start_step: 0,
            due: None,
            snapshot: None,
            deliveries,
        });
    };
    let status = match status.as_str() {
        "waiting" => EntryStatus::Waiting,
        "done" => EntryStatus::Done(outcome.unwrap_or_else(|| "completed".into())),
        "failed" => EntryStatus::Failed,
        _ => EntryStatus::Active,
    };
    Some(StoredEntry {
        status,
        start_step: start_step as usize,
        due: due.and_then(|d| crate::clock::parse(&d).ok()),
        snapshot: snapshot.and_then(|s| serde_json::from_str(&s).ok()),
        deliveries,
    })
}

/// A delivery as a row keeps it.
fn stored_delivery(status: &str, http_status: Option<u16>, saved: Option<&str>) -> StoredDelivery {
    StoredDelivery {
        status: DeliveryState::parse(status),
        http_status,
        saved: saved
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
    }
}

/// Hashes of every stored entry key: 8 bytes an entry. An entry interrupted before it ended
/// has no row yet, only deliveries.
fn known_keys(conn: &Connection) -> rusqlite::Result<foldhash::HashSet<u64>> {
    let mut stmt =
        conn.prepare("SELECT key FROM entries UNION ALL SELECT entry_key FROM deliveries")?;
    let keys = stmt.query_map([], |r| {
        r.get_ref(0)
            .map(|v| crate::identity::hash_key(v.as_str().unwrap_or("")))
    })?;
    keys.collect()
}

/// Opens (creating 0600), switches to WAL, migrates and applies what a run that died left in
/// the redo file. The caller holds the lock.
pub(crate) fn connect(path: &Path) -> Result<Connection, String> {
    let existed = path.exists();
    if !existed {
        crate::output::private_file(path, b"").map_err(|e| e.to_string())?;
    }
    let mut conn = Connection::open(path).map_err(|e| e.to_string())?;
    if existed {
        holds_a_store(&conn)?;
    }
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
    for (name, value) in [("synchronous", "NORMAL"), ("wal_autocheckpoint", "10000")] {
        conn.pragma_update(None, name, value)
            .map_err(|e| e.to_string())?;
    }
    schema::migrate(&mut conn).map_err(|e| e.to_string())??;
    // What a run that died had recorded and not committed (pending deliveries are in doubt).
    redo::replay(&conn, path)?;
    Ok(conn)
}

/// Refuses a file that exists but holds no journey schema (emptied, replaced, another
/// program's): starting afresh there would contact every customer again.
fn holds_a_store(conn: &Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| format!("it is not a journey state store ({e})"))?;
    if version == 0 {
        return Err("the file exists but holds no journey state (it is empty, or another program's database), so the store was emptied or replaced and a fresh one would contact everyone again: restore the store, or remove the file to start afresh".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::Poll;

    /// Polls `f` once, from inside the runtime.
    async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx))).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn befores_made_together_are_committed_together_even_if_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorePath::Given(dir.path().join("s.sqlite"))).unwrap();
        let now = Utc::now();
        assert!(store.enter("j:c1").await.unwrap().is_none());
        let pending = |step| Pending {
            id: step,
            entry: "j:c1",
            step,
            customer: "c1",
            channel: None,
            at: now,
            fresh: false,
        };
        let (a, b) = (pending("a"), pending("b"));
        let mut first = Box::pin(store.before(&a));
        let mut second = Box::pin(store.before(&b));
        assert!(poll_once(&mut first).await.is_pending());
        assert!(poll_once(&mut second).await.is_pending());
        // The first delivery is abandoned while it waits: the batch still reaches the writer.
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(10), second)
            .await
            .expect("the batch reached the writer")
            .unwrap();
        let stored = store.load("j:c1").await.unwrap().unwrap();
        assert_eq!(stored.deliveries["a"].status, DeliveryState::Pending);
        assert_eq!(stored.deliveries["b"].status, DeliveryState::Pending);
    }

    /// The writer acknowledges a "before" record once it is in the redo file and applies it to
    /// the transaction after; a read still sees every write sent before it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_read_sees_the_writes_sent_before_it_even_unwaited() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorePath::Given(dir.path().join("s.sqlite"))).unwrap();
        let at = Utc::now();
        let pending = Pending {
            id: "d1",
            entry: "j:c1",
            step: "a",
            customer: "c1",
            channel: Some("email"),
            at,
            fresh: true,
        };
        store.before(&pending).await.unwrap();
        let saved = serde_json::json!({"code": "A1"});
        store.after("j:c1", "a", DeliveryState::Ok, Some(200), &saved, 1);
        let stored = store.load("j:c1").await.unwrap().unwrap();
        assert_eq!(stored.deliveries["a"].status, DeliveryState::Ok);
        assert_eq!(stored.deliveries["a"].saved["code"], "A1");
        let since = at - chrono::Duration::hours(1);
        assert_eq!(store.count("c1", "email", since).await.unwrap(), 1);
        store.close();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_new_shard_is_committed_before_check_shard_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&StorePath::Given(path.clone())).unwrap();
        store.check_shard(Some((1, 2))).await.unwrap();
        // Another connection sees only what is committed.
        let conn = Connection::open(&path).unwrap();
        let shard: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| {
                r.get(0)
            })
            .ok();
        assert_eq!(shard.as_deref(), Some("1/2"));
        store.close();
    }
}
