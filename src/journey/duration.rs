//! Durations as journeys write them: `500ms`, `5s`, `2d`, `1w`; months and years are refused.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A duration read from a journey file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// How a duration is written, in every message about one.
const HINT: &str = "write whole numbers with the units ms s m h d w, e.g. `500ms`, `2d` or `1h30m`";

/// Parses `N<unit>` parts (units `ms s m h d w`: `1h30m`, `2 d`), the one rule for every
/// duration a journey, a fixture or a flag gives; months and years are refused, being no fixed
/// length.
pub fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration: {HINT}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_at = digits + rest[digits..].len() - rest[digits..].trim_start().len();
        let unit_len = rest[unit_at..]
            .bytes()
            .take_while(u8::is_ascii_alphabetic)
            .count();
        let unit = &rest[unit_at..unit_at + unit_len];
        if is_calendar(unit) {
            return Err(format!(
                "`{trimmed}`: months and years are not fixed lengths: {HINT} (a month is not `4w`; use days)"
            ));
        }
        let (Ok(n), Some(each)) = (rest[..digits].parse::<u64>(), unit_length(unit)) else {
            return Err(format!("`{trimmed}` is not a duration: {HINT}"));
        };
        let part = each.checked_mul(u32::try_from(n).unwrap_or(u32::MAX));
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| format!("`{trimmed}` is too long a duration"))?;
        rest = rest[unit_at + unit_len..].trim_start();
    }
    Ok(total)
}

fn unit_length(unit: &str) -> Option<Duration> {
    Some(match unit {
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        "d" => Duration::from_secs(86_400),
        "w" => Duration::from_secs(7 * 86_400),
        _ => return None,
    })
}

/// `M`, `mo`, `mon`, `month(s)`, `y`, `yr(s)`, `year(s)`.
fn is_calendar(unit: &str) -> bool {
    unit == "M"
        || matches!(
            unit.to_ascii_lowercase().as_str(),
            "mo" | "mon" | "mos" | "month" | "months" | "y" | "yr" | "yrs" | "year" | "years"
        )
}

/// A share written `10%` (0 to 100, decimals allowed), as a fraction: holdouts, and `listen`'s
/// failure rates.
pub fn parse_percent(text: &str) -> Option<f64> {
    text.trim()
        .strip_suffix('%')
        .and_then(|n| n.trim().parse::<f64>().ok())
        .filter(|p| (0.0..=100.0).contains(p))
        .map(|p| p / 100.0)
}

/// Parses a rate, `100/s`, `60/m` or `3600/h` (a whole number above 0), as attempts a second:
/// the one rule for `rate_limit` and `--rate`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let err = || {
        format!(
            "rate `{text}` must be a whole number above 0 per `s`, `m` or `h`, like `100/s` or `30/m`"
        )
    };
    let (n, unit) = text.split_once('/').ok_or_else(err)?;
    let n: u32 = n.trim().parse().ok().filter(|n| *n > 0).ok_or_else(err)?;
    let n = f64::from(n);
    match unit.trim() {
        "s" => Ok(n),
        "m" => Ok(n / 60.0),
        "h" => Ok(n / 3600.0),
        _ => Err(err()),
    }
}

/// A duration as a journey writes it: `2d`, `1h30m`, `500ms`.
pub fn short(d: Duration) -> String {
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, len) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3_600),
        ("m", 60),
        ("s", 1),
    ] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    let ms = d.subsec_millis();
    if ms > 0 || out.is_empty() {
        out.push_str(&format!("{ms}ms"));
    }
    out
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map(Dur).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number and one of ms s m h d w, e.g. `500ms` or `2d`",
            "type": "string",
            "pattern": "^\\s*([0-9]+\\s*(ms|s|m|h|d|w)\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(2 * 86400));
        assert_eq!(parse("1w").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn months_and_years_are_refused_and_other_words_are_not_durations() {
        for calendar in ["1M", "2y", "3 months", "1mo", "2 years"] {
            assert!(
                parse(calendar).unwrap_err().contains("months and years"),
                "{calendar}"
            );
        }
        for bad in [
            "fast", "3 days", "4sec", "4 sec", "4seconds", "1.5s", "-1s", "5", "s",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("is not a duration"), "{bad}: {err}");
        }
        assert_eq!(parse("2 d").unwrap(), Duration::from_secs(2 * 86400));
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(short(Duration::from_secs(3 * 86_400)), "3d");
        assert_eq!(short(Duration::from_secs(5400)), "1h30m");
        assert_eq!(short(Duration::from_millis(500)), "500ms");
    }

    #[test]
    fn rates_are_whole_numbers_per_unit() {
        assert_eq!(parse_percent(" 12.5 %"), Some(0.125));
        for bad in ["12", "101%", "-1%", "x%"] {
            assert_eq!(parse_percent(bad), None, "{bad}");
        }
        assert_eq!(parse_rate("100/s").unwrap(), 100.0);
        assert_eq!(parse_rate("30/m").unwrap(), 0.5);
        for bad in ["1.5/s", "0/s", "10/d", "fast"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
