//! The hub's Ed25519 key, and the signatures that make the audit chain unforgeable by anyone without it.
//!
//! The hash chain alone is keyless: anyone with produce access to `_unsilo.audit` can append an entry with the
//! next `seq`, `prev` = the head's hash and a matching hash header. So every append's last entry carries a
//! signature (header `unsilo.audit.sig`) by the writing hub's own key over `(hub, from_seq, seq, hash)`, with
//! `from_seq` — the append's first entry — in the header `unsilo.audit.sig_from`. Since each hash covers
//! `prev`, one signature vouches for the entries of its append, and for nothing before `from_seq`: a hub that
//! appends after an entry someone else wrote never vouches for it. Checkpoints ([`super::checkpoint`]) are
//! signed the same way.
//!
//! One key per hub id, kept in a file (`[security] signing_key_file`, hex PKCS#8, mode 0600, created on first
//! start). The public key is published in the chain (an `audit.key` control entry when the hub first writes with
//! it), served to operators (`GET /admin/audit/keys`, `unsilo audit keys`) and can be pinned on other hubs
//! (`[security] audit_public_keys`), so a verifier knows whose signature to expect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use tracing::info;

/// Errors loading or creating the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("audit signing key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold a hex PKCS#8 Ed25519 key.
    #[error("audit signing key {0}: not a hex PKCS#8 Ed25519 key")]
    Malformed(PathBuf),
}

/// The hub's signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public_hex())
    }
}

impl SigningKey {
    /// A fresh random key (tests, tools).
    pub fn generate() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .unwrap_or_else(|_| unreachable_key_generation());
        Self {
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .unwrap_or_else(|_| unreachable_key_generation()),
        }
    }

    /// Loads the key from `path` if the file exists (an auditor's copy of a log may come without it).
    pub fn load_existing(path: &Path) -> Result<Option<Self>, KeyError> {
        if path.exists() {
            Self::load_or_create(path).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Loads the key from `path`, creating it (mode 0600) with a fresh key if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        match crate::secrets::read_private(path) {
            Ok(text) => {
                let der =
                    hex::decode(text.trim()).map_err(|_| KeyError::Malformed(path.to_owned()))?;
                let pair = Ed25519KeyPair::from_pkcs8(&der)
                    .map_err(|_| KeyError::Malformed(path.to_owned()))?;
                Ok(Self { pair })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| io(std::io::Error::other("no system randomness")))?;
                crate::secrets::write_private(path, hex::encode(pkcs8.as_ref()).as_bytes())
                    .map_err(io)?;
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .map_err(|_| KeyError::Malformed(path.to_owned()))?;
                info!(path = %path.display(), "Audit signing key created.");
                Ok(Self { pair })
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// Signs `message`; the signature in hex.
    pub fn sign_hex(&self, message: &[u8]) -> String {
        hex::encode(self.pair.sign(message).as_ref())
    }
}

fn unreachable_key_generation() -> ! {
    // ring generates and parses its own PKCS#8 documents; failing means the system has no randomness, and a
    // hub without randomness must not run.
    panic!("Ed25519 key generation failed: the system has no usable randomness")
}

/// What an entry signature covers: the append of `hub`'s entries `from_seq..=seq`, the last of which has `hash`.
pub fn entry_message(hub: &str, from_seq: u64, seq: u64, hash: &str) -> Vec<u8> {
    format!("unsilo-audit-entry-v2\0{hub}\0{from_seq}\0{seq}\0{hash}").into_bytes()
}

/// The first seq a signed record's signature covers (its `unsilo.audit.sig_from` header), if it has one.
pub fn signed_from(record: &unsilo_bus::ConsumedRecord) -> Option<u64> {
    let text = std::str::from_utf8(
        record
            .record
            .header(unsilo_schemas::names::HEADER_AUDIT_SIGNED_FROM)?,
    )
    .ok()?;
    text.parse().ok()
}

/// Whether `signature_hex` is `public_hex`'s signature over `message`.
pub fn verify_hex(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Ok(public), Ok(signature)) = (hex::decode(public_hex), hex::decode(signature_hex)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &signature)
        .is_ok()
}

/// Where a verifier gets a chain's public key from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// The verifying hub's own key, or one pinned in `[security] audit_public_keys`.
    Pinned,
    /// Only the key the chain itself published: an outsider could have started such a chain; pin it.
    PublishedInChain,
}

/// The public keys a verifier trusts, by hub id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedKeys {
    /// Hub id → hex public key.
    pub keys: BTreeMap<String, String>,
}

impl TrustedKeys {
    /// `own` (this hub's id and key) and the pinned keys of other hubs.
    pub fn new(own: Option<(&str, &SigningKey)>, pinned: &BTreeMap<String, String>) -> Self {
        let mut keys: BTreeMap<String, String> = pinned
            .iter()
            .map(|(h, k)| (h.clone(), k.trim().to_ascii_lowercase()))
            .collect();
        if let Some((hub, key)) = own {
            keys.insert(hub.to_owned(), key.public_hex());
        }
        Self { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_sign_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/audit.key");
        let a = SigningKey::load_or_create(&path).unwrap();
        let b = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        let m = entry_message("hub", 1, 3, "abc");
        let sig = a.sign_hex(&m);
        assert!(verify_hex(&b.public_hex(), &m, &sig));
        assert!(!verify_hex(
            &b.public_hex(),
            &entry_message("hub", 1, 4, "abc"),
            &sig
        ));
        assert!(!verify_hex(&SigningKey::generate().public_hex(), &m, &sig));
        assert!(!verify_hex("zz", &m, &sig));
        assert!(!format!("{a:?}").contains(&std::fs::read_to_string(&path).unwrap()));
        std::fs::write(&path, "00").unwrap();
        assert!(matches!(
            SigningKey::load_or_create(&path),
            Err(KeyError::Malformed(_))
        ));
    }
}
