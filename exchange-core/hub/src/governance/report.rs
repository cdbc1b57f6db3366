//! The supervisor's monthly report (政务数据共享条例 Art. 38): for one calendar month (Beijing time), per
//! organisation as a provider and as a requester — requests received and filed, answered, answered on time,
//! refused with the reasons, records delivered, corrections filed and answered on time — and per source its
//! accepted and rejected records with the rejection reasons.
//!
//! Where the figures come from: requests and corrections are the control plane's (each carries its filing time,
//! its deadline and its answer); a month's requests are those filed in it, counted with what has become of them by
//! the time the report is made. Records delivered are the verified `release` entries of the audit log written in
//! the month, so the report agrees with the evidence. A source's accepted and rejected records are the records
//! its `raw.` and `dlq.` topics received in the month, counted from the topics' time index (no scan), and the
//! rejection reasons read from its `dlq.` records of the month. What retention has removed is no longer counted.
//!
//! Entries whose catalogue entry names no provider are decided by the platform itself: they are reported under
//! the organisation id [`PLATFORM`].

#[allow(unused_imports)]
use super::*;

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde::Serialize;
use unsilo_schemas::names::{dlq_topic, raw_topic, HEADER_REASON};

use crate::audit::AuditEvent;

/// The organisation id under which the platform's own decisions are reported (entries without a provider).
pub const PLATFORM: &str = "platform";

/// The monthly report.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct MonthlyReport {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Its first millisecond (Beijing midnight), ms since the epoch.
    pub from_ms: i64,
    /// The first millisecond after it.
    pub to_ms: i64,
    /// When the report was made.
    pub generated_at_ms: i64,
    /// One row per organisation with anything to report, by id.
    pub organisations: Vec<OrganisationFigures>,
    /// One row per configured source, by name.
    pub sources: Vec<SourceFigures>,
    /// Audit entries of the month that did not verify and were left out of the deliveries (0 on a sound log).
    pub unverified_audit_entries: u64,
}

/// One organisation's figures.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct OrganisationFigures {
    /// Its id (an agency id, or [`PLATFORM`]).
    pub organisation: String,
    /// Its name.
    pub name: String,
    /// Its unified social credit code (empty for the platform).
    pub uscc: String,
    /// As a provider (提供方): requests for its resources.
    pub as_provider: ProviderFigures,
    /// As a requester (需求方): its own requests.
    pub as_requester: RequesterFigures,
}

/// An organisation's figures as a provider.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ProviderFigures {
    /// Requests for its resources filed in the month.
    pub requests_received: u64,
    /// Of those, answered (approved or refused).
    pub answered: u64,
    /// Of those, answered by the answer deadline (extension included).
    pub answered_on_time: u64,
    /// Of those, refused.
    pub refused: u64,
    /// The refusals' reasons, one per refusal.
    pub refusal_reasons: Vec<String>,
    /// Records of its resources released to subscribers in the month.
    pub records_delivered: u64,
    /// Corrections on its resources filed in the month.
    pub corrections_received: u64,
    /// Of those, answered.
    pub corrections_answered: u64,
    /// Of those, answered within their 10 working days.
    pub corrections_answered_on_time: u64,
}

/// An organisation's figures as a requester.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RequesterFigures {
    /// Requests it filed in the month.
    pub requests_filed: u64,
    /// Of those, approved.
    pub approved: u64,
    /// Of those, refused.
    pub refused: u64,
    /// Of those, not answered yet.
    pub waiting: u64,
    /// Records released to its subscriptions in the month.
    pub records_received: u64,
    /// Corrections it filed in the month.
    pub corrections_filed: u64,
    /// Of those, answered within their 10 working days.
    pub corrections_answered_on_time: u64,
}

/// One source's figures.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct SourceFigures {
    /// The connector.
    pub source: String,
    /// Records accepted in the month.
    pub accepted: u64,
    /// Records rejected (dead-lettered) in the month.
    pub rejected: u64,
    /// rejected / (accepted + rejected); 0 when there were none.
    pub rejection_rate: f64,
    /// Rejections by reason code, the most frequent first.
    pub reasons: Vec<ReasonCount>,
}

/// How often one rejection reason occurred.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ReasonCount {
    /// The reason's code (e.g. `invalid_id_number`).
    pub code: String,
    /// How many records.
    pub count: u64,
}

/// The first and the after-last millisecond of `month` (`YYYY-MM`) in Beijing time.
pub fn month_bounds(month: &str) -> Result<(i64, i64), ApiError> {
    let invalid = || ApiError::Invalid(format!("month `{month}` is not YYYY-MM"));
    let first = (month.len() == 7)
        .then(|| NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(invalid)?;
    let next = first
        .checked_add_months(Months::new(1))
        .ok_or_else(invalid)?;
    Ok((
        crate::calendar::start_of_beijing_day(first),
        crate::calendar::start_of_beijing_day(next),
    ))
}

/// The current month in Beijing time, `YYYY-MM`.
pub fn current_month() -> String {
    crate::calendar::beijing_day(unsilo_bus::now_ms())
        .format("%Y-%m")
        .to_string()
}

impl Governance {
    /// The monthly report for `month` (`YYYY-MM`, Beijing time): the platform's administrators only.
    pub async fn monthly_report(
        &self,
        who: &Principal,
        month: &str,
    ) -> Result<MonthlyReport, ApiError> {
        authorize(who, Action::ViewReports)?;
        let (from_ms, to_ms) = month_bounds(month)?;
        let in_month = |t: i64| (from_ms..to_ms).contains(&t);
        let mut orgs: BTreeMap<String, OrganisationFigures> = BTreeMap::new();
        // Requests and corrections, from the control plane; a resource's provider from the catalogue.
        let (schema_provider, subscription_schema) = {
            let state = self.control.read();
            let provider_of = |schema: &str| {
                state
                    .catalogue
                    .get(schema)
                    .and_then(|e| e.terms.provider.clone())
                    .unwrap_or_else(|| PLATFORM.to_owned())
            };
            for s in state
                .subscriptions
                .values()
                .filter(|s| in_month(s.requested_at_ms))
            {
                let answered_at = s.deadlines.as_ref().and_then(|d| d.answered_at_ms);
                let on_time = s
                    .deadlines
                    .as_ref()
                    .is_some_and(|d| d.answered_at_ms.is_some_and(|a| a <= d.answer_due_ms));
                let refused = s.status == SubscriptionStatus::Rejected;
                let approved = s.granted.is_some() && !refused;
                let p = &mut orgs
                    .entry(provider_of(&s.requested.schema))
                    .or_default()
                    .as_provider;
                p.requests_received += 1;
                p.answered += u64::from(answered_at.is_some() || refused || approved);
                p.answered_on_time += u64::from(on_time);
                if refused {
                    p.refused += 1;
                    p.refusal_reasons.push(s.reason.clone().unwrap_or_default());
                }
                let r = &mut orgs.entry(s.agency.clone()).or_default().as_requester;
                r.requests_filed += 1;
                r.approved += u64::from(approved);
                r.refused += u64::from(refused);
                r.waiting += u64::from(!approved && !refused);
            }
            for c in state
                .corrections
                .values()
                .filter(|c| in_month(c.filed_at_ms))
            {
                let on_time = c.answer.as_ref().is_some_and(|a| a.at_ms <= c.due_ms);
                let p = &mut orgs
                    .entry(c.provider.clone().unwrap_or_else(|| PLATFORM.to_owned()))
                    .or_default()
                    .as_provider;
                p.corrections_received += 1;
                p.corrections_answered += u64::from(c.answer.is_some());
                p.corrections_answered_on_time += u64::from(on_time);
                let r = &mut orgs.entry(c.agency.clone()).or_default().as_requester;
                r.corrections_filed += 1;
                r.corrections_answered_on_time += u64::from(on_time);
            }
            let schema_provider: BTreeMap<String, String> = state
                .catalogue
                .keys()
                .map(|schema| (schema.clone(), provider_of(schema)))
                .collect();
            let subscription_schema: BTreeMap<String, String> = state
                .subscriptions
                .values()
                .map(|s| (s.id.clone(), s.requested.schema.clone()))
                .collect();
            (schema_provider, subscription_schema)
        };
        // Deliveries, from the verified audit log of the month.
        let unverified = crate::audit::verified_between(
            &*self.bus,
            self.audit.topic(),
            &self.settings.trusted_keys,
            from_ms,
            to_ms,
            |entry| {
                if let AuditEvent::Release {
                    schema,
                    agency,
                    subscription,
                    ..
                } = entry.body.event
                {
                    let schema = subscription_schema.get(&subscription).unwrap_or(&schema);
                    let provider = schema_provider
                        .get(schema)
                        .cloned()
                        .unwrap_or_else(|| PLATFORM.to_owned());
                    orgs.entry(provider)
                        .or_default()
                        .as_provider
                        .records_delivered += 1;
                    orgs.entry(agency)
                        .or_default()
                        .as_requester
                        .records_received += 1;
                }
            },
        )
        .await
        .map_err(|e| ApiError::Internal(format!("reading the audit log: {e}")))?;
        // Names and codes.
        {
            let state = self.control.read();
            for (id, figures) in &mut orgs {
                figures.organisation = id.clone();
                match state.agencies.get(id) {
                    Some(a) => {
                        figures.name = a.name.clone();
                        figures.uscc = a.uscc.clone();
                    }
                    None if id == PLATFORM => figures.name = "共享平台（安全管理员）".into(),
                    None => figures.name = id.clone(),
                }
            }
        }
        let mut sources = Vec::new();
        for connector in &self.settings.connectors {
            sources.push(self.source_figures(connector, from_ms, to_ms).await?);
        }
        Ok(MonthlyReport {
            month: month.to_owned(),
            from_ms,
            to_ms,
            generated_at_ms: unsilo_bus::now_ms(),
            organisations: orgs.into_values().collect(),
            sources,
            unverified_audit_entries: unverified,
        })
    }

    /// One source's accepted and rejected records of `[from_ms, to_ms)`, and its rejection reasons.
    async fn source_figures(
        &self,
        connector: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<SourceFigures, ApiError> {
        let bus_error =
            |e: unsilo_bus::Error| ApiError::Internal(format!("reading {connector}'s topics: {e}"));
        let count = |topic: String| async move {
            let from = self.bus.offsets_for_time(&topic, from_ms).await?;
            let to = self.bus.offsets_for_time(&topic, to_ms).await?;
            Ok::<_, unsilo_bus::Error>((
                topic,
                from.clone(),
                from.iter()
                    .zip(&to)
                    .map(|(f, t)| t.saturating_sub(*f))
                    .sum::<u64>(),
            ))
        };
        let (_, _, accepted) = count(raw_topic(connector)).await.map_err(bus_error)?;
        let (dlq, dlq_from, rejected) = count(dlq_topic(connector)).await.map_err(bus_error)?;
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        for (partition, mut offset) in (0u32..).zip(dlq_from) {
            'partition: loop {
                let batch = self
                    .bus
                    .fetch(&unsilo_bus::FetchRequest::new(
                        &dlq,
                        partition,
                        offset,
                        1000,
                        std::time::Duration::ZERO,
                    ))
                    .await
                    .map_err(bus_error)?;
                let Some(last) = batch.last() else { break };
                offset = last.position.offset + 1;
                for r in &batch {
                    if r.record.timestamp_ms >= to_ms {
                        break 'partition;
                    }
                    let code = r
                        .record
                        .header(HEADER_REASON)
                        .and_then(|h| serde_json::from_slice::<serde_json::Value>(h).ok())
                        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
                        .unwrap_or_else(|| "unknown".to_owned());
                    *reasons.entry(code).or_default() += 1;
                }
            }
        }
        let mut reasons: Vec<ReasonCount> = reasons
            .into_iter()
            .map(|(code, count)| ReasonCount { code, count })
            .collect();
        reasons.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        let total = accepted + rejected;
        Ok(SourceFigures {
            source: connector.to_owned(),
            accepted,
            rejected,
            rejection_rate: if total == 0 {
                0.0
            } else {
                rejected as f64 / total as f64
            },
            reasons,
        })
    }
}
