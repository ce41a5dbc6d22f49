//! The PostgreSQL store's tables, versioned in `meta` as the SQLite store's are (the same
//! numbers for the same meaning); migrations only move forward, one host at a time.

use tokio_postgres::Client;

use super::connect::why;

/// Each migration takes the store to the version beside it.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        2,
        r#"
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
);
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
) WITH (fillfactor = 50);          -- room on the page: a delivery's outcome is a HOT update
CREATE INDEX deliveries_by_channel ON deliveries(customer, channel, sent_at) WHERE channel IS NOT NULL;
-- Hosts running shards at once: who holds a share of which rate limit, until when (renewed
-- every half second; a host that dies drops out when its lease runs out).
CREATE TABLE rate_leases (
    key TEXT NOT NULL,             -- journey/step, or --rate
    holder TEXT NOT NULL,
    share DOUBLE PRECISION NOT NULL, -- attempts a second
    expires TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (key, holder)
);
-- A partner's 429 with Retry-After, heard by one host, slows every host.
CREATE TABLE pauses (host TEXT PRIMARY KEY, until TIMESTAMPTZ NOT NULL);
"#,
    ),
    (
        3,
        r#"
-- Keys compare byte by byte (as SQLite's do): the database's own collation (e.g. C.UTF-8 or
-- en_US.UTF-8) sorts through strcoll, which cost the store's writer 7% of its time on every
-- index it walked. Orders by key now match the SQLite store's.
ALTER TABLE entries ALTER COLUMN key TYPE TEXT COLLATE "C";
ALTER TABLE deliveries ALTER COLUMN entry_key TYPE TEXT COLLATE "C", ALTER COLUMN step TYPE TEXT COLLATE "C";
"#,
    ),
];

/// The version this build writes.
pub const VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The advisory lock key of a store: its database and schema, the same on every host.
pub fn store_key(dbname: &str, schema: &str) -> i32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("journey state {dbname}/{schema}").as_bytes());
    (crate::identity::first_u64(&digest) & 0x7fff_ffff) as i32
}

/// Creates the schema and brings it up to [`VERSION`], holding a transaction lock so that two
/// hosts starting at once do it once; refuses a store written by a newer journey.
pub async fn migrate(client: &mut Client, schema: &str, key: i32) -> Result<(), String> {
    let tx = client.transaction().await.map_err(why)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, -1)", &[&key])
        .await
        .map_err(why)?;
    // The name was checked to be a plain identifier when the URL was read.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
         CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    ))
    .await
    .map_err(why)?;
    let current = version(&tx).await?;
    if current > VERSION {
        return Err(format!(
            "the state store has schema version {current}, newer than this journey knows ({VERSION}): upgrade journey"
        ));
    }
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(why)?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&v.to_string()],
        )
        .await
        .map_err(why)?;
    }
    tx.commit().await.map_err(why)
}

/// The stored schema version (0 when there is none yet).
pub async fn version(client: &impl tokio_postgres::GenericClient) -> Result<i64, String> {
    let row = client
        .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .await
        .map_err(why)?;
    Ok(row
        .and_then(|r| r.get::<_, String>(0).parse().ok())
        .unwrap_or(0))
}

/// Connects, migrates and holds the whole store (`state copy`): no run beside it.
pub async fn open_whole(
    target: &super::target::Target,
    how: &super::super::Opening,
) -> Result<tokio_postgres::Client, super::super::StoreError> {
    let shown = target.shown();
    let unusable = |why: String| super::super::StoreError::Unusable {
        path: shown.clone(),
        why,
    };
    let password = target.password(&how.env);
    let mut client = super::connect::connect(target, password.as_deref(), how.timeout)
        .await
        .map_err(unusable)?;
    let key = store_key(&target.dbname, &target.schema);
    migrate(&mut client, &target.schema, key)
        .await
        .map_err(unusable)?;
    super::claim::claim(&client, key, super::super::Claim::Whole, &shown).await?;
    Ok(client)
}

/// True when the store holds no entry and no delivery.
pub async fn is_empty(client: &Client) -> Result<bool, String> {
    let row = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM entries) AND NOT EXISTS (SELECT 1 FROM deliveries)",
            &[],
        )
        .await
        .map_err(why)?;
    Ok(row.get(0))
}

/// Sets a `meta` value.
pub async fn set_meta(
    client: &impl tokio_postgres::GenericClient,
    key: &str,
    value: &str,
) -> Result<(), String> {
    client
        .execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )
        .await
        .map(drop)
        .map_err(why)
}

/// Entry rows as columns, every column.
pub struct EntryColumns<'a> {
    pub key: Vec<&'a str>,
    pub journey: Vec<&'a str>,
    pub customer: Vec<&'a str>,
    pub status: Vec<&'a str>,
    pub outcome: Vec<Option<&'a str>>,
    pub start_step: Vec<i32>,
    pub due: Vec<Option<&'a str>>,
    pub snapshot: Vec<Option<&'a str>>,
    pub started: Vec<&'a str>,
    pub updated: Vec<&'a str>,
}

/// Delivery rows as columns, every column.
pub struct DeliveryColumns<'a> {
    pub entry_key: Vec<&'a str>,
    pub step: Vec<&'a str>,
    pub id: Vec<&'a str>,
    pub status: Vec<&'a str>,
    pub http_status: Vec<Option<i32>>,
    pub saved: Vec<Option<&'a str>>,
    pub attempts: Vec<i32>,
    pub updated: Vec<&'a str>,
    pub customer: Vec<Option<&'a str>>,
    pub channel: Vec<Option<&'a str>>,
    pub sent_at: Vec<Option<&'a str>>,
}

/// Inserts entry rows as they are.
pub async fn put_entries(
    client: &impl tokio_postgres::GenericClient,
    c: &EntryColumns<'_>,
) -> Result<(), String> {
    client
        .execute(
            "INSERT INTO entries (key, journey, customer, status, outcome, start_step, due, snapshot, started, updated)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::text[])",
            &[
                &c.key, &c.journey, &c.customer, &c.status, &c.outcome, &c.start_step, &c.due,
                &c.snapshot, &c.started, &c.updated,
            ],
        )
        .await
        .map(drop)
        .map_err(why)
}

/// Inserts delivery rows as they are.
pub async fn put_deliveries(
    client: &impl tokio_postgres::GenericClient,
    c: &DeliveryColumns<'_>,
) -> Result<(), String> {
    client
        .execute(
            "INSERT INTO deliveries (entry_key, step, id, status, http_status, saved, attempts, updated, customer, channel, sent_at)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::int4[], $8::text[], $9::text[], $10::text[], $11::text[])",
            &[
                &c.entry_key, &c.step, &c.id, &c.status, &c.http_status, &c.saved, &c.attempts,
                &c.updated, &c.customer, &c.channel, &c.sent_at,
            ],
        )
        .await
        .map(drop)
        .map_err(why)
}

/// Every entry row, every column, in the order of [`EntryColumns`].
pub const ENTRY_ROWS: &str = "SELECT key, journey, customer, status, outcome, start_step, due, snapshot, started, updated FROM entries ORDER BY key";

/// Every delivery row, every column, in the order of [`DeliveryColumns`].
pub const DELIVERY_ROWS: &str = "SELECT entry_key, step, id, status, http_status, saved, attempts, updated, customer, channel, sent_at FROM deliveries ORDER BY entry_key, step";

/// Why reading rows in chunks stopped: the database, or what took a chunk.
pub enum Chunked<E> {
    /// The database failed.
    Source(String),
    /// `each` failed.
    Sink(E),
}

/// The rows of `sql`, `chunk` at a time (a cursor, in one snapshot), handed to `each`: a store
/// of any size in bounded memory. How many there were.
pub async fn read_chunks<E>(
    client: &mut Client,
    sql: &str,
    chunk: i32,
    mut each: impl FnMut(&[tokio_postgres::Row]) -> Result<(), E>,
) -> Result<usize, Chunked<E>> {
    let source = |e| Chunked::Source(why(e));
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(source)?;
    let portal = tx.bind(sql, &[]).await.map_err(source)?;
    let mut read = 0;
    loop {
        let rows = tx.query_portal(&portal, chunk).await.map_err(source)?;
        if rows.is_empty() {
            break;
        }
        read += rows.len();
        each(&rows).map_err(Chunked::Sink)?;
    }
    tx.commit().await.map_err(source)?;
    Ok(read)
}
