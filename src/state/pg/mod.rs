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
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    vault: crate::redact::Vault,
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
        let thread = std::thread::Builder::new()
            .name("state-store".into())
            .spawn(move || run_thread(dial, rx, serving, ready))
            .map_err(|e| unusable(e.to_string()))?;
        let known = match opened.await {
            Ok(Ok(known)) => known,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(unusable("the store's thread ended".into())),
        };
        Ok(Postgres {
            tx: Mutex::new(Some(tx)),
            known,
            shown,
            shared,
            thread: Mutex::new(Some(thread)),
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
    runtime.block_on(async move {
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
    });
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
        // The thread's only sender: dropping it ends the thread once it has written the rest.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
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
