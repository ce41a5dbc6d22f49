//! `exit_when`: an entry ends as `exited` once the customer has an event of that name (for
//! which its `where` holds) after the entry started and no later than the entry's clock.

use chrono::{DateTime, Utc};
use minijinja::Value;

use crate::fixture::Event;
use crate::journey::plan::ExitPlan;
use crate::render::{RenderError, value_of};

/// True when one of `events` ends the entry; `base` is the entry's template context.
pub fn converted(
    exit: &ExitPlan,
    events: &[Event],
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    base: impl Fn() -> Value,
) -> Result<bool, RenderError> {
    for e in events.iter().filter(|e| e.at > started && e.at <= now) {
        let Some(filter) = &exit.filter else {
            return Ok(true);
        };
        let ctx = minijinja::context! { event => value_of(&*e.record), ..base() };
        if filter.is_true(&ctx)? {
            return Ok(true);
        }
    }
    Ok(false)
}
