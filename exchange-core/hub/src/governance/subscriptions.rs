//! The subscription lifecycle: request (with automatic approval where allowed), approve — which activates —,
//! reject, revoke, expire; listing; and replaying a subscription's delivery dead letters.

#[allow(unused_imports)]
use super::*;

impl Governance {
    /// A subscription the caller may see (404 otherwise, so other agencies' ids cannot be probed).
    pub fn visible_subscription(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Subscription, ApiError> {
        self.control
            .subscription(id)
            .filter(|s| self.may_see(who, s))
            .ok_or_else(|| ApiError::NotFound(format!("subscription `{id}`")))
    }

    /// The subscriptions `who` may see, optionally only those of one status and one agency.
    pub fn list_subscriptions(
        &self,
        who: &Principal,
        status: Option<&str>,
        agency: Option<&str>,
    ) -> Result<Vec<Subscription>, ApiError> {
        authorize(who, Action::ViewSubscriptions)?;
        // One read of the state: the lock is not taken again inside it.
        let state = self.control.read();
        Ok(state
            .subscriptions
            .values()
            .filter(|s| workflow::may_see_in(&state, who, &s.agency, &s.requested.schema))
            .filter(|s| status.is_none_or(|st| st == s.status.as_str()))
            .filter(|s| agency.is_none_or(|a| a == s.agency))
            .cloned()
            .collect())
    }

    /// Puts a subscription's dead-lettered deliveries back on its topic (operator, or the owning agency);
    /// returns how many, and records it.
    pub async fn replay_dead_letters(&self, who: &Principal, id: &str) -> Result<usize, ApiError> {
        authorize(who, Action::ReplayDeliveryDeadLetters)?;
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

    /// Checks a channel's target against the egress policy (resolving its host), and that a Kafka copy's topic
    /// stays in the agency's own namespace (`sub.<agency>.…`).
    pub(super) async fn check_channel_target(
        &self,
        agency: &str,
        channel: &Channel,
    ) -> Result<(), ApiError> {
        if let Channel::Kafka {
            topic: Some(topic), ..
        } = channel
        {
            let own = format!("{}{agency}.", unsilo_schemas::names::SUB_PREFIX);
            if !topic.starts_with(&own) || topic.len() == own.len() {
                return Err(ApiError::Invalid(format!(
                    "channel.topic: a Kafka copy's topic must be in the agency's own namespace, `{own}<name>`; `{topic}` is not"
                )));
            }
        }
        self.settings
            .egress
            .check_channel(channel)
            .await
            .map_err(|e| ApiError::Invalid(e.to_string()))
    }

    /// The requesting agency, once the request's form is checked: the caller may file it, the agency is not
    /// suspended, the name is a valid one, every Art. 20 item is stated (all that is missing named at once), and
    /// the spec's shape holds.
    pub(super) fn checked_request(
        &self,
        who: &Principal,
        request: &SubscriptionRequest,
    ) -> Result<String, ApiError> {
        let agency_id = self.requesting_agency(who, request.agency.as_deref())?;
        self.not_suspended(&agency_id)?;
        check_slug("subscription name", &request.name, 40)
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let missing = missing_request_items(&request.spec);
        if !missing.is_empty() {
            return Err(ApiError::Invalid(format!(
                "the request is incomplete (政务数据共享条例 Art. 20); it must also state: {}",
                missing.join("; ")
            )));
        }
        request
            .spec
            .check_shape(unsilo_bus::now_ms())
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        Ok(agency_id)
    }

    /// Checks that what a new subscription asks for compiles, its channel can be served from this hub and
    /// reaches an allowed target, and its name is free.
    pub(super) async fn checked_new_subscription(
        &self,
        agency_id: &str,
        request: &SubscriptionRequest,
    ) -> Result<(), ApiError> {
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
        let id = Subscription::id_of(agency_id, &request.name);
        check::compile(&request.spec, &id).map_err(policy_error)?;
        self.check_channel_target(agency_id, &request.spec.channel)
            .await?;
        if self.control.subscription(&id).is_some() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` already exists; choose another name"
            )));
        }
        Ok(())
    }

    /// Writes a checked request as a new `requested` subscription of `agency_id` — with its deadlines from
    /// `entry`, and marked held at a linked hub when `held_at` says — and records it. Returns it, and for a
    /// webhook channel its signing key (shown once).
    pub(super) async fn file_new_request(
        &self,
        who: &Principal,
        agency_id: &str,
        request: SubscriptionRequest,
        entry: &unsilo_policy::catalogue::CatalogueEntry,
        held_at: Option<unsilo_policy::model::HeldAt>,
    ) -> Result<(Subscription, Option<Vec<u8>>), ApiError> {
        let now = unsilo_bus::now_ms();
        let mut subscription =
            Subscription::new_request(agency_id, &request.name, request.spec, now);
        subscription.deadlines = Some(self.deadlines_for(entry, now));
        subscription.held_at = held_at;
        self.control
            .put_subscription(&subscription)
            .await
            .map_err(control_error)?;
        let id = subscription.id.clone();
        let requested = json!(subscription.requested.redacted());
        let detail = match &subscription.held_at {
            Some(h) => json!({ "held_at": h.hub, "requested": requested }),
            None => requested,
        };
        self.record_control(who, "subscription.request", &id, detail)
            .await?;
        info!(subscription = %id, held_at = subscription.held_at.as_ref().map(|h| h.hub.as_str()), by = %who, "Subscription requested.");
        let key = matches!(subscription.requested.channel, Channel::Webhook { .. })
            .then(|| self.secret.webhook_key(&id));
        Ok((subscription, key))
    }

    /// Files a subscription request. Returns it, and for a webhook channel its signing key (shown once).
    pub async fn request(
        &self,
        who: &Principal,
        request: SubscriptionRequest,
    ) -> Result<(Subscription, Option<Vec<u8>>), ApiError> {
        let agency_id = self.checked_request(who, &request)?;
        let entry = self.entry_for_request(&request.spec)?;
        self.checked_new_subscription(&agency_id, &request).await?;
        let (subscription, key) = self
            .file_new_request(who, &agency_id, request, &entry, None)
            .await?;
        // 无条件 data within clearance goes through without a provider's decision, as the regulation intends.
        if self.settings.auto_approve_unconditional
            && entry.terms.share_attribute
                == unsilo_policy::catalogue::ShareAttribute::Unconditional
            && !entry.terms.is_core()
        {
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

    /// The agency a request is filed for: the caller's own for an agency, the one named for an operator (or the
    /// hub acting on a linked hub's request); 403/404 otherwise.
    pub(super) fn requesting_agency(
        &self,
        who: &Principal,
        agency: Option<&str>,
    ) -> Result<String, ApiError> {
        authorize(who, Action::RequestSubscription)?;
        let agency_id = match (who, agency) {
            (Principal::Agency(own), None) => own.clone(),
            (Principal::Agency(own), Some(a)) if a == own.as_str() => own.clone(),
            (Principal::Agency(_), Some(_)) => {
                return Err(ApiError::Forbidden(
                    "an agency can request subscriptions only for itself".into(),
                ))
            }
            (Principal::Operator { .. } | Principal::Hub, Some(a)) => a.to_owned(),
            (Principal::Operator { .. } | Principal::Hub, None) => {
                return Err(ApiError::Invalid(
                    "an operator filing a request must name the agency".into(),
                ))
            }
            (Principal::PushSource(_) | Principal::Reviewer { .. } | Principal::Edge(_), _) => {
                return Err(ApiError::Forbidden(
                    "only an agency's system credential (or a security administrator) files requests".into(),
                ))
            }
        };
        match self.control.agency(&agency_id) {
            None => Err(ApiError::NotFound(format!("agency `{agency_id}`"))),
            // A linked hub's agency asks only through its hub's link.
            Some(a) if a.linked.is_some() && !matches!(who, Principal::Hub) => {
                Err(ApiError::Forbidden(format!(
                    "agency `{agency_id}` is a linked hub's: its requests come over the link from that hub"
                )))
            }
            Some(_) => Ok(agency_id),
        }
    }

    /// Approves a request automatically (UNCONDITIONAL, non-CORE data within clearance) and activates it.
    async fn auto_approve(
        &self,
        current: Subscription,
        granted: SubscriptionSpec,
    ) -> Result<Subscription, ApiError> {
        let hub = Principal::Hub;
        let mut approved = current.clone();
        approved.status = SubscriptionStatus::Approved;
        approved.granted = Some(granted.clone());
        approved.approvals = vec![Approval {
            operator: "hub".into(),
            at_ms: unsilo_bus::now_ms(),
            provider: None,
        }];
        approved.auto_approved = true;
        approved.decided_by = Some("hub".into());
        approved.decided_at_ms = Some(unsilo_bus::now_ms());
        self.mark_approved(&mut approved, unsilo_bus::now_ms());
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
        self.activate(&hub, approved).await
    }

    /// The subscription if it is `status` now; 409 naming its state otherwise (it cannot be `done` to).
    fn current_in(
        &self,
        id: &str,
        status: SubscriptionStatus,
        done: &str,
    ) -> Result<Subscription, ApiError> {
        let current = self.current_for_decision(id)?;
        if current.status != status {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is {}; only a subscription that is {} can be {done}",
                current.status.as_str(),
                status.as_str()
            )));
        }
        Ok(current)
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
        authorize(who, Action::DecideRequest)?;
        // A reviewer sees (and decides) only the requests for its organisation's entries; 404 otherwise.
        let current = self.visible_subscription(who, id)?;
        decided_here(&current)?;
        let entry = self.entry_of(&current);
        let provider = self.deciding_provider_of(&current);
        let (operator, as_provider) = self.decider(who, provider.as_deref(), id)?;
        let operator = operator.as_str();
        if current.status == SubscriptionStatus::Approved {
            // Approved earlier, but activation failed (e.g. the subscriber's database was down): retry it with
            // the grant on record.
            return self.activate(who, current).await;
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
        self.not_suspended(&agency.id)?;
        let confirms_pending = request.narrows_nothing() && current.granted.is_some();
        let (granted, above) = match (&current.granted, confirms_pending) {
            (Some(pending), true) => (pending.clone(), current.approved_above_clearance.clone()),
            _ => {
                let mut granted = current.requested.clone();
                if let Some(fields) = request.fields {
                    granted.fields = fields;
                }
                if let Some(extra) = request.and_filter {
                    granted.filter =
                        check::narrow_filter(&current.requested, &extra).map_err(policy_error)?;
                }
                if let Some(expiry) = request.expires_at_ms {
                    granted.expires_at_ms = Some(expiry);
                }
                if let Some(basis) = request.legal_basis {
                    granted.legal_basis = Some(basis);
                }
                if request.no_backfill {
                    granted.backfill_from_ms = None;
                } else if let Some(from) = request.backfill_from_ms {
                    granted.backfill_from_ms = Some(from);
                }
                if let Some(days) = request.retain_days {
                    granted.retain_days = Some(days);
                }
                (granted, request.approve_above_clearance)
            }
        };
        granted
            .check_shape(unsilo_bus::now_ms())
            .map_err(|e| ApiError::Invalid(e.to_string()))?;
        let compiled = check::compile(&granted, id).map_err(policy_error)?;
        check::check_grant(&agency, &current.requested, &granted, &above).map_err(policy_error)?;
        self.check_channel_target(&current.agency, &granted.channel)
            .await?;
        let mut four_eyes = check::four_eyes_reasons(&granted, &compiled);
        if entry.as_ref().is_none_or(|e| e.terms.is_core()) {
            four_eyes.push("its catalogue entry is graded CORE (核心数据)".to_owned());
        }

        // Approvals count only for the same grant.
        let same_grant =
            current.granted.as_ref() == Some(&granted) && current.approved_above_clearance == above;
        let mut approvals = if same_grant {
            current.approvals.clone()
        } else {
            Vec::new()
        };
        if approvals.iter().any(|a| a.operator == operator) {
            return Err(ApiError::Conflict(match &provider {
                Some(p) if as_provider.is_some() => format!(
                    "{operator} has already approved subscription `{id}` for {p}; it now waits for the platform's security administrators"
                ),
                _ => format!(
                    "subscription `{id}` needs two different operators (双人复核) because {}; {operator} has already approved it, another operator must confirm",
                    four_eyes.join(" and ")
                ),
            }));
        }
        approvals.push(Approval {
            operator: operator.to_owned(),
            at_ms: unsilo_bus::now_ms(),
            provider: as_provider.clone(),
        });
        let mut next = current.clone();
        next.granted = Some(granted.clone());
        next.approved_above_clearance = above.clone();
        next.approvals = approvals;
        next.decided_by = Some(operator.to_owned());
        next.decided_at_ms = Some(unsilo_bus::now_ms());
        next.revision += 1;
        let now = unsilo_bus::now_ms();
        if as_provider.is_some() {
            Self::mark_answered(&mut next, now);
        }
        let mut waiting_for = Vec::new();
        if let Some(p) = provider.as_deref().filter(|p| {
            !next
                .approvals
                .iter()
                .any(|a| a.provider.as_deref() == Some(*p))
        }) {
            waiting_for.push(format!("the providing organisation {p} (Art. 21)"));
        }
        if !four_eyes.is_empty() && !next.four_eyes_approved() {
            waiting_for.push(format!(
                "a second security administrator (双人复核: {})",
                four_eyes.join(" and ")
            ));
        }
        let waits_for_second = !waiting_for.is_empty();
        if !waits_for_second {
            next.status = SubscriptionStatus::Approved;
            self.mark_approved(&mut next, now);
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
                "provider": as_provider,
                "waiting_for": waiting_for,
            }),
        )
        .await?;
        if waits_for_second {
            info!(subscription = %id, operator, waiting_for = %waiting_for.join("; "), "Approval recorded; the grant waits for more.");
            return Ok(next);
        }
        self.activate(who, next).await
    }

    /// Activates an approved subscription: registers its view schema, creates its topics, prepares its channel
    /// and marks it active. On failure it stays approved; approving it again retries.
    pub(super) async fn activate(
        &self,
        who: &Principal,
        approved: Subscription,
    ) -> Result<Subscription, ApiError> {
        let id = approved.id.clone();
        let operator = who.name();
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
                .create_topic(&self.settings.topics.topic(topic))
                .await
                .map_err(|e| {
                    ApiError::Internal(format!("creating the subscription's topics: {e}"))
                })?;
        }
        self.delivery
            .prepare_channel(&approved, compiled.plan.schema())
            .await
            .map_err(|e| {
                // The driver's or network's words stay in the operators' log: told to an agency they would
                // probe ports and credentials.
                warn!(subscription = %id, channel = granted.channel.kind(), error = %e, "Preparing the delivery channel failed.");
                ApiError::Upstream(format!(
                    "the {} channel's target could not be prepared (unreachable, refused, or refused the credentials); the hub's log has the cause for operators",
                    granted.channel.kind()
                ))
            })?;
        let mut active = approved.clone();
        Self::mark_delivered(&mut active, unsilo_bus::now_ms());
        active.status = SubscriptionStatus::Active;
        active.view_schema_id = Some(view_schema_id);
        active.revision += 1;
        self.control
            .put_subscription(&active)
            .await
            .map_err(control_error)?;
        self.record_control(
            who,
            "subscription.activate",
            &id,
            json!({ "view_schema_id": view_schema_id, "topic": active.topic() }),
        )
        .await?;
        info!(subscription = %id, operator, view_schema_id, "Subscription approved and active.");
        Ok(active)
    }

    /// Who decides, as approvals record them, and for which providing organisation: a reviewer decides only
    /// the 有条件 requests on its organisation's entries (403 otherwise); a security administrator (or the hub)
    /// decides for the platform.
    fn decider(
        &self,
        who: &Principal,
        provider: Option<&str>,
        id: &str,
    ) -> Result<(String, Option<String>), ApiError> {
        match who {
            Principal::Reviewer { agency, name } => {
                if provider != Some(agency.as_str()) {
                    return Err(ApiError::Forbidden(format!(
                        "subscription `{id}` is not a 有条件 request on {agency}'s catalogue entries; the platform's security administrators decide it"
                    )));
                }
                Ok((format!("{agency}/{name}"), Some(agency.clone())))
            }
            other => Ok((other.name().to_owned(), None)),
        }
    }

    /// Rejects a requested subscription: the providing organisation's reviewer (its 有条件 entries) or a
    /// security administrator; the reason is required.
    pub async fn reject(
        &self,
        who: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Subscription, ApiError> {
        authorize(who, Action::DecideRequest)?;
        let visible = self.visible_subscription(who, id)?;
        decided_here(&visible)?;
        let provider = self.deciding_provider_of(&visible);
        self.decider(who, provider.as_deref(), id)?;
        let mut current = self.current_in(id, SubscriptionStatus::Requested, "rejected")?;
        Self::mark_answered(&mut current, unsilo_bus::now_ms());
        self.change_status(
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
        authorize(who, Action::RevokeSubscription)?;
        self.visible_subscription(who, id)?;
        let current = self.current_for_decision(id)?;
        if current.status.is_final() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is already {}",
                current.status.as_str()
            )));
        }
        self.change_status(
            who,
            current,
            SubscriptionStatus::Revoked,
            "subscription.revoke",
            reason,
        )
        .await
    }

    /// Pauses an active subscription (an operator, or the owning agency): from the moment this returns nothing
    /// more is released or delivered; on [`Self::resume`] it receives what arrived meanwhile, and goes on.
    pub async fn pause(
        &self,
        who: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Subscription, ApiError> {
        authorize(who, Action::PauseSubscription)?;
        self.visible_subscription(who, id)?;
        let current = self.current_in(id, SubscriptionStatus::Active, "paused")?;
        self.change_status(
            who,
            current,
            SubscriptionStatus::Paused,
            "subscription.pause",
            reason,
        )
        .await
    }

    /// Resumes a paused subscription (an operator; the owning agency only if it paused it itself): it first
    /// receives what arrived while it was paused — from where it stopped, through the same grant — and then
    /// continues live.
    pub async fn resume(
        &self,
        who: &Principal,
        id: &str,
        reason: Option<String>,
    ) -> Result<Subscription, ApiError> {
        authorize(who, Action::PauseSubscription)?;
        self.visible_subscription(who, id)?;
        let current = self.current_in(id, SubscriptionStatus::Paused, "resumed")?;
        self.not_suspended(&current.agency)?;
        // A pause is lifted only by whoever may overrule it: an agency resumes only what it paused itself; what
        // an operator or the hub paused (a filter over its budget) waits for an operator.
        let paused_by = current.decided_by.clone().unwrap_or_default();
        if !who.is_operator() && paused_by != who.to_string() {
            return Err(ApiError::Forbidden(format!(
                "subscription `{id}` was paused by {paused_by}; only a security administrator can resume it"
            )));
        }
        if current
            .spec()
            .expires_at_ms
            .is_some_and(|e| e <= unsilo_bus::now_ms())
        {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` has expired while paused; it cannot be resumed"
            )));
        }
        let reason = reason
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "resumed".to_owned());
        self.change_status(
            who,
            current,
            SubscriptionStatus::Active,
            "subscription.resume",
            reason,
        )
        .await
    }

    /// Where a subscription's history stands (a backfill, or the catch-up after a pause), as its router last
    /// reported it; `None` before the router has placed it.
    pub fn history_progress(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Option<crate::flows::HistoryProgress>, ApiError> {
        authorize(who, Action::ViewSubscriptions)?;
        self.visible_subscription(who, id)?;
        Ok(self
            .settings
            .metrics
            .flows
            .snapshot()
            .subscriptions
            .get(id)
            .and_then(|f| f.history.clone()))
    }

    /// Marks an active subscription past its expiry as expired (the router already stops at the expiry time).
    pub async fn expire(&self, id: &str) -> Result<Subscription, ApiError> {
        let current = self.current_for_decision(id)?;
        self.change_status(
            &Principal::Hub,
            current,
            SubscriptionStatus::Expired,
            "subscription.expire",
            "expiry reached".into(),
        )
        .await
    }

    /// Moves a subscription to `status`, recording who, when and why, with its audit entry.
    pub(super) async fn change_status(
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
        let now = unsilo_bus::now_ms();
        let mut next = current;
        next.status = status;
        next.reason = Some(reason.clone());
        next.decided_by = Some(who.to_string());
        next.decided_at_ms = Some(now);
        self.begin_disposal(&mut next, status, now);
        next.revision += 1;
        self.control
            .put_subscription(&next)
            .await
            .map_err(control_error)?;
        self.record_control(who, action, &next.id, json!({ "reason": reason }))
            .await?;
        info!(subscription = %next.id, status = status.as_str(), by = %who, "Subscription status changed.");
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
            .filter(|s| {
                matches!(
                    s.status,
                    SubscriptionStatus::Active | SubscriptionStatus::Paused
                )
            })
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

/// 409 for a request whose data a linked hub holds: that hub's provider decides it, under that hub's gates.
fn decided_here(s: &Subscription) -> Result<(), ApiError> {
    match &s.held_at {
        Some(held) => Err(ApiError::Conflict(format!(
            "subscription `{}` asks for data held at the linked hub `{}`: it is decided there, and follows that decision here",
            s.id, held.hub
        ))),
        None => Ok(()),
    }
}
