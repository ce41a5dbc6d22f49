//! Where a store is (a SQLite file or a PostgreSQL database) and opening it for what a command
//! needs: a run's shard, or the whole store (a replay, `state prune`, `state copy`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::pg::{Postgres, target::Target};
use super::{Storage, Store, StoreError, StorePath};

/// Where a state store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file.
    File(StorePath),
    /// A PostgreSQL database (and schema).
    Postgres(Target),
}

impl Location {
    /// `--state` or `JOURNEY_STATE` as given: a `postgres://` URL, else a file.
    pub fn given(text: &str, env: &HashMap<String, String>) -> Result<Location, String> {
        match super::pg::target::is_url(text) {
            true => Target::parse(text, env).map(Location::Postgres),
            false => Ok(Location::File(StorePath::Given(text.into()))),
        }
    }

    /// How messages, reports and dead letters name it (a URL never with its password).
    pub fn shown(&self) -> String {
        match self {
            Location::File(p) => p.shown().display().to_string(),
            Location::Postgres(t) => t.shown(),
        }
    }
}

/// What a command holds the store for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A run, of one shard (`--shard K/N`) or of every customer: runs of other shards may
    /// share a PostgreSQL store at the same time.
    Run(Option<(u64, u64)>),
    /// The whole store, with no run beside it (`replay`, `state prune`, `state copy`).
    Whole,
}

/// What opening needs besides where.
#[derive(Clone, Default)]
pub struct Opening {
    /// Keeps secrets out of what is stored.
    pub vault: crate::redact::Vault,
    /// The environment (`PGPASSWORD`, `PGPASSFILE`, `HOME`).
    pub env: HashMap<String, String>,
    /// How long a PostgreSQL store may stay away before the run stops (`--state-timeout`).
    pub timeout: Duration,
    /// Where a PostgreSQL store's client runs.
    pub home: Home,
}

/// Where a PostgreSQL store's client runs: beside the entries that wait for it when they all run
/// on the opening runtime, else on a thread of its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Home {
    /// A thread and runtime of its own, serving every lane of a run alike.
    #[default]
    Thread,
    /// A task on the runtime that opens it, where the run's one lane (or a replay) runs too: a
    /// batch's answer reaches the entries waiting for it without waking another thread. Measured
    /// on 2 cores against nginx, in alternating runs with the thread: 1.07x the entries a second
    /// (median of 8 pairs of 50,000 entries), 1.02x (median of 5 bench rounds). Closing it
    /// blocks until the task has written the rest, so it must be closed off that runtime
    /// (`spawn_blocking`).
    Runtime,
}

impl std::fmt::Debug for Opening {
    /// Never the environment: it may hold `PGPASSWORD`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Opens the store at `at` for `claim`: a lock held elsewhere is [`StoreError::Locked`] (exit
/// 75), a shard that does not fit the store [`StoreError::Refused`] (exit 2).
pub async fn open(
    at: &Location,
    claim: Claim,
    how: &Opening,
) -> Result<Arc<dyn Storage>, StoreError> {
    match at {
        Location::File(path) => {
            let store = Store::open(path)?.with_vault(how.vault.clone());
            if let Claim::Run(shard) = claim
                && let Err(why) = store.check_shard(shard).await
            {
                store.close();
                return Err(StoreError::Refused {
                    path: path.shown().display().to_string(),
                    why,
                });
            }
            Ok(Arc::new(store))
        }
        Location::Postgres(target) => Ok(Arc::new(Postgres::open(target, claim, how).await?)),
    }
}
