//! `--suppress FILE`: customer ids, email addresses or sha256 of normalized emails, one a line;
//! those customers are `suppressed` in every journey, before anything is rendered.

use std::collections::HashSet;
use std::path::Path;

use crate::fixture::Customer;
use crate::render::filters::{normalize_email, sha256};

/// The suppression list.
#[derive(Debug, Default, Clone)]
pub struct Suppressions {
    items: HashSet<String>,
}

impl Suppressions {
    /// Reads the file: one value a line; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Suppressions, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--suppress {}: cannot read: {e}", path.display()))?;
        // A UTF-8 BOM (spreadsheet exports) is not part of the first line's value.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let items = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                if l.contains('@') {
                    normalize_email(l)
                } else {
                    l.to_string()
                }
            })
            .collect();
        Ok(Suppressions { items })
    }

    /// True when the customer's id, email, or the sha256 of the email is listed.
    pub fn matches(&self, c: &Customer) -> bool {
        if self.items.is_empty() {
            return false;
        }
        if self.items.contains(&c.id) {
            return true;
        }
        let Some(email) = c.record.get("email").and_then(serde_json::Value::as_str) else {
            return false;
        };
        let email = normalize_email(email);
        self.items.contains(&email)
            || self
                .items
                .contains(&sha256(&minijinja::Value::from(email.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn customer(id: &str, email: &str) -> Customer {
        Customer {
            id: id.into(),
            record: Arc::new(serde_json::json!({ "id": id, "email": email })),
        }
    }

    #[test]
    fn ids_emails_and_hashes() {
        let hash = sha256(&minijinja::Value::from("c@d.e"));
        let s = Suppressions {
            items: ["c_9".to_string(), "a@b.c".to_string(), hash]
                .into_iter()
                .collect(),
        };
        assert!(s.matches(&customer("c_9", "x@y.z")));
        assert!(s.matches(&customer("c_1", " A@B.c ")));
        assert!(s.matches(&customer("c_2", "C@d.e")));
        assert!(!s.matches(&customer("c_3", "z@z.z")));
    }
}
