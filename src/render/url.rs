//! Values rendered into a URL stay where they were put. After the origin (the literals and
//! `env` values that fix scheme, host and port), every `{{ value }}` of a URL template is
//! percent-encoded: as one path segment before a literal `?` (`/`, `?`, `#`, `%` included, and a
//! value that is `.` or `..` is an error), as a query component after it. A journey author who
//! means a value to be several segments writes `{{ value | as_path }}`: each of its segments is
//! still encoded, and dot segments are still refused.

use std::borrow::Cow;

use minijinja::{Error, ErrorKind, Value};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Encodes a value as one path segment.
pub const PATH_SEGMENT: &str = "__journey_path_segment";
/// Encodes a value as a query component.
pub const QUERY_PART: &str = "__journey_query_part";

/// Everything but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The URL template with each value after its origin wrapped in the encoding filter of the
/// part it lands in; unchanged when no value comes after the origin.
pub fn encode_values(source: &str) -> Cow<'_, str> {
    let origin = origin_source(source);
    let rest = &source[origin.len()..];
    if !rest.contains("{{") {
        return Cow::Borrowed(source);
    }
    let mut out = String::with_capacity(source.len() + 48);
    out.push_str(origin);
    let mut in_query = origin.contains('?');
    let mut rest = rest;
    while let Some(open) = rest.find("{{") {
        let text = &rest[..open];
        in_query |= text.contains('?');
        out.push_str(text);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            // Unclosed: minijinja reports it on the source as written.
            out.push_str(&rest[open..]);
            return Cow::Owned(out);
        };
        let (left, inner, right) = trim_markers(&after[..close]);
        let filter = if in_query { QUERY_PART } else { PATH_SEGMENT };
        let inner = inner.trim();
        // A plain attribute path stays bare, so the fast renderer still takes it.
        let inner = if is_path(inner) {
            Cow::Borrowed(inner)
        } else {
            Cow::Owned(format!("({inner})"))
        };
        out.push_str(&format!("{{{{{left} {inner} | {filter} {right}}}}}"));
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn is_path(inner: &str) -> bool {
    !inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

/// The whitespace-control markers of a tag's inside (`-`, `+`), and what is between them.
fn trim_markers(inner: &str) -> (&str, &str, &str) {
    let left = if inner.starts_with(['-', '+']) {
        &inner[..1]
    } else {
        ""
    };
    let right = if inner.len() > left.len() && inner.ends_with(['-', '+']) {
        &inner[inner.len() - 1..]
    } else {
        ""
    };
    (left, &inner[left.len()..inner.len() - right.len()], right)
}

/// `__journey_path_segment`: the value as one path segment. A value `as_path` made is already
/// encoded segment by segment and passes as it is.
pub fn path_segment(value: &Value) -> Result<Value, Error> {
    if value.is_safe() {
        return Ok(value.clone());
    }
    segment(&text_of(value)).map(Value::from)
}

/// `__journey_query_part`: the value as a query component.
pub fn query_part(value: &Value) -> Value {
    if value.is_safe() {
        return value.clone();
    }
    Value::from(url::form_urlencoded::byte_serialize(text_of(value).as_bytes()).collect::<String>())
}

/// `as_path`: a value that is meant to be several segments (`2026/11`): each is encoded, `.` and
/// `..` are refused, and the slashes between them stay.
pub fn as_path(value: &Value) -> Result<Value, Error> {
    let text = text_of(value);
    let parts: Result<Vec<String>, Error> = text.split('/').map(segment).collect();
    Ok(Value::from_safe_string(parts?.join("/")))
}

/// One path segment, encoded; `.` and `..` would climb the path and are an error.
pub fn segment(text: &str) -> Result<String, Error> {
    if text == "." || text == ".." {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "`{text}` cannot be a path segment of a URL (it would move the request up the path)"
            ),
        ));
    }
    Ok(utf8_percent_encode(text, SEGMENT).to_string())
}

fn text_of(value: &Value) -> String {
    match value.as_str() {
        Some(s) => s.to_string(),
        None => value.to_string(),
    }
}

/// The URL template up to its first expression that is not `env.NAME`: by the origin rule, enough
/// to render the scheme, host and port from the environment alone.
pub fn origin_source(url: &str) -> &str {
    let mut at = 0;
    while let Some(open) = url[at..].find("{{").map(|i| at + i) {
        let Some(close) = url[open..].find("}}").map(|i| open + i) else {
            return &url[..open];
        };
        if !is_env_ref(url[open + 2..close].trim().trim_matches('-').trim()) {
            return &url[..open];
        }
        at = close + 2;
    }
    url
}

/// Where the origin ends in `prefix`, once a path, query or fragment starts after the host.
pub fn origin_end(prefix: &str) -> Option<usize> {
    let host_start = match prefix.find("://") {
        Some(i) => i + 3,
        None if prefix.starts_with("\u{0}ENV\u{0}") => 5,
        None => return None,
    };
    prefix[host_start..]
        .find(['/', '?', '#'])
        .filter(|&i| i > 0 || host_start == 5)
        .map(|i| host_start + i)
}

/// True for `env.NAME`.
pub fn is_env_ref(inner: &str) -> bool {
    inner
        .strip_prefix("env.")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: Value) -> Result<String, Error> {
        let env = super::super::engine::environment();
        env.render_str(&encode_values(src), ctx)
    }

    #[test]
    fn values_after_the_origin_are_encoded_by_the_part_they_land_in() {
        let ctx = minijinja::context! {
            env => minijinja::context! { BASE => "http://h:1/api/v2" },
            id => "a/b?c=d#e", up => "../../admin", q => "x&y=z #",
        };
        let url = render("{{ env.BASE }}/contacts/{{ id }}?q={{ q }}", ctx.clone()).unwrap();
        assert_eq!(
            url,
            "http://h:1/api/v2/contacts/a%2Fb%3Fc%3Dd%23e?q=x%26y%3Dz+%23"
        );
        let url = render("{{ env.BASE }}/contacts/{{ up }}", ctx.clone()).unwrap();
        assert_eq!(url, "http://h:1/api/v2/contacts/..%2F..%2Fadmin");
        assert!(
            render(
                "{{ env.BASE }}/{{ d }}",
                minijinja::context! { env => minijinja::context! { BASE => "http://h" }, d => ".." }
            )
            .is_err()
        );
        assert_eq!(encode_values("{{ env.BASE }}/hook"), "{{ env.BASE }}/hook");
    }

    #[test]
    fn as_path_keeps_slashes_and_encodes_each_segment() {
        let ctx = minijinja::context! { env => minijinja::context! { BASE => "https://h" }, p => "2026/11 a" };
        assert_eq!(
            render("{{ env.BASE }}/{{ p | as_path }}", ctx).unwrap(),
            "https://h/2026/11%20a"
        );
        let ctx = minijinja::context! { env => minijinja::context! { BASE => "https://h" }, p => "a/../b" };
        assert!(render("{{ env.BASE }}/{{ p | as_path }}", ctx).is_err());
    }
}
