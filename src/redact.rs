//! Secrets never leave: values (raw, base64, percent-encoded) and sensitive headers become `[redacted]`.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// What replaces a secret.
pub const MASK: &str = "[redacted]";

/// Header names whose values are always redacted.
pub const SENSITIVE_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "webhook-signature",
    "x-api-key",
];

/// Replaces known secret values in any text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values and their encodings (values under 4 characters are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut needles: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= 4)
            .flat_map(|s| {
                [
                    s.to_string(),
                    STANDARD.encode(s),
                    URL_SAFE_NO_PAD.encode(s),
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect(),
                    url::form_urlencoded::byte_serialize(s.as_bytes())
                        .collect::<String>()
                        .replace('+', "%20"),
                ]
            })
            .collect();
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Redactor { needles }
    }

    /// The text with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }

    /// True when the text holds a secret.
    pub fn finds(&self, text: &str) -> bool {
        self.needles.iter().any(|n| text.contains(n.as_str()))
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::String(s) => serde_json::Value::String(self.redact(s)),
            serde_json::Value::Array(a) => a.iter().map(|i| self.redact_json(i)).collect(),
            serde_json::Value::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), self.redact_json(v)))
                .collect(),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_raw_base64_and_percent_forms() {
        let r = Redactor::new(["s3cr3t/tok en"]);
        assert_eq!(r.redact("a s3cr3t/tok en b"), "a [redacted] b");
        assert_eq!(r.redact(&STANDARD.encode("s3cr3t/tok en")), MASK);
        assert_eq!(r.redact("q=s3cr3t%2Ftok+en"), "q=[redacted]");
        assert_eq!(r.redact("q=s3cr3t%2Ftok%20en"), "q=[redacted]");
    }
}
