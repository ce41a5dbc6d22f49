//! The run's clock: real time, or frozen by `--now`; dry-runs advance a copy per entry.

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats an instant as RFC 3339 UTC with a `Z`, without fractions when they are zero.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    // A batch formats the same instant (the run's clock) for every entry: the last one made on
    // each thread is kept.
    thread_local! {
        static LAST: std::cell::RefCell<Option<(DateTime<Utc>, String)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some((at, text)) if *at == t => text.clone(),
        _ => {
            let text = t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
            *last = Some((t, text.clone()));
            text
        }
    })
}

/// Parses `--now`.
pub fn parse(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("`{text}` is not an RFC 3339 date-time such as 2026-11-20T11:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_utc_z() {
        let t = parse("2026-11-20T12:00:00+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-20T11:00:00Z");
    }
}
