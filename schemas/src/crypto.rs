//! The deployment's cryptographic suite — 国密 or international — and the keyed hash every crate takes from it.
//!
//! `[security] crypto = "gm"` (the default, what a 密评 under GB/T 39786-2021 scores as compliant) puts the
//! Chinese commercial algorithms in every slot: SM3 for hashes (the audit chain), HMAC-SM3 for keyed hashes
//! (pseudonyms, webhook signatures, record seals, key derivation), SM2 for signatures and SM4-GCM for data at
//! rest (in the hub). `"international"` puts SHA-256, HMAC-SHA256, Ed25519 and AES-256-GCM in the same slots.
//!
//! The algorithms come from maintained RustCrypto crates (`sm3`, `sha2`, `hmac`); nothing here implements one.
//! What leaves the hub names its algorithm — a chain hash `sm3:<hex>` against a bare SHA-256 hex, a webhook
//! signature header `hmac-sm3=<hex>` — so a verifier reads both without being told.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sm3::Sm3;

/// Which algorithms fill the cryptographic slots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// 国密: SM2, SM3, SM4 (GB/T 32918, GB/T 32905, GB/T 32907). The default.
    #[default]
    Gm,
    /// Ed25519, SHA-256, AES-256-GCM.
    International,
}

/// The prefix of an SM3 chain hash.
pub const SM3_PREFIX: &str = "sm3:";

impl Suite {
    /// `gm` or `international`, as in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gm => "gm",
            Self::International => "international",
        }
    }

    /// The hash's name: `sm3` or `sha256`.
    pub fn hash_name(self) -> &'static str {
        match self {
            Self::Gm => "sm3",
            Self::International => "sha256",
        }
    }

    /// The keyed hash's name: `hmac-sm3` or `hmac-sha256`.
    pub fn mac_name(self) -> &'static str {
        match self {
            Self::Gm => "hmac-sm3",
            Self::International => "hmac-sha256",
        }
    }

    /// The suite's hash of `bytes` (32 bytes either way).
    pub fn digest(self, bytes: &[u8]) -> [u8; 32] {
        match self {
            Self::Gm => Sm3::digest(bytes).into(),
            Self::International => Sha256::digest(bytes).into(),
        }
    }

    /// A chain hash as stored: `sm3:<hex>` under gm, the bare hex of SHA-256 under international (the form
    /// chains had before the suite was chosen), so every stored hash names its algorithm.
    pub fn chain_hash(self, bytes: &[u8]) -> String {
        match self {
            Self::Gm => format!("{SM3_PREFIX}{}", hex::encode(self.digest(bytes))),
            Self::International => hex::encode(self.digest(bytes)),
        }
    }

    /// The suite's keyed hash under `key`, to be fed with [`KeyedMac::update`].
    pub fn keyed(self, key: &[u8]) -> KeyedMac {
        KeyedMac::new(self, key)
    }
}

impl std::str::FromStr for Suite {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gm" => Ok(Self::Gm),
            "international" => Ok(Self::International),
            other => Err(format!(
                "crypto `{other}` is not one of \"gm\" (SM2/SM3/SM4) or \"international\""
            )),
        }
    }
}

/// Whether `stored` is the chain hash of `bytes` under the algorithm it names (`sm3:` or bare SHA-256 hex).
pub fn chain_hash_matches(stored: &str, bytes: &[u8]) -> bool {
    let suite = chain_hash_suite(stored);
    let computed = suite.chain_hash(bytes);
    computed.len() == stored.len()
        && computed
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The suite a stored chain hash was made with.
pub fn chain_hash_suite(stored: &str) -> Suite {
    if stored.starts_with(SM3_PREFIX) {
        Suite::Gm
    } else {
        Suite::International
    }
}

/// HMAC-SM3 or HMAC-SHA256 with the key absorbed, to clone per message.
#[derive(Clone)]
pub enum KeyedMac {
    /// HMAC-SM3.
    Sm3(Hmac<Sm3>),
    /// HMAC-SHA256.
    Sha256(Hmac<Sha256>),
}

impl std::fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sm3(_) => "KeyedMac(hmac-sm3, key redacted)",
            Self::Sha256(_) => "KeyedMac(hmac-sha256, key redacted)",
        })
    }
}

impl KeyedMac {
    /// The keyed hash of `suite` under `key` (any length: HMAC hashes a long key and pads a short one).
    pub fn new(suite: Suite, key: &[u8]) -> Self {
        match suite {
            Suite::Gm => Self::Sm3(
                <Hmac<Sm3> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
            ),
            Suite::International => Self::Sha256(
                <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
            ),
        }
    }

    /// Which suite it belongs to.
    pub fn suite(&self) -> Suite {
        match self {
            Self::Sm3(_) => Suite::Gm,
            Self::Sha256(_) => Suite::International,
        }
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sm3(m) => m.update(bytes),
            Self::Sha256(m) => m.update(bytes),
        }
    }

    /// The tag (32 bytes either way).
    pub fn finalize(self) -> [u8; 32] {
        match self {
            Self::Sm3(m) => m.finalize().into_bytes().into(),
            Self::Sha256(m) => m.finalize().into_bytes().into(),
        }
    }

    /// Whether `tag` is the tag, compared in constant time.
    pub fn verify(self, tag: &[u8]) -> bool {
        match self {
            Self::Sm3(m) => m.verify_slice(tag).is_ok(),
            Self::Sha256(m) => m.verify_slice(tag).is_ok(),
        }
    }
}

/// The keyed hash of `suite` under `key` over `parts`, each length-prefixed (u64 big-endian) so no two
/// different lists of parts share a message.
pub fn mac_parts(suite: Suite, key: &[u8], parts: &[&[u8]]) -> KeyedMac {
    let mut mac = KeyedMac::new(suite, key);
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm3_and_hmac_sm3_match_the_standard_vectors() {
        // GB/T 32905-2016 Appendix A.1: SM3("abc").
        assert_eq!(
            hex::encode(Suite::Gm.digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            hex::encode(Suite::International.digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // HMAC-SM3 is RFC 2104 over SM3 (64-byte block): cross-checked with OpenSSL
        // (`openssl mac -digest SM3 -macopt hexkey:… HMAC`).
        let mut m = Suite::Gm.keyed(b"key");
        m.update(b"The quick brown fox jumps over the lazy dog");
        let tag = m.clone().finalize();
        assert_eq!(
            hex::encode(tag),
            "bd4a34077888162b210645b8ebf74b9af357303789357a27c7fc457244ebd398"
        );
        assert!(m.verify(&tag));
    }

    #[test]
    fn chain_hashes_name_their_algorithm_and_both_verify() {
        let gm = Suite::Gm.chain_hash(b"entry");
        let intl = Suite::International.chain_hash(b"entry");
        assert!(gm.starts_with("sm3:") && gm.len() == 4 + 64);
        assert_eq!(intl.len(), 64);
        assert!(chain_hash_matches(&gm, b"entry"));
        assert!(chain_hash_matches(&intl, b"entry"));
        assert!(!chain_hash_matches(&gm, b"entrx"));
        assert!(!chain_hash_matches(&format!("sm3:{}", &intl), b"entry"));
        assert_eq!("gm".parse::<Suite>(), Ok(Suite::Gm));
        assert!("sha1".parse::<Suite>().unwrap_err().contains("gm"));
    }

    #[test]
    fn parts_are_length_prefixed() {
        let a = mac_parts(Suite::Gm, b"k", &[b"ab", b"c"]).finalize();
        let b = mac_parts(Suite::Gm, b"k", &[b"a", b"bc"]).finalize();
        assert_ne!(a, b);
        let c = mac_parts(Suite::International, b"k", &[b"ab", b"c"]).finalize();
        assert_ne!(a, c);
    }
}
