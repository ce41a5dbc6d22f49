//! The store's tables, versioned with `PRAGMA user_version`; migrations only move forward.
//! Tables are clustered on their keys (`WITHOUT ROWID`): one b-tree write per record.

use rusqlite::Connection;

/// Each migration takes the store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE entries (
    key TEXT PRIMARY KEY,
    journey TEXT NOT NULL,
    customer TEXT NOT NULL,
    status TEXT NOT NULL,          -- active | waiting | done | failed
    outcome TEXT,
    start_step INTEGER NOT NULL DEFAULT 0,
    due TEXT,
    snapshot TEXT,
    started TEXT NOT NULL,
    updated TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX entries_waiting ON entries(due) WHERE status = 'waiting';
CREATE TABLE deliveries (
    entry_key TEXT NOT NULL,
    step TEXT NOT NULL,
    id TEXT NOT NULL,
    status TEXT NOT NULL,          -- pending | ok | failed | deferred
    http_status INTEGER,
    saved TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated TEXT NOT NULL,
    customer TEXT,
    channel TEXT,                  -- for frequency caps
    sent_at TEXT,                  -- the entry's clock when sent
    PRIMARY KEY (entry_key, step)
) WITHOUT ROWID;
CREATE INDEX deliveries_by_channel ON deliveries(customer, channel, sent_at) WHERE channel IS NOT NULL;
"#,
    r#"
-- No table changes. From version 2 an entry's row is written when the entry ends or parks, not
-- when it starts: an entry with deliveries and no row was interrupted and is active. A journey
-- that knows only version 1 would take it for a new entry, so it must refuse this store.
"#,
    r#"
-- No table changes: keys compare byte by byte here, as they always did. Version 3 of a
-- PostgreSQL store makes its keys compare so too; the numbers stay the same on both backends.
"#,
];

/// The version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the store up to [`VERSION`]; refuses a store written by a newer journey.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<Result<(), String>> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > VERSION {
        return Ok(Err(format!(
            "the state store has schema version {current}, newer than this journey knows ({VERSION}): upgrade journey"
        )));
    }
    let tx = conn.transaction()?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(Ok(()))
}
