//! `--show curl`: each rendered request as a runnable curl command, secrets as `"$NAME"` references.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::execute::request::Request;

/// Secret names and the values they stand for (set values, and dry-run placeholders).
#[derive(Debug, Clone, Default)]
pub struct SecretRefs {
    pairs: Vec<(String, String)>,
}

impl SecretRefs {
    /// References for these secrets (set values and `<secret.NAME>` placeholders) and for the
    /// `<env.NAME>` placeholders of unset env variables.
    pub fn new(
        names: impl IntoIterator<Item = String>,
        env_names: impl IntoIterator<Item = String>,
        vars: &std::collections::HashMap<String, String>,
    ) -> SecretRefs {
        let mut pairs: Vec<(String, String)> = env_names
            .into_iter()
            .map(|n| (n.clone(), format!("<env.{n}>")))
            .collect();
        for name in names {
            pairs.push((name.clone(), format!("<secret.{name}>")));
            // Any length: a reference stands for exactly the text it replaces, so the command
            // still sends the same bytes even where a short value also stood elsewhere.
            if let Some(v) = vars.get(&name).filter(|v| !v.is_empty()) {
                pairs.push((name, v.clone()));
            }
        }
        pairs.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
        SecretRefs { pairs }
    }

    /// The text as literal pieces and secret references, in order.
    fn segments(&self, text: &str) -> Vec<Segment> {
        let found = self
            .pairs
            .iter()
            .filter_map(|(name, value)| text.find(value.as_str()).map(|at| (at, name, value)))
            .min_by_key(|(at, _, _)| *at);
        match found {
            None if text.is_empty() => vec![],
            None => vec![Segment::Lit(text.to_string())],
            Some((at, name, value)) => {
                let mut out = vec![];
                if at > 0 {
                    out.push(Segment::Lit(text[..at].to_string()));
                }
                out.push(Segment::Var(name.clone()));
                out.extend(self.segments(&text[at + value.len()..]));
                out
            }
        }
    }

    /// One shell word: literal pieces single-quoted, secrets as `"$NAME"`.
    pub fn word(&self, text: &str) -> String {
        let segs = self.segments(text);
        if segs.is_empty() {
            return "''".into();
        }
        segs.iter()
            .map(|s| match s {
                Segment::Lit(l) => shlex::try_quote(l)
                    .map(|q| q.into_owned())
                    .unwrap_or_else(|_| "''".into()),
                Segment::Var(n) => format!("\"${n}\""),
            })
            .collect()
    }

    fn holds_secret(&self, text: &str) -> bool {
        self.segments(text)
            .iter()
            .any(|s| matches!(s, Segment::Var(_)))
    }
}

#[derive(Debug, PartialEq)]
enum Segment {
    Lit(String),
    Var(String),
}

/// The curl command for one request, with a `#` title line.
pub fn command(
    title: &str,
    req: &Request,
    unix_seconds: i64,
    refs: &SecretRefs,
    proxy: Option<String>,
) -> String {
    let mut lines = vec![format!(
        "curl -sS -X {} {}",
        req.method.as_str(),
        refs.word(&req.url)
    )];
    lines.extend(proxy);
    let mut notes = vec![];
    let signature_headers = req
        .signer
        .as_ref()
        .map(|s| s.header_names())
        .unwrap_or_default();
    for (name, value) in req.attempt_headers(1, unix_seconds) {
        let lower = name.to_ascii_lowercase();
        if signature_headers.contains(&lower) || lower == "webhook-timestamp" {
            notes.push(format!("# {name} omitted: it is computed for each attempt"));
        } else if let Some(basic) = basic_auth(&value).filter(|b| refs.holds_secret(b)) {
            lines.push(format!("-u {}", refs.word(&basic)));
        } else if req.is_sensitive(&name) && !refs.holds_secret(&value) {
            notes.push(format!(
                "# {name} omitted: it holds a secret that is not a named variable"
            ));
        } else {
            lines.push(format!("-H {}", refs.word(&format!("{name}: {value}"))));
        }
    }
    if !req.body.is_empty() {
        lines.push(format!("--data-raw {}", refs.word(&req.body_text())));
    }
    let mut out = format!("# {title}\n");
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out.push_str(&lines.join(" \\\n  "));
    out.push_str("\n\n");
    out
}

fn basic_auth(value: &str) -> Option<String> {
    let encoded = value.strip_prefix("Basic ")?;
    String::from_utf8(STANDARD.decode(encoded).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs() -> SecretRefs {
        let vars = [("TOKEN".to_string(), "t0k'en$1".to_string())]
            .into_iter()
            .collect();
        SecretRefs::new(
            ["TOKEN".to_string(), "MISSING".to_string()],
            ["URL".to_string()],
            &vars,
        )
    }

    #[test]
    fn secrets_become_variable_references() {
        assert_eq!(refs().word("Bearer t0k'en$1"), r#"'Bearer '"$TOKEN""#);
        assert_eq!(refs().word("<secret.MISSING>/x"), r#""$MISSING"/x"#);
        assert_eq!(refs().word("it's"), r#""it's""#);
        assert_eq!(refs().word("<env.URL>/x"), r#""$URL"/x"#);
        assert_eq!(refs().word(""), "''");
    }
}
