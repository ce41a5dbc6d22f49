//! `--show requests`: each rendered request as text, with secrets redacted.

use std::fmt::Write as _;

use crate::execute::request::Request;
use crate::redact::{MASK, Redactor};

/// One request: a title line, the request line, headers, a blank line and the pretty body.
pub fn request(title: &str, req: &Request, attempt_unix: i64, redactor: &Redactor) -> String {
    let mut out = format!(
        "### {title}\n{} {}\n",
        req.method.as_str(),
        redactor.redact(&req.masked_url())
    );
    for (name, value) in req.attempt_headers(1, attempt_unix) {
        let shown = if req.is_sensitive(&name) {
            MASK.to_string()
        } else {
            redactor.redact(&value)
        };
        let _ = writeln!(out, "{name}: {shown}");
    }
    let body = match &req.masked_json() {
        Some(v) => serde_json::to_string_pretty(&redactor.redact_json(v)).unwrap_or_default(),
        None => redactor.redact(&String::from_utf8_lossy(&req.masked_body())),
    };
    if !body.is_empty() {
        let _ = writeln!(out, "\n{body}");
    }
    out.push('\n');
    out
}
