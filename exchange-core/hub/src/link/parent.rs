//! A member hub's link to its parent (级联: county → city → province). It is the same kind of link as an edge's:
//! outbound HTTPS from the member, its own client certificate from the parent's link CA (enrolled with a one-time
//! code, `unsilo parent enrol`), the parent's signing key pinned.
//!
//! Every `[parent] report_every` the member, over that link:
//!
//! - reports its status and publishes its resource catalogue, so the parent's operators and agencies see the
//!   member's resources (`GET /admin/hubs/catalogue` there), and fetches the parent's (for 回流 requests);
//! - takes the parent's agencies' requests for its data and files them here, decided by its own provider under
//!   its own gates, and sends back where each stands;
//! - files its own agencies' requests for the parent's data there (回流) and follows what the parent decides;
//! - sends up what it released to the parent's requests, and fetches what the parent released to its own, with
//!   the evidence on both chains naming each other ([`super::cascade`]).
//!
//! What it last saw of the link is on [`super::Links::parent_link`] (`GET /admin/parent`, the console).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};
use unsilo_policy::model::SubscriptionStatus;
use utoipa::ToSchema;

use super::cascade::{DeliveryAck, DeliveryReceipt, LinkedDelivery, LinkedRequests, PARENT};
use super::cascade_routes::{Acknowledged, Followed};
use super::Links;
use crate::auth::Principal;
use crate::edge::client::LinkClient;
use crate::edge::Enrolment;
use crate::governance::{Governance, LinkedRequestState};
use crate::link::protocol::{EdgeReport, Positions, PublishedCatalogue};

/// A hub's link to its parent as last seen (`GET /admin/parent`, the console).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ParentLink {
    /// The parent hub's address.
    pub hub: String,
    /// The parent hub's id, once enrolled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// This hub's node id at the parent.
    pub id: String,
    /// `not_enrolled`, `linked` or `down`.
    pub state: String,
    /// When the parent last answered (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_contact_ms: Option<i64>,
    /// What went wrong last, while the link is down or an exchange failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The parent's requests for this hub's data (counted when the link is shown).
    pub requests_from_parent: usize,
    /// This hub's requests for the parent's data (回流; counted when the link is shown).
    pub requests_to_parent: usize,
    /// Records sent up since this hub started.
    pub records_up: u64,
    /// Records taken from the parent since this hub started.
    pub records_down: u64,
}

/// `[parent]` in a hub's configuration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParentConfig {
    /// The parent hub, `https://host:port`.
    pub hub: String,
    /// The CA (PEM) of the parent's server certificate; default: the system's roots.
    #[serde(default)]
    pub hub_ca: Option<PathBuf>,
    /// This hub's node id at the parent (`unsilo edges add <id> --kind member-hub` there).
    pub id: String,
    /// How often this hub reports and publishes its catalogue (default 30 s).
    #[serde(
        default = "default_report_every",
        deserialize_with = "unsilo_connectors::transport::deserialize_duration"
    )]
    pub report_every: Duration,
}

fn default_report_every() -> Duration {
    Duration::from_secs(30)
}

impl ParentConfig {
    /// Checks what the types cannot.
    pub fn check(&self) -> Result<(), String> {
        if !self.hub.starts_with("https://") {
            return Err(format!(
                "[parent] hub `{}` must be an https:// address: the link is certificate-bound",
                self.hub
            ));
        }
        if !super::valid_node_id(&self.id) {
            return Err(format!(
                "[parent] id `{}` must be 1–64 characters of a-z, 0-9 and '-'",
                self.id
            ));
        }
        Ok(())
    }
}

/// Where a member hub keeps its enrolment with its parent: `parent/` beside its deployment secret.
pub fn enrolment_dir(link_ca_dir: &Path) -> PathBuf {
    link_ca_dir.join("parent")
}

/// Reports to the parent and publishes the catalogue until `stop` turns true.
pub async fn run(
    parent: ParentConfig,
    dir: PathBuf,
    governance: Arc<Governance>,
    links: Arc<Links>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    links.set_parent_link(ParentLink {
        hub: parent.hub.clone(),
        id: parent.id.clone(),
        state: "not_enrolled".into(),
        ..ParentLink::default()
    });
    let (enrolment, key) = match Enrolment::load(&dir) {
        Ok(Some(e)) => e,
        Ok(None) => {
            warn!(parent = %parent.hub, "[parent] is configured but this hub has not enrolled with it: run `unsilo parent enrol --config <hub.toml> --code <one-time code>`.");
            return;
        }
        Err(e) => {
            warn!(error = %e, "The enrolment with the parent hub could not be read.");
            return;
        }
    };
    let identity = format!("{}\n{}", enrolment.certificate_pem, key);
    let client = match LinkClient::new(
        &parent.hub,
        parent.hub_ca.as_deref(),
        Some(identity.as_bytes()),
        true,
        None,
    ) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "The link to the parent hub cannot be made.");
            return;
        }
    };
    links.update_parent_link(|p| {
        p.parent_id = Some(enrolment.hub.clone());
        p.state = "down".into();
    });
    // Evidence across the link names each hub's chain by the hub's id: two chains of one name could not be
    // told apart.
    if enrolment.hub == governance.audit().hub() {
        let why = format!(
            "this hub and its parent both sign their evidence as `{}`: give this hub its own [hub] id",
            enrolment.hub
        );
        warn!(parent = %parent.hub, "{why}");
        links.update_parent_link(|p| p.last_error = Some(why));
        return;
    }
    let mut linked = false;
    let mut exchange = Exchange {
        client: &client,
        governance: &governance,
        links: &links,
        parent_id: &enrolment.hub,
        reported: HashMap::new(),
        unacknowledged: Vec::new(),
    };
    loop {
        let report = EdgeReport {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            ..EdgeReport::default()
        };
        let published = async {
            client.status(&report).await.map_err(|e| e.to_string())?;
            let entries = governance
                .catalogue(&Principal::Hub, None)
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|v| v.entry)
                .collect();
            client
                .publish_catalogue(&PublishedCatalogue { entries })
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let outcome = match published {
            Ok(receipt) => {
                if !linked {
                    info!(parent = %enrolment.hub, entries = receipt.entries, "Linked to the parent hub; the catalogue is published there.");
                    linked = true;
                }
                exchange.once().await
            }
            Err(e) => {
                if linked {
                    warn!(parent = %parent.hub, error = %e, "The link to the parent hub is down; it is tried again.");
                }
                linked = false;
                Err(e)
            }
        };
        links.update_parent_link(|p| {
            p.state = if linked { "linked" } else { "down" }.into();
            if linked {
                p.last_contact_ms = Some(unsilo_bus::now_ms());
            }
            match &outcome {
                Ok((up, down)) => {
                    p.records_up += up;
                    p.records_down += down;
                    p.last_error = None;
                }
                Err(e) => p.last_error = Some(e.clone()),
            }
        });
        if let (true, Err(e)) = (linked, &outcome) {
            warn!(parent = %parent.hub, error = %e, "An exchange with the parent hub failed; it is tried again.");
        }
        tokio::select! {
            () = tokio::time::sleep(parent.report_every) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
    }
}

/// This hub's link to its parent as last seen, with its requests each way counted now (`None` without
/// `[parent]`): what `GET /admin/parent` and the console show.
pub fn parent_link_now(links: &Links, governance: &Governance) -> Option<ParentLink> {
    let mut link = links.parent_link()?;
    link.requests_from_parent = governance.held_for(PARENT).len();
    link.requests_to_parent = governance.linked_requests(PARENT).len();
    Some(link)
}

/// One member's exchange with its parent about requests and records, run every report.
struct Exchange<'a> {
    client: &'a LinkClient,
    governance: &'a Governance,
    links: &'a Links,
    /// The parent hub's id (its agencies' ids here are prefixed with it).
    parent_id: &'a str,
    /// The state of each parent request last sent there.
    reported: HashMap<String, LinkedRequestState>,
    /// Acknowledgements of records taken from the parent that did not reach it yet.
    unacknowledged: Vec<DeliveryAck>,
}

impl Exchange<'_> {
    /// Requests both ways, then records both ways; returns the records sent up and taken down. A failure on
    /// one request or subscription does not stop the others: the first is returned after all were tried.
    async fn once(&mut self) -> Result<(u64, u64), String> {
        let mut first_error: Option<String> = None;
        let mut note = |e: String| {
            if first_error.is_none() {
                first_error = Some(e);
            }
        };
        let catalogue: PublishedCatalogue = self
            .client
            .get("/link/v1/catalogue")
            .await
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.links.keep_catalogue(PARENT, catalogue.entries).await {
            note(format!("keeping the parent's catalogue: {e}"));
        }
        let requests: LinkedRequests = self
            .client
            .get("/link/v1/requests")
            .await
            .map_err(|e| e.to_string())?;
        for asked in requests.asked {
            let id = asked.subscription.clone();
            match self
                .governance
                .take_linked_request(PARENT, self.parent_id, asked)
                .await
            {
                Ok(state) if self.reported.get(&id) != Some(&state) => {
                    match self
                        .client
                        .post::<_, Followed>("/link/v1/requests/state", &state)
                        .await
                    {
                        Ok(_) => {
                            self.reported.insert(id, state);
                        }
                        Err(e) => note(format!("sending where `{id}` stands: {e}")),
                    }
                }
                Ok(_) => {}
                Err(e) => note(format!("the parent's request `{id}`: {e}")),
            }
        }
        let at_parent: HashMap<String, bool> = requests
            .states
            .iter()
            .map(|s| (s.subscription.clone(), s.status.is_final()))
            .collect();
        for state in requests.states {
            let id = state.subscription.clone();
            if let Err(e) = self.governance.apply_linked_state(PARENT, state).await {
                note(format!("following the parent on `{id}`: {e}"));
            }
        }
        for own in self.governance.linked_requests(PARENT) {
            // New here, or ended here while the parent still delivers: tell the parent.
            let tell = match at_parent.get(&own.subscription) {
                None => !own.status.is_final(),
                Some(ended_there) => own.status.is_final() && !ended_there,
            };
            if !tell {
                continue;
            }
            let id = own.subscription.clone();
            match self
                .client
                .post::<_, LinkedRequestState>("/link/v1/requests", &own)
                .await
            {
                Ok(state) => {
                    if let Err(e) = self.governance.apply_linked_state(PARENT, state).await {
                        note(format!("following the parent on `{id}`: {e}"));
                    }
                }
                Err(e) => note(format!("filing `{id}` at the parent: {e}")),
            }
        }
        let up = self.send_up().await.unwrap_or_else(|e| {
            note(e);
            0
        });
        let down = self.take_down().await.unwrap_or_else(|e| {
            note(e);
            0
        });
        match first_error {
            Some(e) => Err(e),
            None => Ok((up, down)),
        }
    }

    /// Sends what this hub released to the parent's requests, from where the parent stands.
    async fn send_up(&self) -> Result<u64, String> {
        let held: Vec<_> = self
            .governance
            .held_for(PARENT)
            .into_iter()
            .filter(|(_, s)| {
                matches!(
                    s.status,
                    SubscriptionStatus::Active | SubscriptionStatus::Paused
                )
            })
            .collect();
        if held.is_empty() {
            return Ok(0);
        }
        let positions: Positions = self
            .client
            .get("/link/v1/positions")
            .await
            .map_err(|e| e.to_string())?;
        let mut sent = 0;
        for (requester, subscription) in held {
            let mut partition = 0;
            let mut partitions = 1;
            while partition < partitions {
                let mut from = positions
                    .connectors
                    .get(&format!("sub/{requester}/{partition}"))
                    .filter(|p| p.buffer == subscription.id)
                    .map_or(0, |p| p.next_offset);
                loop {
                    let delivery = self
                        .links
                        .outgoing(PARENT, &requester, &subscription, partition, from)
                        .await
                        .map_err(|e| format!("reading `{}`: {e}", subscription.id))?;
                    partitions = delivery.partitions;
                    if delivery.records.is_empty() {
                        break;
                    }
                    let release = delivery.release.clone();
                    let (receipt, _bytes): (DeliveryReceipt, usize) = self
                        .client
                        .post_paced("/link/v1/deliveries", &delivery)
                        .await
                        .map_err(|e| format!("sending `{}` up: {e}", subscription.id))?;
                    if let (Some(release), Some(receipt_entry)) = (release, &receipt.receipt) {
                        self.links
                            .record_acknowledged(
                                PARENT,
                                &subscription.id,
                                &release,
                                receipt_entry,
                                receipt.next_offset,
                            )
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    sent += receipt.written;
                    if receipt.next_offset <= from {
                        break;
                    }
                    from = receipt.next_offset;
                }
                partition += 1;
            }
        }
        Ok(sent)
    }

    /// Acknowledges a delivery to the parent; one that does not get through is kept and sent again next time.
    async fn acknowledge(&mut self, ack: DeliveryAck) {
        if self
            .client
            .post::<_, Acknowledged>("/link/v1/deliveries/ack", &ack)
            .await
            .is_err()
        {
            self.unacknowledged.push(ack);
        }
    }

    /// Takes what the parent released to this hub's requests (回流), from where this hub stands, and
    /// acknowledges each delivery with its receipt.
    async fn take_down(&mut self) -> Result<u64, String> {
        for ack in std::mem::take(&mut self.unacknowledged) {
            self.acknowledge(ack).await;
        }
        let own: Vec<_> = self
            .governance
            .control()
            .read()
            .subscriptions
            .values()
            .filter(|s| s.held_at.as_ref().is_some_and(|h| h.hub == PARENT))
            .filter(|s| {
                matches!(
                    s.status,
                    SubscriptionStatus::Active | SubscriptionStatus::Paused
                )
            })
            .map(|s| s.id.clone())
            .collect();
        let mut taken = 0;
        for id in own {
            let positions = self.links.delivery_positions(PARENT, &id);
            let mut partition = 0;
            let mut partitions = 1;
            while partition < partitions {
                let mut from = positions.get(&partition).copied().unwrap_or(0);
                loop {
                    let delivery: LinkedDelivery = self
                        .client
                        .get(&format!(
                            "/link/v1/deliveries/{id}?partition={partition}&from={from}"
                        ))
                        .await
                        .map_err(|e| format!("fetching `{id}` from the parent: {e}"))?;
                    partitions = delivery.partitions;
                    if delivery.records.is_empty() {
                        break;
                    }
                    let release = delivery.release.clone();
                    let receipt = self
                        .links
                        .accept_delivery(self.governance, PARENT, delivery)
                        .await
                        .map_err(|e| format!("taking `{id}` from the parent: {e}"))?;
                    if let (Some(release), Some(receipt_entry)) = (release, receipt.receipt) {
                        let ack = DeliveryAck {
                            subscription: id.clone(),
                            partition,
                            next_offset: receipt.next_offset,
                            release,
                            receipt: receipt_entry,
                        };
                        self.acknowledge(ack).await;
                    }
                    taken += receipt.written;
                    if receipt.next_offset <= from {
                        break;
                    }
                    from = receipt.next_offset;
                }
                partition += 1;
            }
        }
        Ok(taken)
    }
}
