//! The authenticated encryption of data at rest: SM4-GCM (国密, GB/T 32907 in GCM mode) or AES-256-GCM, from the
//! RustCrypto `sm4`, `aes` and `aes-gcm` crates. A 96-bit random nonce per message, a 128-bit tag, and
//! associated data that binds a ciphertext to where it belongs (a record to its topic, day and key; a data key
//! to its topic and day), so a ciphertext moved elsewhere does not decrypt.

use aes_gcm::aead::generic_array::typenum::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, AesGcm};
use serde::{Deserialize, Serialize};
use unsilo_schemas::crypto::Suite;
use zeroize::Zeroizing;

/// SM4 in GCM mode with a 96-bit nonce.
type Sm4Gcm = AesGcm<sm4::Sm4, U12>;

/// Bytes of a nonce.
pub const NONCE_BYTES: usize = 12;

/// An encryption algorithm for data at rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// SM4-GCM, 128-bit key (国密).
    #[serde(rename = "sm4-gcm")]
    Sm4Gcm,
    /// AES-256-GCM.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

impl Algorithm {
    /// The algorithm of a suite.
    pub fn of(suite: Suite) -> Self {
        match suite {
            Suite::Gm => Self::Sm4Gcm,
            Suite::International => Self::Aes256Gcm,
        }
    }

    /// Its name (`sm4-gcm`, `aes-256-gcm`), as headers and key files carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sm4Gcm => "sm4-gcm",
            Self::Aes256Gcm => "aes-256-gcm",
        }
    }

    /// The algorithm a name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sm4-gcm" => Some(Self::Sm4Gcm),
            "aes-256-gcm" => Some(Self::Aes256Gcm),
            _ => None,
        }
    }

    /// Bytes of its key.
    pub fn key_bytes(self) -> usize {
        match self {
            Self::Sm4Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }
}

/// A key and its algorithm, with its cipher's key schedule made once. The bytes are never printed, and are
/// zeroed when the key is dropped (residual information, 等保 8.1.4.9).
#[derive(Clone)]
pub struct Key {
    algorithm: Algorithm,
    bytes: Zeroizing<Vec<u8>>,
    cipher: Cipher,
}

/// A ready cipher: its round keys and GHASH key computed once per key, not per record.
#[derive(Clone)]
enum Cipher {
    Sm4(Box<Sm4Gcm>),
    Aes(Box<Aes256Gcm>),
}

impl Cipher {
    fn of(algorithm: Algorithm, bytes: &[u8]) -> Result<Self, CipherError> {
        let wrong = |_| CipherError::KeyLength(algorithm.key_bytes());
        Ok(match algorithm {
            Algorithm::Sm4Gcm => Self::Sm4(Box::new(Sm4Gcm::new_from_slice(bytes).map_err(wrong)?)),
            Algorithm::Aes256Gcm => {
                Self::Aes(Box::new(Aes256Gcm::new_from_slice(bytes).map_err(wrong)?))
            }
        })
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({}, redacted)", self.algorithm.as_str())
    }
}

/// Why a ciphertext did not decrypt.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// Too short to hold a nonce and a tag.
    #[error("the ciphertext is too short")]
    Truncated,
    /// The tag does not verify: wrong key, wrong associated data, or tampered bytes.
    #[error("the ciphertext does not authenticate (wrong key, moved, or altered)")]
    Unauthentic,
    /// The key has the wrong length for its algorithm.
    #[error("the key is not {0} bytes")]
    KeyLength(usize),
}

impl Key {
    /// A fresh random key of `algorithm`.
    pub fn generate(algorithm: Algorithm) -> Self {
        let bytes: Vec<u8> = (0..algorithm.key_bytes()).map(|_| rand::random()).collect();
        // A fresh key has the algorithm's length: the schedule cannot fail.
        Self::from_bytes(algorithm, bytes)
            .unwrap_or_else(|_| unreachable!("a generated key has its length"))
    }

    /// A key from its bytes.
    pub fn from_bytes(algorithm: Algorithm, bytes: Vec<u8>) -> Result<Self, CipherError> {
        if bytes.len() != algorithm.key_bytes() {
            return Err(CipherError::KeyLength(algorithm.key_bytes()));
        }
        Ok(Self {
            algorithm,
            cipher: Cipher::of(algorithm, &bytes)?,
            bytes: Zeroizing::new(bytes),
        })
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Its bytes (to wrap it under another key).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext`, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_BYTES] = rand::random();
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let sealed = match &self.cipher {
            Cipher::Sm4(c) => c.encrypt((&nonce).into(), payload),
            Cipher::Aes(c) => c.encrypt((&nonce).into(), payload),
        }
        // GCM encrypts any message under 64 GiB.
        .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of `nonce ‖ ciphertext ‖ tag`, if it authenticates with `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CipherError> {
        if sealed.len() < NONCE_BYTES + 16 {
            return Err(CipherError::Truncated);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let opened = match &self.cipher {
            Cipher::Sm4(c) => c.decrypt(nonce.into(), payload),
            Cipher::Aes(c) => c.decrypt(nonce.into(), payload),
        };
        opened.map_err(|_| CipherError::Unauthentic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sm4_gcm_matches_the_standard_vector() {
        // RFC 8998 Appendix A.1 (SM4-GCM, also in GB/T 36624): key, IV, AAD and plaintext as given there.
        let key = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let nonce = hex::decode("00001234567800000000ABCD").unwrap();
        let aad = hex::decode("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2").unwrap();
        let plaintext = hex::decode(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDDEEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        let cipher = Sm4Gcm::new_from_slice(&key).unwrap();
        let out = cipher
            .encrypt(
                nonce.as_slice().into(),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(
            hex::encode_upper(&out[..plaintext.len()]),
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        );
        assert_eq!(
            hex::encode_upper(&out[plaintext.len()..]),
            "83DE3541E4C2B58177E065A9BF7B62EC"
        );
    }

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_associated_data() {
        for algorithm in [Algorithm::Sm4Gcm, Algorithm::Aes256Gcm] {
            let key = Key::generate(algorithm);
            let sealed = key.seal(b"610921196105170317", b"raw.grid/2026-12-07");
            assert!(!sealed.windows(18).any(|w| w == b"610921196105170317"));
            assert_eq!(
                key.open(&sealed, b"raw.grid/2026-12-07").unwrap(),
                b"610921196105170317"
            );
            assert_eq!(
                key.open(&sealed, b"raw.grid/2026-12-08"),
                Err(CipherError::Unauthentic),
                "moved to another day"
            );
            assert_eq!(
                Key::generate(algorithm).open(&sealed, b"raw.grid/2026-12-07"),
                Err(CipherError::Unauthentic)
            );
            let mut altered = sealed.clone();
            altered[20] ^= 1;
            assert!(key.open(&altered, b"raw.grid/2026-12-07").is_err());
            assert_eq!(key.open(&sealed[..10], b""), Err(CipherError::Truncated));
            assert!(!format!("{key:?}").contains(&hex::encode(key.bytes())));
        }
    }
}
