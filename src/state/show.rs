//! `journey state show|prune`: what a store holds, and dropping what is old.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, unusable};

/// What a store holds: entries by status and outcome, deliveries by status (pending ones are in
/// doubt), and the first parked waits.
#[derive(Debug, serde::Serialize)]
pub struct Summary {
    /// The store, as named.
    pub store: String,
    /// Its schema version.
    pub schema_version: i64,
    /// Entries by status (`active`, `waiting`, `done`, `failed`).
    pub entries: std::collections::BTreeMap<String, i64>,
    /// Ended entries by outcome.
    pub ended_by_outcome: std::collections::BTreeMap<String, i64>,
    /// Deliveries by status (`pending` ones are in doubt: the next run sends them again).
    pub deliveries: std::collections::BTreeMap<String, i64>,
    /// The first 20 parked entries, soonest due first.
    pub waiting: Vec<Waiting>,
    /// The runs holding a shared store now, each `journey on HOST pid N` (PostgreSQL only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<String>>,
}

/// A parked entry.
#[derive(Debug, serde::Serialize)]
pub struct Waiting {
    /// The entry key.
    pub key: String,
    /// Its journey.
    pub journey: String,
    /// Its customer.
    pub customer: String,
    /// When it is due (RFC 3339).
    pub due: String,
}

/// The summary of the store at `shown`.
pub fn show(shown: &Path) -> Result<Summary, StoreError> {
    let path = &existing(
        shown,
        "there is no state store here (pass --state FILE or set JOURNEY_STATE)",
    )?;
    settle(path).map_err(|e| unusable(shown, e))?;
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| unusable(shown, e))?;
    super::holds_a_store(&conn).map_err(|e| unusable(shown, e))?;
    // One read transaction: while a run writes, every count comes from the same moment.
    let snapshot = conn
        .unchecked_transaction()
        .map_err(|e| unusable(shown, e))?;
    summary(&snapshot, shown).map_err(|e| unusable(shown, e))
}

/// The canonical path of a store that must already exist (`state show`, `state prune`).
fn existing(shown: &Path, absent: &str) -> Result<std::path::PathBuf, StoreError> {
    if std::fs::symlink_metadata(shown).is_err() {
        return Err(unusable(shown, absent));
    }
    super::path::resolve(&super::StorePath::Given(shown.to_path_buf()))
}

/// Applies the writes a run left uncommitted when it died, unless a run holds the store (its
/// writes are then still being made).
fn settle(path: &Path) -> Result<(), String> {
    if !super::redo::path_of(path).exists() {
        return Ok(());
    }
    match super::lock::acquire(path) {
        Ok(_lock) => super::connect(path).map(drop),
        Err(_) => Ok(()),
    }
}

fn counts(
    conn: &Connection,
    sql: &str,
) -> rusqlite::Result<std::collections::BTreeMap<String, i64>> {
    let mut stmt = conn.prepare(sql)?;
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?
        .collect()
}

fn list(items: &std::collections::BTreeMap<String, i64>) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(conn: &Connection, path: &Path) -> rusqlite::Result<Summary> {
    let schema_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let entries = counts(
        conn,
        // An entry interrupted before it ended or parked has deliveries and no row yet.
        "SELECT status, COUNT(*) FROM (SELECT status FROM entries UNION ALL SELECT 'active' FROM
         (SELECT DISTINCT entry_key FROM deliveries WHERE entry_key NOT IN (SELECT key FROM entries)))
         GROUP BY status ORDER BY status",
    )?;
    let ended_by_outcome = counts(
        conn,
        "SELECT outcome, COUNT(*) FROM entries WHERE status = 'done' GROUP BY outcome ORDER BY outcome",
    )?;
    let deliveries = counts(
        conn,
        "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status",
    )?;
    let mut stmt = conn.prepare("SELECT key, journey, customer, due FROM entries WHERE status = 'waiting' ORDER BY due, key LIMIT 20")?;
    let waiting = stmt
        .query_map([], |r| {
            Ok(Waiting {
                key: r.get(0)?,
                journey: r.get(1)?,
                customer: r.get(2)?,
                due: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Summary {
        store: path.display().to_string(),
        schema_version,
        entries,
        ended_by_outcome,
        deliveries,
        waiting,
        runs: None,
    })
}

impl Summary {
    /// As `state show` prints it.
    pub fn text(&self) -> String {
        let mut out = format!(
            "state store {} (schema version {})\n",
            self.store, self.schema_version
        );
        let _ = writeln!(out, "entries: {}", list(&self.entries));
        let _ = writeln!(out, "ended by outcome: {}", list(&self.ended_by_outcome));
        let _ = writeln!(
            out,
            "deliveries: {} (pending ones are in doubt: the next run sends them again)",
            list(&self.deliveries)
        );
        if let Some(runs) = &self.runs {
            let now = match runs.is_empty() {
                true => "none".to_string(),
                false => runs.join(", "),
            };
            let _ = writeln!(out, "runs holding it now: {now}");
        }
        if !self.waiting.is_empty() {
            let _ = writeln!(out, "waiting (first {}):", self.waiting.len());
            for w in &self.waiting {
                let _ = writeln!(
                    out,
                    "  {} (journey {}, customer {}) due {}",
                    w.key, w.journey, w.customer, w.due
                );
            }
        }
        out
    }
}

/// Deletes ended entries (and their deliveries) last updated more than `older_than` ago.
pub fn prune(shown: &Path, older_than: Duration) -> Result<(usize, usize), StoreError> {
    let path = &existing(shown, "there is no state store here")?;
    let _lock = super::lock::acquire(path).map_err(|e| match e {
        super::lock::LockError::Held(holder) => StoreError::Locked {
            path: shown.display().to_string(),
            holder,
        },
        super::lock::LockError::Io(why) => unusable(shown, why),
    })?;
    let mut conn = super::connect(path).map_err(|e| unusable(shown, e))?;
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(older_than).unwrap_or_default();
    let cutoff = crate::clock::rfc3339(cutoff);
    let run = |conn: &mut Connection| -> rusqlite::Result<(usize, usize)> {
        let tx = conn.transaction()?;
        let old = "SELECT key FROM entries WHERE status IN ('done', 'failed') AND updated < ?1";
        let deliveries = tx.execute(
            &format!("DELETE FROM deliveries WHERE entry_key IN ({old})"),
            [&cutoff],
        )?;
        let entries = tx.execute(
            "DELETE FROM entries WHERE status IN ('done', 'failed') AND updated < ?1",
            [&cutoff],
        )?;
        tx.commit()?;
        Ok((entries, deliveries))
    };
    run(&mut conn).map_err(|e| unusable(shown, e))
}
