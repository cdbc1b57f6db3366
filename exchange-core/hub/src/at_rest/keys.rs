//! The keys of data at rest (envelope encryption): a data key per topic and day, wrapped by a key-encryption
//! key (KEK).
//!
//! - **KEKs** come from a [`KeyWrapper`]. The one shipped is [`FileKeyring`]: a key file (`[security.keys]
//!   kek_file`, JSON, mode 0600) holding one or more KEKs by id, the newest current. A certified crypto module
//!   (a server crypto machine behind GM/T 0018 SDF, or a KMS) plugs in as another `KeyWrapper`: the hub only
//!   ever asks it to wrap and unwrap data keys.
//! - **Data keys** live in `[security.keys] data_key_dir`, one file per topic and day (`<topic>/<YYYY-MM-DD>.json`,
//!   Beijing dates), each holding the data key wrapped by a KEK — never the data key in clear. They are kept
//!   apart from the bus on purpose: a copy of the bus's files (or of the Kafka topics) holds no key at all.
//! - **Crypto-shredding**: when retention has removed a day of a topic, [`DataKeys::shred_before`] deletes that
//!   day's data key, so the day is unreadable everywhere it may still lie — a backup of the bus taken before
//!   included.
//! - **Rotation** ([`rotate_kek`], `unsilo keys rotate`): a new KEK becomes current, every data key is
//!   re-wrapped under it (the data is not touched), and the old KEK is removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::{Deserialize, Serialize};
use tracing::info;

use super::cipher::{Algorithm, CipherError, Key};
use crate::secrets::{read_private, write_private};

/// Why a key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is not what it should be.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The day's data key was removed with the day (crypto-shredding), or never existed.
    #[error("no data key for {topic} on {day}: removed with the day by retention, or never made")]
    NoDataKey {
        /// The topic.
        topic: String,
        /// The day.
        day: String,
    },
    /// The KEK a data key was wrapped with is not in the keyring.
    #[error(
        "data key of {topic} on {day} is wrapped by KEK `{kek}`, which the keyring no longer has"
    )]
    UnknownKek {
        /// The topic.
        topic: String,
        /// The day.
        day: String,
        /// The KEK id.
        kek: String,
    },
    /// A wrapped key did not unwrap.
    #[error("data key of {topic} on {day}: {source}")]
    Unwrap {
        /// The topic.
        topic: String,
        /// The day.
        day: String,
        /// Why.
        source: CipherError,
    },
}

/// What wraps and unwraps data keys: a key file here, a crypto module (GM/T 0018 SDF) or a KMS elsewhere.
pub trait KeyWrapper: Send + Sync + std::fmt::Debug {
    /// Wraps `key` under the current KEK, bound to `aad`; returns the KEK's id and the wrapped bytes.
    fn wrap(&self, key: &Key, aad: &[u8]) -> Result<(String, Vec<u8>), KeyStoreError>;

    /// Unwraps bytes wrapped under KEK `kek`, bound to `aad`, into a key of `algorithm`.
    fn unwrap(
        &self,
        kek: &str,
        algorithm: Algorithm,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Result<Key, KeyUnwrapError>;
}

/// Why a wrapped key did not unwrap.
#[derive(Debug)]
pub enum KeyUnwrapError {
    /// The KEK is not known.
    UnknownKek,
    /// The KEK is known but the bytes do not authenticate.
    Cipher(CipherError),
    /// The keyring could not be read.
    Store(KeyStoreError),
}

/// One KEK as the keyring file holds it.
#[derive(Clone, Serialize, Deserialize)]
struct KekEntry {
    id: String,
    algorithm: Algorithm,
    /// Hex.
    key: String,
}

/// The keyring file: its KEKs, the last one current.
#[derive(Clone, Default, Serialize, Deserialize)]
struct KeyringFile {
    keys: Vec<KekEntry>,
}

/// KEKs from a key file (`[security.keys] kek_file`), created with one fresh KEK of the suite's algorithm if
/// missing. The file is read again whenever a KEK id is not among those loaded, so a rotation made by
/// `unsilo keys rotate` while the hub runs is picked up.
#[derive(Debug)]
pub struct FileKeyring {
    path: PathBuf,
    keys: RwLock<Vec<(String, Key)>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyStoreError + '_ {
    move |source| KeyStoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn malformed(path: &Path, reason: impl Into<String>) -> KeyStoreError {
    KeyStoreError::Malformed {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn new_kek_id() -> String {
    let tag: [u8; 4] = rand::random();
    format!(
        "kek-{}-{}",
        chrono::Utc::now().format("%Y%m%d"),
        hex::encode(tag)
    )
}

impl FileKeyring {
    /// The keyring of `path`, created with a fresh KEK of `algorithm` if the file does not exist.
    pub fn open(path: &Path, algorithm: Algorithm) -> Result<Self, KeyStoreError> {
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io(path))?;
            }
            let key = Key::generate(algorithm);
            let file = KeyringFile {
                keys: vec![KekEntry {
                    id: new_kek_id(),
                    algorithm,
                    key: hex::encode(key.bytes()),
                }],
            };
            write_keyring(path, &file)?;
            info!(path = %path.display(), algorithm = algorithm.as_str(), "Key-encryption key created.");
        }
        let ring = Self {
            path: path.to_owned(),
            keys: RwLock::new(Vec::new()),
        };
        ring.reload()?;
        Ok(ring)
    }

    fn reload(&self) -> Result<(), KeyStoreError> {
        let loaded = load_keyring(&self.path)?;
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = loaded;
        Ok(())
    }

    fn find(&self, id: &str) -> Option<Key> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, key)| key.clone())
    }
}

fn read_keyring_file(path: &Path) -> Result<KeyringFile, KeyStoreError> {
    let text = read_private(path).map_err(io(path))?;
    let file: KeyringFile =
        serde_json::from_str(&text).map_err(|e| malformed(path, format!("not a keyring: {e}")))?;
    if file.keys.is_empty() {
        return Err(malformed(path, "the keyring holds no key"));
    }
    Ok(file)
}

fn load_keyring(path: &Path) -> Result<Vec<(String, Key)>, KeyStoreError> {
    read_keyring_file(path)?
        .keys
        .into_iter()
        .map(|e| {
            let bytes = hex::decode(&e.key).map_err(|_| malformed(path, "a key is not hex"))?;
            let key = Key::from_bytes(e.algorithm, bytes)
                .map_err(|err| malformed(path, format!("key `{}`: {err}", e.id)))?;
            Ok((e.id, key))
        })
        .collect()
}

fn write_keyring(path: &Path, file: &KeyringFile) -> Result<(), KeyStoreError> {
    let text = serde_json::to_string_pretty(file).map_err(|e| malformed(path, e.to_string()))?;
    write_atomically(path, text.as_bytes())
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600) and renames it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), KeyStoreError> {
    let tmp = path.with_extension(format!("tmp-{}", hex::encode(rand::random::<[u8; 4]>())));
    write_private(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl KeyWrapper for FileKeyring {
    fn wrap(&self, key: &Key, aad: &[u8]) -> Result<(String, Vec<u8>), KeyStoreError> {
        // The newest KEK of the file as it is now: a rotation under way has made its new KEK current.
        self.reload()?;
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let (id, kek) = keys
            .last()
            .ok_or_else(|| malformed(&self.path, "the keyring holds no key"))?;
        Ok((id.clone(), kek.seal(key.bytes(), aad)))
    }

    fn unwrap(
        &self,
        kek: &str,
        algorithm: Algorithm,
        wrapped: &[u8],
        aad: &[u8],
    ) -> Result<Key, KeyUnwrapError> {
        let found = match self.find(kek) {
            Some(k) => Some(k),
            None => {
                self.reload().map_err(KeyUnwrapError::Store)?;
                self.find(kek)
            }
        };
        let kek = found.ok_or(KeyUnwrapError::UnknownKek)?;
        let bytes = kek.open(wrapped, aad).map_err(KeyUnwrapError::Cipher)?;
        Key::from_bytes(algorithm, bytes).map_err(KeyUnwrapError::Cipher)
    }
}

/// A data key's file: the key wrapped, and what it was wrapped with.
#[derive(Serialize, Deserialize)]
struct DataKeyFile {
    topic: String,
    day: String,
    algorithm: Algorithm,
    kek: String,
    /// Hex of `nonce ‖ wrapped key ‖ tag`.
    wrapped: String,
}

/// What a wrapped data key is bound to.
fn data_key_aad(topic: &str, day: &str, algorithm: Algorithm) -> Vec<u8> {
    format!("unsilo-data-key-v1\0{topic}\0{day}\0{}", algorithm.as_str()).into_bytes()
}

/// The data keys of every encrypted topic, by day.
#[derive(Debug)]
pub struct DataKeys {
    dir: PathBuf,
    algorithm: Algorithm,
    wrapper: Arc<dyn KeyWrapper>,
    /// Topic → day → key: looked up by `&str`, without allocating, once per record.
    cache: Mutex<HashMap<String, HashMap<String, Arc<Key>>>>,
}

impl DataKeys {
    /// The data keys under `dir`, new ones of `algorithm`, wrapped by `wrapper`.
    pub fn new(dir: &Path, algorithm: Algorithm, wrapper: Arc<dyn KeyWrapper>) -> Self {
        Self {
            dir: dir.to_owned(),
            algorithm,
            wrapper,
            cache: Mutex::default(),
        }
    }

    fn file(&self, topic: &str, day: &str) -> PathBuf {
        self.dir.join(topic).join(format!("{day}.json"))
    }

    fn cached(&self, topic: &str, day: &str) -> Option<Arc<Key>> {
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(topic)
            .and_then(|days| days.get(day))
            .cloned()
    }

    fn remember(&self, topic: &str, day: &str, key: Key) -> Arc<Key> {
        let key = Arc::new(key);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(topic.to_owned())
            .or_default()
            .insert(day.to_owned(), key.clone());
        key
    }

    fn forget(&self, topic: &str, day: &str) {
        if let Some(days) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(topic)
        {
            days.remove(day);
        }
    }

    /// The data key to encrypt `topic`'s records of `day` with, made (and its wrapped form written) if the day
    /// has none yet. Two hub processes making the same day's key at once agree on the first one written.
    pub fn for_writing(&self, topic: &str, day: &str) -> Result<Arc<Key>, KeyStoreError> {
        if let Some(k) = self.cached(topic, day) {
            return Ok(k);
        }
        let path = self.file(topic, day);
        if path.exists() {
            return self.for_reading(topic, day);
        }
        let key = Key::generate(self.algorithm);
        let (kek, wrapped) = self
            .wrapper
            .wrap(&key, &data_key_aad(topic, day, self.algorithm))?;
        let file = DataKeyFile {
            topic: topic.to_owned(),
            day: day.to_owned(),
            algorithm: self.algorithm,
            kek,
            wrapped: hex::encode(wrapped),
        };
        let parent = path.parent().unwrap_or(&self.dir).to_owned();
        std::fs::create_dir_all(&parent).map_err(io(&parent))?;
        let text = serde_json::to_vec_pretty(&file).map_err(|e| malformed(&path, e.to_string()))?;
        let tmp = path.with_extension(format!("tmp-{}", hex::encode(rand::random::<[u8; 4]>())));
        write_private(&tmp, &text).map_err(io(&tmp))?;
        // A hard link fails if the day's key appeared meanwhile: the first one written wins.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(self.remember(topic, day, key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.for_reading(topic, day),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// The data key `topic`'s records of `day` were encrypted with.
    pub fn for_reading(&self, topic: &str, day: &str) -> Result<Arc<Key>, KeyStoreError> {
        if let Some(k) = self.cached(topic, day) {
            return Ok(k);
        }
        let path = self.file(topic, day);
        let file = match read_data_key_file(&path) {
            Ok(f) => f,
            Err(KeyStoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(KeyStoreError::NoDataKey {
                    topic: topic.to_owned(),
                    day: day.to_owned(),
                })
            }
            Err(e) => return Err(e),
        };
        let key = self.unwrap_file(&path, &file)?;
        Ok(self.remember(topic, day, key))
    }

    fn unwrap_file(&self, path: &Path, file: &DataKeyFile) -> Result<Key, KeyStoreError> {
        let wrapped = hex::decode(&file.wrapped).map_err(|_| malformed(path, "not hex"))?;
        self.wrapper
            .unwrap(
                &file.kek,
                file.algorithm,
                &wrapped,
                &data_key_aad(&file.topic, &file.day, file.algorithm),
            )
            .map_err(|e| match e {
                KeyUnwrapError::UnknownKek => KeyStoreError::UnknownKek {
                    topic: file.topic.clone(),
                    day: file.day.clone(),
                    kek: file.kek.clone(),
                },
                KeyUnwrapError::Cipher(source) => KeyStoreError::Unwrap {
                    topic: file.topic.clone(),
                    day: file.day.clone(),
                    source,
                },
                KeyUnwrapError::Store(e) => e,
            })
    }

    /// The topics that have data keys.
    pub fn topics(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut topics: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        topics.sort();
        topics
    }

    /// The days of `topic` that have data keys, oldest first.
    pub fn days(&self, topic: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join(topic)) else {
            return Vec::new();
        };
        let mut days: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .map(str::to_owned)
            })
            .collect();
        days.sort();
        days
    }

    /// Deletes `topic`'s data keys of the days before `first_kept` (a `YYYY-MM-DD` day): whatever of those
    /// days is left anywhere can no longer be decrypted. Returns the days removed.
    pub fn shred_before(&self, topic: &str, first_kept: &str) -> Vec<String> {
        let mut removed = Vec::new();
        for day in self.days(topic) {
            if day.as_str() >= first_kept {
                break;
            }
            let path = self.file(topic, &day);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    self.forget(topic, &day);
                    removed.push(day);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "A data key past retention could not be removed; retried on the next pass.");
                }
            }
        }
        removed
    }
}

fn read_data_key_file(path: &Path) -> Result<DataKeyFile, KeyStoreError> {
    let text = read_private(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| malformed(path, format!("not a data key: {e}")))
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The new current KEK.
    pub kek: String,
    /// The KEKs removed.
    pub retired: Vec<String>,
    /// Data keys re-wrapped.
    pub rewrapped: usize,
}

/// Rotates the KEK of `kek_file`: a fresh KEK of `algorithm` becomes current, every data key under
/// `data_key_dir` is re-wrapped under it (the data is not rewritten), and the old KEKs are removed from the
/// keyring. Safe while a hub runs: the hub wraps new data keys under the newest KEK and re-reads the keyring
/// for a KEK it does not know; the data keys are scanned twice so one made during the first pass is caught.
pub fn rotate_kek(
    kek_file: &Path,
    data_key_dir: &Path,
    algorithm: Algorithm,
) -> Result<Rotation, KeyStoreError> {
    let mut ring = read_keyring_file(kek_file)?;
    let retired: Vec<String> = ring.keys.iter().map(|k| k.id.clone()).collect();
    let new = Key::generate(algorithm);
    let new_id = new_kek_id();
    ring.keys.push(KekEntry {
        id: new_id.clone(),
        algorithm,
        key: hex::encode(new.bytes()),
    });
    write_keyring(kek_file, &ring)?;
    let keyring: Arc<dyn KeyWrapper> = Arc::new(FileKeyring::open(kek_file, algorithm)?);
    let store = DataKeys::new(data_key_dir, algorithm, keyring.clone());
    let mut rewrapped = 0;
    for _pass in 0..2 {
        for topic in store.topics() {
            for day in store.days(&topic) {
                let path = store.file(&topic, &day);
                let mut file = read_data_key_file(&path)?;
                if file.kek == new_id {
                    continue;
                }
                let key = store.unwrap_file(&path, &file)?;
                let (kek, wrapped) =
                    keyring.wrap(&key, &data_key_aad(&file.topic, &file.day, file.algorithm))?;
                file.kek = kek;
                file.wrapped = hex::encode(wrapped);
                let text = serde_json::to_vec_pretty(&file)
                    .map_err(|e| malformed(&path, e.to_string()))?;
                write_atomically(&path, &text)?;
                rewrapped += 1;
            }
        }
    }
    ring.keys.retain(|k| k.id == new_id);
    write_keyring(kek_file, &ring)?;
    Ok(Rotation {
        kek: new_id,
        retired,
        rewrapped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_are_wrapped_shredded_and_survive_a_kek_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let kek_file = dir.path().join("kek.json");
        let data_dir = dir.path().join("data-keys");
        let ring: Arc<dyn KeyWrapper> =
            Arc::new(FileKeyring::open(&kek_file, Algorithm::Sm4Gcm).unwrap());
        let keys = DataKeys::new(&data_dir, Algorithm::Sm4Gcm, ring);
        let a = keys.for_writing("raw.grid", "2026-12-06").unwrap();
        let b = keys.for_writing("raw.grid", "2026-12-07").unwrap();
        assert_ne!(a.bytes(), b.bytes(), "a key per day");
        let sealed = a.seal(b"610921196105170317", b"aad");
        // The key file holds the data key only wrapped.
        let on_disk = std::fs::read_to_string(data_dir.join("raw.grid/2026-12-06.json")).unwrap();
        assert!(!on_disk.contains(&hex::encode(a.bytes())));

        // Another process (a fresh store over the same files) reads the same key.
        let ring2: Arc<dyn KeyWrapper> =
            Arc::new(FileKeyring::open(&kek_file, Algorithm::Sm4Gcm).unwrap());
        let other = DataKeys::new(&data_dir, Algorithm::Sm4Gcm, ring2);
        assert_eq!(
            other.for_reading("raw.grid", "2026-12-06").unwrap().bytes(),
            a.bytes()
        );
        // Rotation re-wraps without changing the data key.
        let rotation = rotate_kek(&kek_file, &data_dir, Algorithm::Sm4Gcm).unwrap();
        assert_eq!(rotation.rewrapped, 2);
        assert_eq!(rotation.retired.len(), 1);
        let ring3: Arc<dyn KeyWrapper> =
            Arc::new(FileKeyring::open(&kek_file, Algorithm::Sm4Gcm).unwrap());
        let after = DataKeys::new(&data_dir, Algorithm::Sm4Gcm, ring3);
        let again = after.for_reading("raw.grid", "2026-12-06").unwrap();
        assert_eq!(again.open(&sealed, b"aad").unwrap(), b"610921196105170317");
        let keyring = std::fs::read_to_string(&kek_file).unwrap();
        assert!(
            !keyring.contains(&rotation.retired[0]),
            "the old KEK is gone"
        );

        // Shredding removes the day's key: its data is unreadable from then on.
        assert_eq!(
            after.shred_before("raw.grid", "2026-12-07"),
            vec!["2026-12-06"]
        );
        assert!(matches!(
            after.for_reading("raw.grid", "2026-12-06"),
            Err(KeyStoreError::NoDataKey { .. })
        ));
        assert!(after.for_reading("raw.grid", "2026-12-07").is_ok());
    }
}
