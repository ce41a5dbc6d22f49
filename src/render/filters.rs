//! Filters beyond minijinja's own: `normalize_email`, `normalize_phone`, `sha256`, `datetimeformat`.

use chrono::{DateTime, TimeZone, Utc};
use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value};
use sha2::{Digest, Sha256};

/// Adds our filters to `env`.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter("normalize_email", normalize_email);
    env.add_filter("normalize_phone", normalize_phone);
    env.add_filter("sha256", sha256);
    env.add_filter("datetimeformat", datetimeformat);
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Trims and lowercases an email address.
pub fn normalize_email(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Formats a phone number as E.164 (`+14155550100`); it must carry a country code.
pub fn normalize_phone(value: &str) -> Result<String, Error> {
    let trimmed = value.trim();
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let national = if trimmed.starts_with('+') {
        digits.as_str()
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest
    } else {
        return Err(invalid(format!(
            "phone number `{trimmed}` has no country code: write it as +<country><number>"
        )));
    };
    if !(8..=15).contains(&national.len()) || national.starts_with('0') {
        return Err(invalid(format!(
            "phone number `{trimmed}` cannot be made E.164 (8 to 15 digits after the country code's +)"
        )));
    }
    Ok(format!("+{national}"))
}

/// Lowercase hex SHA-256 of the value's text.
pub fn sha256(value: &Value) -> String {
    match value.as_str() {
        Some(text) => sha256_text(text),
        None => sha256_text(&value.to_string()),
    }
}

/// Lowercase hex of the SHA-256 of a text.
pub fn sha256_text(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Formats an RFC 3339 string or a Unix timestamp with a strftime format, in `tz` (default UTC).
pub fn datetimeformat(
    value: &Value,
    format: Option<&str>,
    kwargs: Kwargs,
) -> Result<String, Error> {
    let tz: Option<String> = kwargs.get("tz")?;
    kwargs.assert_all_used()?;
    let at = parse_instant(value)?;
    let format = format.unwrap_or("%Y-%m-%d %H:%M");
    check_format(format).map_err(invalid)?;
    match tz.as_deref() {
        None | Some("UTC") => Ok(at.format(format).to_string()),
        Some(name) => {
            let zone: chrono_tz::Tz = name.parse().map_err(|_| {
                invalid(format!(
                    "unknown time zone `{name}`: use an IANA name like Europe/Paris"
                ))
            })?;
            Ok(zone
                .from_utc_datetime(&at.naive_utc())
                .format(format)
                .to_string())
        }
    }
}

/// Checks a strftime format: chrono panics when it formats an unknown specifier (`%Q`, a lone
/// `%`), so every format is checked first.
pub fn check_format(format: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    use std::fmt::Write as _;
    // Some specifiers parse but cannot be formatted (`%#z` is for parsing only): a trial
    // format finds them without the panic `to_string` would give.
    let mut trial = String::new();
    let formats = write!(trial, "{}", Utc.timestamp_opt(0, 0).unwrap().format(format)).is_ok();
    if !formats || StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
        return Err(format!(
            "`{format}` is not a date format: use strftime specifiers such as `%Y-%m-%d %H:%M` (write `%%` for a literal `%`)"
        ));
    }
    Ok(())
}

fn parse_instant(value: &Value) -> Result<DateTime<Utc>, Error> {
    if let Some(s) = value.as_str() {
        return DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| invalid(format!("`{s}` is not an RFC 3339 date-time")));
    }
    if let Some(secs) = value.as_i64() {
        return Utc
            .timestamp_opt(secs, 0)
            .single()
            .ok_or_else(|| invalid(format!("timestamp {secs} is out of range")));
    }
    Err(invalid(format!("cannot format `{value}` as a date")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email() {
        assert_eq!(normalize_email(" Ana@Example.com "), "ana@example.com");
    }

    #[test]
    fn phone() {
        assert_eq!(
            normalize_phone("+1 (415) 555-0100").unwrap(),
            "+14155550100"
        );
        assert_eq!(
            normalize_phone("0044 20 7946 0958").unwrap(),
            "+442079460958"
        );
        assert!(normalize_phone("415 555 0100").is_err());
        assert!(normalize_phone("+1 23").is_err());
    }

    #[test]
    fn unknown_date_specifiers_are_errors() {
        for bad in ["%Q", "%", "50%", "%E", "%#z"] {
            assert!(check_format(bad).is_err(), "{bad}");
        }
        assert!(check_format("%Y-%m-%d %H:%M %% %z").is_ok());
    }

    #[test]
    fn hashing_and_dates() {
        assert_eq!(
            sha256(&Value::from("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let env = super::super::engine::environment();
        let out = env
            .render_str(
                "{{ t | datetimeformat('%Y-%m %H:%M') }} {{ t | datetimeformat('%H:%M', tz='Europe/Paris') }}",
                minijinja::context! { t => "2026-11-20T11:00:00Z" },
            )
            .unwrap();
        assert_eq!(out, "2026-11 11:00 12:00");
    }
}
