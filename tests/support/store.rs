//! The state store a test runs against: the SQLite file beside the journeys, or a schema of
//! its own in the PostgreSQL named by `JOURNEY_TEST_POSTGRES` (dropped after the test). Tests
//! of the store's promises take a [`Backend`] and run once on each.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, RwLock};

use super::server::TestServer;
use super::{Output, Test};

/// PostgreSQL tests share the server; the test that restarts it holds this alone.
pub static SERVER: RwLock<()> = RwLock::new(());

/// Where a test's store is.
pub enum Backend {
    /// `.journey/state.sqlite` beside the journeys.
    File,
    /// Schemas of their own in one database, dropped when the backend goes.
    Postgres {
        base: String,
        made: Mutex<Vec<String>>,
        _server: Hold,
    },
}

/// How a test holds the server: beside other tests, or alone (it restarts the server).
#[allow(
    dead_code,
    reason = "held for its drop: the lock lasts as long as the test"
)]
pub enum Hold {
    Shared(std::sync::RwLockReadGuard<'static, ()>),
    Alone(std::sync::RwLockWriteGuard<'static, ()>),
}

/// Runs `f` on the SQLite store, then on PostgreSQL when `JOURNEY_TEST_POSTGRES` is set.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_file {
            $(#[test]
            fn $name() {
                super::$name(&$crate::support::store::Backend::File);
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $name() {
                if let Some(b) = $crate::support::store::Backend::postgres() {
                    super::$name(&b);
                }
            })*
        }
    };
}

static SAID: Once = Once::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The database the PostgreSQL tests use (`JOURNEY_TEST_POSTGRES`), or `None` (said once).
pub fn database() -> Option<String> {
    match std::env::var("JOURNEY_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            SAID.call_once(|| {
                eprintln!(
                    "JOURNEY_TEST_POSTGRES is not set: the PostgreSQL store tests did not run (.ci/run sets it)"
                )
            });
            None
        }
    }
}

/// Runs SQL on the test database (panics when it is unreachable: it was named).
pub fn sql(base: &str, text: &str) -> Vec<Vec<Option<String>>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("JOURNEY_TEST_POSTGRES={base} is unreachable: {e}"));
        tokio::spawn(conn);
        let mut rows = Vec::new();
        for m in client.simple_query(text).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = m {
                rows.push((0..r.len()).map(|i| r.get(i).map(String::from)).collect());
            }
        }
        rows
    })
}

impl Backend {
    /// A PostgreSQL backend when `JOURNEY_TEST_POSTGRES` is set.
    pub fn postgres() -> Option<Backend> {
        let base = database()?;
        sql(&base, "SELECT 1");
        let shared = SERVER.read().unwrap_or_else(|e| e.into_inner());
        Some(Backend::Postgres {
            base,
            made: Mutex::new(Vec::new()),
            _server: Hold::Shared(shared),
        })
    }

    /// A PostgreSQL backend whose test has the server to itself (it stops and starts it).
    pub fn postgres_alone() -> Option<Backend> {
        let base = database()?;
        let alone = SERVER.write().unwrap_or_else(|e| e.into_inner());
        sql(&base, "SELECT 1");
        Some(Backend::Postgres {
            base,
            made: Mutex::new(Vec::new()),
            _server: Hold::Alone(alone),
        })
    }

    /// True on the SQLite file.
    pub fn is_file(&self) -> bool {
        matches!(self, Backend::File)
    }

    /// A fresh store's `--state` value: a new schema on PostgreSQL; `None` on a file (the
    /// default beside the journeys).
    pub fn fresh(&self) -> Option<String> {
        match self {
            Backend::File => None,
            Backend::Postgres { base, made, .. } => {
                let name = format!(
                    "t_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    fastrand::u32(..)
                );
                made.lock().unwrap().push(name.clone());
                Some(format!("{base}?schema={name}"))
            }
        }
    }

    /// A test folder whose runs use a fresh store of this backend (`JOURNEY_STATE`).
    pub fn test(&self) -> Test {
        match self.fresh() {
            Some(url) => Test::new().env("JOURNEY_STATE", &url),
            None => Test::new(),
        }
    }

    /// As [`super::against`], on this backend.
    pub fn against(&self, server: &TestServer, journey: &str, fixtures: &str) -> Test {
        let t = self.test().env("HOOK_URL", &server.url);
        t.file("j.yaml", journey);
        t.file("f.yaml", fixtures);
        t
    }

    /// `journey state show` of the test's store.
    pub fn show(&self, t: &Test) -> Output {
        t.run(&["state", "show"])
    }

    /// Sets the stored schema version, as a newer journey would have written it.
    pub fn set_schema_version(&self, t: &Test, version: i64) {
        match self {
            Backend::File => {
                let conn = rusqlite::Connection::open(t.path(".journey/state.sqlite")).unwrap();
                conn.pragma_update(None, "user_version", version).unwrap();
            }
            Backend::Postgres { base, .. } => {
                let schema = t.state_schema().expect("a PostgreSQL test store");
                sql(
                    base,
                    &format!(
                        "UPDATE \"{schema}\".meta SET value = '{version}' WHERE key = 'schema_version'"
                    ),
                );
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres { base, made, .. } = self {
            for name in made.get_mut().map(|m| m.clone()).unwrap_or_default() {
                sql(base, &format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
            }
        }
    }
}

impl Test {
    /// The schema of the PostgreSQL store this test's runs use, if any.
    pub fn state_schema(&self) -> Option<String> {
        let url = self.env_value("JOURNEY_STATE")?;
        Some(url.split("schema=").nth(1)?.to_string())
    }
}
