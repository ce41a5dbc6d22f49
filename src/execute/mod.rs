//! Running journeys: entries from triggers, requests, the executor seam (dry-run, HTTP), retries, the runner.

pub(crate) mod deliver;
pub mod dry_run;
pub mod entries;
pub mod executor;
pub(crate) mod http;
pub(crate) mod in_order;
pub(crate) mod masked;
pub(crate) mod not_entered;
pub(crate) mod plain;
pub(crate) mod protect;
pub(crate) mod proxy;
pub(crate) mod recorder;
pub(crate) mod request;
pub mod result;
pub(crate) mod retry;
pub mod runner;
pub(crate) mod safety;
pub(crate) mod sign;
pub(crate) mod stop;
pub(crate) mod urls;
pub(crate) mod walk;
