//! Frequency caps: a step whose channel already reached `max` deliveries to the customer within
//! `per` (by any journey sharing the store, or this run without one) is skipped as `capped`.

use chrono::{DateTime, Utc};

use crate::journey::plan::CapPlan;
use crate::state::Storage;

/// True when the cap is reached at `now`; `Err` when the store cannot count.
pub async fn reached(
    store: &dyn Storage,
    customer: &str,
    cap: &CapPlan,
    now: DateTime<Utc>,
) -> Result<bool, String> {
    let since = now - chrono::Duration::from_std(cap.per).unwrap_or_default();
    let sent = store.count(customer, &cap.channel, since).await?;
    Ok(sent >= cap.max)
}
