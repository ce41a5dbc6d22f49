//! The `--respond` file of `journey listen`: what to answer, per path, per idempotency key.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::journey::duration::Dur;
use crate::journey::model::Text;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondFile {
    /// The answer for paths not listed (default: 200 `{"ok": true}`).
    #[serde(default)]
    pub default: Option<Rule>,
    /// Answers by exact path.
    #[serde(default)]
    pub paths: IndexMap<String, Rule>,
}

/// How to answer one path.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The status (default 200).
    #[serde(default)]
    pub status: Option<u16>,
    /// The body (JSON).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Extra headers.
    #[serde(default)]
    pub headers: IndexMap<String, Text>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay: Option<Dur>,
    /// Answer 503 this share of the time, e.g. `10%` (chaos tests).
    #[serde(default)]
    pub failure_rate: Option<Text>,
    /// Per idempotency key: the n-th request gets the n-th answer; the last repeats.
    #[serde(default)]
    pub sequence: Option<Vec<SequenceItem>>,
}

/// One answer of a sequence: a status, or a full answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SequenceItem {
    /// Just a status.
    Status(u16),
    /// A full answer.
    Full(Box<Rule>),
}

/// A chosen answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// The body text.
    pub body: String,
    /// The delay before answering.
    pub delay: Duration,
}

/// Answers compiled from the file.
#[derive(Debug, Default)]
pub struct Responder {
    file: RespondFile,
    /// Failure rates as fractions, by path ("" for the default).
    rates: HashMap<String, f64>,
}

impl Responder {
    /// Reads the file; errors carry file:line:col.
    pub fn load(path: &Path) -> Result<Responder, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let file: RespondFile = crate::journey::yaml::from_str(path, &text)?;
        let mut rates = HashMap::new();
        for (key, rule) in file
            .paths
            .iter()
            .map(|(k, r)| (k.as_str(), r))
            .chain(file.default.iter().map(|r| ("", r)))
        {
            if let Some(rate) = &rule.failure_rate {
                let p = crate::journey::duration::parse_percent(&rate.0).ok_or_else(|| {
                    format!(
                        "{}: failure_rate `{}` of `{key}` must be a percentage such as `10%`",
                        path.display(),
                        rate.0
                    )
                })?;
                rates.insert(key.to_string(), p);
            }
        }
        Ok(Responder { file, rates })
    }

    /// The answer to the `nth` request (0-based) with this idempotency key on `path`.
    pub fn answer(&self, path: &str, nth: usize, rng: &mut fastrand::Rng) -> Answer {
        let (key, rule) = match self.file.paths.get(path) {
            Some(r) => (path, Some(r)),
            None => ("", self.file.default.as_ref()),
        };
        let Some(rule) = rule else { return ok() };
        if self.rates.get(key).is_some_and(|&p| rng.f64() < p) {
            return Answer {
                status: 503,
                headers: vec![],
                body: r#"{"error":"chaos"}"#.into(),
                delay: Duration::ZERO,
            };
        }
        match rule.sequence.as_deref() {
            Some(seq) if !seq.is_empty() => match &seq[nth.min(seq.len() - 1)] {
                SequenceItem::Status(s) => Answer {
                    status: *s,
                    ..from(rule)
                },
                SequenceItem::Full(r) => from(r),
            },
            _ => from(rule),
        }
    }
}

fn ok() -> Answer {
    Answer {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"ok":true}"#.into(),
        delay: Duration::ZERO,
    }
}

fn from(rule: &Rule) -> Answer {
    let mut headers: Vec<(String, String)> = rule
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    let body = match &rule.body {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".into(), "application/json".into()));
            }
            v.to_string()
        }
    };
    Answer {
        status: rule.status.unwrap_or(200),
        headers,
        body,
        delay: rule.delay.map_or(Duration::ZERO, |d| d.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder(yaml: &str) -> Responder {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.yaml");
        std::fs::write(&p, yaml).unwrap();
        Responder::load(&p).unwrap()
    }

    #[test]
    fn sequences_per_key_then_the_last_repeats() {
        let r =
            responder("paths:\n  /x:\n    sequence: [503, { status: 200, body: { code: A } }]\n");
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(r.answer("/x", 0, &mut rng).status, 503);
        let second = r.answer("/x", 1, &mut rng);
        assert_eq!(
            (second.status, second.body.as_str()),
            (200, r#"{"code":"A"}"#)
        );
        assert_eq!(r.answer("/x", 7, &mut rng).status, 200);
        assert_eq!(r.answer("/other", 0, &mut rng), ok());
    }

    #[test]
    fn failure_rate_is_a_share() {
        let r = responder("default: { status: 202, failure_rate: 50% }\n");
        let mut rng = fastrand::Rng::with_seed(7);
        let failed = (0..1000)
            .filter(|_| r.answer("/a", 0, &mut rng).status == 503)
            .count();
        assert!((400..600).contains(&failed), "{failed}");
    }
}
