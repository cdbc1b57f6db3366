//! Corrections (校核纠错, 政务数据共享条例 Art. 26): a subscriber files a correction on a record it received; the
//! providing organisation of the record's catalogue entry answers within 10 working days — corrected or refused
//! with reasons.
//!
//! Filing checks, against the audit log, that the agency really received the record under the subscription it
//! names, and that the field is one that subscription was granted. A correction's answer "corrected" publishes a
//! new version of the record on `std.<schema>`: the original, found on the topic by its record id, with the field
//! set to the corrected value, `envelope.source_version` marked `+corr.<id>`, a new `envelope.record_id` from that
//! version, and headers `unsilo.corrects` (the original's id) and `unsilo.correction`. The router then releases it
//! like any record, so every subscription the corrected record matches receives it, with the lineage in the
//! record itself. Every step is an audit entry.

#[allow(unused_imports)]
use super::*;

use apache_avro::types::Value as Avro;
use unsilo_bus::{FetchRequest, Record};
use unsilo_policy::correction::{Correction, CorrectionAnswer, CorrectionStatus};
use unsilo_schemas::names::{HEADER_CONNECTOR, HEADER_RECORD_ID, HEADER_SCHEMA};

/// Header of a corrected record naming the record it corrects.
pub const HEADER_CORRECTS: &str = "unsilo.corrects";
/// Header of a corrected record naming the correction.
pub const HEADER_CORRECTION: &str = "unsilo.correction";
/// Working days a provider has to answer a correction (Art. 26).
pub const CORRECTION_ANSWER_DAYS: u32 = 10;
/// How many records of a topic are read per step when looking for a record, newest first.
const SCAN_STEP: u64 = 5_000;

/// Body of `POST /admin/corrections`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCorrection {
    /// The subscription the record was received under (`<agency>.<name>`).
    pub subscription: String,
    /// The record's id (`envelope.record_id`).
    pub record_id: String,
    /// The field that is wrong (a top-level field of the schema the subscription was granted).
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// The evidence.
    pub evidence: String,
    /// The value believed right, if known.
    #[serde(default)]
    pub proposed_value: Option<serde_json::Value>,
}

/// What the answer to a correction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionOutcome {
    /// Corrected: publish a new version with `value`.
    Corrected,
    /// Refused, with reasons.
    Refused,
}

/// Body of `POST /admin/corrections/{id}/answer`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionReply {
    /// Corrected or refused.
    pub outcome: CorrectionOutcome,
    /// The reasons (required for a refusal), or a note.
    pub reason: String,
    /// The corrected value of the field (required for a correction), as JSON of the field's type.
    #[serde(default)]
    pub value: Option<serde_json::Value>,
}

impl Governance {
    /// Files a correction: the agency's own subscription, a record it received under it (the audit log says),
    /// a field it was granted, a problem and evidence. Every problem is named at once.
    pub async fn file_correction(
        &self,
        who: &Principal,
        new: NewCorrection,
    ) -> Result<Correction, ApiError> {
        authorize(who, Action::FileCorrection)?;
        let Principal::Agency(agency) = who else {
            return Err(ApiError::Forbidden(
                "a correction is filed by the agency that received the record, with its own credential".into(),
            ));
        };
        let subscription = self.visible_subscription(who, &new.subscription)?;
        let mut problems = Vec::new();
        for (what, text) in [
            ("record_id", &new.record_id),
            ("field", &new.field),
            ("problem", &new.problem),
            ("evidence", &new.evidence),
        ] {
            if text.trim().is_empty() {
                problems.push(format!("{what} is required"));
            }
        }
        let granted = subscription.granted.as_ref().is_some_and(|g| {
            g.fields
                .iter()
                .any(|f| f.field.split('.').next() == Some(new.field.as_str()))
        });
        if !new.field.trim().is_empty() && !granted {
            problems.push(format!(
                "field: `{}` is not a field subscription {} was granted",
                new.field, subscription.id
            ));
        }
        if !problems.is_empty() {
            return Err(ApiError::Invalid(problems.join("; ")));
        }
        let received = audit::query(
            self.bus.as_ref(),
            self.audit.topic(),
            &self.settings.trusted_keys,
            &AuditQuery {
                record_id: Some(new.record_id.clone()),
                subscription: Some(subscription.id.clone()),
                ..AuditQuery::default()
            },
        )
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
        if !received
            .entries
            .iter()
            .any(|e| matches!(&e.body.event, AuditEvent::Release { .. }))
        {
            return Err(ApiError::NotFound(format!(
                "a release of record `{}` to subscription {}",
                new.record_id, subscription.id
            )));
        }
        let provider = self
            .entry_of(&subscription)
            .and_then(|e| e.terms.provider.clone());
        let now = unsilo_bus::now_ms();
        let (due_ms, uncovered) = self.settings.calendar.due_time(now, CORRECTION_ANSWER_DAYS);
        let correction = Correction {
            id: format!("cor-{now}-{:04x}", rand::random::<u16>()),
            agency: agency.clone(),
            subscription: subscription.id.clone(),
            schema: subscription.requested.schema.clone(),
            record_id: new.record_id.trim().to_owned(),
            field: new.field.trim().to_owned(),
            problem: new.problem.trim().to_owned(),
            evidence: new.evidence.trim().to_owned(),
            proposed_value: new.proposed_value,
            provider,
            filed_at_ms: now,
            due_ms,
            provisional: uncovered
                .map(|y| format!("the working-day calendar has no {y}: weekdays were counted")),
            status: CorrectionStatus::Filed,
            answer: None,
            revision: 1,
        };
        self.control
            .put_correction(&correction)
            .await
            .map_err(control_error)?;
        self.record_control(
            who,
            "correction.file",
            &correction.id,
            json!({
                "subscription": correction.subscription, "record_id": correction.record_id,
                "field": correction.field, "problem": correction.problem, "evidence": correction.evidence,
                "provider": correction.provider, "due_ms": correction.due_ms,
            }),
        )
        .await?;
        info!(correction = %correction.id, by = %who, "Correction filed.");
        Ok(correction)
    }

    /// Whether `who` may see correction `c`: the agency that filed it, the provider's reviewers, operators.
    fn may_see_correction(who: &Principal, c: &Correction) -> bool {
        match who {
            Principal::Operator { .. } | Principal::Hub => true,
            Principal::Agency(a) => *a == c.agency,
            Principal::Reviewer { agency, .. } => c.provider.as_deref() == Some(agency.as_str()),
            Principal::PushSource(_) | Principal::Edge(_) => false,
        }
    }

    /// The corrections `who` may see, the newest first.
    pub fn corrections(&self, who: &Principal) -> Result<Vec<Correction>, ApiError> {
        authorize(who, Action::ViewCorrections)?;
        let mut list: Vec<Correction> = self
            .control
            .read()
            .corrections
            .values()
            .filter(|c| Self::may_see_correction(who, c))
            .cloned()
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.filed_at_ms));
        Ok(list)
    }

    /// One correction `who` may see (404 otherwise).
    pub fn correction(&self, who: &Principal, id: &str) -> Result<Correction, ApiError> {
        authorize(who, Action::ViewCorrections)?;
        self.control
            .correction(id)
            .filter(|c| Self::may_see_correction(who, c))
            .ok_or_else(|| ApiError::NotFound(format!("correction `{id}`")))
    }

    /// Answers a correction: the provider's reviewer (or, where the entry names no provider, a security
    /// administrator). Corrected: publishes the new version; refused: records the reasons.
    pub async fn answer_correction(
        &self,
        who: &Principal,
        id: &str,
        reply: CorrectionReply,
    ) -> Result<Correction, ApiError> {
        authorize(who, Action::AnswerCorrection)?;
        let current = self.correction(who, id)?;
        match (who, &current.provider) {
            (Principal::Reviewer { agency, .. }, Some(p)) if agency == p => {}
            (Principal::Operator { .. }, None) => {}
            (_, Some(p)) => {
                return Err(ApiError::Forbidden(format!(
                    "correction `{id}` is answered by its provider {p}'s reviewer"
                )))
            }
            (_, None) => {
                return Err(ApiError::Forbidden(format!(
                    "correction `{id}` has no providing organisation; a security administrator answers it"
                )))
            }
        }
        if current.status != CorrectionStatus::Filed {
            return Err(ApiError::Conflict(format!(
                "correction `{id}` was already answered ({})",
                current.status.as_str()
            )));
        }
        let reason = reply.reason.trim().to_owned();
        let (status, value, corrected_record_id) = match reply.outcome {
            CorrectionOutcome::Refused => {
                if reason.is_empty() {
                    return Err(ApiError::Invalid(
                        "reason: a refusal gives its reasons".into(),
                    ));
                }
                (CorrectionStatus::Refused, None, None)
            }
            CorrectionOutcome::Corrected => {
                let Some(value) = reply.value else {
                    return Err(ApiError::Invalid(format!(
                        "value: the corrected value of `{}` is required",
                        current.field
                    )));
                };
                let new_id = self.publish_corrected(&current, &value).await?;
                (CorrectionStatus::Corrected, Some(value), Some(new_id))
            }
        };
        let mut next = current.clone();
        next.status = status;
        next.answer = Some(CorrectionAnswer {
            by: who.to_string(),
            at_ms: unsilo_bus::now_ms(),
            reason,
            value,
            corrected_record_id,
        });
        next.revision += 1;
        self.control
            .put_correction(&next)
            .await
            .map_err(control_error)?;
        self.record_control(who, "correction.answer", id, json!(next.answer))
            .await?;
        info!(correction = %id, status = status.as_str(), by = %who, "Correction answered.");
        Ok(next)
    }

    /// Publishes the corrected version of `c`'s record on `std.<schema>`; returns its record id.
    async fn publish_corrected(
        &self,
        c: &Correction,
        value: &serde_json::Value,
    ) -> Result<String, ApiError> {
        let shared = unsilo_schemas::shared_schema(&c.schema)
            .ok_or_else(|| ApiError::Conflict(format!("schema `{}` is not shared", c.schema)))?;
        let topic = shared.topic();
        let original = self.find_record(&topic, &c.record_id).await?.ok_or_else(|| {
            ApiError::Conflict(format!(
                "record `{}` is no longer on {topic} (retention has removed it); it cannot be corrected here",
                c.record_id
            ))
        })?;
        let framed = original.value.as_deref().unwrap_or_default();
        let decoder = unsilo_registry::decode::FrameDecoder::new(self.registry.clone());
        let (_, decoded) = decoder
            .decode(framed, Some(shared.avro()))
            .map_err(|e| ApiError::Internal(format!("decoding record {}: {e}", c.record_id)))?;
        let Avro::Record(mut fields) = decoded else {
            return Err(ApiError::Internal(format!(
                "record {} is not a record",
                c.record_id
            )));
        };
        let field_schema = record_field_schema(shared.avro(), &c.field).ok_or_else(|| {
            ApiError::Invalid(format!(
                "field: `{}` is not a field of {}",
                c.field, c.schema
            ))
        })?;
        let new_value = unsilo_schemas::json_to_avro(value, &field_schema)
            .map_err(|e| ApiError::Invalid(format!("value: not a value of `{}`: {e}", c.field)))?;
        let now = unsilo_bus::now_ms();
        let mut new_record_id = String::new();
        for (name, v) in fields.iter_mut() {
            if *name == c.field {
                *v = new_value.clone();
            } else if name == "envelope" {
                new_record_id = mark_envelope(v, &c.id, now)?;
            }
        }
        let body =
            apache_avro::to_avro_datum(shared.avro(), Avro::Record(fields)).map_err(|e| {
                ApiError::Invalid(format!("value: the corrected record does not encode: {e}"))
            })?;
        let schema_id = self
            .registry
            .latest(&shared.subject())
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .id;
        let mut framed = Vec::with_capacity(body.len() + 5);
        unsilo_bus::wire::encode_into(&mut framed, schema_id as u32, &body);
        let header = |k: &str, v: &str| unsilo_bus::Header::new(k, v);
        let record = Record {
            key: original.key.clone(),
            value: Some(framed),
            headers: vec![
                header(HEADER_RECORD_ID, &new_record_id),
                header(HEADER_CONNECTOR, "correction"),
                header(HEADER_SCHEMA, &c.schema),
                header(HEADER_CORRECTS, &c.record_id),
                header(HEADER_CORRECTION, &c.id),
            ],
            timestamp_ms: now,
        };
        self.bus
            .publish(&topic, vec![record])
            .await
            .map_err(|e| ApiError::Internal(format!("publishing the corrected record: {e}")))?;
        Ok(new_record_id)
    }

    /// The record of `topic` whose record id is `record_id`, read newest first.
    async fn find_record(&self, topic: &str, record_id: &str) -> Result<Option<Record>, ApiError> {
        let bus_error = |e: unsilo_bus::Error| ApiError::Internal(format!("reading {topic}: {e}"));
        let ends = self.bus.end_offsets(topic).await.map_err(bus_error)?;
        for (partition, end) in ends.iter().enumerate() {
            let mut upto = *end;
            while upto > 0 {
                let from = upto.saturating_sub(SCAN_STEP);
                let mut offset = from;
                while offset < upto {
                    let batch = self
                        .bus
                        .fetch(&FetchRequest::new(
                            topic,
                            partition as u32,
                            offset,
                            (upto - offset) as usize,
                            std::time::Duration::ZERO,
                        ))
                        .await
                        .map_err(bus_error)?;
                    let Some(last) = batch.last() else { break };
                    offset = last.position.offset + 1;
                    if let Some(found) = batch
                        .into_iter()
                        .find(|r| r.record.record_id() == record_id)
                    {
                        return Ok(Some(found.record));
                    }
                }
                upto = from;
            }
        }
        Ok(None)
    }
}

/// The schema of a top-level field of a record schema.
fn record_field_schema(schema: &apache_avro::Schema, field: &str) -> Option<apache_avro::Schema> {
    match schema {
        apache_avro::Schema::Record(r) => r
            .fields
            .iter()
            .find(|f| f.name == field)
            .map(|f| f.schema.clone()),
        _ => None,
    }
}

/// Marks the envelope of a corrected record: `source_version` gains `+corr.<id>`, `record_id` is computed anew
/// from it, `ingest_time` is now. Returns the new record id.
fn mark_envelope(envelope: &mut Avro, correction: &str, now_ms: i64) -> Result<String, ApiError> {
    let Avro::Record(fields) = envelope else {
        return Err(ApiError::Internal("the envelope is not a record".into()));
    };
    let text = |fields: &[(String, Avro)], name: &str| {
        fields.iter().find_map(|(n, v)| match (n == name, v) {
            (true, Avro::String(s)) => Some(s.clone()),
            _ => None,
        })
    };
    let system = text(fields, "source_system").unwrap_or_default();
    let source_id = text(fields, "source_record_id").unwrap_or_default();
    let version = format!(
        "{}+corr.{correction}",
        text(fields, "source_version").unwrap_or_default()
    );
    let new_id = unsilo_schemas::record_id(&system, &source_id, &version);
    for (name, v) in fields.iter_mut() {
        match name.as_str() {
            "source_version" => *v = Avro::String(version.clone()),
            "record_id" => *v = Avro::String(new_id.clone()),
            "ingest_time" => *v = Avro::TimestampMillis(now_ms),
            _ => {}
        }
    }
    Ok(new_id)
}
