//! The operations operators and agencies perform — agencies and their tokens, the subscription lifecycle,
//! dead-letter replay, audit queries and verification — shared by every surface that offers them: the admin
//! API (and the CLI over it) and the console. Neither surface holds a rule of its own.
//!
//! Each operation takes the [`Principal`] asking, checks who may do it and whether the state allows it, writes the new value to
//! `_unsilo.config` (through [`ControlPlane`], read-your-writes) and records it in `_unsilo.audit`.
//!
//! Approval runs the whole activation: check the grant against the request and the agency's clearance
//! ([`check::check_grant`]), register the view schema under `sub.<agency>.<name>-value`, create the subscription's
//! topics, prepare the channel (create the SQL table, reach the Kafka cluster), then mark it active. A failure
//! after approval leaves the subscription `approved` (not delivering) with the reason in the error.
//!
//! # Layout
//!
//! - `requests`: the bodies the operations take (new agency, subscription request, approval …).
//! - `agencies`: agencies and their tokens.
//! - `subscriptions`: the subscription lifecycle — request, approve (activation), reject, revoke, expire — and
//!   delivery dead-letter replay.
//! - `evidence`: audit queries, verification, keys, checkpoints and a person's release report.
//! - `catalogue`: the resource catalogue — seeding, browsing, editing (versioned) and the bound it sets on
//!   every request; `catalogue_export` writes it as an `.xlsx` workbook.
//! - `corrections`: 校核纠错 — a subscriber's correction on a record it received, the provider's answer, the
//!   corrected version published with its lineage.
//! - `disposal`: when a grant ends — the agency's confirmation of destruction, due and late, and the hub's
//!   removal of SQL rows past `retain_until`.
//! - `usage`: the usage register (使用登记) an agency keeps per subscription, read by the platform and the
//!   provider.
//! - `workflow`: the 政务数据共享条例's shape of a request — its Art. 20 items, who decides (the providing
//!   organisation or the platform), the working-day deadlines and overdue requests.
//! - `report`: the supervisor's monthly report (Art. 38) per organisation and per source; `report_export`
//!   writes it as an `.xlsx` workbook.
//! - `sources`: source dead-letter replay and re-normalisation from `raw.`.
//! - this file: the [`Governance`] value, its settings, and the checks every operation shares.

mod agencies;
mod catalogue;
pub mod catalogue_export;
mod corrections;
mod cross_hub;
mod disposal;
mod evidence;
mod report;
pub mod report_export;
mod requests;
mod sources;
mod subscriptions;
mod usage;
mod workflow;

pub use catalogue::{CatalogueEdit, CatalogueView};
pub use corrections::{
    CorrectionOutcome, CorrectionReply, NewCorrection, CORRECTION_ANSWER_DAYS, HEADER_CORRECTION,
    HEADER_CORRECTS,
};
pub use cross_hub::{LinkedAgencyInfo, LinkedRequest, LinkedRequestState};
pub use disposal::{DisposalConfirmation, DisposalView, SqlRetentionTarget};
pub use evidence::{AuditSearch, PersonRelease, PersonReport, PersonSearch};
pub use report::{
    current_month, month_bounds, MonthlyReport, OrganisationFigures, ProviderFigures, ReasonCount,
    RequesterFigures, SourceFigures, PLATFORM,
};
pub use requests::{
    ApproveRequest, ClientCertificateBinding, NewAgency, NewToken, ReasonRequest,
    SubscriptionRequest,
};
pub use sources::RenormaliseRequest;
pub use usage::NewUsage;
pub use workflow::{
    deciding_provider, missing_request_items, ExtensionRequest, OverdueRequest,
    ANSWER_DAYS_CONDITIONAL, ANSWER_DAYS_UNCONDITIONAL, DELIVERY_DAYS, MAX_EXTENSION_DAYS,
};

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};
use unsilo_schemas::Sensitivity;

use crate::api_error::ApiError;
use crate::audit::person::PersonIndex;
use crate::audit::{
    self, AuditAnswer, AuditEvent, AuditLog, AuditQuery, Checkpoint, TrustedKeys, VerifyReport,
};
use crate::auth::{self, Principal};
use crate::control::{
    ControlError, ControlPlane, DeadLetterFilter, DeliveryControl, Renormalisation, SourceControl,
    SourceReplay, SourceReplayError, StageControls,
};
use crate::egress::EgressPolicy;
use crate::roles::{self, Action};
use crate::secrets::HubSecret;
use unsilo_bus::Bus;
use unsilo_policy::check::{self, PolicyError};
use unsilo_policy::model::{
    check_slug, Agency, Approval, Channel, FieldRule, Subscription, SubscriptionSpec,
    SubscriptionStatus, TokenDigest,
};
use unsilo_policy::treat::{pseudonym, PseudonymKey};
use unsilo_registry::Registry;

/// What the admin operations are set up with, besides the hub's parts.
#[derive(Clone, Debug)]
pub struct GovernanceSettings {
    /// Partitions and retention of each subscription's topics.
    pub topics: crate::config::TopicPlan,
    /// The live figures (a subscription's history progress among them).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Approve UNCONDITIONAL requests within clearance automatically (`[policy] auto_approve_unconditional`).
    pub auto_approve_unconditional: bool,
    /// The highest clearance given to a linked hub's agency (`[policy] linked_hub_clearance`); `None` = S1.
    pub linked_hub_clearance: Option<unsilo_schemas::Sensitivity>,
    /// Which addresses webhooks may reach.
    pub egress: Arc<EgressPolicy>,
    /// The keys `audit verify` checks chains with.
    pub trusted_keys: TrustedKeys,
    /// Push connectors whose credential may ask for person release reports (`report = true` in their
    /// `[connectors.http_push]`), e.g. the 秦务员 platform answering a citizen.
    pub report_sources: Vec<String>,
    /// The configured connectors: the sources the monthly report accounts for.
    pub connectors: Vec<String>,
    /// The working-day calendar the sharing deadlines run on (shipped years plus `[policy] calendar_dir`).
    pub calendar: Arc<crate::calendar::WorkingCalendar>,
    /// The on-disk index of releases by person (kept current by [`PersonIndex::follow`]).
    pub person_index: Arc<PersonIndex>,
}

/// The operations of the control plane, each checking its caller.
pub struct Governance {
    control: Arc<ControlPlane>,
    registry: Arc<Registry>,
    audit: Arc<AuditLog>,
    bus: Arc<dyn Bus>,
    secret: Arc<HubSecret>,
    pseudonym_key: PseudonymKey,
    delivery: Arc<dyn DeliveryControl>,
    sources: Arc<dyn SourceControl>,
    settings: GovernanceSettings,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

/// The caller's name, or 403 naming who may: whether `who` may perform `action` at all is the role matrix's
/// ([`crate::roles::MATRIX`]) to say; whether it may on *this* agency or subscription is the operation's.
pub fn authorize(who: &Principal, action: Action) -> Result<&str, ApiError> {
    if roles::allows(who, action) {
        Ok(who.name())
    } else {
        Err(ApiError::Forbidden(format!(
            "this is for {}",
            roles::who_may(action)
        )))
    }
}

/// `Err(Invalid)` naming every item of `items` (name, value) left blank, after `what` ("a usage entry … also
/// states"): an incomplete submission hears everything it lacks at once.
fn require_items(what: &str, items: &[(&str, &str)]) -> Result<(), ApiError> {
    let missing: Vec<&str> = items
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| *k)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(format!("{what}: {}", missing.join(", "))))
    }
}

impl Governance {
    /// Writes `next` with its revision bumped to the control plane (optimistic concurrency against the one read)
    /// and records `action` on it, with `detail`, in the audit log.
    async fn save_subscription(
        &self,
        who: &Principal,
        mut next: Subscription,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<Subscription, ApiError> {
        next.revision += 1;
        self.control
            .put_subscription(&next)
            .await
            .map_err(control_error)?;
        self.record_control(who, action, &next.id, detail).await?;
        Ok(next)
    }
}

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::Conflict(_) => ApiError::Conflict(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// An expiry must lie in the future.
fn check_expiry(expires_at_ms: Option<i64>) -> Result<(), ApiError> {
    match expires_at_ms {
        Some(e) if e <= unsilo_bus::now_ms() => {
            Err(ApiError::Invalid("expires_at_ms is in the past".into()))
        }
        _ => Ok(()),
    }
}

fn policy_error(e: PolicyError) -> ApiError {
    ApiError::Invalid(e.to_string())
}

impl Governance {
    /// The operations over the hub's parts.
    pub fn new(
        control: Arc<ControlPlane>,
        registry: Arc<Registry>,
        audit: Arc<AuditLog>,
        bus: Arc<dyn Bus>,
        secret: Arc<HubSecret>,
        stages: StageControls,
        settings: GovernanceSettings,
    ) -> Self {
        Self {
            control,
            registry,
            audit,
            bus,
            pseudonym_key: secret.pseudonym_key(),
            secret,
            delivery: stages.delivery,
            sources: stages.sources,
            settings,
        }
    }

    /// The delivery stage, as far as the control surfaces may ask of it.
    pub fn delivery(&self) -> &dyn DeliveryControl {
        self.delivery.as_ref()
    }

    /// The keys `audit verify` checks chains with.
    pub fn trusted_keys(&self) -> &TrustedKeys {
        &self.settings.trusted_keys
    }

    /// The control plane.
    pub fn control(&self) -> &Arc<ControlPlane> {
        &self.control
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// The audit log.
    pub fn audit(&self) -> &Arc<AuditLog> {
        &self.audit
    }

    /// The person key (pseudonym) of an ID number, as release entries record it.
    pub fn person_key_of_cert_no(&self, cert_no: &str) -> String {
        pseudonym(
            &self.pseudonym_key,
            unsilo_schemas::PiiKind::CertNo.as_str(),
            cert_no,
        )
    }

    /// Records a control-plane event.
    pub async fn record_control(
        &self,
        who: &Principal,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.record_entry(who.to_string(), who.role(), action, target, detail)
            .await
    }

    /// Records an event whose actor may be no principal yet (a refused sign-in names what was typed).
    pub async fn record_entry(
        &self,
        actor: String,
        role: Option<roles::Role>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.audit
            .append(vec![AuditEvent::Control {
                actor,
                role: role.map(|r| r.as_str().to_owned()),
                action: action.to_owned(),
                target: target.to_owned(),
                detail,
            }])
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}
