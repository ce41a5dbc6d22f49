//! Checkpoints off the writer's path: a thread with its own connection copies committed pages
//! from the WAL into the database while the writer goes on committing.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold: on a batch
//! run every in-flight delivery waited about 100 ms on each (measured: 4 of 4,000 commits took
//! 0.42 s of the writer's 0.67 s of committing per 100,000 entries). Here the thread copies the
//! pages soon after they are written; once the WAL is long, the writer checkpoints the few frames
//! left itself, between two transactions, so that its next transaction starts the WAL afresh.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rusqlite::Connection;

/// Frames in the WAL past which the writer finishes a checkpoint itself (about 16 MB).
const LONG_WAL: i64 = 4000;
/// Least time between two checkpoints of the thread.
const PACE: Duration = Duration::from_millis(50);
/// Commits after which the writer checkpoints itself even if the thread never said to (it
/// could not open its connection): the WAL stays bounded whatever happens.
const FALLBACK_COMMITS: u32 = 2000;

/// The writer's side: tells the thread about commits, and checkpoints when it is time.
pub(super) struct Checkpoints {
    kick: Option<SyncSender<()>>,
    long: Arc<AtomicBool>,
    commits: u32,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Ends the thread and waits for it, so that its connection is closed before the writer's.
impl Drop for Checkpoints {
    fn drop(&mut self) {
        self.kick = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Checkpoints {
    /// Starts the thread on a connection of its own to `path` (none if it cannot be opened).
    pub(super) fn start(path: &Path) -> Checkpoints {
        let long = Arc::new(AtomicBool::new(false));
        let (kick, rx) = sync_channel(1);
        let flag = Arc::clone(&long);
        let thread = Connection::open(path).ok().and_then(|conn| {
            std::thread::Builder::new()
                .name("state-checkpoint".into())
                .spawn(move || run(conn, rx, flag))
                .ok()
        });
        Checkpoints {
            kick: thread.is_some().then_some(kick),
            long,
            commits: 0,
            thread,
        }
    }

    /// After each commit: wakes the thread; finishes its checkpoint once the WAL is long.
    pub(super) fn committed(&mut self, conn: &Connection) {
        self.commits += 1;
        if let Some(kick) = &self.kick
            && let Err(TrySendError::Disconnected(())) = kick.try_send(())
        {
            self.kick = None;
        }
        if self.long.swap(false, Ordering::Relaxed) || self.commits >= FALLBACK_COMMITS {
            // Nothing is lost if it cannot run now (another checkpoint holds the lock): the
            // next one copies the same frames.
            let _ = passive(conn);
            self.commits = 0;
        }
    }
}

/// The thread: a passive checkpoint after commits, at most one per [`PACE`]; it ends as soon as
/// the writer does.
fn run(conn: Connection, rx: Receiver<()>, long: Arc<AtomicBool>) {
    while rx.recv().is_ok() {
        if let Ok((busy, frames)) = passive(&conn)
            && busy == 0
            && frames >= LONG_WAL
        {
            long.store(true, Ordering::Relaxed);
        }
        let next = std::time::Instant::now() + PACE;
        loop {
            match rx.recv_timeout(next.saturating_duration_since(std::time::Instant::now())) {
                Ok(()) => {}
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

/// A passive checkpoint (it never waits on the writer): whether it was blocked, and the frames
/// in the WAL.
fn passive(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WAL header's checkpoint sequence number: it changes each time the WAL starts afresh.
    fn wal_sequence(path: &Path) -> Option<[u8; 4]> {
        let head = std::fs::read(path.with_file_name("s.sqlite-wal")).ok()?;
        head.get(12..16)?.try_into().ok()
    }

    #[test]
    fn the_wal_starts_afresh_while_the_writer_commits_without_checkpointing_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let conn = crate::state::connect(&path).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
        let first = wal_sequence(&path);
        let mut checkpoints = Checkpoints::start(&path);
        // The writer's own fallback would come only after FALLBACK_COMMITS.
        let mut commits = 0;
        while commits < FALLBACK_COMMITS - 1 && wal_sequence(&path) == first {
            conn.execute("INSERT INTO t VALUES (zeroblob(12000))", [])
                .unwrap();
            checkpoints.committed(&conn);
            commits += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_ne!(
            wal_sequence(&path),
            first,
            "the WAL never started afresh in {commits} commits"
        );
        let count: u32 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, commits);
    }
}
