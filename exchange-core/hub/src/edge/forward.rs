//! The edge's two loops over its link: forwarding the buffer to the hub from the position the hub acknowledged,
//! and reporting status — which is also how pushed connector definitions arrive.
//!
//! Forwarding asks the hub where it stands (`GET /link/v1/positions`) whenever the link comes back, then sends
//! each connector's waiting originals in order; each answer says what is durable at the hub, and only that
//! leaves the buffer. A lost answer means the batch is sent again, and the hub recognises its offsets. While
//! the hub is unreachable the edge waits, doubling the wait up to `[link] max_backoff`, and its sources keep
//! reading into the buffer.
//!
//! Definitions: a connector's source starts only once the edge holds the hub's definition for it, signed with
//! the key the edge pinned when it enrolled; definitions are kept in `<data_dir>/link/definitions.json` so a
//! restart with the link down still runs its sources.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tracing::{info, warn};
use unsilo_bus::Bus;
use unsilo_connectors::sdk::{Shutdown, ShutdownTrigger, SourceContext};

use super::buffer::{Buffer, BufferSink, ConnectorCounts};
use super::client::{CallError, LinkClient};
use super::{EdgeConfig, EdgeError, Enrolment};
use crate::link::protocol::{
    ConnectorStatus, DeliveryStatus, EdgeReport, LinkBatch, SignedDefinition,
};

const DEFINITIONS_FILE: &str = "definitions.json";

/// The id of the edge's buffer, made with its data directory (`<data_dir>/buffer.id`).
pub fn buffer_id(data_dir: &Path) -> Result<String, EdgeError> {
    let path = data_dir.join("buffer.id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim().to_owned();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|e| super::file_error(data_dir, e))?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    std::fs::write(&path, &id).map_err(|e| super::file_error(&path, e))?;
    Ok(id)
}

/// A running edge: its link, buffer, sources and definitions.
pub struct EdgeNode {
    config: EdgeConfig,
    enrolment: Enrolment,
    client: Arc<LinkClient>,
    bus: Arc<dyn Bus>,
    buffer: Arc<Buffer>,
    seal: unsilo_bus::seal::RecordSeal,
    buffer_id: String,
    metrics: Arc<crate::metrics::Metrics>,
    definitions: Mutex<BTreeMap<String, SignedDefinition>>,
    sources: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    stop: ShutdownTrigger,
    sources_shutdown: Shutdown,
    deliveries: BTreeMap<String, Arc<ConnectorCounts>>,
    push: Arc<super::push::PushEndpoints>,
}

impl std::fmt::Debug for EdgeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeNode")
            .field("edge", &self.config.edge.id)
            .finish_non_exhaustive()
    }
}

impl EdgeNode {
    /// The node, with the definitions it kept from earlier runs (each verified again).
    pub fn new(
        config: EdgeConfig,
        enrolment: Enrolment,
        client: Arc<LinkClient>,
        bus: Arc<dyn Bus>,
        buffer: Arc<Buffer>,
        seal: unsilo_bus::seal::RecordSeal,
        buffer_id: String,
    ) -> Result<Self, EdgeError> {
        let (stop, sources_shutdown) = Shutdown::new();
        let mut kept = BTreeMap::new();
        let path = config.link_dir().join(DEFINITIONS_FILE);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let list: Vec<SignedDefinition> =
                serde_json::from_str(&text).map_err(|e| super::file_error(&path, e))?;
            for d in list {
                match verify(&enrolment, &d) {
                    Ok(()) => {
                        kept.insert(d.connector.clone(), d);
                    }
                    Err(why) => {
                        warn!(connector = %d.connector, why, "A kept definition is ignored.")
                    }
                }
            }
        }
        let deliveries = config
            .deliveries
            .iter()
            .map(|d| (d.subscription.clone(), Arc::default()))
            .collect();
        Ok(Self {
            config,
            enrolment,
            client,
            bus,
            buffer,
            seal,
            buffer_id,
            metrics: Arc::new(crate::metrics::Metrics::new()),
            definitions: Mutex::new(kept),
            sources: Mutex::new(HashMap::new()),
            stop,
            sources_shutdown,
            deliveries,
            push: Arc::default(),
        })
    }

    /// The connectors that take pushes at the edge's endpoint.
    pub fn push_endpoints(&self) -> Arc<super::push::PushEndpoints> {
        self.push.clone()
    }

    /// The counts of a local delivery.
    pub fn delivery_counts(&self, subscription: &str) -> Arc<ConnectorCounts> {
        self.deliveries
            .get(subscription)
            .cloned()
            .unwrap_or_default()
    }

    /// Stops the sources and waits (a while) for them to finish their batch.
    pub async fn stop_sources(&self) {
        self.stop.trigger();
        let handles: Vec<_> = self.sources.lock().await.drain().map(|(_, h)| h).collect();
        for h in handles {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
    }

    /// Starts the source of every configured connector the edge holds a definition for and is not running.
    async fn start_sources(&self) {
        let held: Vec<String> = self.definitions.lock().await.keys().cloned().collect();
        let mut sources = self.sources.lock().await;
        for c in &self.config.connectors {
            if sources.contains_key(&c.name) || !held.contains(&c.name) {
                continue;
            }
            let source = match crate::ingest::start::build_source(&c.as_connector()) {
                Ok(Some(s)) => s,
                Ok(None) => {
                    // A push connector: its endpoint opens once its definition is held.
                    let digest = c
                        .http_push
                        .as_ref()
                        .map(crate::config::HttpPushConfig::digest);
                    if let (Some(Ok(digest)), false) = (digest, self.push.is_open(&c.name)) {
                        self.push.open(
                            &c.name,
                            digest,
                            Arc::new(BufferSink::new(&c.name, self.buffer.clone())),
                        );
                        info!(connector = %c.name, "Edge push connector open.");
                    }
                    continue;
                }
                Err(e) => {
                    if let Some(counts) = self.buffer.counts(&c.name) {
                        counts.error(e.to_string());
                    }
                    continue;
                }
            };
            let checkpoints = match crate::ingest::BusCheckpoints::open(
                &c.name,
                self.bus.clone(),
                self.seal.clone(),
            )
            .await
            {
                Ok(cp) => cp,
                Err(e) => {
                    warn!(connector = %c.name, error = %e, "The connector's checkpoint could not be opened.");
                    continue;
                }
            };
            let ctx = SourceContext {
                connector: c.name.clone(),
                sink: Arc::new(BufferSink::new(&c.name, self.buffer.clone())),
                checkpoints: Arc::new(checkpoints),
                shutdown: self.sources_shutdown.clone(),
            };
            info!(connector = %c.name, transport = c.transport.as_str(), "Edge connector started.");
            sources.insert(
                c.name.clone(),
                tokio::spawn(crate::ingest::runtime::supervise(
                    source,
                    ctx,
                    self.metrics.clone(),
                )),
            );
        }
    }

    /// Adopts the hub's definitions that are newer than those held, after checking their signatures; keeps
    /// them on disk and starts the sources they allow.
    async fn adopt(&self, offered: Vec<SignedDefinition>) {
        let mut changed = false;
        {
            let mut held = self.definitions.lock().await;
            for d in offered {
                if held
                    .get(&d.connector)
                    .is_some_and(|h| h.version >= d.version)
                {
                    continue;
                }
                match verify(&self.enrolment, &d) {
                    Ok(()) => {
                        info!(connector = %d.connector, version = d.version, "Connector definition from the hub adopted.");
                        held.insert(d.connector.clone(), d);
                        changed = true;
                    }
                    Err(why) => {
                        warn!(connector = %d.connector, version = d.version, why, "A definition from the hub was refused.");
                        if let Some(c) = self.buffer.counts(&d.connector) {
                            c.error(format!("definition v{} refused: {why}", d.version));
                        }
                    }
                }
            }
            if changed {
                let path = self.config.link_dir().join(DEFINITIONS_FILE);
                let list: Vec<&SignedDefinition> = held.values().collect();
                let written = serde_json::to_vec_pretty(&list)
                    .map_err(|e| e.to_string())
                    .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
                if let Err(e) = written {
                    warn!(path = %path.display(), error = %e, "The definitions could not be kept on disk.");
                }
            }
        }
        self.start_sources().await;
    }

    /// The status the edge reports.
    async fn status(&self) -> EdgeReport {
        let held = self.definitions.lock().await.clone();
        let now = unsilo_bus::now_ms();
        let mut lag_records = 0;
        let mut oldest: Option<i64> = None;
        let mut connectors = Vec::new();
        for c in &self.config.connectors {
            let counts = self.buffer.counts(&c.name).unwrap_or_default();
            let end = self.buffer.end(&c.name).await.unwrap_or(0);
            let waiting = end.saturating_sub(self.buffer.acknowledged(&c.name));
            lag_records += waiting;
            if waiting > 0 {
                if let Some(t) = self.buffer.oldest_waiting_ms(&c.name).await {
                    oldest = Some(oldest.map_or(t, |o| o.min(t)));
                }
            }
            let definition_version = held.get(&c.name).map_or(0, |d| d.version);
            let last_error = counts.last_error.lock().ok().and_then(|e| e.clone());
            connectors.push(ConnectorStatus {
                name: c.name.clone(),
                definition_version,
                read: counts.read.load(Ordering::Relaxed),
                forwarded: counts.forwarded.load(Ordering::Relaxed),
                waiting,
                errors: counts.errors.load(Ordering::Relaxed),
                last_error: if definition_version == 0 {
                    Some("waiting for the hub's definition of this connector".into())
                } else {
                    last_error
                },
            });
        }
        for d in held.keys() {
            if !self.config.connectors.iter().any(|c| &c.name == d) {
                connectors.push(ConnectorStatus {
                    name: d.clone(),
                    definition_version: held[d].version,
                    last_error: Some("the hub pushed this definition, but edge.toml has no [[connectors]] entry for it".into()),
                    ..ConnectorStatus::default()
                });
            }
        }
        let limits = self.buffer.limits();
        EdgeReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            buffer_bytes: self.buffer.waiting_bytes(),
            buffer_limit_bytes: limits.max_bytes,
            buffer_alarm: self.buffer.alarm(),
            lag_records,
            lag_ms: oldest.map_or(0, |o| u64::try_from(now - o).unwrap_or(0)),
            connectors,
            deliveries: self
                .config
                .deliveries
                .iter()
                .map(|d| {
                    let counts = self.delivery_counts(&d.subscription);
                    DeliveryStatus {
                        subscription: d.subscription.clone(),
                        target: d.target_kind().into(),
                        written: counts.forwarded.load(Ordering::Relaxed),
                        errors: counts.errors.load(Ordering::Relaxed),
                        last_error: counts.last_error.lock().ok().and_then(|e| e.clone()),
                    }
                })
                .collect(),
        }
    }

    /// Reports status every `[link] status_every` and adopts newer definitions, until `shutdown`.
    pub async fn report(self: Arc<Self>, mut shutdown: Shutdown) {
        // Sources the kept definitions allow run at once, link or no link.
        self.start_sources().await;
        loop {
            let report = self.status().await;
            match self.client.status(&report).await {
                Ok(answer) => {
                    let held = self.definitions.lock().await.clone();
                    let newer = answer
                        .definitions
                        .iter()
                        .any(|v| held.get(&v.connector).map_or(0, |d| d.version) < v.version);
                    if newer {
                        match self.client.definitions().await {
                            Ok(d) => self.adopt(d.definitions).await,
                            Err(e) => {
                                warn!(error = %e, "The hub's definitions could not be fetched.")
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "Status not reported."),
            }
            tokio::select! {
                () = tokio::time::sleep(self.config.link.status_every) => {}
                () = shutdown.wait() => break,
            }
        }
    }

    /// Brings the edge's idea of what the hub acknowledged in line with the hub's answer.
    async fn reconcile(&self) -> Result<(), CallError> {
        let positions = self.client.positions().await?;
        for c in &self.config.connectors {
            let Some(p) = positions.connectors.get(&c.name) else {
                continue;
            };
            let local = self.buffer.acknowledged(&c.name);
            if p.buffer != self.buffer_id {
                // The hub counts in another buffer (or none yet): this buffer is sent from where it stands.
                continue;
            }
            if p.next_offset > local {
                // The hub made a batch durable whose answer the edge never got.
                let (records, weight) = self
                    .buffer
                    .waiting(
                        &c.name,
                        local,
                        usize::try_from(p.next_offset - local).unwrap_or(usize::MAX),
                    )
                    .await
                    .map_err(|e| CallError::Unreachable(e.to_string()))?;
                let through = records.iter().filter(|r| r.offset < p.next_offset).count() as u64;
                if let Err(e) = self
                    .buffer
                    .acknowledge(&c.name, p.next_offset, through, weight)
                    .await
                {
                    warn!(connector = %c.name, error = %e, "The acknowledgement could not be kept.");
                }
            } else if p.next_offset < local {
                warn!(
                    connector = %c.name,
                    hub = p.next_offset,
                    edge = local,
                    "The hub acknowledges less than it did before (restored from a backup?): records it lost are no longer in the edge's buffer."
                );
                if let Some(counts) = self.buffer.counts(&c.name) {
                    counts.error(format!(
                        "the hub stands at offset {} but acknowledged up to {local} before",
                        p.next_offset
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sends one batch of `connector`, if anything waits: `Ok(true)` when something was acknowledged.
    async fn send_one(&self, connector: &str) -> Result<bool, CallError> {
        let from = self.buffer.acknowledged(connector);
        let (records, weight) = self
            .buffer
            .waiting(connector, from, self.config.link.batch_records)
            .await
            .map_err(|e| CallError::Unreachable(format!("reading the buffer: {e}")))?;
        let Some(last) = records.last().map(|r| r.offset) else {
            return Ok(false);
        };
        let n = records.len() as u64;
        let (answer, _bytes) = self
            .client
            .send(&LinkBatch {
                connector: connector.to_owned(),
                buffer: self.buffer_id.clone(),
                records,
            })
            .await?;
        if answer.next_offset != last + 1 {
            // The hub stands elsewhere than this batch ends: ask it where, and go on from there.
            return Err(CallError::Gap(format!(
                "the hub acknowledged up to {} after a batch ending at {last}",
                answer.next_offset
            )));
        }
        self.buffer
            .acknowledge(connector, answer.next_offset, n, weight)
            .await
            .map_err(|e| CallError::Unreachable(format!("keeping the acknowledgement: {e}")))?;
        Ok(true)
    }

    /// Forwards the buffer until `shutdown`.
    pub async fn forward(self: Arc<Self>, mut shutdown: Shutdown) {
        let max_backoff = self.config.link.max_backoff;
        let mut backoff = Duration::from_millis(500);
        let mut reconciled = false;
        let mut down_since: Option<std::time::Instant> = None;
        loop {
            if shutdown.is_requested() {
                break;
            }
            let mut progressed = false;
            let mut failed = None;
            if !reconciled {
                match self.reconcile().await {
                    Ok(()) => reconciled = true,
                    Err(e) => failed = Some(e),
                }
            }
            if reconciled {
                let held: Vec<String> = self.definitions.lock().await.keys().cloned().collect();
                for c in held.iter().filter(|c| self.buffer.counts(c).is_some()) {
                    match self.send_one(c).await {
                        Ok(sent) => progressed |= sent,
                        Err(CallError::Gap(m)) => {
                            info!(connector = %c, reason = %m, "Asking the hub where it stands.");
                            reconciled = false;
                        }
                        Err(e @ CallError::Refused { .. }) => {
                            if let Some(counts) = self.buffer.counts(c) {
                                counts.error(e.to_string());
                            }
                            failed = Some(e);
                        }
                        Err(e) => {
                            failed = Some(e);
                            reconciled = false;
                            break;
                        }
                    }
                }
            }
            match failed {
                Some(e) => {
                    if down_since.is_none() {
                        warn!(error = %e, "The link to the hub is down or refusing; the edge keeps buffering and tries again.");
                        down_since = Some(std::time::Instant::now());
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.wait() => break,
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
                None => {
                    if let Some(since) = down_since.take() {
                        info!(
                            down_for_s = since.elapsed().as_secs(),
                            "The link to the hub is back."
                        );
                    }
                    backoff = Duration::from_millis(500);
                    if !progressed {
                        tokio::select! {
                            () = self.buffer.appended.notified() => {}
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            () = shutdown.wait() => break,
                        }
                    }
                }
            }
        }
    }
}

/// Checks a definition from the hub: for this edge, from this hub, signed with the pinned key, and usable.
fn verify(enrolment: &Enrolment, d: &SignedDefinition) -> Result<(), String> {
    if d.edge != enrolment.edge {
        return Err(format!("it is for edge `{}`", d.edge));
    }
    if d.hub != enrolment.hub {
        return Err(format!("it names hub `{}`, not `{}`", d.hub, enrolment.hub));
    }
    if !crate::audit::signing::verify_hex(&enrolment.hub_public_key, &d.message(), &d.signature) {
        return Err("its signature does not verify under the hub key pinned at enrolment".into());
    }
    d.load()
        .map(|_| ())
        .map_err(|e| format!("it is not a usable definition: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::signing::SigningKey;
    use unsilo_schemas::crypto::Suite;

    fn signed(key: &SigningKey, edge: &str) -> SignedDefinition {
        let builtin = unsilo_connectors::builtin::builtin("grid").expect("grid");
        let mut d = SignedDefinition {
            edge: edge.into(),
            connector: "grid".into(),
            version: 3,
            files: unsilo_connectors::definition::definition_files(builtin.reader())
                .expect("files"),
            signature: String::new(),
            hub: "county-hub".into(),
            pushed_at_ms: 0,
        };
        d.signature = key.sign_hex(&d.message());
        d
    }

    fn enrolment(key: &SigningKey) -> Enrolment {
        Enrolment {
            edge: "civil-edge".into(),
            hub: "county-hub".into(),
            certificate_pem: String::new(),
            hub_public_key: key.public_hex(),
            key_algorithm: key.algorithm().into(),
            enrolled_at_ms: 0,
        }
    }

    #[test]
    fn a_definition_verifies_only_as_the_pinned_hub_signed_it_for_this_edge() {
        for suite in [Suite::Gm, Suite::International] {
            let hub = SigningKey::generate(suite);
            let pinned = enrolment(&hub);
            let good = signed(&hub, "civil-edge");
            assert_eq!(verify(&pinned, &good), Ok(()));

            let mut changed_mapping = good.clone();
            let file = changed_mapping
                .files
                .keys()
                .find(|p| p.starts_with("mappings/"))
                .cloned()
                .expect("a mapping");
            changed_mapping
                .files
                .get_mut(&file)
                .expect("file")
                .push_str("\n# changed on the way\n");
            assert!(verify(&pinned, &changed_mapping)
                .expect_err("changed")
                .contains("signature"));

            let mut newer = good.clone();
            newer.version += 1;
            assert!(verify(&pinned, &newer).is_err(), "the version is signed");

            let rogue = SigningKey::generate(suite);
            assert!(verify(&pinned, &signed(&rogue, "civil-edge"))
                .expect_err("rogue")
                .contains("pinned"));

            let for_another = signed(&hub, "police-edge");
            assert!(verify(&pinned, &for_another)
                .expect_err("another edge")
                .contains("police-edge"));
        }
    }
}
