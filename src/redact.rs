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
    /// A redactor for these secret values and their encodings (values under 4 characters are
    /// ignored: found by value anywhere, they would mask ordinary text; the fields that read
    /// them are masked whole instead).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        Self::at_least(secrets, 4)
    }

    /// A redactor for secrets named one by one (`listen --secret-env`), whatever their length.
    pub fn every_length<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        Self::at_least(secrets, 1)
    }

    fn at_least<'a>(secrets: impl IntoIterator<Item = &'a str>, min: usize) -> Redactor {
        let mut needles: Vec<String> = secrets
            .into_iter()
            .filter(|s| s.len() >= min)
            .flat_map(|s| {
                let once = json_escaped(s);
                let twice = json_escaped(&once);
                [
                    s.to_string(),
                    STANDARD.encode(s),
                    URL_SAFE_NO_PAD.encode(s),
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect(),
                    url::form_urlencoded::byte_serialize(s.as_bytes())
                        .collect::<String>()
                        .replace('+', "%20"),
                    // As it stands inside a JSON string, and inside a JSON string that holds
                    // JSON (a body in a log line).
                    once,
                    twice,
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

/// The text as it is written inside a JSON string (without the quotes).
fn json_escaped(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_string()
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

    #[test]
    fn redacts_json_escaped_forms() {
        let r = Redactor::new(["Ab\"cd\\e\tf1"]);
        assert_eq!(
            r.redact(r#"{"t":"Ab\"cd\\e\tf1"}"#),
            r#"{"t":"[redacted]"}"#
        );
        let line = serde_json::json!({ "body": r#"{"t":"Ab\"cd\\e\tf1"}"# }).to_string();
        assert!(!r.redact(&line).contains("cd"), "{}", r.redact(&line));
    }
}

/// Secrets kept out of what is stored, reversibly: a secret's value inside a saved value or a
/// parked entry's vars (a partner that echoes a key back) is written as a reference,
/// `\u{0}secret.NAME\u{0}`, and read back as the secret's value of the run that reads it. So the
/// state store and dead letters never hold a secret, and a resumed entry or a replay still sends
/// the real value, not `[redacted]`.
#[derive(Debug, Clone, Default)]
pub struct Vault {
    /// (name, value), longest value first.
    secrets: Vec<(String, String)>,
}

impl Vault {
    /// A vault for these named secrets (every length: a reference is read back exactly).
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vault {
        let mut secrets: Vec<(String, String)> = secrets
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        secrets.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        Vault { secrets }
    }

    fn reference(name: &str) -> String {
        format!("\u{0}secret.{name}\u{0}")
    }

    /// `v` with every secret value inside its strings replaced by a reference.
    pub fn seal<'v>(&self, v: &'v serde_json::Value) -> std::borrow::Cow<'v, serde_json::Value> {
        if self.secrets.is_empty() {
            return std::borrow::Cow::Borrowed(v);
        }
        std::borrow::Cow::Owned(self.map_strings(v, &|s| {
            let mut out = s.to_string();
            for (name, value) in &self.secrets {
                if out.contains(value.as_str()) {
                    out = out.replace(value.as_str(), &Self::reference(name));
                }
            }
            out
        }))
    }

    /// `v` with every reference replaced by the secret's value (left as it is when this run
    /// does not have that secret).
    pub fn open(&self, v: &serde_json::Value) -> serde_json::Value {
        self.map_strings(v, &|s| {
            if !s.contains('\u{0}') {
                return s.to_string();
            }
            let mut out = s.to_string();
            for (name, value) in &self.secrets {
                out = out.replace(&Self::reference(name), value);
            }
            out
        })
    }

    fn map_strings(&self, v: &serde_json::Value, f: &dyn Fn(&str) -> String) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            J::String(s) if !self.secrets.is_empty() => J::String(f(s)),
            J::Array(items) => items.iter().map(|i| self.map_strings(i, f)).collect(),
            J::Object(m) => m
                .iter()
                .map(|(k, v)| (k.clone(), self.map_strings(v, f)))
                .collect(),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod vault_tests {
    use super::*;

    #[test]
    fn seals_and_opens_every_length() {
        let v = Vault::new([("PIN", "k9"), ("TOKEN", "Ab\"cd")]);
        let saved = serde_json::json!({ "echo": "x Ab\"cd y", "list": ["k9"], "n": 3 });
        let sealed = v.seal(&saved).into_owned();
        assert!(!sealed.to_string().contains("Ab\\\"cd") && !sealed.to_string().contains("k9"));
        assert_eq!(v.open(&sealed), saved);
    }
}
