//! Durations as journeys write them: `500ms`, `5s`, `2d`, `1w`; months and years are refused.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// A duration read from a journey file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

/// Parses `N<unit>` (units `ms s m h d w`, several parts allowed: `1h30m`).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let hint = "write a number and one of the units ms s m h d w, e.g. `500ms` or `2d`";
    if text.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    if text.contains(['M', 'y']) || text.contains("mon") {
        return Err(format!(
            "`{text}`: months and years are not fixed lengths; {hint}"
        ));
    }
    humantime::parse_duration(text).map_err(|_| format!("`{text}` is not a duration: {hint}"))
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
    fn months_and_years_are_refused() {
        assert!(parse("1M").unwrap_err().contains("months"));
        assert!(parse("2y").unwrap_err().contains("months and years"));
        assert!(parse("3 months").is_err());
        assert!(parse("fast").is_err());
    }
}
