//! Records across hubs (级联 and 回流): what a hub releases to a linked hub's request goes over the link once,
//! with evidence on both chains naming each other.
//!
//! The hub that holds the data releases into the linked agency's pull topic as it does for any agency (the
//! router's release entries are on its chain). [`Links::outgoing`] reads that topic from where the requesting
//! hub stands and writes a `link.send` entry naming the records; the requesting hub takes them
//! ([`Links::accept_delivery`]) into its own subscription's topic — re-framed with its own view schema id,
//! each checked to decode — together with its position and a `link.receive` entry naming the sender's
//! `link.send`, in one write; the sender then writes `link.acknowledged` naming the receipt
//! ([`Links::record_acknowledged`]). The receiver's position makes a batch sent again after a cut link a no-op:
//! nothing lost, nothing twice.
//!
//! Which hub calls which does not change with the direction of the data: the member always opens the link.
//! Up (the member holds the data) the member sends `POST /link/v1/deliveries`; back down (回流, the parent
//! holds it) the member fetches `GET /link/v1/deliveries/{subscription}` and acknowledges with
//! `POST /link/v1/deliveries/ack`.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;
use unsilo_bus::{FetchRequest, Record};
use unsilo_policy::model::{Subscription, SubscriptionStatus};
use unsilo_schemas::names::{
    HEADER_BACKFILL, HEADER_RECORD_ID, HEADER_RETAIN_DAYS, HEADER_SUBSCRIPTION, LINKS_TOPIC,
};
use utoipa::ToSchema;

use super::{failed, LinkError, Links, Stored};
use crate::audit::{AuditEvent, EntryRef};
use crate::governance::{Governance, LinkedRequest, LinkedRequestState};

/// The name a member hub gives its parent in everything it keeps about the link.
pub const PARENT: &str = "parent";
/// The most records one delivery carries.
pub const MAX_DELIVERY_RECORDS: usize = 1_000;

/// One record released to a linked hub's request.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkedRecord {
    /// Its offset in the sender's subscription topic partition.
    pub offset: u64,
    /// The record id (the idempotency key end to end).
    pub record_id: String,
    /// Its time stamp (ms since the epoch).
    pub timestamp_ms: i64,
    /// The Avro datum of the granted view, without the sender's schema id, base64.
    pub datum_base64: String,
    /// Days the requesting agency may keep it, when the grant says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u32>,
    /// Released from history (a backfill) rather than live.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub history: bool,
}

/// Records of one partition released to a linked hub's request, in offset order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LinkedDelivery {
    /// The subscription's id at the requesting hub.
    pub subscription: String,
    /// Its id at the holding hub.
    pub held_as: String,
    /// The partition of the holding hub's topic.
    pub partition: u32,
    /// How many partitions that topic has.
    pub partitions: u32,
    /// The records.
    pub records: Vec<LinkedRecord>,
    /// The offset after the last record (where the next delivery starts).
    pub next_offset: u64,
    /// The sender's `link.send` entry naming these records (absent when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<EntryRef>,
}

/// What the requesting hub made durable of a delivery.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReceipt {
    /// The subscription's id at the requesting hub.
    pub subscription: String,
    /// The partition.
    pub partition: u32,
    /// Where the requesting hub now stands in it.
    pub next_offset: u64,
    /// Records written now (those it already had are not written again).
    pub written: u64,
    /// Its `link.receive` entry naming the sender's `link.send` (absent when nothing was written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<EntryRef>,
}

/// A member's acknowledgement of records it fetched from its parent (回流), naming both entries.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAck {
    /// The subscription's id at the member.
    pub subscription: String,
    /// The partition.
    pub partition: u32,
    /// Where the member now stands.
    pub next_offset: u64,
    /// The parent's `link.send` entry.
    pub release: EntryRef,
    /// The member's `link.receive` entry.
    pub receipt: EntryRef,
}

/// The requests exchanged over a member's link, as the parent answers `GET /link/v1/requests`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct LinkedRequests {
    /// Requests the parent's agencies filed for data the member holds (up).
    pub asked: Vec<LinkedRequest>,
    /// Where the member's requests for the parent's data stand at the parent (回流).
    pub states: Vec<LinkedRequestState>,
}

/// Query of `GET /link/v1/deliveries/{subscription}`.
#[derive(Clone, Debug, Deserialize, utoipa::IntoParams)]
pub struct DeliveryQuery {
    /// The partition.
    #[serde(default)]
    pub partition: u32,
    /// The first offset wanted (where the member stands).
    #[serde(default)]
    pub from: u64,
}

fn position_key(subscription: &str, partition: u32) -> String {
    format!("sub/{subscription}/{partition}")
}

impl Links {
    /// Where this hub stands in what `hub` releases to `subscription` (this hub's id), per partition.
    pub fn delivery_positions(&self, hub: &str, subscription: &str) -> BTreeMap<u32, u64> {
        let prefix = format!("sub/{subscription}/");
        self.read()
            .positions
            .iter()
            .filter(|((h, key), _)| h == hub && key.starts_with(&prefix))
            .filter_map(|((_, key), p)| Some((key[prefix.len()..].parse().ok()?, p.next_offset)))
            .collect()
    }

    /// Reads what this hub released to `held` (its subscription for `hub`'s request `requester`) in
    /// `partition` from `from`, and writes the `link.send` entry naming it.
    pub async fn outgoing(
        &self,
        hub: &str,
        requester: &str,
        held: &Subscription,
        partition: u32,
        from: u64,
    ) -> Result<LinkedDelivery, LinkError> {
        if !matches!(
            held.status,
            SubscriptionStatus::Active | SubscriptionStatus::Paused
        ) {
            return Err(LinkError::Invalid(format!(
                "subscription `{}` is {}: nothing is released to it",
                held.id,
                held.status.as_str()
            )));
        }
        let topic = held.topic();
        let partitions = self
            .ctx
            .bus
            .end_offsets(&topic)
            .await
            .map_err(failed)?
            .len() as u32;
        if partition >= partitions {
            return Err(LinkError::Invalid(format!(
                "partition {partition}: the topic has {partitions}"
            )));
        }
        let read = self
            .ctx
            .bus
            .fetch(&FetchRequest::new(
                &topic,
                partition,
                from,
                MAX_DELIVERY_RECORDS,
                std::time::Duration::ZERO,
            ))
            .await
            .map_err(failed)?;
        let mut records = Vec::with_capacity(read.len());
        let mut next_offset = from;
        for r in &read {
            next_offset = r.position.offset + 1;
            let header = |name: &str| {
                r.record
                    .header(name)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .map(str::to_owned)
            };
            let framed = r.record.value.as_deref().unwrap_or_default();
            // Confluent framing: magic byte 0, then the 4-byte schema id, then the datum.
            if framed.len() < 5 || framed[0] != 0 {
                return Err(LinkError::Failed(format!(
                    "the record at offset {} of {topic} is not a framed Avro record",
                    r.position.offset
                )));
            }
            records.push(LinkedRecord {
                offset: r.position.offset,
                record_id: header(HEADER_RECORD_ID).unwrap_or_else(|| r.record.record_id()),
                timestamp_ms: r.record.timestamp_ms,
                datum_base64: base64::engine::general_purpose::STANDARD.encode(&framed[5..]),
                retain_days: header(HEADER_RETAIN_DAYS).and_then(|d| d.parse().ok()),
                history: header(HEADER_BACKFILL).as_deref() == Some("true"),
            });
        }
        let release = if records.is_empty() {
            None
        } else {
            Some(
                self.ctx
                    .audit
                    .append_entry(AuditEvent::Control {
                        actor: "hub".into(),
                        role: None,
                        action: "link.send".into(),
                        target: held.id.clone(),
                        detail: json!({
                            "to_hub": hub,
                            "requester": requester,
                            "partition": partition,
                            "from_offset": from,
                            "next_offset": next_offset,
                            "record_ids": records.iter().map(|r| r.record_id.as_str()).collect::<Vec<_>>(),
                        }),
                    })
                    .await
                    .map_err(failed)?,
            )
        };
        Ok(LinkedDelivery {
            subscription: requester.to_owned(),
            held_as: held.id.clone(),
            partition,
            partitions,
            records,
            next_offset,
            release,
        })
    }

    /// Takes records `hub` released to a request filed here: those before this hub's position are taken
    /// already and skipped; the rest, each checked to decode with the subscription's view schema, are written
    /// to the subscription's topic with the new position and the `link.receive` entry, in one write.
    pub async fn accept_delivery(
        &self,
        governance: &Governance,
        hub: &str,
        delivery: LinkedDelivery,
    ) -> Result<DeliveryReceipt, LinkError> {
        if delivery.records.len() > MAX_DELIVERY_RECORDS {
            return Err(LinkError::Invalid(format!(
                "a delivery carries at most {MAX_DELIVERY_RECORDS} records; this one has {}",
                delivery.records.len()
            )));
        }
        let local = governance
            .control()
            .subscription(&delivery.subscription)
            .filter(|s| s.held_at.as_ref().is_some_and(|h| h.hub == hub))
            .ok_or_else(|| {
                LinkError::Invalid(format!(
                    "no subscription `{}` here whose data {hub} holds",
                    delivery.subscription
                ))
            })?;
        let view_schema_id = match (local.status, local.view_schema_id) {
            (SubscriptionStatus::Active | SubscriptionStatus::Paused, Some(id)) => id,
            _ => {
                return Err(LinkError::Invalid(format!(
                    "subscription `{}` is {} here: it takes no records",
                    local.id,
                    local.status.as_str()
                )))
            }
        };
        let key = (hub.to_owned(), position_key(&local.id, delivery.partition));
        let lock = {
            let mut locks = self.batches.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(key.clone()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        let expected = match self.read().positions.get(&key) {
            Some(p) if p.buffer == delivery.held_as => p.next_offset,
            _ => 0,
        };
        let schema = self
            .ctx
            .registry
            .avro_schema_by_id(view_schema_id)
            .map_err(failed)?;
        let mut records = Vec::new();
        let mut ids = Vec::new();
        let mut next = expected;
        for r in &delivery.records {
            if r.offset < next {
                continue;
            }
            let datum = base64::engine::general_purpose::STANDARD
                .decode(&r.datum_base64)
                .map_err(|e| {
                    LinkError::Invalid(format!("record `{}`: datum_base64: {e}", r.record_id))
                })?;
            apache_avro::from_avro_datum(schema.schema(), &mut datum.as_slice(), None).map_err(
                |e| {
                    LinkError::Invalid(format!(
                        "record `{}` does not decode with the granted view: {e}",
                        r.record_id
                    ))
                },
            )?;
            let mut framed = Vec::with_capacity(5 + datum.len());
            framed.push(0);
            framed.extend_from_slice(&view_schema_id.to_be_bytes());
            framed.extend_from_slice(&datum);
            let mut record = Record::new(r.record_id.as_bytes(), framed)
                .with_header(HEADER_RECORD_ID, r.record_id.as_bytes().to_vec())
                .with_header(HEADER_SUBSCRIPTION, local.id.as_bytes().to_vec());
            if let Some(days) = r.retain_days {
                record = record.with_header(HEADER_RETAIN_DAYS, days.to_string().into_bytes());
            }
            if r.history {
                record = record.with_header(HEADER_BACKFILL, b"true".to_vec());
            }
            record.timestamp_ms = r.timestamp_ms;
            records.push(record);
            ids.push(r.record_id.clone());
            next = r.offset + 1;
        }
        if records.is_empty() {
            return Ok(DeliveryReceipt {
                subscription: local.id,
                partition: delivery.partition,
                next_offset: next,
                written: 0,
                receipt: None,
            });
        }
        let release = delivery.release.clone().ok_or_else(|| {
            LinkError::Invalid("records without the sender's release entry are not taken".into())
        })?;
        let position = Stored::Position {
            edge: hub.to_owned(),
            connector: key.1.clone(),
            buffer: delivery.held_as.clone(),
            next_offset: next,
        };
        let mut chained = self
            .ctx
            .audit
            .chain(vec![AuditEvent::Control {
                actor: "hub".into(),
                role: None,
                action: "link.receive".into(),
                target: local.id.clone(),
                detail: json!({
                    "from_hub": hub,
                    "held_as": delivery.held_as,
                    "release": release,
                    "partition": delivery.partition,
                    "next_offset": next,
                    "record_ids": ids,
                }),
            }])
            .await
            .map_err(failed)?;
        let receipt = chained.last_entry();
        let written = records.len() as u64;
        self.ctx
            .bus
            .publish_all(vec![
                chained.take_entries(),
                (local.topic(), records),
                (LINKS_TOPIC.to_owned(), vec![self.sealed(&position)?]),
            ])
            .await
            .map_err(failed)?;
        chained.written();
        self.remember(position);
        self.ctx.metrics.record_release(&local.id, written as usize);
        info!(subscription = %local.id, from = hub, written, "Records from a linked hub taken.");
        Ok(DeliveryReceipt {
            subscription: local.id,
            partition: delivery.partition,
            next_offset: next,
            written,
            receipt: Some(receipt),
        })
    }

    /// Writes the `link.acknowledged` entry: `hub` took the records of this hub's `release` entry, on its
    /// chain as `receipt`.
    pub async fn record_acknowledged(
        &self,
        hub: &str,
        held_as: &str,
        release: &EntryRef,
        receipt: &EntryRef,
        next_offset: u64,
    ) -> Result<EntryRef, LinkError> {
        if receipt.hub == self.ctx.audit.hub() || release.hub != self.ctx.audit.hub() {
            return Err(LinkError::Invalid(
                "the release must be on this hub's chain and the receipt on the receiving hub's"
                    .into(),
            ));
        }
        self.ctx
            .audit
            .append_entry(AuditEvent::Control {
                actor: "hub".into(),
                role: None,
                action: "link.acknowledged".into(),
                target: held_as.to_owned(),
                detail: json!({
                    "to_hub": hub,
                    "release": release,
                    "receipt": receipt,
                    "next_offset": next_offset,
                }),
            })
            .await
            .map_err(failed)
    }
}
