//! The deterministic record id every normalised record carries in `envelope.record_id`.
//!
//! # Recipe
//!
//! ```text
//! record_id = lowercase_hex( SHA-256( part(source_system) || part(source_record_id) || part(source_version) ) )[0..32]
//! part(s)   = u64_big_endian(byte_length(utf8(s))) || utf8(s)
//! ```
//!
//! Each part is length-prefixed, so no choice of separators inside the parts can make two different triples
//! collide (`("a", "bc")` and `("ab", "c")` hash different bytes). 32 hex characters keep 128 bits of the digest:
//! far beyond any realistic number of records. The id depends only on the source's own identity of the record, so
//! a replay or a re-delivery produces the same id and a receiver can deduplicate on it.
//!
//! The same recipe can be reproduced in any language, e.g. Python:
//! `sha256(b"".join(len(p.encode()).to_bytes(8, "big") + p.encode() for p in parts)).hexdigest()[:32]`.

use sha2::{Digest, Sha256};

/// Number of hex characters kept from the SHA-256 digest (128 bits).
pub const RECORD_ID_HEX_LEN: usize = 32;

/// The deterministic record id of a source record version (see the module docs for the exact recipe).
pub fn record_id(source_system: &str, source_record_id: &str, source_version: &str) -> String {
    let mut hasher = Sha256::new();
    for part in [source_system, source_record_id, source_version] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut hex = [0u8; RECORD_ID_HEX_LEN];
    for (pair, byte) in hex.chunks_exact_mut(2).zip(digest.iter()) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0x0f)];
    }
    // Every byte written is an ASCII hex digit, so the text is valid UTF-8 and this is one 32-byte copy.
    std::str::from_utf8(&hex)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// Lowercase hex digits by value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed independently with Python's hashlib (see the module docs for the one-liner).
    #[test]
    fn matches_independent_implementation() {
        assert_eq!(
            record_id("grid.hanyin", "SJ20240618000173", "3"),
            "3ccd3895a9132f275794a833e441f63e"
        );
        assert_eq!(record_id("", "", ""), "9d908ecfb6b256def8b49a7c504e6c88");
    }

    #[test]
    fn parts_cannot_bleed_into_each_other() {
        assert_eq!(record_id("a", "bc", ""), "74f2dff90c16bd75e74ea8ab93e0f683");
        assert_eq!(record_id("ab", "c", ""), "528e931465bb50b57f335f8f47b78a4e");
    }

    #[test]
    fn hex_matches_the_hex_crate() {
        for (a, b, c) in [
            ("grid.hanyin", "SJ1", "1"),
            ("x", "", "9"),
            ("汉阴", "编号", ""),
        ] {
            let mut hasher = Sha256::new();
            for part in [a, b, c] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part.as_bytes());
            }
            let digest = hasher.finalize();
            assert_eq!(
                record_id(a, b, c),
                hex::encode(&digest[..RECORD_ID_HEX_LEN / 2])
            );
        }
    }

    #[test]
    fn version_changes_the_id() {
        let v1 = record_id("hotline.12345", "GD20240612000862", "6");
        let v2 = record_id("hotline.12345", "GD20240612000862", "7");
        assert_ne!(v1, v2);
        assert_eq!(v1.len(), RECORD_ID_HEX_LEN);
        assert!(v1
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
