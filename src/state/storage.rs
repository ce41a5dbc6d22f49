//! The storage seam: what a walk asks of a state store, whatever keeps it. The SQLite
//! [`Store`] keeps entries and deliveries so that re-runs never send twice;
//! [`Memory`] serves dry-runs and `--no-state` runs, keeping only what this run's frequency caps
//! count; [`super::pg::Postgres`] keeps them in a PostgreSQL database that several hosts share.
//! A run, a replay and `state` commands hold an `Arc<dyn Storage>` and never ask which.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::writer::Msg;
use super::{DeliveryState, DueEntry, EntryRow, Pending, Snapshot, Store, StoredEntry};

/// A store's answer, later.
pub type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// What the walk and the runner ask of a state store.
pub trait Storage: Send + Sync {
    /// True when entries and deliveries outlive the run: entries park in waits, a delivery is
    /// recorded before it is sent, and a re-run walks on from what is stored.
    fn keeps_entries(&self) -> bool;
    /// Whether an entry was stored under `key` when the run began.
    fn knows(&self, key: &str) -> bool;
    /// The stored entry, or `None` for a new one.
    fn enter<'a>(&'a self, key: &'a str) -> Answer<'a, Option<StoredEntry>>;
    /// Records a delivery as pending; only once this returns may it be sent.
    fn before<'a>(&'a self, d: &'a Pending<'a>) -> Answer<'a, ()>;
    /// Records a delivery's outcome and what its step saved.
    fn after(
        &self,
        entry: &str,
        step: &str,
        status: DeliveryState,
        http_status: Option<u16>,
        saved: &serde_json::Value,
        attempts: u32,
    );
    /// Ends an entry: `done` with its outcome, or `failed`.
    fn end(&self, entry: &EntryRow<'_>, failed: bool, outcome: &str);
    /// Parks an entry until `due`, to walk on from `start_step` with `snapshot`.
    fn park(
        &self,
        entry: &EntryRow<'_>,
        start_step: usize,
        due: DateTime<Utc>,
        snapshot: &Snapshot,
    );
    /// Deliveries of `channel` to `customer` after `since` (for frequency caps).
    fn count<'a>(
        &'a self,
        customer: &'a str,
        channel: &'a str,
        since: DateTime<Utc>,
    ) -> Answer<'a, u32>;
    /// A delivery of `channel` to `customer` succeeded at `at` (a store that records every
    /// delivery already knows).
    fn sent(&self, customer: &str, channel: &str, at: DateTime<Utc>);
    /// Where it is, for a dead letter to name (`None` in memory).
    fn location(&self) -> Option<String>;
    /// The stored entry, read whenever asked (replay, resumed waits).
    fn load<'a>(&'a self, key: &'a str) -> Answer<'a, Option<StoredEntry>>;
    /// Parked entries due at `now`.
    fn due(&self, now: DateTime<Utc>) -> Answer<'_, Vec<DueEntry>>;
    /// Opens an ended entry again (`replay` delivered its failed step).
    fn reopen(&self, entry: &EntryRow<'_>);
    /// Waits until everything recorded so far is written.
    fn flush(&self) -> Answer<'_, ()>;
    /// Writes what is left and lets go of the store. It blocks: call it off the runtime
    /// (`spawn_blocking`), where a store's loop may be a task waiting to write the rest.
    fn close(&self);
    /// The first failure, if any (the run must stop: exit 3).
    fn failure(&self) -> Option<String>;
    /// How messages and the summary name it.
    fn shown(&self) -> String;
    /// True when other hosts share the store as the run goes (PostgreSQL): rate limits and
    /// a partner's pauses can be divided and heard through it.
    fn shared(&self) -> bool {
        false
    }
    /// Leases this host (`holder`) its share of each limit in `limits` for a short while, tells
    /// the pauses this host was asked for, and hears its shares and which partner hosts are
    /// paused, for how much longer. Alone, every limit is this host's.
    fn coordinate(&self, c: Coordination) -> Answer<'_, Coordinated> {
        let shares = c.limits.into_iter().collect();
        Box::pin(std::future::ready(Ok(Coordinated {
            shares,
            pauses: Vec::new(),
        })))
    }
    /// This host's shares go to the others at once (it finished).
    fn leave<'a>(&'a self, holder: &'a str) -> Answer<'a, ()> {
        let _ = holder;
        Box::pin(std::future::ready(Ok(())))
    }
    /// The alerts of `resolved: true` that fired and are not resolved yet, by key.
    fn alert_marks(&self) -> Answer<'_, Vec<String>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }
    /// Keeps (`fired`) or drops an alert's key.
    fn mark_alert(&self, key: &str, fired: bool) {
        let _ = (key, fired);
    }
    /// Calls `hook` once if the store fails during the run (a PostgreSQL server that stays away
    /// longer than `--state-timeout`), so the run stops as SIGTERM would.
    fn on_failure(&self, hook: Box<dyn Fn() + Send + Sync>) {
        drop(hook);
    }
}

impl Storage for Store {
    fn keeps_entries(&self) -> bool {
        true
    }

    fn knows(&self, key: &str) -> bool {
        Store::knows(self, key)
    }

    fn enter<'a>(&'a self, key: &'a str) -> Answer<'a, Option<StoredEntry>> {
        Box::pin(Store::enter(self, key))
    }

    fn before<'a>(&'a self, d: &'a Pending<'a>) -> Answer<'a, ()> {
        Box::pin(Store::before(self, d))
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
        Store::after(self, entry, step, status, http_status, saved, attempts);
    }

    fn end(&self, entry: &EntryRow<'_>, failed: bool, outcome: &str) {
        Store::end(self, entry, failed, outcome);
    }

    fn park(
        &self,
        entry: &EntryRow<'_>,
        start_step: usize,
        due: DateTime<Utc>,
        snapshot: &Snapshot,
    ) {
        Store::park(self, entry, start_step, due, snapshot);
    }

    fn count<'a>(
        &'a self,
        customer: &'a str,
        channel: &'a str,
        since: DateTime<Utc>,
    ) -> Answer<'a, u32> {
        Box::pin(Store::count(self, customer, channel, since))
    }

    fn sent(&self, _: &str, _: &str, _: DateTime<Utc>) {}

    fn location(&self) -> Option<String> {
        Some(self.real_path().display().to_string())
    }

    fn load<'a>(&'a self, key: &'a str) -> Answer<'a, Option<StoredEntry>> {
        Box::pin(Store::load(self, key))
    }

    fn due(&self, now: DateTime<Utc>) -> Answer<'_, Vec<DueEntry>> {
        Box::pin(Store::due(self, now))
    }

    fn reopen(&self, entry: &EntryRow<'_>) {
        Store::reopen(self, entry);
    }

    fn flush(&self) -> Answer<'_, ()> {
        Box::pin(Store::flush(self))
    }

    fn close(&self) {
        Store::close(self);
    }

    fn failure(&self) -> Option<String> {
        Store::failure(self)
    }

    fn shown(&self) -> String {
        self.path().display().to_string()
    }

    fn alert_marks(&self) -> Answer<'_, Vec<String>> {
        Box::pin(self.ask(Msg::Marks))
    }

    fn mark_alert(&self, key: &str, fired: bool) {
        self.send(Msg::Write(super::redo::Write::Mark {
            key: key.to_string(),
            fired,
        }));
    }
}

/// What a host tells the others that share its store, every half second of a run.
#[derive(Debug, Clone, Default)]
pub struct Coordination {
    /// Who this host is (`journey on HOST pid N`, and a random part).
    pub holder: String,
    /// The limits it shares dynamically (`journey/step`, `--rate`), attempts a second.
    pub limits: Vec<(String, f64)>,
    /// `N` of `--shard K/N`.
    pub hosts: u64,
    /// Its first lease: at most 1/N, as hosts that start together cannot see each other yet.
    pub first: bool,
    /// The pauses partners asked it for since it last told: host, and for how long.
    pub pauses: Vec<(String, std::time::Duration)>,
}

/// What it hears back.
#[derive(Debug, Clone, Default)]
pub struct Coordinated {
    /// This host's share of each limit now, attempts a second.
    pub shares: std::collections::HashMap<String, f64>,
    /// Partner hosts paused now, and for how much longer.
    pub pauses: Vec<(String, std::time::Duration)>,
}

/// A run without a store: nothing outlives it; this run's deliveries per customer and channel
/// are kept for its frequency caps.
#[derive(Debug, Default)]
pub struct Memory {
    sent: Mutex<HashMap<CustomerChannel, Vec<DateTime<Utc>>>>,
}

/// A customer id and a channel.
type CustomerChannel = (String, String);

impl Memory {
    fn count_now(&self, customer: &str, channel: &str, since: DateTime<Utc>) -> u32 {
        let Ok(m) = self.sent.lock() else { return 0 };
        m.get(&(customer.to_string(), channel.to_string()))
            .map_or(0, |v| v.iter().filter(|t| **t > since).count() as u32)
    }
}

impl Storage for Memory {
    fn keeps_entries(&self) -> bool {
        false
    }

    fn knows(&self, _: &str) -> bool {
        false
    }

    fn enter<'a>(&'a self, _: &'a str) -> Answer<'a, Option<StoredEntry>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn before<'a>(&'a self, _: &'a Pending<'a>) -> Answer<'a, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn after(
        &self,
        _: &str,
        _: &str,
        _: DeliveryState,
        _: Option<u16>,
        _: &serde_json::Value,
        _: u32,
    ) {
    }

    fn end(&self, _: &EntryRow<'_>, _: bool, _: &str) {}

    fn park(&self, _: &EntryRow<'_>, _: usize, _: DateTime<Utc>, _: &Snapshot) {}

    fn count<'a>(
        &'a self,
        customer: &'a str,
        channel: &'a str,
        since: DateTime<Utc>,
    ) -> Answer<'a, u32> {
        Box::pin(std::future::ready(Ok(
            self.count_now(customer, channel, since)
        )))
    }

    fn sent(&self, customer: &str, channel: &str, at: DateTime<Utc>) {
        if let Ok(mut m) = self.sent.lock() {
            m.entry((customer.to_string(), channel.to_string()))
                .or_default()
                .push(at);
        }
    }

    fn location(&self) -> Option<String> {
        None
    }

    fn load<'a>(&'a self, _: &'a str) -> Answer<'a, Option<StoredEntry>> {
        Box::pin(std::future::ready(Ok(None)))
    }

    fn due(&self, _: DateTime<Utc>) -> Answer<'_, Vec<DueEntry>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn reopen(&self, _: &EntryRow<'_>) {}

    fn flush(&self) -> Answer<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn close(&self) {}

    fn failure(&self) -> Option<String> {
        None
    }

    fn shown(&self) -> String {
        "memory".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_counts_this_runs_deliveries_per_customer_and_channel() {
        let m = Memory::default();
        let t = |h| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 20, h, 0, 0).unwrap();
        m.sent("c1", "email", t(8));
        m.sent("c1", "email", t(10));
        m.sent("c1", "sms", t(10));
        m.sent("c2", "email", t(10));
        assert_eq!(m.count("c1", "email", t(9)).await, Ok(1));
        assert_eq!(m.count("c1", "email", t(7)).await, Ok(2));
        assert_eq!(m.count("c3", "email", t(7)).await, Ok(0));
        assert!(!m.keeps_entries() && m.location().is_none());
        assert!(matches!(m.enter("j:c1").await, Ok(None)));
    }
}
