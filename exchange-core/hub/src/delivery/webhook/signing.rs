//! Signing deliveries, and checking signatures as a subscriber would: HMAC-SHA256 over the timestamp and
//! the body.

#[allow(unused_imports)]
use super::*;

/// Signs a delivery: `"v1=" + hex(HMAC-SHA256(key, "{timestamp}.{body}"))`.
pub fn sign(key: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac_sha256(key);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a delivery's signature as a subscriber would: the timestamp must be within `tolerance_secs` of
/// `now_unix` (either way), and one of the comma-separated `v1=<hex>` values in `signature_header` must
/// match (constant-time comparison). An empty key never verifies.
pub fn verify_signature(
    key: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    if key.is_empty() || tolerance_secs < 0 {
        return false;
    }
    let Ok(timestamp) = timestamp_header.trim().parse::<i64>() else {
        return false;
    };
    if now_unix.abs_diff(timestamp) > tolerance_secs.unsigned_abs() {
        return false;
    }
    let mut valid = false;
    for candidate in signature_header.split(',') {
        let Some(hex_signature) = candidate.trim().strip_prefix("v1=") else {
            continue;
        };
        let Ok(signature) = hex::decode(hex_signature) else {
            continue;
        };
        let mut mac = hmac_sha256(key);
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        // No early exit: every candidate is checked the same way.
        valid |= mac.verify_slice(&signature).is_ok();
    }
    valid
}

/// HMAC-SHA256 keyed per RFC 2104 (keys longer than the 64-byte block are hashed, shorter ones zero-padded),
/// done here so no fallible constructor is needed.
pub(super) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&block.into())
}
