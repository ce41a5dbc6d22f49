//! Send windows: a step is sent only inside its opening hours, in a time zone; outside them
//! the entry waits for the first instant, at or after now, inside them.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::journey::plan::WindowPlan;
use crate::render::RenderError;

/// When window `w` is next open at `now` (`now` itself when it is open); its time zone is
/// rendered against the entry's context `ctx`.
pub fn opens(
    w: &WindowPlan,
    now: DateTime<Utc>,
    ctx: &minijinja::Value,
) -> Result<DateTime<Utc>, RenderError> {
    let tz = match &w.tz {
        None => chrono_tz::UTC,
        Some(t) => {
            let name = t.render(ctx)?;
            name.parse().map_err(|_| RenderError {
                pos: t.pos.clone(),
                field: t.field.clone(),
                message: format!(
                    "unknown time zone `{name}`: use an IANA name such as Europe/Paris"
                ),
            })?
        }
    };
    Ok(next_open(now, w.from, w.to, tz))
}

/// True when `minute` (after local midnight) is inside `from..to` (which may span midnight).
fn inside(minute: u32, from: u32, to: u32) -> bool {
    if from < to {
        (from..to).contains(&minute)
    } else {
        minute >= from || minute < to
    }
}

/// `now` when it is inside the window, else the next opening, in `tz`.
pub fn next_open(now: DateTime<Utc>, from: u32, to: u32, tz: Tz) -> DateTime<Utc> {
    let local = now.with_timezone(&tz);
    let minute = local.hour() * 60 + local.minute();
    if inside(minute, from, to) {
        return now;
    }
    let opens = NaiveTime::from_hms_opt(from / 60 % 24, from % 60, 0).unwrap_or_default();
    let mut day = local.date_naive();
    if minute >= from {
        day = day.succ_opt().unwrap_or(day);
    }
    // A day whose opening falls in a DST gap opens an hour later.
    let at = day.and_time(opens);
    tz.from_local_datetime(&at)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(at + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        crate::clock::parse(s).unwrap()
    }

    #[test]
    fn opens_in_the_customers_zone() {
        let ny: Tz = "America/New_York".parse().unwrap();
        // 22:00 in New York: tomorrow 09:00 local is 14:00 UTC.
        assert_eq!(
            next_open(at("2026-11-20T03:00:00Z"), 540, 1200, ny),
            at("2026-11-20T14:00:00Z")
        );
        // 10:00 in New York: inside.
        assert_eq!(
            next_open(at("2026-11-20T15:00:00Z"), 540, 1200, ny),
            at("2026-11-20T15:00:00Z")
        );
        // 07:00 in New York: today 09:00.
        assert_eq!(
            next_open(at("2026-11-20T12:00:00Z"), 540, 1200, ny),
            at("2026-11-20T14:00:00Z")
        );
    }

    #[test]
    fn windows_across_midnight() {
        let utc: Tz = "UTC".parse().unwrap();
        assert_eq!(
            next_open(at("2026-11-20T23:30:00Z"), 1320, 360, utc),
            at("2026-11-20T23:30:00Z")
        );
        assert_eq!(
            next_open(at("2026-11-20T02:00:00Z"), 1320, 360, utc),
            at("2026-11-20T02:00:00Z")
        );
        assert_eq!(
            next_open(at("2026-11-20T12:00:00Z"), 1320, 360, utc),
            at("2026-11-20T22:00:00Z")
        );
    }
}
