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

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use tracing::info;
use unsilo_schemas::Sensitivity;

use crate::api_error::ApiError;
use crate::audit::person::PersonIndex;
use crate::audit::{
    self, AuditEntry, AuditEvent, AuditLog, AuditQuery, Checkpoint, TrustedKeys, VerifyReport,
};
use crate::auth::{self, Principal};
use crate::control::{
    ControlError, ControlPlane, DeadLetterFilter, DeliveryControl, Renormalisation, SourceControl,
    SourceReplay, SourceReplayError, StageControls,
};
use crate::egress::EgressPolicy;
use crate::secrets::HubSecret;
use unsilo_bus::{Bus, TopicSpec};
use unsilo_policy::check::{self, PolicyError};
use unsilo_policy::model::{
    check_slug, Agency, Approval, Channel, FieldRule, Subscription, SubscriptionSpec,
    SubscriptionStatus, TokenDigest,
};
use unsilo_policy::treat::{pseudonym, PseudonymKey};
use unsilo_registry::Registry;

/// Body of `POST /admin/agencies`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAgency {
    /// Agency id (`[a-z0-9-]`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unified social credit code.
    pub uscc: String,
    /// Clearance, `S1`..`S4`.
    pub clearance: String,
    /// SHA-256 fingerprint of a TLS client certificate, optional: when set, the agency is accepted only on a
    /// connection that presents exactly that certificate.
    #[serde(default)]
    pub client_cert_sha256: Option<String>,
    /// Expiry of the first token (ms since the epoch); none = until revoked.
    #[serde(default)]
    pub token_expires_at_ms: Option<i64>,
}

/// Body of `POST /admin/agencies/{id}/tokens` (optional).
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// When the token stops being accepted (ms since the epoch); none = until revoked.
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
}

/// Body of `PUT /admin/agencies/{id}/client-certificate`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateBinding {
    /// SHA-256 fingerprint (hex) of the agency's TLS client certificate; `null` removes the binding.
    pub client_cert_sha256: Option<String>,
}

/// Body of `POST /admin/subscriptions`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// The requesting agency; required when an operator files the request, must be the caller's own otherwise.
    #[serde(default)]
    pub agency: Option<String>,
    /// The agency's name for the subscription (`[a-z0-9-]`).
    pub name: String,
    /// What is asked for.
    #[serde(flatten)]
    pub spec: SubscriptionSpec,
}

/// Body of `POST /admin/subscriptions/{id}/approve`: optional narrowing and explicit approvals.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Grant only these fields, with treatments revealing no more than requested.
    #[serde(default)]
    pub fields: Option<Vec<FieldRule>>,
    /// Additional filter conditions, AND-ed with the requested filter.
    #[serde(default)]
    pub and_filter: Option<String>,
    /// An earlier expiry (ms since the epoch).
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// The legal basis on record (required for S4 fields in clear).
    #[serde(default)]
    pub legal_basis: Option<String>,
    /// Fields above the agency's clearance the operator explicitly approves.
    #[serde(default)]
    pub approve_above_clearance: Vec<String>,
}

/// Body of `POST /admin/connectors/{name}/renormalise`: which stored originals to run again.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenormaliseRequest {
    /// From this time (ms since the epoch, inclusive).
    pub from_ms: i64,
    /// Until this time (exclusive); none = up to now.
    #[serde(default)]
    pub to_ms: Option<i64>,
}

/// Body of reject and revoke.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why; recorded with the subscription and in the audit log.
    pub reason: String,
}

/// Whose release report is asked for: an ID number (turned into its person key here, never stored or logged)
/// or a person key.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PersonSearch {
    /// The person's ID number (身份证号).
    pub cert_no: Option<String>,
    /// Or the person's pseudonymous key, as release entries and pseudonymised fields carry it.
    pub person_key: Option<String>,
}

/// Every release of a record about one person: who received it, under which subscription, for what purpose
/// and legal basis, which fields with which treatment, and when.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PersonReport {
    /// The person's pseudonymous key (never the ID number).
    pub person_key: String,
    /// When the report was made (ms since the epoch).
    pub generated_at_ms: i64,
    /// The releases, oldest first.
    pub releases: Vec<PersonRelease>,
}

/// One release in a [`PersonReport`].
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PersonRelease {
    /// When (ms since the epoch).
    pub time_ms: i64,
    /// The receiving agency's id.
    pub agency: String,
    /// Its name, if the agency is still on record.
    pub agency_name: Option<String>,
    /// The subscription.
    pub subscription: String,
    /// The stated purpose.
    pub purpose: String,
    /// The legal basis the subscription's grant names now, if any.
    pub legal_basis: Option<String>,
    /// The shared schema of the record.
    pub schema: String,
    /// The record's id.
    pub record_id: String,
    /// The delivery channel.
    pub channel: String,
    /// The fields released and their treatments.
    #[schema(value_type = Vec<Object>)]
    pub fields: Vec<FieldRule>,
    /// Where the entry is in the audit log.
    pub audit_offset: u64,
}

/// What to look for in the audit log; every given criterion must match.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditSearch {
    /// One record's id.
    pub record_id: Option<String>,
    /// A person's key (the pseudonym release entries record).
    pub person_key: Option<String>,
    /// An ID number: turned into its person key, never stored or logged.
    pub cert_no: Option<String>,
    /// One subscription's id.
    pub subscription: Option<String>,
    /// One agency's id.
    pub agency: Option<String>,
    /// At most this many entries.
    pub limit: Option<usize>,
}

/// What the admin operations are set up with, besides the hub's parts.
#[derive(Clone, Debug, Default)]
pub struct GovernanceSettings {
    /// Bus partitions of each subscription's topics.
    pub partitions: u32,
    /// Approve UNCONDITIONAL requests within clearance automatically (`[policy] auto_approve_unconditional`).
    pub auto_approve_unconditional: bool,
    /// Which addresses webhooks may reach.
    pub egress: Arc<EgressPolicy>,
    /// The keys `audit verify` checks chains with.
    pub trusted_keys: TrustedKeys,
    /// Push connectors whose credential may ask for person release reports (`report = true` in their
    /// `[connectors.http_push]`), e.g. the 秦务员 platform answering a citizen.
    pub report_sources: Vec<String>,
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
    /// Releases by person key, for release reports.
    person_index: PersonIndex,
}

impl std::fmt::Debug for Governance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governance").finish_non_exhaustive()
    }
}

/// The operator's name, or 403: only operators manage agencies and decide on subscriptions.
pub fn require_operator(who: &Principal) -> Result<&str, ApiError> {
    match who {
        Principal::Operator(name) => Ok(name),
        _ => Err(ApiError::Forbidden(
            "this operation is for operators".into(),
        )),
    }
}

/// An agency or operator, or 403 (push sources have no business with the admin API or the console).
pub fn require_person(who: &Principal) -> Result<(), ApiError> {
    match who {
        Principal::PushSource(_) => Err(ApiError::Forbidden(
            "a push source's credential can only push records".into(),
        )),
        _ => Ok(()),
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

fn source_error(e: SourceReplayError, connector: &str) -> ApiError {
    match e {
        SourceReplayError::UnknownConnector(_) => {
            ApiError::NotFound(format!("connector `{connector}`"))
        }
        SourceReplayError::Failed(cause) => ApiError::Internal(cause),
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
            person_index: PersonIndex::new(audit.topic()),
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

    /// The agency `id` if `who` may see it (an operator, or the agency itself); 404 otherwise, so
    /// that agency names cannot be probed.
    pub fn visible_agency(&self, who: &Principal, id: &str) -> Result<Agency, ApiError> {
        self.control
            .agency(id)
            .filter(|a| who.may_see_agency(&a.id))
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))
    }

    /// A subscription the caller may see (404 otherwise, so other agencies' ids cannot be probed).
    pub fn visible_subscription(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Subscription, ApiError> {
        self.control
            .subscription_visible_to(who, id)
            .ok_or_else(|| ApiError::NotFound(format!("subscription `{id}`")))
    }

    /// The agencies `who` may see: every one for an operator, its own for an agency.
    pub fn list_agencies(&self, who: &Principal) -> Result<Vec<Agency>, ApiError> {
        require_person(who)?;
        let state = self.control.read();
        Ok(state
            .agencies
            .values()
            .filter(|a| who.may_see_agency(&a.id))
            .cloned()
            .collect())
    }

    /// The subscriptions `who` may see, optionally only those of one status and one agency.
    pub fn list_subscriptions(
        &self,
        who: &Principal,
        status: Option<&str>,
        agency: Option<&str>,
    ) -> Result<Vec<Subscription>, ApiError> {
        require_person(who)?;
        let state = self.control.read();
        Ok(state
            .subscriptions
            .values()
            .filter(|s| who.may_see_agency(&s.agency))
            .filter(|s| status.is_none_or(|st| st == s.status.as_str()))
            .filter(|s| agency.is_none_or(|a| a == s.agency))
            .cloned()
            .collect())
    }

    /// Puts a subscription's dead-lettered deliveries back on its topic (operator, or the owning agency);
    /// returns how many, and records it.
    pub async fn replay_dead_letters(&self, who: &Principal, id: &str) -> Result<usize, ApiError> {
        let subscription = self.visible_subscription(who, id)?;
        let replayed = self
            .delivery
            .replay_dead_letters(&subscription)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        self.record_control(
            who,
            "subscription.dlq_replay",
            id,
            json!({ "replayed": replayed }),
        )
        .await?;
        Ok(replayed)
    }

    /// Runs a connector's rejected originals through its current definition again (operators only), and
    /// records it: see [`SourceControl::replay_source_dead_letters`].
    pub async fn replay_source_dead_letters(
        &self,
        who: &Principal,
        connector: &str,
        filter: DeadLetterFilter,
    ) -> Result<SourceReplay, ApiError> {
        require_operator(who)?;
        let outcome = self
            .sources
            .replay_source_dead_letters(connector, &filter)
            .await
            .map_err(|e| match e {
                SourceReplayError::UnknownConnector(_) => {
                    ApiError::NotFound(format!("connector `{connector}`"))
                }
                SourceReplayError::Failed(cause) => ApiError::Internal(cause),
            })?;
        self.record_control(
            who,
            "connector.dlq_replay",
            connector,
            json!({ "filter": { "code": filter.code, "since_ms": filter.since_ms }, "outcome": outcome }),
        )
        .await?;
        info!(
            connector,
            taken = outcome.taken,
            accepted = outcome.accepted,
            rejected = outcome.rejected,
            "Source dead letters replayed."
        );
        Ok(outcome)
    }

    /// Runs `raw.<connector>` originals stored from `from_ms` (to `to_ms`) through the connector's current
    /// definition again, publishing to `std.` with the same record ids (operators only), and records it.
    pub async fn renormalise(
        &self,
        who: &Principal,
        connector: &str,
        range: RenormaliseRequest,
    ) -> Result<Renormalisation, ApiError> {
        require_operator(who)?;
        if range.to_ms.is_some_and(|to| to <= range.from_ms) {
            return Err(ApiError::Invalid("to_ms must be after from_ms".into()));
        }
        let outcome = self
            .sources
            .renormalise(connector, range.from_ms, range.to_ms)
            .await
            .map_err(|e| source_error(e, connector))?;
        self.record_control(
            who,
            "connector.renormalise",
            connector,
            json!({ "from_ms": range.from_ms, "to_ms": range.to_ms, "outcome": outcome }),
        )
        .await?;
        info!(
            connector,
            taken = outcome.taken,
            accepted = outcome.accepted,
            "Source re-normalised from raw."
        );
        Ok(outcome)
    }

    /// Audit entries matching `search` (operators only). An ID number is turned into its person key
    /// here and never stored or logged.
    pub async fn query_audit(
        &self,
        who: &Principal,
        search: AuditSearch,
    ) -> Result<Vec<AuditEntry>, ApiError> {
        require_operator(who)?;
        let person_key = match (&search.person_key, &search.cert_no) {
            (Some(k), _) => Some(k.clone()),
            (None, Some(c)) => Some(self.person_key_of_cert_no(c)),
            (None, None) => None,
        };
        let query = AuditQuery {
            record_id: search.record_id,
            person_key,
            subscription: search.subscription,
            agency: search.agency,
            limit: search.limit,
        };
        audit::query(self.bus.as_ref(), self.audit.topic(), &query)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The release report of one person (PIPL Art. 44–45): every release about them, from the audit log's
    /// person index. Operators may ask, and push sources whose connector has `report = true` (a source platform
    /// answering the person in front of it).
    pub async fn person_report(
        &self,
        who: &Principal,
        search: PersonSearch,
    ) -> Result<PersonReport, ApiError> {
        let allowed = match who {
            Principal::Operator(_) => true,
            Principal::PushSource(connector) => self.settings.report_sources.contains(connector),
            Principal::Agency(_) => false,
        };
        if !allowed {
            return Err(ApiError::Forbidden(
                "release reports are for operators and for source platforms given the `report` permission"
                    .into(),
            ));
        }
        let person_key = match (search.person_key, search.cert_no) {
            (Some(key), _) if !key.trim().is_empty() => key.trim().to_owned(),
            (_, Some(cert_no)) if !cert_no.trim().is_empty() => {
                let valid = unsilo_schemas::validate::validate_cert_no(cert_no.trim())
                    .map_err(|e| ApiError::Invalid(format!("cert_no: {e}")))?;
                self.person_key_of_cert_no(valid.as_str())
            }
            _ => {
                return Err(ApiError::Invalid(
                    "give the person's cert_no (ID number) or person_key".into(),
                ))
            }
        };
        let entries = self
            .person_index
            .releases_of(self.bus.as_ref(), &person_key)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let state = self.control.read();
        let releases = entries
            .into_iter()
            .filter_map(|e| match e.body.event {
                AuditEvent::Release {
                    record_id,
                    schema,
                    subscription,
                    agency,
                    fields,
                    purpose,
                    channel,
                    ..
                } => Some(PersonRelease {
                    time_ms: e.body.time_ms,
                    agency_name: state.agencies.get(&agency).map(|a| a.name.clone()),
                    legal_basis: state
                        .subscriptions
                        .get(&subscription)
                        .and_then(|s| s.spec().legal_basis.clone()),
                    agency,
                    subscription,
                    purpose,
                    schema,
                    record_id,
                    channel,
                    fields,
                    audit_offset: e.offset,
                }),
                AuditEvent::Control { .. } => None,
            })
            .collect();
        Ok(PersonReport {
            person_key,
            generated_at_ms: unsilo_bus::now_ms(),
            releases,
        })
    }

    /// Verifies the audit log's chains and signatures, against checkpoints exported earlier if given
    /// (operators only).
    pub async fn verify_audit(
        &self,
        who: &Principal,
        external: &[Checkpoint],
    ) -> Result<VerifyReport, ApiError> {
        require_operator(who)?;
        audit::verify(
            self.bus.as_ref(),
            self.audit.topic(),
            &self.settings.trusted_keys,
            external,
        )
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The hub's audit signing key and the keys it trusts (operators only).
    pub fn audit_keys(&self, who: &Principal) -> Result<serde_json::Value, ApiError> {
        require_operator(who)?;
        Ok(json!({
            "hub": self.audit.hub(),
            "public_key": self.audit.public_key(),
            "algorithm": "Ed25519",
            "trusted": self.settings.trusted_keys.keys,
        }))
    }

    /// The audit log's checkpoints, for keeping elsewhere (operators only).
    pub async fn audit_checkpoints(&self, who: &Principal) -> Result<Vec<Checkpoint>, ApiError> {
        require_operator(who)?;
        audit::checkpoint::read(self.bus.as_ref(), self.audit.topic())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Records a control-plane event.
    pub async fn record_control(
        &self,
        who: &Principal,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.audit
            .append(vec![AuditEvent::Control {
                actor: who.to_string(),
                action: action.to_owned(),
                target: target.to_owned(),
                detail,
            }])
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Creates an agency and its first token (returned once).
    pub async fn create_agency(
        &self,
        who: &Principal,
        new: NewAgency,
    ) -> Result<(Agency, String), ApiError> {
        let operator = require_operator(who)?;
        let clearance: Sensitivity = new.clearance.parse().map_err(|_| {
            ApiError::Invalid(format!(
                "clearance `{}` is not one of S1, S2, S3, S4",
                new.clearance
            ))
        })?;
        let (token, digest) = auth::new_token();
        let agency = Agency {
            id: new.id,
            name: new.name,
            uscc: new.uscc.trim().to_ascii_uppercase(),
            clearance,
            tokens: vec![TokenDigest {
                id: auth::token_id(&digest),
                sha256: digest,
                issued_at_ms: unsilo_bus::now_ms(),
                expires_at_ms: new.token_expires_at_ms,
                revoked_at_ms: None,
            }],
            client_cert_sha256: new.client_cert_sha256,
            created_at_ms: unsilo_bus::now_ms(),
            created_by: operator.to_owned(),
        };
        agency
            .validate()
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        check_expiry(new.token_expires_at_ms)?;
        if self.control.agency(&agency.id).is_some() {
            return Err(ApiError::Conflict(format!(
                "agency `{}` already exists",
                agency.id
            )));
        }
        self.control
            .put_agency(&agency, None)
            .await
            .map_err(control_error)?;
        self.record_control(who, "agency.create", &agency.id, json!(agency.view()))
            .await?;
        info!(agency = %agency.id, operator, "Agency created.");
        Ok((agency, token))
    }

    /// Issues an additional token to an agency (returned once, with its id). The agency's other tokens keep
    /// working, so a token can be rotated with overlap: issue, switch the client over, revoke the old one.
    pub async fn issue_token(
        &self,
        who: &Principal,
        id: &str,
        new: NewToken,
    ) -> Result<(String, String), ApiError> {
        let operator = require_operator(who)?;
        check_expiry(new.expires_at_ms)?;
        let current = self
            .control
            .agency(id)
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))?;
        let (token, digest) = auth::new_token();
        let mut updated = current.clone();
        let token_id = auth::token_id(&digest);
        updated.tokens.push(TokenDigest {
            id: token_id.clone(),
            sha256: digest,
            issued_at_ms: unsilo_bus::now_ms(),
            expires_at_ms: new.expires_at_ms,
            revoked_at_ms: None,
        });
        self.update_agency(
            who,
            &current,
            &updated,
            "agency.issue_token",
            json!({ "token_id": token_id, "expires_at_ms": new.expires_at_ms }),
        )
        .await?;
        info!(agency = %id, token_id = %token_id, operator, "Agency token issued.");
        Ok((token, token_id))
    }

    /// Revokes one of an agency's tokens (by id): it is refused from the next request on. An operator may
    /// revoke any agency's token, an agency its own.
    pub async fn revoke_token(
        &self,
        who: &Principal,
        id: &str,
        token_id: &str,
    ) -> Result<TokenDigest, ApiError> {
        let current = match self.control.agency(id) {
            Some(a) if who.may_see_agency(&a.id) => a,
            _ => return Err(ApiError::NotFound(format!("agency `{id}`"))),
        };
        let mut updated = current.clone();
        let token = updated
            .tokens
            .iter_mut()
            .find(|t| t.id == token_id)
            .ok_or_else(|| ApiError::NotFound(format!("token `{token_id}` of agency `{id}`")))?;
        if token.revoked_at_ms.is_some() {
            return Err(ApiError::Conflict(format!(
                "token `{token_id}` is already revoked"
            )));
        }
        token.revoked_at_ms = Some(unsilo_bus::now_ms());
        let revoked = token.clone();
        self.update_agency(
            who,
            &current,
            &updated,
            "agency.revoke_token",
            json!({ "token_id": token_id }),
        )
        .await?;
        info!(agency = %id, token_id, by = %who, "Agency token revoked.");
        Ok(revoked)
    }

    /// Binds an agency to a TLS client certificate (or removes the binding).
    pub async fn bind_client_certificate(
        &self,
        who: &Principal,
        id: &str,
        binding: ClientCertificateBinding,
    ) -> Result<Agency, ApiError> {
        require_operator(who)?;
        let current = self
            .control
            .agency(id)
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))?;
        let mut updated = current.clone();
        updated.client_cert_sha256 = binding
            .client_cert_sha256
            .map(|f| f.trim().to_ascii_lowercase().replace(':', ""));
        updated
            .validate()
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        self.update_agency(
            who,
            &current,
            &updated,
            "agency.bind_client_certificate",
            json!({ "client_cert_sha256": updated.client_cert_sha256 }),
        )
        .await?;
        Ok(updated)
    }

    /// Writes a changed agency (checking it still is `current`) and records the change.
    async fn update_agency(
        &self,
        who: &Principal,
        current: &Agency,
        updated: &Agency,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), ApiError> {
        self.control
            .put_agency(updated, Some(current))
            .await
            .map_err(control_error)?;
        self.record_control(who, action, &updated.id, detail).await
    }

    /// Checks a webhook channel's target against the egress policy (resolving its host).
    async fn check_channel_target(&self, channel: &Channel) -> Result<(), ApiError> {
        if let Channel::Webhook { url } = channel {
            self.settings
                .egress
                .check_url(url)
                .await
                .map_err(|e| ApiError::Invalid(e.to_string()))?;
        }
        Ok(())
    }

    /// Files a subscription request. Returns it, and for a webhook channel its signing key (shown once).
    pub async fn request(
        &self,
        who: &Principal,
        request: SubscriptionRequest,
    ) -> Result<(Subscription, Option<Vec<u8>>), ApiError> {
        let agency_id = match (who, &request.agency) {
            (Principal::Agency(own), None) => own.clone(),
            (Principal::Agency(own), Some(a)) if a == own => own.clone(),
            (Principal::Agency(_), Some(_)) => {
                return Err(ApiError::Forbidden(
                    "an agency can request subscriptions only for itself".into(),
                ))
            }
            (Principal::Operator(_), Some(a)) => a.clone(),
            (Principal::Operator(_), None) => {
                return Err(ApiError::Invalid(
                    "an operator filing a request must name the agency".into(),
                ))
            }
            (Principal::PushSource(_), _) => {
                return Err(ApiError::Forbidden(
                    "a push source's credential can only push records".into(),
                ))
            }
        };
        if self.control.agency(&agency_id).is_none() {
            return Err(ApiError::NotFound(format!("agency `{agency_id}`")));
        }
        check_slug("subscription name", &request.name, 40)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        request
            .spec
            .check_shape(unsilo_bus::now_ms())
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        if let Channel::Kafka {
            bootstrap_servers: None,
            ..
        } = &request.spec.channel
        {
            if self.bus.kind() != "kafka" {
                return Err(ApiError::Invalid(
                    "a kafka channel needs bootstrap_servers when the hub's bus is embedded".into(),
                ));
            }
        }
        let id = Subscription::id_of(&agency_id, &request.name);
        check::compile(&request.spec, &id).map_err(policy_error)?;
        self.check_channel_target(&request.spec.channel).await?;
        if self.control.subscription(&id).is_some() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` already exists; choose another name"
            )));
        }
        let subscription = Subscription::new_request(
            &agency_id,
            &request.name,
            request.spec,
            unsilo_bus::now_ms(),
        );
        self.control
            .put_subscription(&subscription)
            .await
            .map_err(control_error)?;
        self.record_control(
            who,
            "subscription.request",
            &id,
            json!(subscription.requested.redacted()),
        )
        .await?;
        info!(subscription = %id, by = %who, "Subscription requested.");
        let key = matches!(subscription.requested.channel, Channel::Webhook { .. })
            .then(|| self.secret.webhook_key(&id));
        if self.settings.auto_approve_unconditional {
            let agency = self.control.agency(&subscription.agency);
            if let Some(granted) =
                agency.and_then(|a| check::auto_grant(&a, &subscription.requested))
            {
                let approved = self.auto_approve(subscription, granted).await?;
                return Ok((approved, key));
            }
        }
        Ok((subscription, key))
    }

    /// Approves a request automatically (UNCONDITIONAL, non-CORE data within clearance) and activates it.
    async fn auto_approve(
        &self,
        current: Subscription,
        granted: SubscriptionSpec,
    ) -> Result<Subscription, ApiError> {
        let hub = Principal::Operator("hub".into());
        let mut approved = current.clone();
        approved.status = SubscriptionStatus::Approved;
        approved.granted = Some(granted.clone());
        approved.approvals = vec![Approval {
            operator: "hub".into(),
            at_ms: unsilo_bus::now_ms(),
        }];
        approved.auto_approved = true;
        approved.decided_by = Some("hub".into());
        approved.decided_at_ms = Some(unsilo_bus::now_ms());
        approved.revision += 1;
        self.control
            .put_subscription(&approved)
            .await
            .map_err(control_error)?;
        self.record_control(
            &hub,
            "subscription.approve",
            &approved.id,
            json!({
                "automatic": true,
                "why": "[policy] auto_approve_unconditional: every field within the agency's clearance; only UNCONDITIONAL, non-CORE records",
                "granted": granted.redacted(),
            }),
        )
        .await?;
        info!(subscription = %approved.id, "Subscription approved automatically (UNCONDITIONAL data within clearance).");
        self.activate("hub", approved).await
    }

    fn current_for_decision(&self, id: &str) -> Result<Subscription, ApiError> {
        self.control
            .subscription(id)
            .ok_or_else(|| ApiError::NotFound(format!("subscription `{id}`")))
    }

    /// Approves a requested subscription, possibly narrowed, and activates it.
    ///
    /// A grant that can release CORE-grade records or S4 fields in clear needs two different operators
    /// (双人复核): the first approval records the grant and one approval and leaves the subscription `requested`;
    /// a second operator confirms it (an empty approval, or the same grant) and only then is it activated. A
    /// second approval with a different grant starts over with that grant and one approval.
    pub async fn approve(
        &self,
        who: &Principal,
        id: &str,
        request: ApproveRequest,
    ) -> Result<Subscription, ApiError> {
        let operator = require_operator(who)?;
        let current = self.current_for_decision(id)?;
        if current.status == SubscriptionStatus::Approved {
            // Approved earlier, but activation failed (e.g. the subscriber's database was down): retry it with
            // the grant on record.
            return self.activate(operator, current).await;
        }
        if current.status != SubscriptionStatus::Requested {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is {}; only a requested subscription can be approved",
                current.status.as_str()
            )));
        }
        let agency = self.control.agency(&current.agency).ok_or_else(|| {
            ApiError::Conflict(format!("agency `{}` no longer exists", current.agency))
        })?;
        let confirms_pending = request.fields.is_none()
            && request.and_filter.is_none()
            && request.expires_at_ms.is_none()
            && request.legal_basis.is_none()
            && request.approve_above_clearance.is_empty()
            && current.granted.is_some();
        let (granted, above) = match (&current.granted, confirms_pending) {
            (Some(pending), true) => (pending.clone(), current.approved_above_clearance.clone()),
            _ => {
                let mut granted = current.requested.clone();
                if let Some(fields) = request.fields {
                    granted.fields = fields;
                }
                if let Some(extra) = request.and_filter {
                    granted.filter = format!("({}) && ({extra})", current.requested.filter);
                }
                if let Some(expiry) = request.expires_at_ms {
                    granted.expires_at_ms = Some(expiry);
                }
                if let Some(basis) = request.legal_basis {
                    granted.legal_basis = Some(basis);
                }
                (granted, request.approve_above_clearance)
            }
        };
        granted
            .check_shape(unsilo_bus::now_ms())
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let compiled = check::compile(&granted, id).map_err(policy_error)?;
        check::check_grant(&agency, &current.requested, &granted, &above).map_err(policy_error)?;
        self.check_channel_target(&granted.channel).await?;
        let four_eyes = check::four_eyes_reasons(&granted, &compiled);

        // Approvals count only for the same grant.
        let same_grant =
            current.granted.as_ref() == Some(&granted) && current.approved_above_clearance == above;
        let mut approvals = if same_grant {
            current.approvals.clone()
        } else {
            Vec::new()
        };
        if approvals.iter().any(|a| a.operator == operator) {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` needs two different operators (双人复核) because {}; {operator} has already approved it, another operator must confirm",
                four_eyes.join(" and ")
            )));
        }
        approvals.push(Approval {
            operator: operator.to_owned(),
            at_ms: unsilo_bus::now_ms(),
        });
        let mut next = current.clone();
        next.granted = Some(granted.clone());
        next.approved_above_clearance = above.clone();
        next.approvals = approvals;
        next.decided_by = Some(operator.to_owned());
        next.decided_at_ms = Some(unsilo_bus::now_ms());
        next.revision += 1;
        let waits_for_second = !four_eyes.is_empty() && !next.four_eyes_approved();
        if !waits_for_second {
            next.status = SubscriptionStatus::Approved;
        }
        self.control
            .put_subscription(&next)
            .await
            .map_err(control_error)?;
        self.record_control(
            who,
            "subscription.approve",
            id,
            json!({
                "granted": granted.redacted(),
                "approve_above_clearance": above,
                "approvals": next.approvals.len(),
                "four_eyes": four_eyes,
            }),
        )
        .await?;
        if waits_for_second {
            info!(subscription = %id, operator, "First of two approvals recorded (双人复核).");
            return Ok(next);
        }
        self.activate(operator, next).await
    }

    /// Activates an approved subscription: registers its view schema, creates its topics, prepares its channel
    /// and marks it active. On failure it stays approved; approving it again retries.
    async fn activate(
        &self,
        operator: &str,
        approved: Subscription,
    ) -> Result<Subscription, ApiError> {
        let id = approved.id.clone();
        let who = Principal::Operator(operator.to_owned());
        let granted = approved.spec().clone();
        let compiled = check::compile(&granted, &id).map_err(policy_error)?;
        let view_text = compiled.plan.schema_json().to_string();
        let view_schema_id = self
            .registry
            .register(&approved.view_subject(), &view_text)
            .await
            .map_err(|e| ApiError::Internal(format!("registering the view schema: {e}")))?;
        for topic in [approved.topic(), approved.dlq_topic()] {
            self.bus
                .create_topic(&TopicSpec::new(topic, self.settings.partitions))
                .await
                .map_err(|e| {
                    ApiError::Internal(format!("creating the subscription's topics: {e}"))
                })?;
        }
        self.delivery
            .prepare_channel(&approved, compiled.plan.schema())
            .await
            .map_err(|e| {
                ApiError::Upstream(format!(
                    "preparing the {} channel: {e}",
                    granted.channel.kind()
                ))
            })?;
        let mut active = approved.clone();
        active.status = SubscriptionStatus::Active;
        active.view_schema_id = Some(view_schema_id);
        active.revision += 1;
        self.control
            .put_subscription(&active)
            .await
            .map_err(control_error)?;
        self.record_control(
            &who,
            "subscription.activate",
            &id,
            json!({ "view_schema_id": view_schema_id, "topic": active.topic() }),
        )
        .await?;
        info!(subscription = %id, operator, view_schema_id, "Subscription approved and active.");
        Ok(active)
    }

    /// Rejects a requested subscription.
    pub async fn reject(
        &self,
        who: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Subscription, ApiError> {
        require_operator(who)?;
        let current = self.current_for_decision(id)?;
        if current.status != SubscriptionStatus::Requested {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is {}; only a requested subscription can be rejected",
                current.status.as_str()
            )));
        }
        self.finish(
            who,
            current,
            SubscriptionStatus::Rejected,
            "subscription.reject",
            reason,
        )
        .await
    }

    /// Revokes a subscription (an operator, or the owning agency): nothing more is delivered from the
    /// moment this returns.
    pub async fn revoke(
        &self,
        who: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Subscription, ApiError> {
        self.visible_subscription(who, id)?;
        let current = self.current_for_decision(id)?;
        if current.status.is_final() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is already {}",
                current.status.as_str()
            )));
        }
        self.finish(
            who,
            current,
            SubscriptionStatus::Revoked,
            "subscription.revoke",
            reason,
        )
        .await
    }

    /// Marks an active subscription past its expiry as expired (the router already stops at the expiry time).
    pub async fn expire(&self, id: &str) -> Result<Subscription, ApiError> {
        let current = self.current_for_decision(id)?;
        self.finish(
            &Principal::Operator("hub".into()),
            current,
            SubscriptionStatus::Expired,
            "subscription.expire",
            "expiry reached".into(),
        )
        .await
    }

    async fn finish(
        &self,
        who: &Principal,
        current: Subscription,
        status: SubscriptionStatus,
        action: &str,
        reason: String,
    ) -> Result<Subscription, ApiError> {
        if reason.trim().is_empty() {
            return Err(ApiError::Invalid("a reason is required".into()));
        }
        let mut next = current;
        next.status = status;
        next.reason = Some(reason.clone());
        next.decided_by = Some(who.to_string());
        next.decided_at_ms = Some(unsilo_bus::now_ms());
        next.revision += 1;
        self.control
            .put_subscription(&next)
            .await
            .map_err(control_error)?;
        self.record_control(who, action, &next.id, json!({ "reason": reason }))
            .await?;
        info!(subscription = %next.id, status = status.as_str(), by = %who, "Subscription closed.");
        Ok(next)
    }

    /// Expires every active subscription whose expiry has passed. Returns how many.
    pub async fn expire_due(&self) -> usize {
        let now = unsilo_bus::now_ms();
        let due: Vec<String> = self
            .control
            .read()
            .subscriptions
            .values()
            .filter(|s| s.status == SubscriptionStatus::Active)
            .filter(|s| s.spec().expires_at_ms.is_some_and(|e| e <= now))
            .map(|s| s.id.clone())
            .collect();
        let mut n = 0;
        for id in due {
            if self.expire(&id).await.is_ok() {
                n += 1;
            }
        }
        n
    }
}
