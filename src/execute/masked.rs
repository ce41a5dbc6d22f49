//! What of a request may be shown: every header, query parameter and body field whose template
//! reads a `secret.*` is masked whole, whatever the secret's length (the value redactor, which
//! finds secrets anywhere by value, leaves out values under four characters). A field that
//! shows its placeholder (`<secret.PIN>`, a dry-run without secrets) is kept: it names the
//! secret and holds none.

use std::borrow::Cow;

use super::request::Request;
use crate::journey::plan::SecretFields;
use crate::redact::MASK;
use crate::render::body::BodyKey;

/// No field reads a secret.
static NONE: SecretFields = SecretFields {
    query: Vec::new(),
    body: Vec::new(),
    whole_body: false,
};

impl Request {
    fn secret_fields(&self) -> &SecretFields {
        self.secrets.as_deref().unwrap_or(&NONE)
    }

    /// The URL with the values of secret query parameters masked.
    pub fn masked_url(&self) -> Cow<'_, str> {
        let secret = &self.secret_fields().query;
        let Some((base, query)) = self.url.split_once('?').filter(|_| !secret.is_empty()) else {
            return Cow::Borrowed(&self.url);
        };
        Cow::Owned(format!(
            "{base}?{}",
            mask_pairs(query, |k| secret.iter().any(|s| s == k))
        ))
    }

    /// The JSON body with its secret leaves masked, when the body is JSON.
    pub fn masked_json(&self) -> Option<serde_json::Value> {
        let mut v = self.json()?;
        for path in &self.secret_fields().body {
            mask_at(&mut v, path);
        }
        Some(v)
    }

    /// The body as text, with its secret fields (JSON leaves, form values, a secret text body)
    /// masked.
    pub fn masked_body(&self) -> Cow<'_, [u8]> {
        let s = self.secret_fields();
        if s.whole_body {
            return Cow::Borrowed(MASK.as_bytes());
        }
        if s.body.is_empty() {
            return Cow::Borrowed(&self.body);
        }
        if let Some(v) = self.masked_json() {
            return Cow::Owned(v.to_string().into_bytes());
        }
        let form = String::from_utf8_lossy(&self.body);
        let secret = |k: &str| {
            s.body
                .iter()
                .any(|p| matches!(p.as_slice(), [BodyKey::Key(key)] if key == k))
        };
        Cow::Owned(mask_pairs(&form, secret).into_bytes())
    }
}

/// `a=1&pin=k9` with the values of the secret keys masked; every other pair kept as written.
fn mask_pairs(pairs: &str, secret: impl Fn(&str) -> bool) -> String {
    pairs
        .split('&')
        .map(|pair| {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            if secret(&decoded(raw_key)) && !is_placeholder(&decoded(raw_value)) {
                format!("{raw_key}={MASK}")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A urlencoded key or value, decoded.
fn decoded(raw: &str) -> String {
    url::form_urlencoded::parse(format!("{raw}=").as_bytes())
        .map(|(k, _)| k.into_owned())
        .next()
        .unwrap_or_default()
}

fn is_placeholder(value: &str) -> bool {
    value.contains("<secret.")
}

fn mask_at(v: &mut serde_json::Value, path: &[BodyKey]) {
    let Some((first, rest)) = path.split_first() else {
        if !v.as_str().is_some_and(is_placeholder) {
            *v = serde_json::Value::String(MASK.into());
        }
        return;
    };
    let next = match (first, v) {
        (BodyKey::Key(k), serde_json::Value::Object(m)) => m.get_mut(k),
        (BodyKey::Index(i), serde_json::Value::Array(a)) => a.get_mut(*i),
        _ => None,
    };
    if let Some(next) = next {
        mask_at(next, rest);
    }
}
