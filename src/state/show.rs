//! `journey state show|prune`: what a store holds, and dropping what is old.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{StoreError, unusable};

/// A summary of the store: entries by status and outcome, parked waits, deliveries in doubt.
pub fn show(shown: &Path) -> Result<String, StoreError> {
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

fn counts(conn: &Connection, sql: &str) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare(sql)?;
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?)))?
        .collect()
}

fn list(items: &[(String, i64)]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(conn: &Connection, path: &Path) -> rusqlite::Result<String> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let mut out = format!(
        "state store {} (schema version {version})\n",
        path.display()
    );
    let status = counts(
        conn,
        // An entry interrupted before it ended or parked has deliveries and no row yet.
        "SELECT status, COUNT(*) FROM (SELECT status FROM entries UNION ALL SELECT 'active' FROM
         (SELECT DISTINCT entry_key FROM deliveries WHERE entry_key NOT IN (SELECT key FROM entries)))
         GROUP BY status ORDER BY status",
    )?;
    let outcomes = counts(
        conn,
        "SELECT outcome, COUNT(*) FROM entries WHERE status = 'done' GROUP BY outcome ORDER BY outcome",
    )?;
    let deliveries = counts(
        conn,
        "SELECT status, COUNT(*) FROM deliveries GROUP BY status ORDER BY status",
    )?;
    let _ = writeln!(out, "entries: {}", list(&status));
    let _ = writeln!(out, "ended by outcome: {}", list(&outcomes));
    let _ = writeln!(
        out,
        "deliveries: {} (pending ones are in doubt: the next run sends them again)",
        list(&deliveries)
    );
    let mut stmt = conn.prepare("SELECT key, journey, customer, due FROM entries WHERE status = 'waiting' ORDER BY due, key LIMIT 20")?;
    let waiting: Vec<String> = stmt
        .query_map([], |r| {
            Ok(format!(
                "  {} (journey {}, customer {}) due {}",
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if !waiting.is_empty() {
        let _ = writeln!(
            out,
            "waiting (first {}):\n{}",
            waiting.len(),
            waiting.join("\n")
        );
    }
    Ok(out)
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
