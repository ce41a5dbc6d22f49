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
pub mod window;

use sha2::{Digest, Sha256};

/// The first 8 bytes of sha256 over the parts (NUL-separated), as a number.
fn hash_u64(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// A deterministic fraction in [0, 1) from a hash of the parts (holdouts).
pub fn hash_fraction(parts: &[&str]) -> f64 {
    (hash_u64(parts) % 10_000) as f64 / 10_000.0
}

/// A deterministic bucket in 0..100 from a hash of the parts (splits).
pub fn hash_percent(parts: &[&str]) -> u32 {
    (hash_u64(parts) % 100) as u32
}
