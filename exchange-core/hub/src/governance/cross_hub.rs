//! Requests across hubs (级联): a request filed at one hub for data another hub of the cascade holds, decided
//! where the data is held.
//!
//! - **At the requesting hub** the request is a subscription marked [`HeldAt`]: filed by its agency (or an
//!   operator) against a linked hub's catalogue entry ([`Governance::request_held_at`]), checked for the items
//!   the regulation asks and against the entry, but decided elsewhere — its status follows what the holding hub
//!   decides ([`Governance::apply_linked_state`]), and its records arrive over the link, never from the router.
//! - **At the holding hub** the requesting agency is represented by a linked agency (no credentials, clearance
//!   capped by `[policy] linked_hub_clearance`), and the request is an ordinary request of that agency
//!   ([`Governance::take_linked_request`]): the provider decides it under this hub's gates, the router releases
//!   into its pull topic, and the link carries what it releases to the requesting hub.
//!
//! The link (member → parent, always opened by the member) carries [`LinkedRequest`]s one way and
//! [`LinkedRequestState`]s the other, in whichever direction the data flows: up (the parent's agencies asking
//! for a member's data) or back down (回流: a member's agencies asking for the parent's).

#[allow(unused_imports)]
use super::*;

use serde::{Deserialize, Serialize};
use unsilo_policy::catalogue::CatalogueEntry;
use unsilo_policy::model::{HeldAt, LinkedAgency};

/// The requesting agency as the holding hub is told of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedAgencyInfo {
    /// Its id at the requesting hub.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its unified social credit code.
    pub uscc: String,
    /// The clearance the requesting hub gives it (the holding hub caps it).
    pub clearance: String,
}

/// A request for data a linked hub holds, as the link carries it to that hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedRequest {
    /// The subscription's id at the requesting hub.
    pub subscription: String,
    /// The requesting agency.
    pub agency: LinkedAgencyInfo,
    /// The subscription's name.
    pub name: String,
    /// What is asked for. The channel is the requesting hub's business: the holding hub releases to the link.
    pub spec: SubscriptionSpec,
    /// Its status at the requesting hub: one ended there (revoked, expired, fulfilled) ends at the holding hub.
    pub status: SubscriptionStatus,
}

/// Where a linked request stands at the hub that holds the data, as the link carries it back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkedRequestState {
    /// The subscription's id at the requesting hub.
    pub subscription: String,
    /// Its id at the holding hub (absent when the holding hub refused to file it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_as: Option<String>,
    /// Its status at the holding hub.
    pub status: SubscriptionStatus,
    /// What was granted, once approved (its channel is the link's and means nothing to the requester).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<SubscriptionSpec>,
    /// The approvals on record at the holding hub.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// Who decided last there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    /// Why it was rejected or ended, or why it could not be filed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The id a linked hub's agency gets here: `<prefix>-<agency>` when that is a valid agency id, otherwise a
/// digest of both (still unique, and the agency record names both in full).
fn linked_agency_id(prefix: &str, agency: &str) -> String {
    let plain = format!("{prefix}-{agency}");
    if check_slug("agency id", &plain, 40).is_ok() {
        return plain;
    }
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(format!(
        "{prefix}/{agency}"
    )));
    format!("linked-{}", &digest[..24])
}

impl Governance {
    /// Files a request for data `hub` holds (`entry` is its catalogue entry, as that hub published it): checked
    /// here for the items the regulation asks, against the entry and for the channel's target, then kept
    /// `requested` until `hub` decides it. Returns it, and for a webhook channel its signing key (shown once).
    pub async fn request_held_at(
        &self,
        who: &Principal,
        hub: &str,
        entry: &CatalogueEntry,
        request: SubscriptionRequest,
    ) -> Result<(Subscription, Option<Vec<u8>>), ApiError> {
        let agency_id = self.checked_request(who, &request)?;
        // The link is the holding hub's channel: the entry must offer what it releases over (pull).
        let over_link = SubscriptionSpec {
            channel: Channel::Pull,
            ..request.spec.clone()
        };
        self.check_against_entry(entry, &over_link)?;
        self.checked_new_subscription(&agency_id, &request).await?;
        let held_at = HeldAt {
            hub: hub.to_owned(),
            subscription: None,
        };
        self.file_new_request(who, &agency_id, request, entry, Some(held_at))
            .await
    }

    /// The requests filed here for data `hub` holds, as the link carries them there.
    pub fn linked_requests(&self, hub: &str) -> Vec<LinkedRequest> {
        let state = self.control.read();
        state
            .subscriptions
            .values()
            .filter(|s| s.held_at.as_ref().is_some_and(|h| h.hub == hub))
            .filter_map(|s| {
                let agency = state.agencies.get(&s.agency)?;
                Some(LinkedRequest {
                    subscription: s.id.clone(),
                    agency: LinkedAgencyInfo {
                        id: agency.id.clone(),
                        name: agency.name.clone(),
                        uscc: agency.uscc.clone(),
                        clearance: agency.clearance.as_str().to_owned(),
                    },
                    name: s.name.clone(),
                    spec: SubscriptionSpec {
                        channel: Channel::Pull,
                        ..s.requested.clone()
                    },
                    status: s.status,
                })
            })
            .collect()
    }

    /// The linked agency representing `hub`'s agency `agency`, if there is one.
    fn linked_agency(&self, hub: &str, agency: &str) -> Option<Agency> {
        self.control
            .read()
            .agencies
            .values()
            .find(|a| {
                a.linked
                    .as_ref()
                    .is_some_and(|l| l.hub == hub && l.agency == agency)
            })
            .cloned()
    }

    /// Takes a request `hub` filed for data this hub holds (`prefix` names `hub` in the linked agency's id):
    /// represents its agency here, files the request as that agency's — decided by this hub's provider under
    /// this hub's gates — and answers where it stands. A request already taken is answered as it stands; one
    /// ended at the requesting hub is revoked here too.
    pub async fn take_linked_request(
        &self,
        hub: &str,
        prefix: &str,
        request: LinkedRequest,
    ) -> Result<LinkedRequestState, ApiError> {
        let agency = self.represent_linked_agency(hub, prefix, &request).await?;
        let id = Subscription::id_of(&agency.id, &request.name);
        if let Some(held) = self.control.subscription(&id) {
            if request.status.is_final() && !held.status.is_final() {
                let reason = format!("{} at the requesting hub ({hub})", request.status.as_str());
                let ended = self
                    .change_status(
                        &Principal::Hub,
                        held,
                        SubscriptionStatus::Revoked,
                        "subscription.revoke",
                        reason,
                    )
                    .await?;
                return Ok(self.linked_state(&request.subscription, &ended));
            }
            return Ok(self.linked_state(&request.subscription, &held));
        }
        if request.status.is_final() {
            return Ok(LinkedRequestState {
                subscription: request.subscription,
                held_as: None,
                status: request.status,
                granted: None,
                approvals: Vec::new(),
                decided_by: None,
                reason: Some("ended at the requesting hub before it was filed here".into()),
            });
        }
        let spec = SubscriptionSpec {
            channel: Channel::Pull,
            ..request.spec
        };
        let filed = self
            .request(
                &Principal::Hub,
                SubscriptionRequest {
                    agency: Some(agency.id.clone()),
                    name: request.name,
                    spec,
                },
            )
            .await;
        match filed {
            Ok((held, _)) => {
                info!(subscription = %held.id, hub, requester = %request.subscription, "A linked hub's request is filed here.");
                Ok(self.linked_state(&request.subscription, &held))
            }
            // Refused by this hub's gates (incomplete, not catalogued, not shareable …): the refusal is the
            // answer, carried back to the requesting hub.
            Err(ApiError::Invalid(why) | ApiError::Forbidden(why) | ApiError::NotFound(why)) => {
                Ok(LinkedRequestState {
                    subscription: request.subscription,
                    held_as: None,
                    status: SubscriptionStatus::Rejected,
                    granted: None,
                    approvals: Vec::new(),
                    decided_by: Some("hub".into()),
                    reason: Some(format!("not accepted at the holding hub: {why}")),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The agency representing `request`'s agency of `hub`, created on its first request: no credentials, its
    /// clearance the lower of what `hub` declares and `[policy] linked_hub_clearance`.
    async fn represent_linked_agency(
        &self,
        hub: &str,
        prefix: &str,
        request: &LinkedRequest,
    ) -> Result<Agency, ApiError> {
        if let Some(a) = self.linked_agency(hub, &request.agency.id) {
            return Ok(a);
        }
        let declared: unsilo_schemas::Sensitivity =
            request.agency.clearance.parse().map_err(|_| {
                ApiError::Invalid(format!(
                    "agency clearance `{}` is not one of S1, S2, S3, S4",
                    request.agency.clearance
                ))
            })?;
        let cap = self
            .settings
            .linked_hub_clearance
            .unwrap_or(unsilo_schemas::Sensitivity::S1);
        let agency = Agency {
            id: linked_agency_id(prefix, &request.agency.id),
            name: request.agency.name.clone(),
            uscc: request.agency.uscc.trim().to_ascii_uppercase(),
            clearance: declared.min(cap),
            tokens: Vec::new(),
            client_cert_sha256: None,
            created_at_ms: unsilo_bus::now_ms(),
            created_by: "hub".into(),
            suspended: None,
            linked: Some(LinkedAgency {
                hub: hub.to_owned(),
                agency: request.agency.id.clone(),
            }),
            revision: 0,
        };
        agency
            .validate()
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        if self.control.agency(&agency.id).is_some() {
            return Err(ApiError::Conflict(format!(
                "agency `{}` exists and is not {hub}'s `{}`",
                agency.id, request.agency.id
            )));
        }
        self.control
            .put_agency(&agency, None)
            .await
            .map_err(control_error)?;
        self.record_control(
            &Principal::Hub,
            "agency.create",
            &agency.id,
            json!({ "linked_hub": hub, "declared_clearance": declared.as_str(), "agency": agency.view() }),
        )
        .await?;
        info!(agency = %agency.id, hub, "A linked hub's agency is represented here.");
        Ok(agency)
    }

    fn linked_state(&self, requester: &str, held: &Subscription) -> LinkedRequestState {
        LinkedRequestState {
            subscription: requester.to_owned(),
            held_as: Some(held.id.clone()),
            status: held.status,
            granted: held.granted.clone(),
            approvals: held.approvals.clone(),
            decided_by: held.decided_by.clone(),
            reason: held.reason.clone(),
        }
    }

    /// Where every request `hub` filed here stands (for the link to carry back).
    pub fn linked_states(&self, hub: &str) -> Vec<LinkedRequestState> {
        self.held_for(hub)
            .iter()
            .map(|(requester, held)| self.linked_state(requester, held))
            .collect()
    }

    /// The subscription this hub holds for `hub`'s request `requester` (its id at `hub`), if there is one.
    pub fn held_for_request(&self, hub: &str, requester: &str) -> Option<Subscription> {
        let (agency, name) = requester.split_once('.')?;
        let linked = self.linked_agency(hub, agency)?;
        self.control
            .subscription(&Subscription::id_of(&linked.id, name))
    }

    /// The subscriptions this hub holds for `hub`'s agencies, each with its id at `hub`.
    pub fn held_for(&self, hub: &str) -> Vec<(String, Subscription)> {
        let state = self.control.read();
        state
            .subscriptions
            .values()
            .filter_map(|s| {
                let linked = state.agencies.get(&s.agency)?.linked.as_ref()?;
                (linked.hub == hub)
                    .then(|| (Subscription::id_of(&linked.agency, &s.name), s.clone()))
            })
            .collect()
    }

    /// Follows what `hub` decided on a request filed here: approved there activates it here (its view schema
    /// registered, its topics created, its channel prepared), with the grant `hub` made and the channel asked
    /// for here; rejected or ended there ends it here, with the reason.
    pub async fn apply_linked_state(
        &self,
        hub: &str,
        state: LinkedRequestState,
    ) -> Result<(), ApiError> {
        let Some(current) = self
            .control
            .subscription(&state.subscription)
            .filter(|s| s.held_at.as_ref().is_some_and(|h| h.hub == hub))
        else {
            return Err(ApiError::NotFound(format!(
                "subscription `{}` held at {hub}",
                state.subscription
            )));
        };
        if current.status.is_final() {
            return Ok(());
        }
        let hub_principal = Principal::Hub;
        if current.status == SubscriptionStatus::Approved {
            // Approved earlier, but its activation here failed (the channel's target unreachable): retry that
            // alone, with the grant on record.
            self.activate(&hub_principal, current).await?;
            return Ok(());
        }
        match state.status {
            SubscriptionStatus::Approved | SubscriptionStatus::Active
                if current.status != SubscriptionStatus::Active =>
            {
                let Some(granted) = state.granted else {
                    return Err(ApiError::Invalid(format!(
                        "{hub} approved `{}` without saying what it granted",
                        state.subscription
                    )));
                };
                let granted = SubscriptionSpec {
                    channel: current.requested.channel.clone(),
                    ..granted
                };
                check_linked_grant(&current, &granted)?;
                let mut next = current.clone();
                if let Some(h) = next.held_at.as_mut() {
                    h.subscription.clone_from(&state.held_as);
                }
                next.status = SubscriptionStatus::Approved;
                next.granted = Some(granted.clone());
                next.approvals = state
                    .approvals
                    .into_iter()
                    .map(|a| Approval {
                        operator: format!("{hub}/{}", a.operator),
                        ..a
                    })
                    .collect();
                next.decided_by = state.decided_by.map(|d| format!("{hub}/{d}"));
                next.decided_at_ms = Some(unsilo_bus::now_ms());
                let now = unsilo_bus::now_ms();
                Self::mark_answered(&mut next, now);
                self.mark_approved(&mut next, now);
                let next = self
                    .save_subscription(
                        &hub_principal,
                        next,
                        "subscription.approve",
                        json!({ "held_at": hub, "held_as": state.held_as, "granted": granted.redacted() }),
                    )
                    .await?;
                self.activate(&hub_principal, next).await?;
            }
            SubscriptionStatus::Rejected if current.status == SubscriptionStatus::Requested => {
                let mut current = current;
                Self::mark_answered(&mut current, unsilo_bus::now_ms());
                let why = state.reason.unwrap_or_else(|| "no reason given".into());
                self.change_status(
                    &hub_principal,
                    current,
                    SubscriptionStatus::Rejected,
                    "subscription.reject",
                    format!("rejected at {hub}: {why}"),
                )
                .await?;
            }
            SubscriptionStatus::Revoked
            | SubscriptionStatus::Expired
            | SubscriptionStatus::Fulfilled
            | SubscriptionStatus::Rejected => {
                let why = state.reason.unwrap_or_else(|| "no reason given".into());
                self.change_status(
                    &hub_principal,
                    current,
                    SubscriptionStatus::Revoked,
                    "subscription.revoke",
                    format!("{} at {hub}: {why}", state.status.as_str()),
                )
                .await?;
            }
            _ => {
                let known = current
                    .held_at
                    .as_ref()
                    .and_then(|h| h.subscription.clone());
                if state.held_as.is_some() && known != state.held_as {
                    let mut next = current;
                    if let Some(h) = next.held_at.as_mut() {
                        h.subscription.clone_from(&state.held_as);
                    }
                    self.save_subscription(
                        &hub_principal,
                        next,
                        "subscription.filed",
                        json!({ "held_at": hub, "held_as": state.held_as }),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// A grant from a linked hub may only narrow what was asked here: the same schema, no field not asked for,
/// none revealed more than asked.
fn check_linked_grant(current: &Subscription, granted: &SubscriptionSpec) -> Result<(), ApiError> {
    if granted.schema != current.requested.schema {
        return Err(ApiError::Invalid(format!(
            "the grant is for schema `{}`, the request for `{}`",
            granted.schema, current.requested.schema
        )));
    }
    for g in &granted.fields {
        let asked = current
            .requested
            .fields
            .iter()
            .find(|r| r.field == g.field)
            .ok_or_else(|| {
                ApiError::Invalid(format!(
                    "the grant releases field `{}`, which was not asked for",
                    g.field
                ))
            })?;
        if g.treatment.disclosure() > asked.treatment.disclosure() {
            return Err(ApiError::Invalid(format!(
                "the grant reveals field `{}` more than asked ({} for {})",
                g.field,
                g.treatment.as_str(),
                asked.treatment.as_str()
            )));
        }
    }
    check::compile(granted, &current.id).map_err(policy_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use unsilo_policy::model::Treatment;

    fn spec(fields: &[(&str, Treatment)]) -> SubscriptionSpec {
        SubscriptionSpec {
            schema: "household".into(),
            filter: "true".into(),
            fields: fields
                .iter()
                .map(|(f, t)| FieldRule {
                    field: (*f).into(),
                    treatment: *t,
                })
                .collect(),
            purpose: "入户走访".into(),
            scenario: None,
            scope: None,
            legal_basis: None,
            expires_at_ms: None,
            backfill_from_ms: None,
            retain_days: None,
            channel: Channel::Pull,
        }
    }

    #[test]
    fn a_linked_agency_id_is_readable_when_it_fits_and_a_valid_digest_when_not() {
        assert_eq!(linked_agency_id("shaanxi", "health"), "shaanxi-health");
        let long = linked_agency_id(
            "shaanxi-provincial-big-data-centre",
            "provincial-health-commission",
        );
        assert!(long.starts_with("linked-") && long.len() == 31, "{long}");
        assert!(check_slug("agency id", &long, 40).is_ok());
        assert_ne!(
            long,
            linked_agency_id(
                "shaanxi-provincial-big-data-centre",
                "provincial-health-commissiom"
            )
        );
    }

    #[test]
    fn a_grant_from_a_linked_hub_may_narrow_the_request_but_never_widen_it() {
        let asked = Subscription::new_request(
            "grid-platform",
            "cases",
            spec(&[
                ("care_level", Treatment::Clear),
                ("head_cert_no", Treatment::Pseudonymise),
            ]),
            0,
        );
        let narrower = spec(&[("care_level", Treatment::Clear)]);
        assert!(check_linked_grant(&asked, &narrower).is_ok());
        let revealing = spec(&[("head_cert_no", Treatment::Clear)]);
        let e = check_linked_grant(&asked, &revealing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("head_cert_no") && e.contains("more than asked"),
            "{e}"
        );
        let unasked = spec(&[("village_code", Treatment::Clear)]);
        let e = check_linked_grant(&asked, &unasked)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not asked for"), "{e}");
        let other = SubscriptionSpec {
            schema: "resident".into(),
            ..narrower
        };
        assert!(check_linked_grant(&asked, &other).is_err());
    }
}
