//! Running journeys: entries from triggers, requests, the executor seam (dry-run, HTTP), retries, the runner.

pub mod deliver;
pub mod dry_run;
pub mod entries;
pub mod executor;
pub mod http;
pub mod in_order;
pub mod masked;
pub mod not_entered;
pub mod plain;
pub mod protect;
pub mod recorder;
pub mod request;
pub mod result;
pub mod retry;
pub mod runner;
pub mod safety;
pub mod sign;
pub mod stop;
pub mod urls;
pub mod walk;
