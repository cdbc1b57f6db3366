//! The deployment secret and the keys derived from it.
//!
//! One 32-byte secret per deployment (a file, `[security] secret_file`) is the root of every key the hub needs,
//! each derived with the suite's keyed hash — HMAC-SM3 under `[security] crypto = "gm"`, HMAC-SHA256 under
//! `"international"` — under its own label so that no key reveals another:
//!
//! - the pseudonymisation key (`unsilo/pseudonym/v1`): the same for every subscription and agency, so two agencies
//!   allowed to join on a person get the same pseudonym — and it must be the same on every hub process, which is
//!   why it comes from a shared file and not from each process;
//! - one webhook signing key per subscription (`unsilo/webhook/v1/<subscription>`), handed to the agency once
//!   when its subscription is approved, so the hub stores no per-subscription secret at all.
//!
//! A missing file is created with a fresh random secret (mode 0600) — convenient for the embedded single-machine
//! default; a multi-process deployment must give every process the same file. The secret is never logged.

use std::path::{Path, PathBuf};

use tracing::info;
use unsilo_schemas::crypto::{KeyedMac, Suite};

use unsilo_policy::treat::PseudonymKey;

/// Errors loading the secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read or created.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex characters.
    #[error("secret file {0}: expected 64 hex characters (32 bytes)")]
    Malformed(PathBuf),
}

/// The deployment secret, and the suite its keys are derived with.
#[derive(Clone)]
pub struct HubSecret {
    bytes: [u8; 32],
    suite: Suite,
}

impl std::fmt::Debug for HubSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HubSecret(***)")
    }
}

impl HubSecret {
    /// A secret from raw bytes (tests, benchmarks), deriving under the default suite (gm).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            bytes,
            suite: Suite::default(),
        }
    }

    /// The same secret deriving its keys under `suite` (`[security] crypto`).
    pub fn with_suite(self, suite: Suite) -> Self {
        Self { suite, ..self }
    }

    /// The suite keys are derived with.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// Loads the secret from `path`, creating the file with a random secret if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let io = |source| SecretError::Io {
            path: path.to_owned(),
            source,
        };
        match read_private(path) {
            Ok(text) => {
                let decoded = hex::decode(text.trim())
                    .map_err(|_| SecretError::Malformed(path.to_owned()))?;
                let bytes: [u8; 32] = decoded
                    .try_into()
                    .map_err(|_| SecretError::Malformed(path.to_owned()))?;
                Ok(Self::from_bytes(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let bytes: [u8; 32] = rand::random();
                write_private(path, hex::encode(bytes).as_bytes()).map_err(io)?;
                info!(path = %path.display(), "Deployment secret created.");
                Ok(Self::from_bytes(bytes))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn derive(&self, label: &str) -> [u8; 32] {
        let mut mac = KeyedMac::new(self.suite, &self.bytes);
        mac.update(label.as_bytes());
        mac.finalize()
    }

    /// The pseudonymisation key.
    pub fn pseudonym_key(&self) -> PseudonymKey {
        PseudonymKey::of_suite(self.suite, self.derive("unsilo/pseudonym/v1"))
    }

    /// The key that seals the hub's own records on the `_unsilo.*` topics ([`unsilo_bus::seal`]): every hub of
    /// a deployment shares it, nobody else has it.
    pub fn seal_key(&self) -> [u8; 32] {
        self.derive("unsilo/seal/v1")
    }

    /// An operator's TOTP secret (RFC 6238), for enrolment epoch `epoch`: bumping `totp_epoch` in the
    /// operator's configuration re-enrols them with a new secret. 20 bytes, the RFC's SHA-1 key length.
    pub fn totp_secret(&self, operator: &str, epoch: u32) -> [u8; 20] {
        let full = self.derive(&format!("unsilo/totp/v1/{epoch}/{operator}"));
        let mut secret = [0u8; 20];
        secret.copy_from_slice(&full[..20]);
        secret
    }

    /// The webhook signing key of a subscription.
    pub fn webhook_key(&self, subscription: &str) -> Vec<u8> {
        self.derive(&format!("unsilo/webhook/v1/{subscription}"))
            .to_vec()
    }
}

/// Reads a file that holds a secret or a private key, refusing it when its group or others may read or write it
/// (the message names the file, its mode and the fix): a key anyone on the machine can read is no key.
pub fn read_private(path: &Path) -> std::io::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "mode {mode:03o} lets other users on this machine read or change it; the hub refuses it — run `chmod 600 {}`",
                    path.display()
                ),
            ));
        }
    }
    std::fs::read_to_string(path)
}

/// Creates `path` readable only by its owner (mode 0600 on Unix) and writes `bytes`, fsynced. Fails if the file
/// exists.
#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates `path` and writes `bytes` (no permission bits off Unix).
#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_secret_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        HubSecret::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = HubSecret::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("644") && err.contains("chmod 600"), "{err}");
        let key = dir.path().join("audit.key");
        crate::audit::SigningKey::load_or_create(&key, unsilo_schemas::crypto::Suite::Gm).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(
            crate::audit::SigningKey::load_or_create(&key, unsilo_schemas::crypto::Suite::Gm)
                .is_err()
        );
    }

    #[test]
    fn the_secret_file_is_created_once_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/hub.secret");
        let a = HubSecret::load_or_create(&path).unwrap();
        let b = HubSecret::load_or_create(&path).unwrap();
        assert_eq!(a.webhook_key("x.y"), b.webhook_key("x.y"));
        assert_ne!(a.webhook_key("x.y"), a.webhook_key("x.z"));
        assert!(!format!("{a:?}").contains(&hex::encode(a.bytes)));
        std::fs::write(&path, "nothex").unwrap();
        assert!(matches!(
            HubSecret::load_or_create(&path),
            Err(SecretError::Malformed(_))
        ));
    }
}
