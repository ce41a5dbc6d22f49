//! The writes made since the last commit, also appended to `STORE-redo`: the writer appends what
//! it took with one `write` whenever its queue is momentarily empty, and acknowledges "before"
//! records then, so a delivery waits on a write, not on a commit. Each commit empties the file;
//! the next open applies what a process that died left in it. Each line carries its
//! transaction's number, and each commit records its own in `meta`: a line whose transaction was
//! committed (the process died between the commit and the emptying) is not applied twice.

use std::fs::File;
use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, Statement, params};
use serde::{Deserialize, Serialize};

/// What an entry's row is made with: it is written first when the entry ends or parks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Row {
    pub key: String,
    pub journey: String,
    pub customer: String,
    pub started: String,
    /// The row's first write (the entry had none when the run began it); not kept in the redo
    /// file, whose lines are applied as they may have been made already.
    #[serde(skip)]
    pub fresh: bool,
}

/// A delivery about to be sent (pending, again when a later run sends it again).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Before {
    pub id: String,
    pub entry: String,
    pub step: String,
    pub customer: String,
    pub channel: Option<String>,
    /// The entry's clock when sent.
    pub at: String,
    /// The delivery's first record (see [`crate::state::Pending::fresh`]); not kept in the redo
    /// file.
    #[serde(skip)]
    pub fresh: bool,
}

/// One write of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "w", rename_all = "lowercase")]
pub(super) enum Write {
    /// A delivery is about to be sent (its fields sit beside the tag in the redo file).
    Before(Before),
    /// A delivery's outcome and what its step saved.
    After {
        entry: String,
        step: String,
        status: String,
        http_status: Option<u16>,
        saved: String,
        attempts: u32,
    },
    /// An entry ended: `done` with its outcome, or `failed`.
    End {
        row: Row,
        status: String,
        outcome: String,
    },
    /// An alert of `resolved: true` fired (`fired`), or said it is resolved: `key` is kept, or
    /// dropped, in `meta`.
    Mark { key: String, fired: bool },
    /// An entry parked until `due`, to walk on from `start_step` with `snapshot`.
    Park {
        row: Row,
        start_step: usize,
        due: String,
        snapshot: String,
    },
}

#[cfg(test)]
impl Write {
    /// A "before" record of `entry`'s `step`, for tests.
    pub fn before_of(entry: &str, step: &str) -> Write {
        Write::Before(Before {
            id: format!("{entry}/{step}"),
            entry: entry.into(),
            step: step.into(),
            customer: "c".into(),
            channel: None,
            at: "t".into(),
            fresh: false,
        })
    }

    /// An outcome of `entry`'s `step` after `attempts` (what it saved names them), for tests.
    pub fn after_of(entry: &str, step: &str, status: &str, attempts: u32) -> Write {
        Write::After {
            entry: entry.into(),
            step: step.into(),
            status: status.into(),
            http_status: Some(200),
            saved: format!(r#"{{"attempts":{attempts}}}"#),
            attempts,
        }
    }
}

impl Write {
    /// True when it is a "before" record of this delivery.
    pub fn is_of(&self, e: &str, s: &str) -> bool {
        matches!(self, Write::Before(b) if b.entry == e && b.step == s)
    }
}

/// The statements of the writes, compiled once for a connection's life: looking them up in
/// rusqlite's statement cache (hashing the SQL, handing the statement back) cost the writer 12%
/// of its instructions.
pub(super) struct Statements<'c> {
    before: Statement<'c>,
    after: Statement<'c>,
    /// A "before" record and its outcome, as one row.
    sent: Statement<'c>,
    end: Statement<'c>,
    park: Statement<'c>,
    mark: Statement<'c>,
    alert_on: Statement<'c>,
    alert_off: Statement<'c>,
}

impl<'c> Statements<'c> {
    pub fn prepare(conn: &'c Connection) -> rusqlite::Result<Statements<'c>> {
        Ok(Statements {
            before: conn.prepare(
                "INSERT INTO deliveries (id, entry_key, step, status, updated, customer, channel, sent_at)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7)
                 ON CONFLICT(entry_key, step) DO UPDATE SET status = 'pending', updated = ?4, sent_at = ?7",
            )?,
            after: conn.prepare(
                "UPDATE deliveries SET status = ?3, http_status = ?4, saved = ?5, attempts = attempts + ?6, updated = ?7 WHERE entry_key = ?1 AND step = ?2",
            )?,
            sent: conn.prepare(
                "INSERT INTO deliveries (id, entry_key, step, status, updated, customer, channel, sent_at, http_status, saved, attempts)
                 VALUES (?1, ?2, ?3, ?8, ?4, ?5, ?6, ?7, ?9, ?10, ?11)
                 ON CONFLICT(entry_key, step) DO UPDATE SET status = ?8, updated = ?4, sent_at = ?7,
                 http_status = ?9, saved = ?10, attempts = attempts + ?11",
            )?,
            end: conn.prepare(
                "INSERT INTO entries (key, journey, customer, status, outcome, started, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(key) DO UPDATE SET status = ?4, outcome = ?5, updated = ?7",
            )?,
            park: conn.prepare(
                "INSERT INTO entries (key, journey, customer, status, start_step, due, snapshot, started, updated)
                 VALUES (?1, ?2, ?3, 'waiting', ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT(key) DO UPDATE SET status = 'waiting', start_step = ?4, due = ?5, snapshot = ?6, updated = ?8",
            )?,
            mark: conn.prepare(
                "INSERT INTO meta (key, value) VALUES ('redo', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
            )?,
            alert_on: conn.prepare(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            )?,
            alert_off: conn.prepare("DELETE FROM meta WHERE key = ?1")?,
        })
    }

    /// Records, in the transaction about to commit, that it is transaction `seq`.
    pub fn mark(&mut self, seq: u64) -> rusqlite::Result<()> {
        self.mark.execute([seq.to_string()]).map(drop)
    }

    /// Makes a "before" record and its delivery's outcome as one write, stamped `updated`: the
    /// row the two would leave, written once.
    pub fn apply_sent(
        &mut self,
        before: &Write,
        after: &Write,
        updated: &str,
    ) -> rusqlite::Result<()> {
        let (
            Write::Before(b),
            Write::After {
                status,
                http_status,
                saved,
                attempts,
                ..
            },
        ) = (before, after)
        else {
            self.apply(before, updated)?;
            return self.apply(after, updated);
        };
        self.sent
            .execute(params![
                b.id,
                b.entry,
                b.step,
                updated,
                b.customer,
                b.channel,
                b.at,
                status,
                http_status,
                saved,
                attempts
            ])
            .map(drop)
    }

    /// Makes `w`, stamped `updated`.
    pub fn apply(&mut self, w: &Write, updated: &str) -> rusqlite::Result<()> {
        match w {
            Write::Before(b) => self.before.execute(params![
                b.id, b.entry, b.step, updated, b.customer, b.channel, b.at
            ]),
            Write::After {
                entry,
                step,
                status,
                http_status,
                saved,
                attempts,
            } => self.after.execute(params![
                entry,
                step,
                status,
                http_status,
                saved,
                attempts,
                updated
            ]),
            Write::End {
                row,
                status,
                outcome,
            } => self.end.execute(params![
                row.key,
                row.journey,
                row.customer,
                status,
                outcome,
                row.started,
                updated
            ]),
            Write::Mark { key, fired: true } => self.alert_on.execute(params![key, updated]),
            Write::Mark { key, fired: false } => self.alert_off.execute(params![key]),
            Write::Park {
                row,
                start_step,
                due,
                snapshot,
            } => self.park.execute(params![
                row.key,
                row.journey,
                row.customer,
                *start_step as i64,
                due,
                snapshot,
                row.started,
                updated
            ]),
        }
        .map(drop)
    }
}

/// The file beside the store.
pub(super) fn path_of(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push("-redo");
    PathBuf::from(name)
}

/// The number of the last transaction committed with its writes in a redo file.
pub(super) fn committed(conn: &Connection) -> rusqlite::Result<u64> {
    let value: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'redo'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

/// The open file, and what waits to be written to it.
pub(super) struct Redo {
    file: File,
    path: PathBuf,
    buf: Vec<u8>,
    /// Something was written since the file was last emptied.
    dirty: bool,
    /// The open transaction's number.
    seq: u64,
}

impl Redo {
    /// Opens (creating, 0600) the file of the store at `store`, which [`replay`] has emptied;
    /// `committed` is the number of the last transaction committed.
    pub fn open(store: &Path, committed: u64) -> std::io::Result<Redo> {
        let path = path_of(store);
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        Ok(Redo {
            file: opts.open(&path)?,
            path,
            buf: Vec::with_capacity(16 * 1024),
            dirty: false,
            seq: committed,
        })
    }

    /// A transaction begins: its number, which it records in `meta` before it commits.
    pub fn begin(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Adds a write of the open transaction, stamped `updated`, to the next [`Redo::write`].
    pub fn push(&mut self, updated: &str, w: &Write) {
        // Serializing strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &(self.seq, updated, w));
        self.buf.push(b'\n');
    }

    /// True when writes wait to be written.
    pub fn waiting(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Writes what was added, in one `write`: once it returns, a process that dies leaves it
    /// for the next open (the durability of a commit with `synchronous = NORMAL`).
    pub fn write(&mut self) -> std::io::Result<()> {
        let result = self.file.write_all(&self.buf);
        self.buf.clear();
        self.dirty = true;
        result
    }

    /// Empties the file: everything in it is now committed.
    pub fn committed(&mut self) -> std::io::Result<()> {
        self.buf.clear();
        if std::mem::take(&mut self.dirty) {
            self.file.set_len(0)?;
        }
        Ok(())
    }

    /// Removes the file once everything is committed: the store then stands alone.
    pub fn remove(self) {
        drop(self.file);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Applies, in one transaction, the writes a process left uncommitted when it died, then removes
/// the file; the number applied. A torn last line (the process died inside its `write`) was
/// never acknowledged: it is skipped, as are the lines of transactions that were committed.
pub(super) fn replay(conn: &Connection, store: &Path) -> Result<usize, String> {
    let path = path_of(store);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let tx = conn.unchecked_transaction().map_err(|e| e.to_string())?;
    let done = committed(&tx).map_err(|e| e.to_string())?;
    let mut statements = Statements::prepare(&tx).map_err(|e| e.to_string())?;
    let (mut applied, mut last) = (0, done);
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        let Ok((seq, updated, w)) = serde_json::from_str::<(u64, String, Write)>(&line) else {
            continue;
        };
        if seq <= done {
            continue;
        }
        statements.apply(&w, &updated).map_err(|e| e.to_string())?;
        (applied, last) = (applied + 1, last.max(seq));
    }
    statements.mark(last).map_err(|e| e.to_string())?;
    drop(statements);
    tx.commit().map_err(|e| e.to_string())?;
    std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{EntryStatus, Pending, Store};

    /// Delivery `a` of customer c1, about to be sent now.
    fn pending_a() -> Pending<'static> {
        Pending {
            id: "dlv_a",
            entry: "j:c1",
            step: "a",
            customer: "c1",
            channel: Some("email"),
            at: chrono::Utc::now(),
            fresh: false,
        }
    }

    /// Delivery `step` of customer c1 succeeded at the first attempt.
    fn ok(step: &str, saved: &str) -> Write {
        Write::After {
            entry: "j:c1".into(),
            step: step.into(),
            status: "ok".into(),
            http_status: Some(200),
            saved: saved.into(),
            attempts: 1,
        }
    }

    fn before(step: &str, at: &str) -> Write {
        Write::Before(Before {
            id: format!("dlv_{step}"),
            entry: "j:c1".into(),
            step: step.into(),
            customer: "c1".into(),
            channel: Some("email".into()),
            at: at.into(),
            fresh: false,
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_a_dead_run_left_in_the_redo_file_are_applied_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        Store::open(&crate::state::StorePath::Given(path.clone()))
            .unwrap()
            .close();
        // A run wrote these, committed none of them, and died inside its next write.
        let now = "2026-11-27T10:00:00Z";
        let mut redo = Redo::open(&path, 0).unwrap();
        redo.begin();
        redo.push(now, &before("a", now));
        redo.push(now, &ok("a", r#"{"code":"A1"}"#));
        redo.push(now, &before("b", now));
        let row = |key: &str| Row {
            key: key.into(),
            journey: "j".into(),
            customer: "c2".into(),
            started: now.into(),
            fresh: false,
        };
        redo.push(
            now,
            &Write::Park {
                row: row("j:c2"),
                start_step: 2,
                due: "2026-11-29T10:00:00Z".into(),
                snapshot: "{}".into(),
            },
        );
        redo.push(
            now,
            &Write::End {
                row: row("j:c3"),
                status: "done".into(),
                outcome: "completed".into(),
            },
        );
        redo.write().unwrap();
        drop(redo);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path_of(&path))
            .unwrap();
        file.write_all(br#"["2026-11-27T10:00:00Z",{"w":"before","id":"dl"#)
            .unwrap();

        let store = Store::open(&crate::state::StorePath::Given(path.clone())).unwrap();
        assert!(store.knows("j:c1"), "a re-run finds the entry");
        let stored = store.load("j:c1").await.unwrap().expect("the entry");
        assert!(matches!(stored.status, EntryStatus::Active));
        assert_eq!(
            stored.deliveries["a"].status,
            crate::state::DeliveryState::Ok
        );
        assert_eq!(stored.deliveries["a"].saved["code"], "A1");
        assert_eq!(
            stored.deliveries["b"].status,
            crate::state::DeliveryState::Pending,
            "in doubt"
        );
        assert_eq!(stored.deliveries.len(), 2, "the torn line is skipped");
        let parked = store.load("j:c2").await.unwrap().expect("the parked entry");
        assert!(matches!(parked.status, EntryStatus::Waiting));
        assert_eq!(parked.start_step, 2);
        let ended = store.load("j:c3").await.unwrap().expect("the ended entry");
        assert!(matches!(ended.status, EntryStatus::Done(ref o) if o == "completed"));
        let left = std::fs::metadata(path_of(&path)).unwrap().len();
        assert_eq!(left, 0, "applied once, then emptied");
        store.close();
        assert!(!path_of(&path).exists(), "a clean close removes it");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lines_of_a_committed_transaction_are_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&crate::state::StorePath::Given(path.clone())).unwrap();
        store.before(&pending_a()).await.unwrap();
        store.after(
            "j:c1",
            "a",
            crate::state::DeliveryState::Ok,
            Some(200),
            &serde_json::json!({}),
            1,
        );
        store.flush().await.unwrap();
        store.close();
        drop(store);
        // The process died after that commit and before it emptied the file: the file still
        // holds the transaction's lines.
        let conn = Connection::open(&path).unwrap();
        let last = committed(&conn).unwrap();
        assert!(last > 0, "the commit recorded its number");
        let now = "2026-11-27T10:00:00Z";
        let mut redo = Redo::open(&path, last - 1).unwrap();
        assert_eq!(redo.begin(), last);
        redo.push(now, &before("a", now));
        redo.push(now, &ok("a", "{}"));
        redo.write().unwrap();
        drop(redo);
        Store::open(&crate::state::StorePath::Given(path.clone()))
            .unwrap()
            .close();
        let (status, attempts): (String, i64) = conn
            .query_row(
                "SELECT status, attempts FROM deliveries WHERE entry_key = 'j:c1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((status.as_str(), attempts), ("ok", 1), "applied once");
        assert!(!path_of(&path).exists());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_before_is_in_the_redo_file_or_committed_and_a_flush_commits_and_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&crate::state::StorePath::Given(path.clone())).unwrap();
        store.before(&pending_a()).await.unwrap();
        let committed = || {
            let conn = Connection::open(&path).unwrap();
            conn.query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        };
        let written = std::fs::read_to_string(path_of(&path)).unwrap();
        assert!(
            written.contains("dlv_a") || committed() == 1,
            "acknowledged, so durable: {written:?}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path_of(&path))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "private, as the store is");
        }
        store.flush().await.unwrap();
        assert_eq!(committed(), 1);
        assert_eq!(std::fs::metadata(path_of(&path)).unwrap().len(), 0);
        store.close();
    }
}
