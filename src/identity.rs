//! Stable identities (SPEC §5): entry keys, delivery ids (idempotency keys), W3C trace context.

use std::sync::OnceLock;

use data_encoding::{BASE32_NOPAD, Encoding};
use sha2::{Digest, Sha256};

use crate::render::filters::hex;

/// `JOURNEY:event.id` or `JOURNEY:customer.id`.
pub fn entry_key(journey: &str, id: &str) -> String {
    [journey, ":", id].concat()
}

/// `dlv_` + base32 (lowercase, RFC 4648 alphabet) of sha256(journey, entry key, step id), cut to 26.
pub fn delivery_id(journey: &str, entry_key: &str, step: &str) -> String {
    // 26 characters carry 130 bits: the first 17 bytes, whose encoding starts as the whole
    // digest's does.
    let digest = hash_parts(&[journey, entry_key, step]);
    let mut encoded = [0u8; 28];
    base32_lower().encode_mut(&digest[..17], &mut encoded);
    let mut id = String::with_capacity(30);
    id.push_str("dlv_");
    id.push_str(std::str::from_utf8(&encoded[..26]).expect("base32 is ASCII"));
    id
}

/// RFC 4648 base32 in lowercase, without padding.
fn base32_lower() -> &'static Encoding {
    static LOWER: OnceLock<Encoding> = OnceLock::new();
    LOWER.get_or_init(|| {
        let mut spec = BASE32_NOPAD.specification();
        spec.symbols.make_ascii_lowercase();
        spec.encoding().expect("a valid alphabet")
    })
}

/// 32 hex characters derived from the entry key.
pub fn trace_id(entry_key: &str) -> String {
    hex(&hash_parts(&["trace", entry_key])[..16])
}

/// A `traceparent` header: one trace per entry, one span per delivery attempt.
pub fn traceparent(trace_id: &str, delivery_id: &str, attempt: u32) -> String {
    let mut n = itoa::Buffer::new();
    let span = hex(&hash_parts(&["span", delivery_id, n.format(attempt)])[..8]);
    ["00-", trace_id, "-", &span, "-01"].concat()
}

/// sha256 of the parts joined with NUL, so no two part lists collide.
fn hash_parts(parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// A 64-bit hash of a key, the same for the whole process: entry keys taken or stored (8 bytes an
/// entry, whatever the batch), customers' lock stripes and lanes.
pub fn hash_key(key: &str) -> u64 {
    use std::hash::BuildHasher;
    foldhash::quality::FixedState::with_seed(0x6a6f75726e6579).hash_one(key)
}

/// The first 8 bytes of sha256 over the parts (NUL-separated), as a number.
fn hash_u64(parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    first_u64(&h.finalize())
}

/// The first 8 bytes of a sha256 digest, big-endian, as a number: shards, holdouts, splits.
pub fn first_u64(digest: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A deterministic fraction in [0, 1) from a hash of the parts (holdouts).
pub fn hash_fraction(parts: &[&str]) -> f64 {
    (hash_u64(parts) % 10_000) as f64 / 10_000.0
}

/// A deterministic bucket in 0..100 from a hash of the parts (splits).
pub fn hash_percent(parts: &[&str]) -> u32 {
    (hash_u64(parts) % 100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_the_lowercase_base32_of_the_digest() {
        let digest = hash_parts(&["cart", "cart:evt_1", "send"]);
        let whole = BASE32_NOPAD.encode(&digest).to_ascii_lowercase();
        assert_eq!(
            delivery_id("cart", "cart:evt_1", "send"),
            format!("dlv_{}", &whole[..26])
        );
    }

    #[test]
    fn identities_are_stable_and_shaped() {
        let a = delivery_id("cart", "cart:evt_1", "send");
        assert_eq!(a, delivery_id("cart", "cart:evt_1", "send"));
        assert_ne!(a, delivery_id("cart", "cart:evt_2", "send"));
        assert!(a.starts_with("dlv_") && a.len() == 30);
        let t = trace_id("cart:evt_1");
        assert_eq!(t.len(), 32);
        let tp = traceparent(&t, &a, 1);
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with(&format!("00-{t}-")));
    }

    #[test]
    fn built_without_format_as_they_were_with_it() {
        let span = hex(&hash_parts(&["span", "dlv_x", "12"])[..8]);
        assert_eq!(traceparent("t", "dlv_x", 12), format!("00-t-{span}-01"));
        assert_eq!(entry_key("cart", "c:1"), "cart:c:1");
    }
}
