//! The one door to serde_yaml: typed reads whose errors carry file:line:column and a "did you mean".

use std::path::Path;

use serde::de::DeserializeOwned;

/// Reads `source` as `T`; an error is one line: `file:line:col: what is wrong; how to fix it`.
pub fn from_str<T: DeserializeOwned>(file: &Path, source: &str) -> Result<T, String> {
    super::depth::check(file, source)?;
    serde_yaml::from_str(source).map_err(|e| explain(file, source, &e))
}

/// The most errors one file reports.
const MAX_ERRORS: usize = 50;

/// Reads `source` as `T`, reporting every unknown key of the file (up to 50), not only the
/// first: serde stops at the first, so each one found is taken out and the rest read again.
pub fn from_str_all<T: DeserializeOwned>(file: &Path, source: &str) -> Result<T, Vec<String>> {
    from_str_lenient(file, source).map_err(|(errors, _)| errors)
}

/// As [`from_str_all`], and with the errors the value read without its unknown keys, when it
/// reads: a caller can check the rest of the file too and report everything in one run.
pub fn from_str_lenient<T: DeserializeOwned>(
    file: &Path,
    source: &str,
) -> Result<T, (Vec<String>, Option<T>)> {
    let first = match from_str(file, source) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    // Only an unknown key is worth reading again for: any other error (a document nested too
    // deep, a syntax error) is reported as it is, without parsing the file a second time.
    if !first.contains("unknown key `") {
        return Err((vec![first], None));
    }
    let Ok(mut value) = serde_yaml::from_str::<serde_yaml::Value>(source) else {
        return Err((vec![first], None));
    };
    let positions = crate::position::Positions::read(file, source);
    // The first, as serde placed it (at the key itself); the others where their values stand.
    let mut errors = vec![first];
    let mut found = 0;
    while errors.len() < MAX_ERRORS {
        let e = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(rest) => return Err((errors, Some(rest))),
            Err(e) => e,
        };
        let path = e.path().to_string();
        let message = e.inner().to_string();
        let Some(explained) = message
            .starts_with("unknown field")
            .then(|| suggest_unknown_field(&format!("{}: {message}", parent(&path))))
            .flatten()
        else {
            break;
        };
        if found > 0 {
            errors.push(format!("{}: {explained}", positions.at(&path)));
        }
        found += 1;
        if !remove(&mut value, e.path()) {
            break;
        }
    }
    Err((errors, None))
}

/// `steps[0]` of `steps[0].on_falure`; empty at the top level.
fn parent(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) if path[i..].starts_with('.') => &path[..i],
        _ if !path.contains('.') && !path.ends_with(']') => "",
        Some(i) => &path[..i],
        None => "",
    }
}

/// Takes the key at `path` out of `value`; false when it is not there.
fn remove(value: &mut serde_yaml::Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((last, inner)) = segments.split_last() else {
        return false;
    };
    let mut at = value;
    for s in inner {
        let next = match (s, at) {
            (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => m.get_mut(key.as_str()),
            (Segment::Seq { index }, serde_yaml::Value::Sequence(v)) => v.get_mut(*index),
            _ => None,
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    match (last, at) {
        (Segment::Map { key }, serde_yaml::Value::Mapping(m)) => m.remove(key.as_str()).is_some(),
        _ => false,
    }
}

/// Reads `source` as a generic value (for fixtures whose records are open).
pub fn value(file: &Path, source: &str) -> Result<serde_yaml::Value, String> {
    from_str(file, source)
}

fn explain(file: &Path, source: &str, err: &serde_yaml::Error) -> String {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let raw = err.to_string();
    let message = strip_location(&raw);
    let (place, message) = match named_value(file, source, message) {
        Some(found) => found,
        None => (
            format!("{}:{line}:{column}", file.display()),
            message.to_string(),
        ),
    };
    format!(
        "{place}: {}",
        suggest_unknown_field(&message).unwrap_or(message)
    )
}

/// Where the value stands that a message such as "defaults: `5x` is not a duration" names, and
/// the message naming its own key (`defaults.timeout: ...`): serde places such errors at the
/// mapping that holds the value.
fn named_value(file: &Path, source: &str, message: &str) -> Option<(String, String)> {
    let (path, rest) = message.split_once(": `")?;
    let text = rest.split('`').next()?;
    if path.contains(' ') || text.is_empty() {
        return None;
    }
    let positions = crate::position::Positions::read(file, source);
    let (pos, key) = positions.find_key(path.trim_matches('`'), text)?;
    let named = match path.trim_matches('`') {
        p if key.len() > p.len() && !p.is_empty() => format!("{key}: `{rest}"),
        _ => message.to_string(),
    };
    Some((pos.to_string(), named))
}

fn strip_location(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" with a suggestion.
fn suggest_unknown_field(message: &str) -> Option<String> {
    let (path, rest) = match message.find("unknown field `") {
        Some(i) => (message[..i].trim_end_matches([':', ' ']), &message[i..]),
        None => return None,
    };
    let unknown = rest.split('`').nth(1)?;
    let expected: Vec<&str> = rest
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    let place = if path.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{path}`")
    };
    let hint = match closest(unknown, &expected) {
        Some(best) => format!("did you mean `{best}`?"),
        None => format!("expected one of {}", quote_list(&expected)),
    };
    Some(format!(
        "unknown key `{}` {place}; {hint}",
        shortened(unknown)
    ))
}

/// A user's value in a message: at most 80 characters of it.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// The candidate closest to `word`, if it is close enough to be a typo (a word far longer than
/// a candidate cannot be, and is not measured).
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|c| word.len() <= c.len() * 2 + 4)
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn quote_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let m = "steps[1]: unknown field `on_falure`, expected one of `id`, `next`, `on_failure`";
        assert_eq!(
            suggest_unknown_field(m).unwrap(),
            "unknown key `on_falure` in `steps[1]`; did you mean `on_failure`?"
        );
        let m = "unknown field `zzz`, expected `id` or `next`";
        assert_eq!(
            suggest_unknown_field(m).unwrap(),
            "unknown key `zzz` at the top level; expected one of `id`, `next`"
        );
    }
}
