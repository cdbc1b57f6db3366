//! Evidence: audit queries, verification, keys and checkpoints, and a person's release report (PIPL Art. 44–45)
//! from the audit log's person index.

#[allow(unused_imports)]
use super::*;

/// What to look for in the audit log; every given criterion must match.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
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

/// Whose release report is asked for: an ID number (turned into its person key here, never stored or logged)
/// or a person key.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
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
    /// The releases, oldest first: only those the audit log proves (entries covered by a valid signature of
    /// a pinned hub key).
    pub releases: Vec<PersonRelease>,
    /// Entries of the audit log that could not be verified and so are in no report; when not 0, the log has
    /// been written by something other than a hub (run `unsilo audit verify`).
    pub unverified_in_log: u64,
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
    pub fields: Vec<FieldRule>,
    /// Where the entry is in the audit log.
    pub audit_offset: u64,
    /// Released from history (a backfill, or the catch-up after a pause) rather than live.
    pub history: bool,
    /// How many days the agency may keep it, as granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_days: Option<u32>,
}

impl Governance {
    /// Audit entries matching `search` (operators only). An ID number is turned into its person key
    /// here and never stored or logged.
    pub async fn query_audit(
        &self,
        who: &Principal,
        search: AuditSearch,
    ) -> Result<AuditAnswer, ApiError> {
        authorize(who, Action::ReadAuditLog)?;
        // The audit administrator's own reads are evidence too (三员分立: 8.1.5.3) — the criteria, never an
        // ID number.
        self.record_control(
            who,
            "audit.query",
            "_unsilo.audit",
            json!({
                "record_id": search.record_id,
                "by_person": search.person_key.is_some() || search.cert_no.is_some(),
                "subscription": search.subscription,
                "agency": search.agency,
            }),
        )
        .await?;
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
        audit::query(
            self.bus.as_ref(),
            self.audit.topic(),
            &self.settings.trusted_keys,
            &query,
        )
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
        let allowed = roles::allows(who, Action::PersonReport)
            && match who {
                Principal::PushSource(connector) => {
                    self.settings.report_sources.contains(connector)
                }
                _ => true,
            };
        if !allowed {
            return Err(ApiError::Forbidden(
                "release reports are for the audit administrator and for source platforms given the `report` permission"
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
        // Who asked about whom is evidence too: the person key (pseudonymous), never the ID number.
        self.record_control(
            who,
            "audit.person_report",
            &person_key,
            serde_json::Value::Null,
        )
        .await?;
        let found = self
            .settings
            .person_index
            .releases_of(self.bus.as_ref(), &person_key)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let entries = found.entries;
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
                    history,
                    retain_days,
                    ..
                } => Some(PersonRelease {
                    history,
                    retain_days,
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
                AuditEvent::Control { .. }
                | AuditEvent::Releases { .. }
                | AuditEvent::ReleaseTerms(_) => None,
            })
            .collect();
        Ok(PersonReport {
            person_key,
            generated_at_ms: unsilo_bus::now_ms(),
            releases,
            unverified_in_log: found.unverified_in_log,
        })
    }

    /// Verifies the audit log's chains and signatures, against checkpoints exported earlier if given
    /// (operators only).
    pub async fn verify_audit(
        &self,
        who: &Principal,
        external: &[Checkpoint],
    ) -> Result<VerifyReport, ApiError> {
        authorize(who, Action::VerifyAuditLog)?;
        self.record_control(
            who,
            "audit.verify",
            "_unsilo.audit",
            json!({ "external_checkpoints": external.len() }),
        )
        .await?;
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
    pub fn audit_keys(&self, who: &Principal) -> Result<crate::admin::bodies::AuditKeys, ApiError> {
        authorize(who, Action::VerifyAuditLog)?;
        Ok(crate::admin::bodies::AuditKeys {
            hub: self.audit.hub().to_owned(),
            public_key: self.audit.public_key(),
            public_key_pem: self.audit.public_key_pem(),
            algorithm: self.audit.key_algorithm().to_owned(),
            signer_id: (self.audit.suite() == unsilo_schemas::crypto::Suite::Gm)
                .then(|| crate::audit::signing::SM2_DEFAULT_SIGNER_ID.to_owned()),
            hash: self.audit.suite().hash_name().to_owned(),
            trusted: self.settings.trusted_keys.keys.clone(),
        })
    }

    /// The audit log of `[from_ms, to_ms)` as a signed bundle ([`crate::audit::export`]), for an auditor to
    /// verify offline (the audit administrator). The export is itself an audit entry.
    pub async fn export_audit(
        &self,
        who: &Principal,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<String, ApiError> {
        authorize(who, Action::ExportAuditLog)?;
        if to_ms <= from_ms {
            return Err(ApiError::Invalid("to_ms must be after from_ms".into()));
        }
        self.record_control(
            who,
            "audit.export",
            "_unsilo.audit",
            json!({ "from_ms": from_ms, "to_ms": to_ms }),
        )
        .await?;
        crate::audit::export::export(
            self.bus.as_ref(),
            &self.audit,
            &self.settings.trusted_keys,
            from_ms,
            to_ms,
        )
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// The audit log's checkpoints, for keeping elsewhere (operators only).
    pub async fn audit_checkpoints(&self, who: &Principal) -> Result<Vec<Checkpoint>, ApiError> {
        authorize(who, Action::VerifyAuditLog)?;
        audit::checkpoint::read(self.bus.as_ref(), self.audit.topic())
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}
