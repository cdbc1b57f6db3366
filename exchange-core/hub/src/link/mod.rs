//! Links: the nodes that connect to this hub from outside its network — edge nodes (前置交换节点) in
//! departments — their enrolment, the connector definitions the hub pushes to them, and the records they
//! forward.
//!
//! - **Enrolment.** An operator registers an edge ([`Links::register`]) and hands its one-time code to the
//!   department. The edge makes its own key, sends a certificate signing request with the code
//!   ([`Links::enrol`]), and gets a client certificate from the hub's link CA ([`ca`]); the hub binds the edge to
//!   that certificate's fingerprint. From then on the edge authenticates by its certificate alone, on a TLS
//!   connection it opens (outbound from the department).
//! - **Definitions.** The connector definitions an edge runs are the hub's: an operator pushes them
//!   ([`Links::push_definition`]), each push a new version signed with the hub's signing key, which the edge
//!   verifies with the key it pinned at enrolment.
//! - **Forwarding.** The edge sends what its connectors read, as originals, in order from the position the hub
//!   acknowledged ([`Links::accept`]). The hub normalises them with the same definition as its own connectors
//!   do and writes the records and the new position in one write, so a batch sent again after a cut link is
//!   acknowledged, not written twice.
//! - **Status.** Every few seconds the edge reports its version, buffer and counts ([`Links::report`]); the
//!   console and `GET /admin/edges` show them.
//!
//! Everything is kept on the compacted, sealed `_unsilo.links` topic and read back at start.

pub mod ca;
pub mod cascade;
pub mod cascade_routes;
pub mod parent;
pub mod protocol;
pub mod routes;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{info, warn};
use unsilo_bus::seal::RecordSeal;
use unsilo_bus::{Bus, FetchRequest, Record, TopicSpec};
use unsilo_connectors::sdk::RawInput;
use unsilo_registry::Registry;
use unsilo_schemas::names::LINKS_TOPIC;
use utoipa::ToSchema;

use crate::audit::signing::SigningKey;
use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{digests_equal, Principal};
use crate::ingest::BusSink;
use crate::roles::{self, Action};
use protocol::{
    BatchAnswer, DefinitionVersion, Definitions, EdgeReport, EnrolAnswer, EnrolRequest, LinkBatch,
    Positions, SignedDefinition, StatusAnswer,
};

/// How long an enrolment code stays valid.
pub const ENROLMENT_CODE_VALIDITY: Duration = Duration::from_secs(72 * 3600);
/// How often an edge's report is kept on the bus (its alarm changing is kept at once).
const STATUS_KEPT_EVERY_MS: i64 = 60_000;
/// The most records one batch may carry.
pub const MAX_BATCH_RECORDS: usize = 5_000;

/// Why a link operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The caller may not do this.
    #[error("this is for {0}")]
    Forbidden(String),
    /// No such edge.
    #[error("no edge `{0}`")]
    NoEdge(String),
    /// The request is not acceptable; the message says what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// The enrolment code is wrong, used or expired (one answer for all three).
    #[error("the enrolment code is not valid for this edge (wrong, already used or expired): ask the hub's operator for a new one")]
    BadCode,
    /// The batch does not start where the hub's acknowledged position is.
    #[error("the batch for `{connector}` starts at offset {first}, but the hub has acknowledged up to {expected}: send from {expected}")]
    Gap {
        /// The connector.
        connector: String,
        /// Where the batch starts.
        first: u64,
        /// Where it should.
        expected: u64,
    },
    /// The bus, the CA or the sink failed.
    #[error("{0}")]
    Failed(String),
}

/// What kind of node links to the hub.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A department's edge node (前置交换节点).
    #[default]
    Edge,
    /// A lower-level hub (a county's under a city's or a province's: 级联), linked as an edge is.
    MemberHub,
}

/// An edge as the hub keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EdgeRecord {
    /// Its id (1–64 of `a-z`, `0-9`, `-`).
    pub id: String,
    /// What kind of node.
    #[serde(default)]
    pub kind: NodeKind,
    /// The organisation (agency id) whose network it runs in, if the hub knows it as an agency.
    #[serde(default)]
    pub organisation: Option<String>,
    /// What it is, for operators.
    #[serde(default)]
    pub description: String,
    /// When it was registered.
    pub registered_at_ms: i64,
    /// SHA-256 (hex) of the open enrolment code; `None` once used.
    #[serde(default)]
    pub code_sha256: Option<String>,
    /// When the open enrolment code expires.
    #[serde(default)]
    pub code_expires_at_ms: Option<i64>,
    /// SHA-256 (hex) of the client certificate it enrolled with.
    #[serde(default)]
    pub certificate_sha256: Option<String>,
    /// When it enrolled.
    #[serde(default)]
    pub enrolled_at_ms: Option<i64>,
    /// When an operator revoked it (its certificate is refused from then on).
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
}

/// What the hub keeps on `_unsilo.links`, one kind per key prefix.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Stored {
    /// `edge/<id>`.
    Edge(EdgeRecord),
    /// `definition/<edge>/<connector>`.
    Definition(SignedDefinition),
    /// `position/<edge>/<connector>`.
    Position {
        edge: String,
        connector: String,
        #[serde(default)]
        buffer: String,
        next_offset: u64,
    },
    /// `status/<edge>`.
    Status {
        edge: String,
        at_ms: i64,
        report: EdgeReport,
    },
    /// `catalogue/<member>`: a member hub's published catalogue.
    Catalogue {
        member: String,
        at_ms: i64,
        entries: Vec<unsilo_policy::catalogue::CatalogueEntry>,
    },
}

impl Stored {
    fn key(&self) -> String {
        match self {
            Self::Edge(e) => format!("edge/{}", e.id),
            Self::Definition(d) => format!("definition/{}/{}", d.edge, d.connector),
            Self::Position {
                edge, connector, ..
            } => format!("position/{edge}/{connector}"),
            Self::Status { edge, .. } => format!("status/{edge}"),
            Self::Catalogue { member, .. } => format!("catalogue/{member}"),
        }
    }
}

/// An edge as `GET /admin/edges` and the console show it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EdgeView {
    /// Its id.
    pub id: String,
    /// What kind of node.
    pub kind: NodeKind,
    /// The organisation it runs for.
    pub organisation: Option<String>,
    /// What it is.
    pub description: String,
    /// `awaiting_enrolment`, `enrolled` or `revoked`.
    pub state: String,
    /// When it was registered.
    pub registered_at_ms: i64,
    /// When it enrolled.
    pub enrolled_at_ms: Option<i64>,
    /// When the open enrolment code expires, while one is open.
    pub code_expires_at_ms: Option<i64>,
    /// When it last reported (absent before its first report).
    pub last_contact_ms: Option<i64>,
    /// Its last report: version, buffer, lag, per-connector counts and errors.
    pub report: Option<EdgeReport>,
    /// The connector definitions the hub holds for it.
    pub definitions: Vec<DefinitionVersion>,
    /// Per connector, the next offset of its buffer the hub has not yet acknowledged.
    pub acknowledged: BTreeMap<String, protocol::Position>,
    /// For a member hub: how many catalogue entries it has published.
    pub catalogue_entries: Option<usize>,
}

/// A member hub's catalogue as its parent keeps it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct LinkedCatalogue {
    /// The linked hub: a member's node id, or `parent`.
    pub hub: String,
    /// When it last published.
    pub published_at_ms: i64,
    /// Its entries.
    pub entries: Vec<unsilo_policy::catalogue::CatalogueEntry>,
}

/// A newly registered edge and its one-time enrolment code (shown once, stored only as a digest).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisteredEdge {
    /// The edge.
    pub edge: EdgeView,
    /// The one-time enrolment code: give it to the department; `unsilo edge enrol --code …` uses it.
    pub enrolment_code: String,
}

/// In memory: what `_unsilo.links` holds.
#[derive(Debug, Default)]
struct LinkState {
    edges: BTreeMap<String, EdgeRecord>,
    definitions: BTreeMap<(String, String), SignedDefinition>,
    positions: BTreeMap<(String, String), protocol::Position>,
    status: BTreeMap<String, (i64, EdgeReport)>,
    /// Per edge, when its kept report was made and its alarm then.
    status_kept: BTreeMap<String, (i64, bool)>,
    catalogues: BTreeMap<String, LinkedCatalogue>,
}

impl LinkState {
    fn apply(&mut self, stored: Stored) {
        match stored {
            Stored::Edge(e) => {
                self.edges.insert(e.id.clone(), e);
            }
            Stored::Definition(d) => {
                self.definitions
                    .insert((d.edge.clone(), d.connector.clone()), d);
            }
            Stored::Position {
                edge,
                connector,
                buffer,
                next_offset,
            } => {
                self.positions.insert(
                    (edge, connector),
                    protocol::Position {
                        buffer,
                        next_offset,
                    },
                );
            }
            Stored::Status {
                edge,
                at_ms,
                report,
            } => {
                self.status.insert(edge, (at_ms, report));
            }
            Stored::Catalogue {
                member,
                at_ms,
                entries,
            } => {
                self.catalogues.insert(
                    member.clone(),
                    LinkedCatalogue {
                        hub: member,
                        published_at_ms: at_ms,
                        entries,
                    },
                );
            }
        }
    }

    fn view(&self, e: &EdgeRecord) -> EdgeView {
        let state = if e.revoked_at_ms.is_some() {
            "revoked"
        } else if e.certificate_sha256.is_some() {
            "enrolled"
        } else {
            "awaiting_enrolment"
        };
        let status = self.status.get(&e.id);
        EdgeView {
            id: e.id.clone(),
            kind: e.kind,
            organisation: e.organisation.clone(),
            description: e.description.clone(),
            state: state.into(),
            registered_at_ms: e.registered_at_ms,
            enrolled_at_ms: e.enrolled_at_ms,
            code_expires_at_ms: e.code_sha256.as_ref().and(e.code_expires_at_ms),
            last_contact_ms: status.map(|(at, _)| *at),
            report: status.map(|(_, r)| r.clone()),
            definitions: self
                .definitions
                .values()
                .filter(|d| d.edge == e.id)
                .map(|d| DefinitionVersion {
                    connector: d.connector.clone(),
                    version: d.version,
                })
                .collect(),
            acknowledged: self
                .positions
                .iter()
                .filter(|((edge, _), _)| edge == &e.id)
                .map(|((_, c), p)| (c.clone(), p.clone()))
                .collect(),
            catalogue_entries: self.catalogues.get(&e.id).map(|c| c.entries.len()),
        }
    }
}

/// The client certificates of enrolled nodes, by fingerprint: shared with the authenticator, which turns a
/// connection presenting one (and no token) into [`Principal::Edge`].
#[derive(Debug, Default)]
pub struct NodeCertificates {
    by_fingerprint: RwLock<HashMap<String, String>>,
}

impl NodeCertificates {
    /// The node holding the certificate with this fingerprint, if one enrolled with it and is not revoked.
    pub fn node_of(&self, fingerprint: &str) -> Option<String> {
        self.by_fingerprint
            .read()
            .ok()
            .and_then(|m| m.get(&fingerprint.to_ascii_lowercase()).cloned())
    }

    fn refresh(&self, edges: &BTreeMap<String, EdgeRecord>) {
        let map = edges
            .values()
            .filter(|e| e.revoked_at_ms.is_none())
            .filter_map(|e| Some((e.certificate_sha256.clone()?, e.id.clone())))
            .collect();
        if let Ok(mut m) = self.by_fingerprint.write() {
            *m = map;
        }
    }
}

/// What the hub needs to normalise what edges forward, as it does for its own connectors.
#[derive(Clone)]
pub struct LinkContext {
    /// The hub's id.
    pub hub: String,
    /// The bus.
    pub bus: Arc<dyn Bus>,
    /// Seals what the hub writes on `_unsilo.links`.
    pub seal: RecordSeal,
    /// The registry the sinks register their schemas in.
    pub registry: Arc<Registry>,
    /// Topic sizes.
    pub topics: crate::config::TopicPlan,
    /// Ingest counts.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The evidence log (enrolments, definitions pushed and revocations are control entries).
    pub audit: Arc<AuditLog>,
    /// Signs pushed definitions.
    pub signing_key: Arc<SigningKey>,
    /// The hub's own connectors: an edge's connector may not take one of their names.
    pub hub_connectors: Vec<String>,
}

/// `(edge, connector)`.
type EdgeConnectorKey = (String, String);

/// The hub's side of every link.
pub struct Links {
    ctx: LinkContext,
    ca: ca::LinkCa,
    state: RwLock<LinkState>,
    /// Serialises writes of edges and definitions (read-modify-write of one record).
    writes: Mutex<()>,
    /// One batch at a time per `(edge, connector)`.
    batches: std::sync::Mutex<HashMap<EdgeConnectorKey, Arc<Mutex<()>>>>,
    /// One sink per connector definition version.
    sinks: Mutex<HashMap<(String, u64), Arc<BusSink>>>,
    certificates: Arc<NodeCertificates>,
    /// This hub's link to its parent, as the parent task last saw it (`None` without `[parent]`).
    parent: std::sync::Mutex<Option<parent::ParentLink>>,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links").finish_non_exhaustive()
    }
}

fn failed(e: impl std::fmt::Display) -> LinkError {
    LinkError::Failed(e.to_string())
}

/// Whether `id` is a valid edge id: 1–64 of `a-z`, `0-9` and `-`.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn require(who: &Principal, action: Action) -> Result<(), LinkError> {
    if roles::allows(who, action) {
        Ok(())
    } else {
        Err(LinkError::Forbidden(roles::who_may(action)))
    }
}

/// A one-time enrolment code: 20 random characters of an unambiguous alphabet, in groups of five (about 100
/// bits).
fn new_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let bytes: [u8; 20] = rand::random();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

impl Links {
    /// Opens the links: reads `_unsilo.links` (only records a hub of this deployment sealed) and loads or makes
    /// the link CA in `ca_dir`.
    pub async fn open(
        ctx: LinkContext,
        ca_dir: &std::path::Path,
        certificates: Arc<NodeCertificates>,
    ) -> Result<Arc<Self>, LinkError> {
        ctx.bus
            .create_topic(&TopicSpec::compacted(LINKS_TOPIC))
            .await
            .map_err(failed)?;
        let ca = ca::LinkCa::load_or_create(ca_dir, &ctx.hub).map_err(failed)?;
        let mut state = LinkState::default();
        let end = ctx
            .bus
            .end_offsets(LINKS_TOPIC)
            .await
            .map_err(failed)?
            .first()
            .copied()
            .unwrap_or(0);
        let mut next = 0;
        while next < end {
            let read = ctx
                .bus
                .fetch(&FetchRequest::new(
                    LINKS_TOPIC,
                    0,
                    next,
                    1000,
                    Duration::ZERO,
                ))
                .await
                .map_err(failed)?;
            let Some(last) = read.last() else { break };
            next = last.position.offset + 1;
            for r in read {
                if let Err(why) = ctx.seal.check(LINKS_TOPIC, &r.record) {
                    warn!(
                        offset = r.position.offset,
                        why, "A record on _unsilo.links is ignored."
                    );
                    continue;
                }
                match r
                    .record
                    .value
                    .as_deref()
                    .map(serde_json::from_slice::<Stored>)
                {
                    Some(Ok(stored)) => state.apply(stored),
                    Some(Err(e)) => {
                        warn!(offset = r.position.offset, error = %e, "An unreadable record on _unsilo.links is ignored.")
                    }
                    None => {}
                }
            }
        }
        certificates.refresh(&state.edges);
        state.status_kept = state
            .status
            .iter()
            .map(|(edge, (at_ms, r))| (edge.clone(), (*at_ms, r.buffer_alarm)))
            .collect();
        for (edge, (at_ms, r)) in &state.status {
            ctx.metrics.set_edge_report(
                edge,
                r.buffer_bytes,
                r.buffer_alarm,
                r.lag_records,
                *at_ms,
            );
        }
        info!(
            edges = state.edges.len(),
            definitions = state.definitions.len(),
            "Links ready."
        );
        Ok(Arc::new(Self {
            ctx,
            ca,
            state: RwLock::new(state),
            writes: Mutex::new(()),
            batches: std::sync::Mutex::new(HashMap::new()),
            sinks: Mutex::new(HashMap::new()),
            certificates,
            parent: std::sync::Mutex::new(None),
        }))
    }

    /// This hub's link to its parent as last seen, if it has one.
    pub fn parent_link(&self) -> Option<parent::ParentLink> {
        self.parent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Updates what is known of the link to the parent.
    pub fn update_parent_link(&self, update: impl FnOnce(&mut parent::ParentLink)) {
        let mut parent = self.parent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = parent.as_mut() {
            update(p);
        }
    }

    /// Starts showing the link to the parent.
    pub fn set_parent_link(&self, link: parent::ParentLink) {
        *self.parent.lock().unwrap_or_else(|p| p.into_inner()) = Some(link);
    }

    /// The link CA's certificate, DER: the TLS listener trusts it for client certificates.
    pub fn ca_der(&self) -> Result<Vec<u8>, LinkError> {
        self.ca.ca_der().map_err(failed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, LinkState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn sealed(&self, stored: &Stored) -> Result<Record, LinkError> {
        let value = serde_json::to_vec(stored).map_err(failed)?;
        Ok(self
            .ctx
            .seal
            .seal(LINKS_TOPIC, Record::new(stored.key(), value)))
    }

    async fn store(&self, stored: Stored) -> Result<(), LinkError> {
        let record = self.sealed(&stored)?;
        self.ctx
            .bus
            .publish(LINKS_TOPIC, vec![record])
            .await
            .map_err(failed)?;
        self.remember(stored);
        Ok(())
    }

    /// Takes `stored` into the in-memory state (the certificate map follows edge records only).
    fn remember(&self, stored: Stored) {
        let edge_changed = matches!(stored, Stored::Edge(_));
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.apply(stored);
        if edge_changed {
            self.certificates.refresh(&state.edges);
        }
    }

    async fn audit(
        &self,
        who: &Principal,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), LinkError> {
        self.ctx
            .audit
            .append(vec![AuditEvent::Control {
                actor: who.to_string(),
                role: who.role().map(|r| r.as_str().to_owned()),
                action: action.to_owned(),
                target: target.to_owned(),
                detail,
            }])
            .await
            .map_err(failed)
    }

    /// Every edge, for an operator.
    pub fn list(&self, who: &Principal) -> Result<Vec<EdgeView>, LinkError> {
        require(who, Action::ViewEdges)?;
        let state = self.read();
        Ok(state.edges.values().map(|e| state.view(e)).collect())
    }

    /// One edge, for an operator.
    pub fn get(&self, who: &Principal, id: &str) -> Result<EdgeView, LinkError> {
        require(who, Action::ViewEdges)?;
        let state = self.read();
        let e = state
            .edges
            .get(id)
            .ok_or_else(|| LinkError::NoEdge(id.into()))?;
        Ok(state.view(e))
    }

    /// Registers an edge — or opens a new enrolment for one already registered (a replaced machine, a lost
    /// key: its old certificate stops working when the new one is issued) — and returns its one-time code.
    pub async fn register(
        &self,
        who: &Principal,
        id: &str,
        kind: NodeKind,
        organisation: Option<String>,
        description: String,
    ) -> Result<RegisteredEdge, LinkError> {
        require(who, Action::ManageEdges)?;
        if !valid_node_id(id) {
            return Err(LinkError::Invalid(format!(
                "edge id `{id}` must be 1–64 characters of a-z, 0-9 and '-'"
            )));
        }
        if id == cascade::PARENT {
            return Err(LinkError::Invalid(format!(
                "`{id}` is the name this hub gives its own parent hub: choose another node id"
            )));
        }
        let _write = self.writes.lock().await;
        let now = unsilo_bus::now_ms();
        let code = new_code();
        let existing = self.read().edges.get(id).cloned();
        if existing.as_ref().is_some_and(|e| e.kind != kind) {
            return Err(LinkError::Invalid(format!(
                "`{id}` is registered as another kind of node: revoke it and register a new id"
            )));
        }
        let record = EdgeRecord {
            id: id.to_owned(),
            kind,
            organisation: organisation.or(existing.as_ref().and_then(|e| e.organisation.clone())),
            description: if description.is_empty() {
                existing
                    .as_ref()
                    .map(|e| e.description.clone())
                    .unwrap_or_default()
            } else {
                description
            },
            registered_at_ms: existing.as_ref().map_or(now, |e| e.registered_at_ms),
            code_sha256: Some(crate::auth::token_digest(&code)),
            code_expires_at_ms: Some(now + ENROLMENT_CODE_VALIDITY.as_millis() as i64),
            certificate_sha256: existing.as_ref().and_then(|e| e.certificate_sha256.clone()),
            enrolled_at_ms: existing.as_ref().and_then(|e| e.enrolled_at_ms),
            revoked_at_ms: None,
        };
        self.audit(
            who,
            if existing.is_some() {
                "edge.reenrolment_opened"
            } else {
                "edge.register"
            },
            id,
            serde_json::json!({"organisation": record.organisation, "description": record.description}),
        )
        .await?;
        self.store(Stored::Edge(record.clone())).await?;
        let edge = self.read().view(&record);
        Ok(RegisteredEdge {
            edge,
            enrolment_code: code,
        })
    }

    /// Revokes an edge: its certificate is refused from now on (a new enrolment can bring it back).
    pub async fn revoke(&self, who: &Principal, id: &str) -> Result<EdgeView, LinkError> {
        require(who, Action::ManageEdges)?;
        let _write = self.writes.lock().await;
        let mut record = self
            .read()
            .edges
            .get(id)
            .cloned()
            .ok_or_else(|| LinkError::NoEdge(id.into()))?;
        record.revoked_at_ms = Some(unsilo_bus::now_ms());
        record.code_sha256 = None;
        self.audit(who, "edge.revoke", id, serde_json::Value::Null)
            .await?;
        self.store(Stored::Edge(record.clone())).await?;
        Ok(self.read().view(&record))
    }

    /// Enrols an edge with its one-time code: issues its certificate for the key of its signing request.
    pub async fn enrol(&self, request: &EnrolRequest) -> Result<EnrolAnswer, LinkError> {
        let _write = self.writes.lock().await;
        let now = unsilo_bus::now_ms();
        let mut record = self
            .read()
            .edges
            .get(&request.edge)
            .cloned()
            .ok_or(LinkError::BadCode)?;
        let presented = crate::auth::token_digest(request.code.trim());
        let valid = record
            .code_sha256
            .as_ref()
            .is_some_and(|d| digests_equal(d.as_bytes(), presented.as_bytes()))
            && record.code_expires_at_ms.is_some_and(|e| now < e)
            && record.revoked_at_ms.is_none();
        if !valid {
            warn!(edge = %request.edge, "An enrolment with a wrong, used or expired code was refused.");
            return Err(LinkError::BadCode);
        }
        let (certificate_pem, fingerprint) = self
            .ca
            .issue(&request.edge, &request.csr_pem)
            .map_err(|e| LinkError::Invalid(e.to_string()))?;
        record.code_sha256 = None;
        record.code_expires_at_ms = None;
        record.certificate_sha256 = Some(fingerprint.clone());
        record.enrolled_at_ms = Some(now);
        let edge = Principal::Edge(request.edge.clone());
        self.audit(
            &edge,
            "edge.enrol",
            &request.edge,
            serde_json::json!({"certificate_sha256": fingerprint}),
        )
        .await?;
        self.store(Stored::Edge(record)).await?;
        info!(edge = %request.edge, "An edge enrolled.");
        Ok(EnrolAnswer {
            edge: request.edge.clone(),
            hub: self.ctx.hub.clone(),
            certificate_pem,
            ca_pem: self.ca.ca_pem().to_owned(),
            hub_public_key: self.ctx.signing_key.public_hex(),
            key_algorithm: self.ctx.signing_key.algorithm().to_owned(),
        })
    }

    /// Pushes a connector definition to an edge: checked as any definition is, signed, the next version.
    pub async fn push_definition(
        &self,
        who: &Principal,
        edge: &str,
        connector: &str,
        files: BTreeMap<String, String>,
    ) -> Result<SignedDefinition, LinkError> {
        require(who, Action::ManageEdges)?;
        let _write = self.writes.lock().await;
        let previous = {
            let state = self.read();
            if !state.edges.contains_key(edge) {
                return Err(LinkError::NoEdge(edge.into()));
            }
            if let Some(((other, _), _)) = state
                .definitions
                .iter()
                .find(|((e, c), _)| c == connector && e != edge)
            {
                return Err(LinkError::Invalid(format!(
                    "connector `{connector}` already runs on edge `{other}`: a connector name names its topics, so it is one source in one place"
                )));
            }
            state
                .definitions
                .get(&(edge.to_owned(), connector.to_owned()))
                .map_or(0, |d| d.version)
        };
        if self.ctx.hub_connectors.iter().any(|c| c == connector) {
            return Err(LinkError::Invalid(format!(
                "connector `{connector}` is one of this hub's own connectors: give the edge's connector its own name"
            )));
        }
        let mut definition = SignedDefinition {
            edge: edge.to_owned(),
            connector: connector.to_owned(),
            version: previous + 1,
            files,
            signature: String::new(),
            hub: self.ctx.hub.clone(),
            pushed_at_ms: unsilo_bus::now_ms(),
        };
        // The connector is an instance of the definition, named by the operator as a hub's `[[connectors]]` are
        // (one definition, many instances): the name names its topics, the definition only the mapping.
        definition
            .load()
            .map_err(|e| LinkError::Invalid(format!("the definition is not usable: {e}")))?;
        if !unsilo_connectors::definition::valid_name(connector) {
            return Err(LinkError::Invalid(format!(
                "connector name `{connector}` must be 1–64 characters of a-z, 0-9, '-' and '_'"
            )));
        }
        definition.signature = self.ctx.signing_key.sign_hex(&definition.message());
        self.audit(
            who,
            "edge.definition_push",
            &format!("{edge}/{connector}"),
            serde_json::json!({"version": definition.version, "files": definition.files.keys().collect::<Vec<_>>()}),
        )
        .await?;
        self.store(Stored::Definition(definition.clone())).await?;
        Ok(definition)
    }

    /// The definitions the hub holds for an edge (the edge's own call).
    pub fn definitions(&self, edge: &str) -> Definitions {
        Definitions {
            definitions: self
                .read()
                .definitions
                .values()
                .filter(|d| d.edge == edge)
                .cloned()
                .collect(),
        }
    }

    /// The positions the hub acknowledged for an edge (the edge's own call).
    pub fn positions(&self, edge: &str) -> Positions {
        let state = self.read();
        let mut connectors: BTreeMap<String, protocol::Position> = state
            .definitions
            .keys()
            .filter(|(e, _)| e == edge)
            .map(|(_, c)| (c.clone(), protocol::Position::default()))
            .collect();
        for ((e, c), p) in &state.positions {
            if e == edge {
                connectors.insert(c.clone(), p.clone());
            }
        }
        Positions { connectors }
    }

    /// Stores an edge's status report and answers with the definitions it should run.
    pub async fn report(&self, edge: &str, report: EdgeReport) -> Result<StatusAnswer, LinkError> {
        let at_ms = unsilo_bus::now_ms();
        self.ctx.metrics.set_edge_report(
            edge,
            report.buffer_bytes,
            report.buffer_alarm,
            report.lag_records,
            at_ms,
        );
        // Reports come every few seconds and live in memory; one is kept on the bus only when the kept one is
        // older than a minute or the alarm changed, so the last contact survives a restart to the minute without
        // a write per report.
        let persist = self
            .read()
            .status_kept
            .get(edge)
            .is_none_or(|(kept_at, alarm)| {
                at_ms - kept_at >= STATUS_KEPT_EVERY_MS || *alarm != report.buffer_alarm
            });
        let alarm = report.buffer_alarm;
        let stored = Stored::Status {
            edge: edge.to_owned(),
            at_ms,
            report,
        };
        if persist {
            self.store(stored).await?;
            self.state
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .status_kept
                .insert(edge.to_owned(), (at_ms, alarm));
        } else {
            self.remember(stored);
        }
        Ok(StatusAnswer {
            definitions: self
                .definitions(edge)
                .definitions
                .into_iter()
                .map(|d| DefinitionVersion {
                    connector: d.connector,
                    version: d.version,
                })
                .collect(),
        })
    }

    /// Takes a member hub's published catalogue (an edge has none to publish).
    pub async fn publish_catalogue(
        &self,
        member: &str,
        entries: Vec<unsilo_policy::catalogue::CatalogueEntry>,
    ) -> Result<protocol::CatalogueReceipt, LinkError> {
        let kind = self.read().edges.get(member).map(|e| e.kind);
        if kind != Some(NodeKind::MemberHub) {
            return Err(LinkError::Forbidden(
                "a member hub (an edge node publishes no catalogue)".into(),
            ));
        }
        let n = entries.len();
        self.keep_catalogue(member, entries).await?;
        Ok(protocol::CatalogueReceipt {
            member: member.to_owned(),
            entries: n,
        })
    }

    /// Keeps a linked hub's catalogue (a member's as it published it, or `parent`'s as this hub fetched it).
    pub async fn keep_catalogue(
        &self,
        hub: &str,
        entries: Vec<unsilo_policy::catalogue::CatalogueEntry>,
    ) -> Result<(), LinkError> {
        let unchanged = self
            .read()
            .catalogues
            .get(hub)
            .is_some_and(|c| c.entries == entries);
        let stored = Stored::Catalogue {
            member: hub.to_owned(),
            at_ms: unsilo_bus::now_ms(),
            entries,
        };
        // The same catalogue again only moves its time; a changed one is kept on the bus.
        if unchanged {
            self.remember(stored);
            Ok(())
        } else {
            self.store(stored).await
        }
    }

    /// The catalogues of the linked hubs — the member hubs' as they published them, the parent's as this hub
    /// fetched it — for whoever may browse a catalogue (agencies too: they request linked hubs' resources
    /// through their own hub).
    pub fn linked_catalogues(&self, who: &Principal) -> Result<Vec<LinkedCatalogue>, LinkError> {
        require(who, Action::ViewCatalogue)?;
        Ok(self.read().catalogues.values().cloned().collect())
    }

    /// One catalogue entry of a linked hub, if it published it.
    pub fn linked_entry(
        &self,
        hub: &str,
        id: &str,
    ) -> Option<unsilo_policy::catalogue::CatalogueEntry> {
        self.read()
            .catalogues
            .get(hub)?
            .entries
            .iter()
            .find(|e| e.id == id || e.schema == id)
            .cloned()
    }

    async fn sink_for(&self, definition: &SignedDefinition) -> Result<Arc<BusSink>, LinkError> {
        let key = (definition.connector.clone(), definition.version);
        let mut sinks = self.sinks.lock().await;
        if let Some(s) = sinks.get(&key) {
            return Ok(s.clone());
        }
        let loaded = definition
            .load()
            .map_err(|e| LinkError::Failed(format!("definition of `{}`: {e}", key.0)))?;
        let sink = BusSink::open(
            &definition.connector,
            Arc::new(loaded),
            self.ctx.bus.clone(),
            &self.ctx.registry,
            &self.ctx.topics,
        )
        .await
        .map_err(failed)?
        .with_metrics(self.ctx.metrics.clone());
        let sink = Arc::new(sink);
        sinks.retain(|(c, _), _| c != &key.0);
        sinks.insert(key, sink.clone());
        Ok(sink)
    }

    /// Takes a batch an edge forwarded: records before the acknowledged position are acknowledged again
    /// without being written; the rest must follow on without a gap, and are normalised with the edge's
    /// current definition of the connector and written together with the new position.
    pub async fn accept(&self, edge: &str, batch: LinkBatch) -> Result<BatchAnswer, LinkError> {
        if batch.records.len() > MAX_BATCH_RECORDS {
            return Err(LinkError::Invalid(format!(
                "a batch carries at most {MAX_BATCH_RECORDS} records; this one has {}",
                batch.records.len()
            )));
        }
        let key = (edge.to_owned(), batch.connector.clone());
        let definition = self
            .read()
            .definitions
            .get(&key)
            .cloned()
            .ok_or_else(|| {
                LinkError::Invalid(format!(
                    "the hub holds no definition of connector `{}` for edge `{edge}`: an operator pushes it first",
                    batch.connector
                ))
            })?;
        let lock = {
            let mut locks = self.batches.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        // Offsets count in one buffer: the first batch from a buffer the hub does not know (a new edge, or one
        // whose data directory was replaced) starts the count where it starts; record ids keep what the hub
        // already has from being taken twice.
        let expected = match self.read().positions.get(&key) {
            Some(p) if p.buffer == batch.buffer => p.next_offset,
            _ => batch.records.first().map_or(0, |r| r.offset),
        };
        let mut inputs = Vec::new();
        let mut next = expected;
        let now = unsilo_bus::now_ms();
        for r in batch.records {
            if r.offset < expected {
                continue;
            }
            if r.offset != next {
                return Err(LinkError::Gap {
                    connector: batch.connector,
                    first: r.offset,
                    expected: next,
                });
            }
            next += 1;
            let original = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                &r.original_base64,
            )
            .map_err(|e| {
                LinkError::Invalid(format!(
                    "record at offset {}: original_base64: {e}",
                    r.offset
                ))
            })?;
            let parsed = match (r.parsed, r.parse_error) {
                (Some(value), None) => Ok(value),
                (None, Some(why)) => Err(why),
                _ => {
                    return Err(LinkError::Invalid(format!(
                    "record at offset {}: exactly one of `parsed` and `parse_error` is required",
                    r.offset
                )))
                }
            };
            let origin = format!("edge {edge}: {}", r.origin);
            inputs.push((
                RawInput {
                    original,
                    parsed,
                    origin,
                },
                // A read time in the hub's future (a drifting clock) is the hub's now.
                r.read_at_ms.min(now),
            ));
        }
        if inputs.is_empty() {
            return Ok(BatchAnswer {
                connector: batch.connector,
                next_offset: expected,
                written: 0,
                accepted: 0,
                rejected: 0,
            });
        }
        let sink = self.sink_for(&definition).await?;
        let position = Stored::Position {
            edge: edge.to_owned(),
            connector: batch.connector.clone(),
            buffer: batch.buffer.clone(),
            next_offset: next,
        };
        let written = inputs.len() as u64;
        let report = sink
            .submit_linked(
                inputs,
                vec![(LINKS_TOPIC.to_owned(), vec![self.sealed(&position)?])],
            )
            .await
            .map_err(failed)?;
        self.remember(position);
        Ok(BatchAnswer {
            connector: batch.connector,
            next_offset: next,
            written,
            accepted: report.accepted.len() as u64,
            rejected: report.rejected.len() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_stored_record_reads_back() {
        let edge = EdgeRecord {
            id: "civil-edge".into(),
            kind: NodeKind::Edge,
            organisation: Some("civil-affairs".into()),
            description: "民政局前置机".into(),
            registered_at_ms: 1,
            code_sha256: Some("ab".into()),
            code_expires_at_ms: Some(2),
            certificate_sha256: Some("cd".into()),
            enrolled_at_ms: Some(3),
            revoked_at_ms: None,
        };
        let records = [
            Stored::Edge(edge.clone()),
            Stored::Position {
                edge: "civil-edge".into(),
                connector: "dibao".into(),
                buffer: "b1".into(),
                next_offset: 42,
            },
            Stored::Status {
                edge: "civil-edge".into(),
                at_ms: 5,
                report: EdgeReport::default(),
            },
        ];
        let mut state = LinkState::default();
        for r in records {
            let json = serde_json::to_vec(&r).expect("encode");
            state.apply(serde_json::from_slice(&json).expect("decode"));
        }
        assert_eq!(state.edges.get("civil-edge"), Some(&edge));
        assert_eq!(
            state.positions[&("civil-edge".to_owned(), "dibao".to_owned())].next_offset,
            42
        );
        assert!(state.status.contains_key("civil-edge"));
    }

    #[test]
    fn enrolment_codes_are_long_and_unambiguous() {
        let code = new_code();
        assert_eq!(code.len(), 23, "{code}");
        assert!(code
            .chars()
            .all(|c| c == '-' || (c.is_ascii_alphanumeric() && !"01IO".contains(c))));
        assert_ne!(new_code(), code);
    }
}
