//! Signing deliveries, and checking signatures as a subscriber would: HMAC-SM3 (国密) or HMAC-SHA256 over the
//! timestamp and the body, labelled with the algorithm.

#[allow(unused_imports)]
use super::*;
use unsilo_schemas::crypto::{KeyedMac, Suite};

/// The label of a signature made with `suite`: `hmac-sm3` (国密) or `v1` (HMAC-SHA256, the original label).
pub fn signature_label(suite: Suite) -> &'static str {
    match suite {
        Suite::Gm => "hmac-sm3",
        Suite::International => "v1",
    }
}

fn keyed(suite: Suite, key: &[u8], timestamp: i64, body: &[u8]) -> KeyedMac {
    let mut mac = KeyedMac::new(suite, key);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Signs a delivery: `"hmac-sm3=" + hex(HMAC-SM3(key, "{timestamp}.{body}"))` under gm, `"v1=" +
/// hex(HMAC-SHA256(…))` under international.
pub fn sign(suite: Suite, key: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "{}={}",
        signature_label(suite),
        hex::encode(keyed(suite, key, timestamp, body).finalize())
    )
}

/// Checks a delivery's signature as a subscriber would: the timestamp must be within `tolerance_secs` of
/// `now_unix` (either way), and one of the comma-separated `hmac-sm3=<hex>` or `v1=<hex>` values in
/// `signature_header` must match under the algorithm its label names (constant-time comparison). An empty key
/// never verifies.
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
        let Some((label, hex_signature)) = candidate.trim().split_once('=') else {
            continue;
        };
        let suite = match label {
            "hmac-sm3" => Suite::Gm,
            "v1" => Suite::International,
            _ => continue,
        };
        let Ok(signature) = hex::decode(hex_signature) else {
            continue;
        };
        // No early exit: every candidate is checked the same way.
        valid |= keyed(suite, key, timestamp, body).verify(&signature);
    }
    valid
}
