//! Agencies and their tokens: create, list, issue and revoke tokens, bind a client certificate.

#[allow(unused_imports)]
use super::*;

impl Governance {
    /// The agency `id` if `who` may see it (an operator, or the agency itself); 404 otherwise, so
    /// that agency names cannot be probed.
    pub fn visible_agency(&self, who: &Principal, id: &str) -> Result<Agency, ApiError> {
        authorize(who, Action::ViewAgencies)?;
        self.control
            .agency(id)
            .filter(|a| who.may_see_agency(&a.id))
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))
    }

    /// The agencies `who` may see: every one for an operator, its own for an agency.
    pub fn list_agencies(&self, who: &Principal) -> Result<Vec<Agency>, ApiError> {
        authorize(who, Action::ViewAgencies)?;
        let state = self.control.read();
        Ok(state
            .agencies
            .values()
            .filter(|a| who.may_see_agency(&a.id))
            .cloned()
            .collect())
    }

    /// Creates an agency and its first token (returned once).
    pub async fn create_agency(
        &self,
        who: &Principal,
        new: NewAgency,
    ) -> Result<(Agency, String), ApiError> {
        let operator = authorize(who, Action::ManageAgencies)?;
        let clearance: Sensitivity = new.clearance.parse().map_err(|_| {
            ApiError::Invalid(format!(
                "clearance `{}` is not one of S1, S2, S3, S4",
                new.clearance
            ))
        })?;
        let (token, digest) = auth::new_token();
        let agency = Agency {
            revision: 0,
            suspended: None,
            linked: None,
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
                reviewer: None,
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
        let operator = authorize(who, Action::IssueAgencyCredentials)?;
        check_expiry(new.expires_at_ms)?;
        let reviewer = new.reviewer.as_deref().map(str::trim).map(str::to_owned);
        if let Some(name) = &reviewer {
            check_reviewer_name(name)?;
        }
        let current = self
            .control
            .agency(id)
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))?;
        no_credentials_for_linked(&current)?;
        let (token, digest) = auth::new_token();
        let mut updated = current.clone();
        let token_id = auth::token_id(&digest);
        updated.tokens.push(TokenDigest {
            id: token_id.clone(),
            sha256: digest,
            issued_at_ms: unsilo_bus::now_ms(),
            expires_at_ms: new.expires_at_ms,
            revoked_at_ms: None,
            reviewer: reviewer.clone(),
        });
        self.update_agency(
            who,
            &current,
            &updated,
            "agency.issue_token",
            json!({ "token_id": token_id, "expires_at_ms": new.expires_at_ms, "reviewer": reviewer }),
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
        authorize(who, Action::RevokeAgencyCredentials)?;
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
        authorize(who, Action::IssueAgencyCredentials)?;
        let current = self
            .control
            .agency(id)
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))?;
        no_credentials_for_linked(&current)?;
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

    /// Suspends an agency's sharing for misuse (政务数据共享条例 Art. 27), with the reason on record: every
    /// active subscription of it is paused (only a security administrator resumes it, and not while the
    /// suspension lasts) and it files no request until the suspension is lifted. Returns the paused ids.
    pub async fn suspend_agency(
        &self,
        who: &Principal,
        id: &str,
        reason: &str,
    ) -> Result<Vec<String>, ApiError> {
        authorize(who, Action::SuspendAgency)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApiError::Invalid(
                "reason: a suspension states the misuse it answers".into(),
            ));
        }
        let current = self
            .control
            .agency(id)
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))?;
        if current.suspended.is_some() {
            return Err(ApiError::Conflict(format!(
                "agency `{id}` is already suspended"
            )));
        }
        let mut updated = current.clone();
        updated.suspended = Some(unsilo_policy::model::Suspension {
            reason: reason.to_owned(),
            by: who.to_string(),
            at_ms: unsilo_bus::now_ms(),
        });
        self.update_agency(
            who,
            &current,
            &updated,
            "agency.suspend",
            json!({ "reason": reason }),
        )
        .await?;
        let active: Vec<Subscription> = self
            .control
            .read()
            .subscriptions
            .values()
            .filter(|s| s.agency == id && s.status == SubscriptionStatus::Active)
            .cloned()
            .collect();
        let mut paused = Vec::new();
        for s in active {
            let sid = s.id.clone();
            self.change_status(
                who,
                s,
                SubscriptionStatus::Paused,
                "subscription.pause",
                format!("sharing suspended (政务数据共享条例 Art. 27): {reason}"),
            )
            .await?;
            paused.push(sid);
        }
        warn!(agency = %id, by = %who, paused = paused.len(), "Agency's sharing suspended.");
        Ok(paused)
    }

    /// Lifts an agency's suspension, with the reason on record. Its paused subscriptions stay paused until a
    /// security administrator resumes each.
    pub async fn lift_suspension(
        &self,
        who: &Principal,
        id: &str,
        reason: &str,
    ) -> Result<Agency, ApiError> {
        authorize(who, Action::SuspendAgency)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(ApiError::Invalid(
                "reason: say why the suspension ends".into(),
            ));
        }
        let current = self
            .control
            .agency(id)
            .ok_or_else(|| ApiError::NotFound(format!("agency `{id}`")))?;
        if current.suspended.is_none() {
            return Err(ApiError::Conflict(format!(
                "agency `{id}` is not suspended"
            )));
        }
        let mut updated = current.clone();
        updated.suspended = None;
        self.update_agency(
            who,
            &current,
            &updated,
            "agency.lift_suspension",
            json!({ "reason": reason }),
        )
        .await?;
        Ok(updated)
    }

    /// 409 when agency `id` is suspended (Art. 27): it may not file, be granted or resume anything.
    pub(super) fn not_suspended(&self, id: &str) -> Result<(), ApiError> {
        match self.control.agency(id).and_then(|a| a.suspended) {
            Some(s) => Err(ApiError::Conflict(format!(
                "agency `{id}`'s sharing is suspended (政务数据共享条例 Art. 27): {}",
                s.reason
            ))),
            None => Ok(()),
        }
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
}

/// A reviewer's name: 1–40 characters, no control characters (it appears in audit entries and on pages).
fn check_reviewer_name(name: &str) -> Result<(), ApiError> {
    let count = name.chars().count();
    if count == 0 || count > 40 || name.chars().any(char::is_control) {
        return Err(ApiError::Invalid(format!(
            "reviewer: a name of 1–40 characters without control characters, not `{}`",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// 409 for a linked hub's agency: it holds no credentials here (its records leave only over the link).
fn no_credentials_for_linked(agency: &Agency) -> Result<(), ApiError> {
    match &agency.linked {
        Some(l) => Err(ApiError::Conflict(format!(
            "agency `{}` represents `{}` of the linked hub `{}`: it holds no credentials here; its records leave only over the link",
            agency.id, l.agency, l.hub
        ))),
        None => Ok(()),
    }
}
