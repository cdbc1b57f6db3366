//! The seal of the hub's own records: what lets a hub tell the records the hubs of its deployment wrote on the
//! `_unsilo.*` topics (control plane, registry, connector checkpoints, replay marks) from anything else a client
//! with produce access appended.
//!
//! A seal is an HMAC-SM3 (国密, the default) or HMAC-SHA256 (`[security] crypto = "international"`) under a key
//! derived from the deployment secret (`[security] secret_file`, which every
//! hub of one deployment shares and nothing else has) over the topic, the writing hub's id, the record's key and
//! its value, each length-prefixed so no two different records share a message. It travels in two headers,
//! `unsilo.seal.hub` and `unsilo.seal` (hex). Readers apply only records whose seal verifies, and count and log
//! the others.

use unsilo_schemas::crypto::{mac_parts, KeyedMac, Suite};
use unsilo_schemas::names::{HEADER_SEAL, HEADER_SEAL_HUB};

use crate::Record;

/// The seal of one hub of a deployment: who writes, and the key every hub of the deployment shares.
#[derive(Clone)]
pub struct RecordSeal {
    hub: String,
    key: [u8; 32],
    suite: Suite,
}

impl std::fmt::Debug for RecordSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSeal")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

impl RecordSeal {
    /// The seal of hub `hub` under the deployment's sealing key (derived from the deployment secret), with the
    /// default suite's keyed hash (HMAC-SM3).
    pub fn new(hub: &str, key: [u8; 32]) -> Self {
        Self {
            hub: hub.to_owned(),
            key,
            suite: Suite::default(),
        }
    }

    /// The same seal with `suite`'s keyed hash (`[security] crypto`; every hub of a deployment agrees).
    pub fn with_suite(self, suite: Suite) -> Self {
        Self { suite, ..self }
    }

    fn mac(&self, topic: &str, hub: &str, key: &[u8], value: Option<&[u8]>) -> KeyedMac {
        // Length-prefixed parts, so no two different records share a message.
        mac_parts(
            self.suite,
            &self.key,
            &[
                b"unsilo-seal-v1".as_slice(),
                topic.as_bytes(),
                hub.as_bytes(),
                key,
                value.unwrap_or(b"\0tombstone"),
            ],
        )
    }

    /// `record` sealed for `topic` by this hub.
    pub fn seal(&self, topic: &str, record: Record) -> Record {
        let tag = self
            .mac(
                topic,
                &self.hub,
                record.key.as_deref().unwrap_or_default(),
                record.value.as_deref(),
            )
            .finalize();
        let hub = self.hub.clone().into_bytes();
        record
            .with_header(HEADER_SEAL_HUB, hub)
            .with_header(HEADER_SEAL, hex::encode(tag).into_bytes())
    }

    /// Whether `r`, read from `topic`, carries a valid seal of this deployment; `Err` says what is wrong.
    pub fn check(&self, topic: &str, r: &Record) -> Result<(), &'static str> {
        let hub = r
            .header(HEADER_SEAL_HUB)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or("it names no writing hub")?;
        let tag = r
            .header(HEADER_SEAL)
            .and_then(|t| hex::decode(t).ok())
            .ok_or("it carries no seal")?;
        self.mac(
            topic,
            hub,
            r.key.as_deref().unwrap_or_default(),
            r.value.as_deref(),
        )
        .verify(&tag)
        .then_some(())
        .ok_or("its seal does not verify: it was not written by a hub of this deployment")
    }
}
