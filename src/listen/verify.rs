//! Checks the signature of a received request: Standard Webhooks or `sha256=` HMAC.

use crate::execute::sign;

/// What the receiver concluded about a request's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The request carried no signature.
    Unsigned,
    /// Signed, but no `--secret-env` to check it with.
    Unchecked,
    /// The signature matches (which scheme).
    Valid(&'static str),
    /// It does not (why).
    Invalid(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Unsigned => write!(f, "none"),
            Verdict::Unchecked => write!(f, "not checked (pass --secret-env NAME)"),
            Verdict::Valid(scheme) => write!(f, "valid ({scheme})"),
            Verdict::Invalid(why) => write!(f, "INVALID: {why}"),
        }
    }
}

/// Standard Webhooks' tolerance for the timestamp.
const TOLERANCE_SECS: i64 = 5 * 60;

/// Verifies `body` with each secret in turn: valid when one matches, else the first complaint.
pub fn verify_any(
    headers: &[(String, String)],
    body: &[u8],
    secrets: &[String],
    now_unix: i64,
) -> Verdict {
    if secrets.is_empty() {
        return verify(headers, body, None, now_unix);
    }
    let verdicts: Vec<Verdict> = secrets
        .iter()
        .map(|s| verify(headers, body, Some(s), now_unix))
        .collect();
    verdicts
        .iter()
        .find(|v| matches!(v, Verdict::Valid(_) | Verdict::Unsigned))
        .unwrap_or(&verdicts[0])
        .clone()
}

/// Verifies `body` against the headers with `secret` (a `whsec_` secret or raw HMAC key).
pub fn verify(
    headers: &[(String, String)],
    body: &[u8],
    secret: Option<&str>,
    now_unix: i64,
) -> Verdict {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let hmac_header = headers.iter().find(|(_, v)| v.starts_with("sha256="));
    if get("webhook-signature").is_none() && hmac_header.is_none() {
        return Verdict::Unsigned;
    }
    let Some(secret) = secret else {
        return Verdict::Unchecked;
    };
    if let Some(given) = get("webhook-signature") {
        return standard(
            get("webhook-id"),
            get("webhook-timestamp"),
            given,
            body,
            secret,
            now_unix,
        );
    }
    let (_, given) = hmac_header.expect("checked above");
    if *given == sign::hmac_sha256_signature(secret.as_bytes(), body) {
        Verdict::Valid("hmac_sha256")
    } else {
        Verdict::Invalid("the sha256= HMAC does not match the body".into())
    }
}

fn standard(
    id: Option<&str>,
    ts: Option<&str>,
    given: &str,
    body: &[u8],
    secret: &str,
    now: i64,
) -> Verdict {
    let (Some(id), Some(ts)) = (id, ts) else {
        return Verdict::Invalid("webhook-id or webhook-timestamp is missing".into());
    };
    let Ok(ts) = ts.parse::<i64>() else {
        return Verdict::Invalid(format!("webhook-timestamp `{ts}` is not a number"));
    };
    if (now - ts).abs() > TOLERANCE_SECS {
        return Verdict::Invalid("webhook-timestamp is outside the 5-minute tolerance".into());
    }
    let Some(key) = sign::decode_whsec(secret) else {
        return Verdict::Invalid("the secret is not `whsec_` followed by base64".into());
    };
    let expected = sign::standard_webhooks_signature(&key, id, ts, body);
    if given.split(' ').any(|s| s == expected) {
        Verdict::Valid("Standard Webhooks")
    } else {
        Verdict::Invalid("no v1 signature matches the body".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn signed(ts: i64, body: &[u8]) -> Vec<(String, String)> {
        let key = sign::decode_whsec(SECRET).unwrap();
        vec![
            ("webhook-id".into(), "msg_1".into()),
            ("webhook-timestamp".into(), ts.to_string()),
            (
                "webhook-signature".into(),
                sign::standard_webhooks_signature(&key, "msg_1", ts, body),
            ),
        ]
    }

    #[test]
    fn standard_webhooks() {
        let now = 1_700_000_000;
        assert_eq!(
            verify(&signed(now, b"{}"), b"{}", Some(SECRET), now),
            Verdict::Valid("Standard Webhooks")
        );
        assert!(matches!(
            verify(&signed(now, b"{}"), b"{ }", Some(SECRET), now),
            Verdict::Invalid(_)
        ));
        assert!(
            matches!(verify(&signed(now - 600, b"{}"), b"{}", Some(SECRET), now), Verdict::Invalid(w) if w.contains("tolerance"))
        );
        assert_eq!(
            verify(&signed(now, b"{}"), b"{}", None, now),
            Verdict::Unchecked
        );
        assert_eq!(verify(&[], b"{}", Some(SECRET), now), Verdict::Unsigned);
    }

    #[test]
    fn any_of_several_secrets() {
        let h = vec![(
            "X-Signature".to_string(),
            sign::hmac_sha256_signature(b"k3y", b"body"),
        )];
        let secrets = vec![SECRET.to_string(), "k3y".to_string()];
        assert_eq!(
            verify_any(&h, b"body", &secrets, 0),
            Verdict::Valid("hmac_sha256")
        );
        assert!(matches!(
            verify_any(&h, b"body", &secrets[..1], 0),
            Verdict::Invalid(_)
        ));
    }

    #[test]
    fn hmac() {
        let h = vec![(
            "X-Signature".to_string(),
            sign::hmac_sha256_signature(b"k3y", b"body"),
        )];
        assert_eq!(
            verify(&h, b"body", Some("k3y"), 0),
            Verdict::Valid("hmac_sha256")
        );
        assert!(matches!(
            verify(&h, b"body", Some("other"), 0),
            Verdict::Invalid(_)
        ));
    }
}
