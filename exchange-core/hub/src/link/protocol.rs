//! The link protocol's messages: what an edge node (前置交换节点) and the hub say to each other over
//! `/link/v1/…`. Both sides use these types, so the OpenAPI document, the hub's handlers and the edge's client
//! cannot drift apart.
//!
//! The link is outbound only: the edge calls, the hub answers. One exchange moves one connector's records:
//!
//! 1. `GET /link/v1/positions` — the next offset of each connector's buffer the hub has not yet acknowledged;
//! 2. `POST /link/v1/batches` — records from that offset on, in order, the body gzip-compressed;
//!    the answer acknowledges them (`next_offset`) once they are durable at the hub;
//! 3. `POST /link/v1/status` — the edge's version, buffer depth and counts, answered with the connector
//!    definitions the hub holds for it (name, version), which the edge fetches from `GET /link/v1/definitions`
//!    when they changed.
//!
//! Offsets are the edge buffer's own (one partition per connector), so a batch sent twice — its answer lost to
//! a cut link — is recognised by its offsets and acknowledged without being written again; the record ids the
//! hub's normalisation computes stay the idempotency key beyond the hub.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of a batch body before compression.
pub const BATCH_MEDIA_TYPE: &str = "application/json";

/// What an edge sends to enrol: the one-time code the hub's operator gave it and a certificate signing request
/// for the key it made and keeps.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    /// The edge's id, as the operator registered it.
    pub edge: String,
    /// The one-time enrolment code (valid once, for a limited time).
    pub code: String,
    /// A PKCS#10 certificate signing request, PEM, for the edge's own key.
    pub csr_pem: String,
}

/// The hub's answer to an enrolment: the edge's certificate and what it needs to trust the hub's word.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrolAnswer {
    /// The edge's id.
    pub edge: String,
    /// The hub's id.
    pub hub: String,
    /// The edge's client certificate, PEM, issued by the hub's link CA; the hub binds the edge to its
    /// SHA-256 fingerprint.
    pub certificate_pem: String,
    /// The link CA's certificate, PEM.
    pub ca_pem: String,
    /// The hub's signing public key (hex: `04‖x‖y` for SM2, 32 bytes for Ed25519): connector definitions the hub
    /// pushes are signed with it.
    pub hub_public_key: String,
    /// `SM2` or `Ed25519`.
    pub key_algorithm: String,
}

/// The hub's acknowledged positions for this edge: per connector, the next offset of the edge's buffer it has
/// not yet made durable.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Positions {
    /// Connector → where the hub stands in which buffer.
    pub connectors: BTreeMap<String, Position>,
}

/// Where the hub stands in one connector's buffer at an edge.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Position {
    /// The id of the edge's buffer these offsets count in (made with its data directory). An edge whose
    /// buffer has another id — its data directory was replaced — starts from its own first offset, and the
    /// hub counts from 0 in the new buffer.
    pub buffer: String,
    /// The next offset the hub has not made durable (0 before the first batch).
    pub next_offset: u64,
}

/// One original an edge's connector read, as the source gave it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRecord {
    /// Its offset in the edge's buffer for this connector.
    pub offset: u64,
    /// The original bytes, base64 (standard alphabet).
    pub original_base64: String,
    /// The record as JSON, as the edge's transport decoded it; absent when it could not be decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parsed: Option<serde_json::Value>,
    /// Why it could not be decoded, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parse_error: Option<String>,
    /// Where it came from at the department (`dibao id=42`, `orders.csv line 17`).
    pub origin: String,
    /// When the edge read it, milliseconds since the Unix epoch.
    pub read_at_ms: i64,
}

/// A batch of one connector's originals, in offset order, without gaps.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkBatch {
    /// The connector (its definition is the hub's, pushed to the edge).
    pub connector: String,
    /// The id of the edge's buffer the offsets count in ([`Position::buffer`]).
    pub buffer: String,
    /// The records.
    pub records: Vec<LinkRecord>,
}

/// The hub's answer to a batch.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchAnswer {
    /// The connector.
    pub connector: String,
    /// Everything before this offset is durable at the hub; the edge may drop it from its buffer.
    pub next_offset: u64,
    /// Records written this time (a batch sent again is acknowledged without being written twice).
    pub written: u64,
    /// Of those, accepted into the shared schema.
    pub accepted: u64,
    /// Of those, rejected to the hub's dead-letter topic with their reason.
    pub rejected: u64,
}

/// How one connector of an edge stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ConnectorStatus {
    /// The connector.
    pub name: String,
    /// The definition version the edge runs it under (0 when it has none yet and waits for the hub's).
    pub definition_version: u64,
    /// Originals read from the department's system since the edge started.
    pub read: u64,
    /// Originals the hub acknowledged since the edge started.
    pub forwarded: u64,
    /// Originals waiting in the buffer.
    pub waiting: u64,
    /// Errors since the edge started (reading the source, or refusing input while the buffer is full).
    pub errors: u64,
    /// The last error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How one local delivery of an edge stands (a subscription written into the department's database or folder).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DeliveryStatus {
    /// The subscription.
    pub subscription: String,
    /// Where it is written: `sql` or `folder`.
    pub target: String,
    /// Records written since the edge started.
    pub written: u64,
    /// Errors since the edge started.
    pub errors: u64,
    /// The last error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What an edge reports about itself, every few seconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EdgeReport {
    /// The edge's software version.
    pub version: String,
    /// Bytes waiting in its buffer (not yet acknowledged by the hub).
    pub buffer_bytes: u64,
    /// The buffer's limit, bytes; at the limit the edge stops taking input (sources wait, nothing is dropped).
    pub buffer_limit_bytes: u64,
    /// Whether the buffer has passed its alarm level.
    pub buffer_alarm: bool,
    /// Records waiting in the buffer, all connectors.
    pub lag_records: u64,
    /// Milliseconds since the oldest waiting record was read (0 when none waits).
    pub lag_ms: u64,
    /// Per connector.
    pub connectors: Vec<ConnectorStatus>,
    /// Per local delivery.
    #[serde(default)]
    pub deliveries: Vec<DeliveryStatus>,
}

/// A connector definition the hub holds for an edge, as listed in a status answer.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DefinitionVersion {
    /// The connector.
    pub connector: String,
    /// Its version (1, 2, …; each push makes the next).
    pub version: u64,
}

/// The hub's answer to a status report.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusAnswer {
    /// The definitions the hub holds for this edge: fetch them when one is newer than what runs.
    pub definitions: Vec<DefinitionVersion>,
}

/// A connector definition pushed to an edge, signed by the hub.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct SignedDefinition {
    /// The edge it is for.
    pub edge: String,
    /// The connector.
    pub connector: String,
    /// Its version.
    pub version: u64,
    /// The definition's files by path relative to its folder (`connector.toml`, the contract, the mappings),
    /// as the operator gave them.
    pub files: BTreeMap<String, String>,
    /// The hub's signature (hex; SM2 DER or Ed25519) over [`SignedDefinition::message`].
    pub signature: String,
    /// The hub that signed it.
    pub hub: String,
    /// When the operator pushed it, milliseconds since the Unix epoch.
    pub pushed_at_ms: i64,
}

impl SignedDefinition {
    /// The bytes its signature covers: a domain tag, the hub, the edge, the connector, the version, then each
    /// file's path and contents in path order, every part length-prefixed, so nothing can be shifted from one
    /// part into another.
    pub fn message(&self) -> Vec<u8> {
        let mut out = b"unsilo.link.definition.v1".to_vec();
        let mut part = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        part(self.hub.as_bytes());
        part(self.edge.as_bytes());
        part(self.connector.as_bytes());
        part(&self.version.to_be_bytes());
        for (path, text) in &self.files {
            part(path.as_bytes());
            part(text.as_bytes());
        }
        out
    }

    /// The connector definition its files make, checked as any definition is.
    pub fn load(
        &self,
    ) -> Result<
        unsilo_connectors::definition::ConnectorDefinition,
        unsilo_connectors::definition::DefinitionError,
    > {
        unsilo_connectors::definition::ConnectorDefinition::load_with(|relative| {
            let origin = format!("{}/{relative} (v{})", self.connector, self.version);
            self.files
                .get(relative)
                .map(|text| (origin.clone(), text.clone()))
                .ok_or_else(|| unsilo_connectors::definition::DefinitionError::Read {
                    path: origin,
                    reason: "the definition has no such file".into(),
                })
        })
    }
}

/// The definitions the hub holds for an edge.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Definitions {
    /// Each connector's newest definition.
    pub definitions: Vec<SignedDefinition>,
}

/// A member hub's catalogue, published to its parent (级联: the higher platform sees the lower one's resources).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishedCatalogue {
    /// Every entry of the member's resource catalogue, as the member keeps it.
    pub entries: Vec<unsilo_policy::catalogue::CatalogueEntry>,
}

/// The parent's receipt of a published catalogue.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CatalogueReceipt {
    /// The member hub.
    pub member: String,
    /// Entries now on record for it.
    pub entries: usize,
}
