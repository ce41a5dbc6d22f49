//! Request signing: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and `hmac_sha256`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The key used when a dry-run has no real secret.
pub const DUMMY_KEY: &[u8] = b"journey-dry-run-dummy-signing-key";

/// How a request is signed; the key is already decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// Standard Webhooks.
    StandardWebhooks {
        /// The decoded `whsec_` secret.
        key: Vec<u8>,
    },
    /// `sha256=<hex>` in `header`.
    HmacSha256 {
        /// The secret's bytes.
        key: Vec<u8>,
        /// The header name.
        header: String,
    },
}

/// Decodes a `whsec_<base64>` secret.
pub fn decode_whsec(secret: &str) -> Option<Vec<u8>> {
    STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
pub fn standard_webhooks_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = hmac(key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", STANDARD.encode(mac))
}

/// `sha256=<lowercase hex of HMAC-SHA256(secret, body)>`.
pub fn hmac_sha256_signature(key: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        crate::render::filters::hex(&hmac(key, &[body]))
    )
}

impl Signer {
    /// The headers that sign `body` for delivery `id` at `timestamp` (Unix seconds).
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
        match self {
            Signer::StandardWebhooks { key } => vec![
                ("webhook-id".into(), id.to_string()),
                ("webhook-timestamp".into(), timestamp.to_string()),
                (
                    "webhook-signature".into(),
                    standard_webhooks_signature(key, id, timestamp, body),
                ),
            ],
            Signer::HmacSha256 { key, header } => {
                vec![(header.clone(), hmac_sha256_signature(key, body))]
            }
        }
    }

    /// Header names whose values are signatures (redacted when shown).
    pub fn header_names(&self) -> Vec<String> {
        match self {
            Signer::StandardWebhooks { .. } => vec!["webhook-signature".into()],
            Signer::HmacSha256 { header, .. } => vec![header.to_ascii_lowercase()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_published_vector() {
        let key = decode_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = standard_webhooks_signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn hmac_sha256_is_lowercase_hex() {
        // RFC 4231 test case 2
        let sig = hmac_sha256_signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
