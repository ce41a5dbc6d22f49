//! What an entry's templates saw, kept with a parked wait and a dead letter (no `env`, no
//! `secret`): a resumed entry and a replayed delivery render from it again.

use serde::{Deserialize, Serialize};

/// The data an entry's templates saw: no `env`, no `secret`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// The customer record.
    pub customer: serde_json::Value,
    /// The trigger event.
    pub event: Option<serde_json::Value>,
    /// `vars`.
    pub vars: serde_json::Value,
    /// `saved`.
    pub saved: serde_json::Value,
    /// `steps`.
    pub steps: serde_json::Value,
    /// The entry's clock (RFC 3339).
    pub now: String,
    /// When the entry started (RFC 3339), for `exit_when`.
    #[serde(default)]
    pub started: Option<String>,
}
