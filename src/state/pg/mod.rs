//! The PostgreSQL store: the same promises as the SQLite file, in a database that cron hosts
//! and containers share. A delivery is recorded (committed) before its first attempt; runs of
//! one store and shard are one at a time, held by advisory locks on the run's connection; a
//! host that dies lets go of its shard with its connection, and any host can finish it.

mod claim;
mod connect;
pub(crate) mod schema;
mod server;
pub(crate) mod show;
pub mod target;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};

use super::storage::{Answer, Storage};
use super::{
    Claim, DeliveryState, DueEntry, EntryRow, Opening, Pending, Snapshot, StoreError, StoredEntry,
};
pub use connect::why;
use server::{Dial, Link, Msg, Read, Shared};
use target::Target;

/// An open PostgreSQL store; cheap to share.
pub struct Postgres {
    tx: Mutex<Option<mpsc::UnboundedSender<Msg>>>,
    /// Hashes of the keys stored when the run began (as the SQLite store keeps them).
    known: foldhash::HashSet<u64>,
    shown: String,
    shared: Arc<Shared>,
    serving: Mutex<Option<Serving>>,
    vault: crate::redact::Vault,
}

/// Where the store's loop runs ([`super::Home`]), and how closing waits for it to end.
enum Serving {
    /// Its own thread: joined.
    Thread(std::thread::JoinHandle<()>),
    /// A task on the opening runtime: its end drops the sender of this channel.
    Task(std::sync::mpsc::Receiver<()>),
}

impl Postgres {
    /// Connects, migrates, takes the locks `claim` needs, and reads which entries are stored.
    pub async fn open(
        target: &Target,
        claim: Claim,
        how: &Opening,
    ) -> Result<Postgres, StoreError> {
        let shown = target.shown();
        let dial = Dial {
            target: target.clone(),
            password: target.password(&how.env),
            claim,
            key: schema::store_key(&target.dbname, &target.schema),
            timeout: how.timeout,
            shown: shown.clone(),
        };
        let shared = Arc::new(Shared {
            failure: Mutex::new(None),
            hook: Mutex::new(None),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready, opened) = oneshot::channel();
        let serving = Arc::clone(&shared);
        let unusable = |why: String| StoreError::Unusable {
            path: shown.clone(),
            why,
        };
        let serving = match how.home {
            super::Home::Thread => std::thread::Builder::new()
                .name("state-store".into())
                .spawn(move || run_thread(dial, rx, serving, ready))
                .map(Serving::Thread)
                .map_err(|e| unusable(e.to_string()))?,
            super::Home::Runtime => {
                let (ended, end) = std::sync::mpsc::channel::<()>();
                tokio::spawn(async move {
                    let _ended = ended;
                    run(dial, rx, serving, ready).await
                });
                Serving::Task(end)
            }
        };
        let known = match opened.await {
            Ok(Ok(known)) => known,
            Ok(Err(e)) => {
                // It has ended, or ends now that nothing is left to serve.
                if let Serving::Thread(thread) = serving {
                    let _ = thread.join();
                }
                return Err(e);
            }
            Err(_) => return Err(unusable("the store's loop ended".into())),
        };
        Ok(Postgres {
            tx: Mutex::new(Some(tx)),
            known,
            shown,
            shared,
            serving: Mutex::new(Some(serving)),
            vault: how.vault.clone(),
        })
    }

    fn send(&self, msg: Msg) {
        if let Ok(tx) = self.tx.lock()
            && let Some(tx) = tx.as_ref()
        {
            let _ = tx.send(msg);
        }
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Msg,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        self.send(make(reply));
        super::answered(answer).await
    }
}

/// The store's thread: its own runtime, so that it serves every lane of the run alike.
fn run_thread(
    dial: Dial,
    rx: mpsc::UnboundedReceiver<Msg>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<foldhash::HashSet<u64>, StoreError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(StoreError::Unusable {
                path: dial.shown.clone(),
                why: e.to_string(),
            }));
            return;
        }
    };
    runtime.block_on(run(dial, rx, shared, ready));
}

/// The store's loop, wherever it runs: connects, says which entries are stored, then serves.
async fn run(
    dial: Dial,
    rx: mpsc::UnboundedReceiver<Msg>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<Result<foldhash::HashSet<u64>, StoreError>>,
) {
    let link = match Link::open(&dial).await {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    match link.known().await {
        Ok(known) => {
            let _ = ready.send(Ok(known));
        }
        Err(why) => {
            let _ = ready.send(Err(StoreError::Unusable {
                path: dial.shown.clone(),
                why,
            }));
            return;
        }
    }
    server::serve(Some(link), dial, rx, shared).await;
}

impl Storage for Postgres {
    fn keeps_entries(&self) -> bool {
        true
    }

    fn knows(&self, key: &str) -> bool {
        self.known.contains(&crate::identity::hash_key(key))
    }

    fn enter<'a>(&'a self, key: &'a str) -> Answer<'a, Option<StoredEntry>> {
        // A key not stored when the run began is new: this run holds its shard's lock.
        if !self.knows(key) {
            return Box::pin(std::future::ready(Ok(None)));
        }
        self.load(key)
    }

    fn before<'a>(&'a self, d: &'a Pending<'a>) -> Answer<'a, ()> {
        Box::pin(self.ask(|ack| Msg::Before(super::before(d), ack)))
    }

    fn after(
        &self,
        entry: &str,
        step: &str,
        status: DeliveryState,
        http_status: Option<u16>,
        saved: &serde_json::Value,
        attempts: u32,
    ) {
        self.send(Msg::Write(super::after(
            &self.vault,
            entry,
            step,
            status,
            http_status,
            saved,
            attempts,
        )));
    }

    fn end(&self, entry: &EntryRow<'_>, failed: bool, outcome: &str) {
        self.send(Msg::Write(super::end(entry, failed, outcome)));
    }

    fn park(
        &self,
        entry: &EntryRow<'_>,
        start_step: usize,
        due: DateTime<Utc>,
        snapshot: &Snapshot,
    ) {
        self.send(Msg::Write(super::park(
            &self.vault,
            entry,
            start_step,
            due,
            snapshot,
        )));
    }

    fn count<'a>(
        &'a self,
        customer: &'a str,
        channel: &'a str,
        since: DateTime<Utc>,
    ) -> Answer<'a, u32> {
        let since = crate::clock::rfc3339(since);
        Box::pin(self.ask(move |reply| {
            Msg::Read(Read::Count {
                customer: customer.into(),
                channel: channel.into(),
                since,
                reply,
            })
        }))
    }

    fn sent(&self, _: &str, _: &str, _: DateTime<Utc>) {}

    fn location(&self) -> Option<String> {
        Some(self.shown.clone())
    }

    fn load<'a>(&'a self, key: &'a str) -> Answer<'a, Option<StoredEntry>> {
        Box::pin(async move {
            let entry = self.ask(|r| Msg::Load(key.to_string(), r)).await?;
            Ok(entry.map(|e| super::unseal(&self.vault, e)))
        })
    }

    fn due(&self, now: DateTime<Utc>) -> Answer<'_, Vec<DueEntry>> {
        Box::pin(self.ask(move |r| Msg::Read(Read::Due(crate::clock::rfc3339(now), r))))
    }

    fn reopen(&self, entry: &EntryRow<'_>) {
        self.send(Msg::Write(super::reopen(entry)));
    }

    fn flush(&self) -> Answer<'_, ()> {
        Box::pin(async move {
            self.ask(Msg::Flush).await?;
            match self.failure() {
                Some(f) => Err(f),
                None => Ok(()),
            }
        })
    }

    fn close(&self) {
        // The loop's only sender: dropping it ends the loop once it has written the rest.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        match self.serving.lock().ok().and_then(|mut s| s.take()) {
            Some(Serving::Thread(t)) => drop(t.join()),
            // Until the task ends (or its runtime drops it).
            Some(Serving::Task(end)) => drop(end.recv()),
            None => {}
        }
    }

    fn failure(&self) -> Option<String> {
        self.shared.failure.lock().ok().and_then(|f| f.clone())
    }

    fn shown(&self) -> String {
        self.shown.clone()
    }

    fn shared(&self) -> bool {
        true
    }

    fn coordinate(&self, c: super::Coordination) -> Answer<'_, super::Coordinated> {
        Box::pin(self.ask(move |reply| Msg::Read(Read::Coordinate(c, reply))))
    }

    fn leave<'a>(&'a self, holder: &'a str) -> Answer<'a, ()> {
        Box::pin(self.ask(move |reply| Msg::Read(Read::Leave(holder.to_string(), reply))))
    }

    fn alert_marks(&self) -> Answer<'_, Vec<String>> {
        Box::pin(self.ask(|reply| Msg::Read(Read::Marks(reply))))
    }

    fn mark_alert(&self, key: &str, fired: bool) {
        let (ack, _) = oneshot::channel();
        self.send(Msg::Read(Read::Mark(key.to_string(), fired, ack)));
    }

    fn on_failure(&self, hook: Box<dyn Fn() + Send + Sync>) {
        if let Ok(mut h) = self.shared.hook.lock() {
            *h = Some(hook);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Home, Location};

    /// What another connection reads of the store's one entry.
    async fn committed(base: &str, schema: &str) -> Vec<String> {
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let rows = client
            .query(
                &format!(
                    "SELECT d.status || ' ' || e.status FROM \"{schema}\".deliveries d
                     JOIN \"{schema}\".entries e ON e.key = d.entry_key"
                ),
                &[],
            )
            .await
            .unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// Opens the store at `url` and `home`, and records a delivery, its outcome and its entry's
    /// end; only the first is waited for.
    async fn open_and_record(url: &str, home: Home) -> Postgres {
        let Ok(Location::Postgres(target)) = Location::given(url, &Default::default()) else {
            panic!("{url} is a PostgreSQL store");
        };
        let how = Opening {
            home,
            timeout: std::time::Duration::from_secs(10),
            ..Default::default()
        };
        let store = Postgres::open(&target, Claim::Run(None), &how)
            .await
            .unwrap();
        let at = Utc::now();
        let pending = Pending {
            id: "d1",
            entry: "e1",
            step: "send",
            customer: "c1",
            channel: None,
            at,
            fresh: true,
        };
        store.before(&pending).await.unwrap();
        // Neither is waited for: closing must write them.
        let saved = serde_json::json!({});
        store.after("e1", "send", DeliveryState::Ok, Some(200), &saved, 1);
        let row = EntryRow {
            key: "e1",
            journey: "j",
            customer: "c1",
            started: at,
            fresh: true,
        };
        store.end(&row, false, "completed");
        store
    }

    /// Opens a store of its own at `home` on a runtime of the test's, records an entry, and
    /// closes it on another thread, which then reads what was committed. The runtime is left
    /// still meanwhile: a store whose loop is a task on it has written nothing until the
    /// runtime runs again, so closing must wait for that.
    fn recorded_then_closed(base: &str, home: Home) -> Vec<String> {
        let schema = format!("unit_home_{home:?}_{}", std::process::id()).to_lowercase();
        let held = runtime();
        let store = held.block_on(open_and_record(&format!("{base}?schema={schema}"), home));
        let base = base.to_string();
        let closing = std::thread::spawn(move || {
            store.close();
            runtime().block_on(committed(&base, &schema))
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        held.block_on(async {
            while !closing.is_finished() {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        });
        closing.join().unwrap()
    }

    #[test]
    fn a_store_on_its_thread_or_on_the_runtime_writes_everything_before_it_closes() {
        let Ok(base) = std::env::var("JOURNEY_TEST_POSTGRES") else {
            eprintln!("JOURNEY_TEST_POSTGRES is not set: this PostgreSQL test did not run");
            return;
        };
        for home in [Home::Thread, Home::Runtime] {
            let rows = recorded_then_closed(&base, home);
            assert_eq!(rows, ["ok done"], "{home:?}");
        }
    }
}
