//! The hub's signing key — SM2 under `[security] crypto = "gm"`, Ed25519 under `"international"` — and the
//! signatures that make the audit chain unforgeable by anyone without it.
//!
//! The hash chain alone is keyless: anyone with produce access to `_unsilo.audit` can append an entry with the
//! next `seq`, `prev` = the head's hash and a matching hash header. So every append's last entry carries a
//! signature (header `unsilo.audit.sig`) by the writing hub's own key over `(hub, from_seq, seq, hash)`, with
//! `from_seq` — the append's first entry — in the header `unsilo.audit.sig_from`. Since each hash covers
//! `prev`, one signature vouches for the entries of its append, and for nothing before `from_seq`: a hub that
//! appends after an entry someone else wrote never vouches for it. Checkpoints ([`super::checkpoint`]) are
//! signed the same way.
//!
//! One key per hub id, kept in a file (`[security] signing_key_file`, mode 0600, created on first start):
//!
//! - **SM2** (GB/T 32918, RustCrypto `sm2`): PKCS#8 PEM. Signatures are SM2 with SM3 and the default signer id
//!   of GM/T 0009 (`1234567812345678`), DER-encoded (`SEQUENCE { r INTEGER, s INTEGER }`, GM/T 0009), in hex.
//!   The public key is the uncompressed SEC1 point in hex (`04‖x‖y`, 130 characters) and, for outside tools,
//!   a SubjectPublicKeyInfo PEM with the SM2 curve OID (1.2.156.10197.1.301).
//! - **Ed25519** (ring): hex PKCS#8. The public key is 64 hex characters, a signature 128.
//!
//! A verifier tells them apart by the public key's form, so `audit verify` reads chains of both. The public key
//! is published in the chain (an `audit.key` control entry when the hub first writes with it), served to the
//! audit administrator (`GET /admin/audit/keys`, `unsilo audit keys`) and can be pinned on other hubs
//! (`[security] audit_public_keys`), so a verifier knows whose signature to expect.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sm2::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use tracing::info;
use unsilo_schemas::crypto::Suite;

/// The signer id of GM/T 0009-2012 §10, used when none is agreed: `1234567812345678`.
pub const SM2_DEFAULT_SIGNER_ID: &str = "1234567812345678";

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
    /// The file holds neither a PKCS#8 PEM SM2 key nor a hex PKCS#8 Ed25519 key.
    #[error("audit signing key {0}: neither a PKCS#8 PEM SM2 key nor a hex PKCS#8 Ed25519 key")]
    Malformed(PathBuf),
    /// The file holds a key of the other suite.
    #[error("audit signing key {path}: it holds {found} key but [security] crypto = \"{suite}\"; point signing_key_file at a new file (the hub creates it) and pin the old public key for the chains it signed")]
    WrongSuite {
        /// The file.
        path: PathBuf,
        /// What it holds.
        found: &'static str,
        /// The configured suite.
        suite: &'static str,
    },
}

/// The hub's signing key.
pub enum SigningKey {
    /// SM2 (国密).
    Sm2(Box<sm2::dsa::SigningKey>),
    /// Ed25519.
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SigningKey({}, public {})",
            self.algorithm(),
            self.public_hex()
        )
    }
}

impl SigningKey {
    /// A fresh random key of `suite` (tests, tools).
    pub fn generate(suite: Suite) -> Self {
        Self::generate_with_file_text(suite).0
    }

    /// A fresh random key of `suite`, and the text its key file holds.
    fn generate_with_file_text(suite: Suite) -> (Self, String) {
        match suite {
            Suite::Gm => {
                let key = new_sm2_key();
                let pem = sm2::SecretKey::from_bytes(&key.to_bytes())
                    .ok()
                    .and_then(|s| s.to_pkcs8_pem(LineEnding::LF).ok())
                    .map(|pem| pem.to_string())
                    .unwrap_or_else(|| unreachable_key_generation());
                (Self::Sm2(Box::new(key)), pem)
            }
            Suite::International => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .unwrap_or_else(|_| unreachable_key_generation());
                let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                    .unwrap_or_else(|_| unreachable_key_generation());
                (Self::Ed25519(pair), hex::encode(pkcs8.as_ref()))
            }
        }
    }

    /// Loads the key from `path` if the file exists (an auditor's copy of a log may come without it).
    pub fn load_existing(path: &Path, suite: Suite) -> Result<Option<Self>, KeyError> {
        if path.exists() {
            Self::load_or_create(path, suite).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Loads the key from `path`, creating it (mode 0600) with a fresh key of `suite` if the file does not
    /// exist. A file holding the other suite's key is refused.
    pub fn load_or_create(path: &Path, suite: Suite) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let key = match crate::secrets::read_private(path) {
            Ok(text) => Self::parse(&text).ok_or_else(|| KeyError::Malformed(path.to_owned()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let (key, text) = Self::generate_with_file_text(suite);
                crate::secrets::write_private(path, text.as_bytes()).map_err(io)?;
                info!(path = %path.display(), algorithm = key.algorithm(), "Audit signing key created.");
                key
            }
            Err(e) => return Err(io(e)),
        };
        if key.suite() != suite {
            return Err(KeyError::WrongSuite {
                path: path.to_owned(),
                found: match key {
                    Self::Sm2(_) => "an SM2",
                    Self::Ed25519(_) => "an Ed25519",
                },
                suite: suite.as_str(),
            });
        }
        Ok(key)
    }

    /// A key from a file's text: PKCS#8 PEM (SM2) or hex PKCS#8 (Ed25519).
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            let secret = sm2::SecretKey::from_pkcs8_pem(text).ok()?;
            return sm2::dsa::SigningKey::new(SM2_DEFAULT_SIGNER_ID, &secret)
                .ok()
                .map(|k| Self::Sm2(Box::new(k)));
        }
        let der = hex::decode(text).ok()?;
        Ed25519KeyPair::from_pkcs8(&der).ok().map(Self::Ed25519)
    }

    /// The suite the key belongs to.
    pub fn suite(&self) -> Suite {
        match self {
            Self::Sm2(_) => Suite::Gm,
            Self::Ed25519(_) => Suite::International,
        }
    }

    /// `SM2` or `Ed25519`.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Sm2(_) => "SM2",
            Self::Ed25519(_) => "Ed25519",
        }
    }

    /// The public key, hex: `04‖x‖y` for SM2, the 32 bytes for Ed25519.
    pub fn public_hex(&self) -> String {
        match self {
            Self::Sm2(k) => hex::encode(k.verifying_key().to_sec1_bytes()),
            Self::Ed25519(k) => hex::encode(k.public_key().as_ref()),
        }
    }

    /// The public key as a SubjectPublicKeyInfo PEM with the SM2 OIDs, for outside tools; `None` for Ed25519.
    pub fn public_pem(&self) -> Option<String> {
        match self {
            Self::Sm2(k) => sm2::PublicKey::from(k.verifying_key())
                .to_public_key_pem(LineEnding::LF)
                .ok(),
            Self::Ed25519(_) => None,
        }
    }

    /// Signs `message`; the signature in hex (DER for SM2).
    pub fn sign_hex(&self, message: &[u8]) -> String {
        match self {
            Self::Sm2(k) => {
                use sm2::dsa::signature::Signer;
                let signature: sm2::dsa::Signature = k.sign(message);
                hex::encode(sm2_der(&signature))
            }
            Self::Ed25519(k) => hex::encode(k.sign(message).as_ref()),
        }
    }
}

/// A fresh SM2 key from the system's randomness (a random scalar; the rare value out of range is drawn again).
fn new_sm2_key() -> sm2::dsa::SigningKey {
    for _ in 0..64 {
        let bytes: [u8; 32] = rand::random();
        if let Ok(key) = sm2::dsa::SigningKey::from_slice(SM2_DEFAULT_SIGNER_ID, &bytes) {
            return key;
        }
    }
    unreachable_key_generation()
}

/// An SM2 signature as GM/T 0009 encodes it: DER `SEQUENCE { r INTEGER, s INTEGER }`.
fn sm2_der(signature: &sm2::dsa::Signature) -> Vec<u8> {
    ecdsa::Signature::<sm2::Sm2>::from_scalars(signature.r_bytes(), signature.s_bytes())
        .map(|s| s.to_der().as_bytes().to_vec())
        .unwrap_or_default()
}

/// The signature of a DER encoding.
fn sm2_from_der(der: &[u8]) -> Option<sm2::dsa::Signature> {
    let parsed = ecdsa::Signature::<sm2::Sm2>::from_der(der).ok()?;
    let (r, s) = parsed.split_bytes();
    sm2::dsa::Signature::from_scalars(r, s).ok()
}

fn unreachable_key_generation() -> ! {
    // The crates generate and encode their own keys; failing means the system has no randomness, and a hub
    // without randomness must not run.
    panic!("signing key generation failed: the system has no usable randomness")
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

/// Whether `signature_hex` is `public_hex`'s signature over `message`. The key's form says the algorithm: 130
/// hex characters starting `04` are an SM2 point (the signature DER, signer id [`SM2_DEFAULT_SIGNER_ID`]), 64
/// are an Ed25519 key.
pub fn verify_hex(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Ok(public), Ok(signature)) = (hex::decode(public_hex), hex::decode(signature_hex)) else {
        return false;
    };
    match public.len() {
        65 if public[0] == 4 => {
            use sm2::dsa::signature::Verifier;
            let (Ok(key), Some(signature)) = (
                sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DEFAULT_SIGNER_ID, &public),
                sm2_from_der(&signature),
            ) else {
                return false;
            };
            key.verify(message, &signature).is_ok()
        }
        32 => UnparsedPublicKey::new(&ED25519, public)
            .verify(message, &signature)
            .is_ok(),
        _ => false,
    }
}

/// The algorithm of a public key in hex (`SM2`, `Ed25519`), as [`verify_hex`] reads it.
pub fn algorithm_of(public_hex: &str) -> &'static str {
    match public_hex.len() {
        130 if public_hex.starts_with("04") => "SM2",
        64 => "Ed25519",
        _ => "unknown",
    }
}

/// Where a verifier gets a chain's public key from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
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
    fn keys_of_both_suites_are_created_once_sign_and_verify() {
        for suite in [Suite::Gm, Suite::International] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("k/audit.key");
            let a = SigningKey::load_or_create(&path, suite).unwrap();
            let b = SigningKey::load_or_create(&path, suite).unwrap();
            assert_eq!(a.public_hex(), b.public_hex());
            assert_eq!(a.suite(), suite);
            let m = entry_message("hub", 1, 3, "abc");
            let sig = a.sign_hex(&m);
            assert!(verify_hex(&b.public_hex(), &m, &sig), "{suite:?}");
            assert!(!verify_hex(
                &b.public_hex(),
                &entry_message("hub", 1, 4, "abc"),
                &sig
            ));
            assert!(!verify_hex(
                &SigningKey::generate(suite).public_hex(),
                &m,
                &sig
            ));
            assert!(!verify_hex("zz", &m, &sig));
            assert!(!format!("{a:?}").contains(std::fs::read_to_string(&path).unwrap().trim()));
            let other = match suite {
                Suite::Gm => Suite::International,
                Suite::International => Suite::Gm,
            };
            assert!(matches!(
                SigningKey::load_or_create(&path, other),
                Err(KeyError::WrongSuite { .. })
            ));
            std::fs::write(&path, "00").unwrap();
            assert!(matches!(
                SigningKey::load_or_create(&path, suite),
                Err(KeyError::Malformed(_))
            ));
        }
    }

    #[test]
    fn sm2_keys_and_signatures_leave_in_standard_encodings() {
        let key = SigningKey::generate(Suite::Gm);
        let public = key.public_hex();
        assert_eq!((public.len(), &public[..2]), (130, "04"));
        assert_eq!(algorithm_of(&public), "SM2");
        let pem = key.public_pem().expect("SPKI PEM");
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        // The DER of the SubjectPublicKeyInfo carries the SM2 curve OID 1.2.156.10197.1.301.
        let der = sm2::pkcs8::Document::from_pem(&pem).expect("PEM").1;
        let oid = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d];
        assert!(
            der.as_bytes().windows(oid.len()).any(|w| w == oid),
            "the SM2 curve OID"
        );
        let signature = hex::decode(key.sign_hex(b"m")).unwrap();
        assert_eq!(signature[0], 0x30, "a DER SEQUENCE");
    }
}
