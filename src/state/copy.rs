//! `journey state copy FROM TO`: a store moved between backends (SQLite → PostgreSQL, and
//! back), every entry and delivery as it stands, holding both stores whole, a chunk of rows at a
//! time. A target that already holds entries is refused: merging two histories could contact
//! someone twice.

use rusqlite::params;

use super::pg::target::Target;
use super::{Location, Opening, StoreError};

/// Rows a chunk moves at once: what is held in memory, whatever the store's size.
const CHUNK: i64 = 1000;

/// An entry row, every column.
struct Entry {
    key: String,
    journey: String,
    customer: String,
    status: String,
    outcome: Option<String>,
    start_step: i64,
    due: Option<String>,
    snapshot: Option<String>,
    started: String,
    updated: String,
}

/// A delivery row, every column.
struct Delivery {
    entry_key: String,
    step: String,
    id: String,
    status: String,
    http_status: Option<i64>,
    saved: Option<String>,
    attempts: i64,
    updated: String,
    customer: Option<String>,
    channel: Option<String>,
    sent_at: Option<String>,
}

/// What was copied.
pub struct Copied {
    /// Entries.
    pub entries: usize,
    /// Deliveries.
    pub deliveries: usize,
}

/// Copies `from` into `to`, which must be empty (or not exist yet).
pub async fn copy(from: &Location, to: &Location, how: &Opening) -> Result<Copied, StoreError> {
    match (from, to) {
        (Location::File(f), Location::Postgres(t)) => file_to_pg(f, t, how).await,
        (Location::Postgres(f), Location::File(t)) => pg_to_file(f, t, how).await,
        _ => Err(StoreError::Refused {
            path: to.shown(),
            why: "state copy moves a store between SQLite and PostgreSQL; to copy a file, copy the file (after a run, it stands alone)".into(),
        }),
    }
}

fn unusable(shown: &str) -> impl Fn(String) -> StoreError + '_ {
    move |why| StoreError::Unusable {
        path: shown.to_string(),
        why,
    }
}

/// Opens the file store whole (applying what a run that died left) under its lock.
fn open_file(
    path: &super::StorePath,
) -> Result<(rusqlite::Connection, super::lock::Lock), StoreError> {
    let real = super::path::resolve(path)?;
    let shown = path.shown().display().to_string();
    let lock = super::lock::acquire(&real).map_err(|e| match e {
        super::lock::LockError::Held(holder) => StoreError::Locked {
            path: shown.clone(),
            holder,
        },
        super::lock::LockError::Io(why) => unusable(&shown)(why),
    })?;
    let conn = super::connect(&real).map_err(unusable(&shown))?;
    Ok((conn, lock))
}

async fn file_to_pg(
    from: &super::StorePath,
    to: &Target,
    how: &Opening,
) -> Result<Copied, StoreError> {
    let shown_from = from.shown().display().to_string();
    if std::fs::symlink_metadata(from.shown()).is_err() {
        return Err(unusable(&shown_from)("there is no state store here".into()));
    }
    let (conn, _lock) = open_file(from)?;
    let shown = to.shown();
    let mut client = super::pg::schema::open_whole(to, how).await?;
    let e = unusable(&shown);
    if !super::pg::schema::is_empty(&client).await.map_err(&e)? {
        return Err(StoreError::Refused {
            path: shown.clone(),
            why: "it already holds entries: copy into an empty database or schema (e.g. a new `?schema=`)".into(),
        });
    }
    let tx = client
        .transaction()
        .await
        .map_err(|x| e(super::pg::why(x)))?;
    let src = |x: rusqlite::Error| unusable(&shown_from)(x.to_string());
    let mut copied = Copied {
        entries: 0,
        deliveries: 0,
    };
    let mut after = String::new();
    loop {
        let chunk = file_entries(&conn, &after).map_err(src)?;
        let Some(last) = chunk.last() else { break };
        after = last.key.clone();
        copied.entries += chunk.len();
        super::pg::schema::put_entries(&tx, &chunk_entries(&chunk))
            .await
            .map_err(&e)?;
    }
    let mut after = (String::new(), String::new());
    loop {
        let chunk = file_deliveries(&conn, &after).map_err(src)?;
        let Some(last) = chunk.last() else { break };
        after = (last.entry_key.clone(), last.step.clone());
        copied.deliveries += chunk.len();
        super::pg::schema::put_deliveries(&tx, &chunk_deliveries(&chunk))
            .await
            .map_err(&e)?;
    }
    let shard: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'shard'", [], |r| {
            r.get(0)
        })
        .ok();
    if let Some(n) = shard
        .as_deref()
        .and_then(|s| s.split_once('/'))
        .map(|(_, n)| n)
    {
        super::pg::schema::set_meta(&tx, "shards", n)
            .await
            .map_err(&e)?;
    }
    tx.commit().await.map_err(|x| e(super::pg::why(x)))?;
    Ok(copied)
}

async fn pg_to_file(
    from: &Target,
    to: &super::StorePath,
    how: &Opening,
) -> Result<Copied, StoreError> {
    let shown_from = from.shown();
    let mut client = super::pg::schema::open_whole(from, how).await?;
    let shown = to.shown().display().to_string();
    let (mut conn, _lock) = open_file(to)?;
    let dst = |x: rusqlite::Error| unusable(&shown)(x.to_string());
    let held: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM entries) + (SELECT COUNT(*) FROM deliveries)",
            [],
            |r| r.get(0),
        )
        .map_err(dst)?;
    if held > 0 {
        return Err(StoreError::Refused {
            path: shown.clone(),
            why: "it already holds entries: copy into a new file".into(),
        });
    }
    let tx = conn.transaction().map_err(dst)?;
    use super::pg::schema::{DELIVERY_ROWS, ENTRY_ROWS, read_chunks};
    let chunk = CHUNK as i32;
    let entries = read_chunks(&mut client, ENTRY_ROWS, chunk, |r| put_entries(&tx, r)).await;
    let entries = chunked(entries, &shown_from, &shown)?;
    let deliveries = read_chunks(&mut client, DELIVERY_ROWS, chunk, |r| {
        put_deliveries(&tx, r)
    })
    .await;
    let deliveries = chunked(deliveries, &shown_from, &shown)?;
    tx.commit().map_err(dst)?;
    Ok(Copied {
        entries,
        deliveries,
    })
}

/// A chunked read's count, or the store that failed (the source, or the file taking the rows).
fn chunked(
    r: Result<usize, super::pg::schema::Chunked<rusqlite::Error>>,
    from: &str,
    to: &str,
) -> Result<usize, StoreError> {
    r.map_err(|e| match e {
        super::pg::schema::Chunked::Source(why) => unusable(from)(why),
        super::pg::schema::Chunked::Sink(why) => unusable(to)(why.to_string()),
    })
}

/// PostgreSQL's entry rows, as they are, into the file's table.
fn put_entries(
    tx: &rusqlite::Transaction<'_>,
    entries: &[tokio_postgres::Row],
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO entries (key, journey, customer, status, outcome, start_step, due, snapshot, started, updated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for r in entries {
        put.execute(params![
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, Option<String>>(4),
            r.get::<_, i32>(5),
            r.get::<_, Option<String>>(6),
            r.get::<_, Option<String>>(7),
            r.get::<_, String>(8),
            r.get::<_, String>(9),
        ])?;
    }
    Ok(())
}

/// PostgreSQL's delivery rows, as they are, into the file's table.
fn put_deliveries(
    tx: &rusqlite::Transaction<'_>,
    deliveries: &[tokio_postgres::Row],
) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO deliveries (entry_key, step, id, status, http_status, saved, attempts, updated, customer, channel, sent_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for r in deliveries {
        put.execute(params![
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3),
            r.get::<_, Option<i32>>(4),
            r.get::<_, Option<String>>(5),
            r.get::<_, i32>(6),
            r.get::<_, String>(7),
            r.get::<_, Option<String>>(8),
            r.get::<_, Option<String>>(9),
            r.get::<_, Option<String>>(10),
        ])?;
    }
    Ok(())
}

/// The next chunk of entries, by key after `after`: each chunk found through the index, not by
/// skipping the ones before it.
fn file_entries(conn: &rusqlite::Connection, after: &str) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, journey, customer, status, outcome, start_step, due, snapshot, started, updated
         FROM entries WHERE key > ?1 ORDER BY key LIMIT ?2",
    )?;
    stmt.query_map(params![after, CHUNK], |r| {
        Ok(Entry {
            key: r.get(0)?,
            journey: r.get(1)?,
            customer: r.get(2)?,
            status: r.get(3)?,
            outcome: r.get(4)?,
            start_step: r.get(5)?,
            due: r.get(6)?,
            snapshot: r.get(7)?,
            started: r.get(8)?,
            updated: r.get(9)?,
        })
    })?
    .collect()
}

/// The next chunk of deliveries, by (entry, step) after `after`.
fn file_deliveries(
    conn: &rusqlite::Connection,
    after: &(String, String),
) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT entry_key, step, id, status, http_status, saved, attempts, updated, customer, channel, sent_at
         FROM deliveries WHERE (entry_key, step) > (?1, ?2) ORDER BY entry_key, step LIMIT ?3",
    )?;
    stmt.query_map(params![after.0, after.1, CHUNK], |r| {
        Ok(Delivery {
            entry_key: r.get(0)?,
            step: r.get(1)?,
            id: r.get(2)?,
            status: r.get(3)?,
            http_status: r.get(4)?,
            saved: r.get(5)?,
            attempts: r.get(6)?,
            updated: r.get(7)?,
            customer: r.get(8)?,
            channel: r.get(9)?,
            sent_at: r.get(10)?,
        })
    })?
    .collect()
}

/// A chunk of entries as PostgreSQL columns.
fn chunk_entries(rows: &[Entry]) -> super::pg::schema::EntryColumns<'_> {
    super::pg::schema::EntryColumns {
        key: rows.iter().map(|r| r.key.as_str()).collect(),
        journey: rows.iter().map(|r| r.journey.as_str()).collect(),
        customer: rows.iter().map(|r| r.customer.as_str()).collect(),
        status: rows.iter().map(|r| r.status.as_str()).collect(),
        outcome: rows.iter().map(|r| r.outcome.as_deref()).collect(),
        start_step: rows.iter().map(|r| r.start_step as i32).collect(),
        due: rows.iter().map(|r| r.due.as_deref()).collect(),
        snapshot: rows.iter().map(|r| r.snapshot.as_deref()).collect(),
        started: rows.iter().map(|r| r.started.as_str()).collect(),
        updated: rows.iter().map(|r| r.updated.as_str()).collect(),
    }
}

/// A chunk of deliveries as PostgreSQL columns.
fn chunk_deliveries(rows: &[Delivery]) -> super::pg::schema::DeliveryColumns<'_> {
    super::pg::schema::DeliveryColumns {
        entry_key: rows.iter().map(|r| r.entry_key.as_str()).collect(),
        step: rows.iter().map(|r| r.step.as_str()).collect(),
        id: rows.iter().map(|r| r.id.as_str()).collect(),
        status: rows.iter().map(|r| r.status.as_str()).collect(),
        http_status: rows
            .iter()
            .map(|r| r.http_status.map(|h| h as i32))
            .collect(),
        saved: rows.iter().map(|r| r.saved.as_deref()).collect(),
        attempts: rows.iter().map(|r| r.attempts as i32).collect(),
        updated: rows.iter().map(|r| r.updated.as_str()).collect(),
        customer: rows.iter().map(|r| r.customer.as_deref()).collect(),
        channel: rows.iter().map(|r| r.channel.as_deref()).collect(),
        sent_at: rows.iter().map(|r| r.sent_at.as_deref()).collect(),
    }
}
