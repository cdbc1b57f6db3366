//! Disposal when a grant ends (政务数据共享条例 Art. 27): a granted subscription that expires, is revoked or whose
//! purpose is declared fulfilled gets a [`Disposal`] with its due time on the working-day calendar; the agency
//! confirms destruction (how, what), a late confirmation is flagged and stays flagged; the hub removes rows it
//! delivered into an agency's SQL table once their `retain_until` passes ([`Governance::sweep_sql_retention`], run
//! on the bus retention's schedule in a task of its own), and records each removal in the audit log.

#[allow(unused_imports)]
use super::*;

use unsilo_policy::disposal::{
    DestructionConfirmation, Disposal, DisposalState, GrantEnd, DISPOSAL_WORKING_DAYS,
};
use unsilo_policy::model::Channel;

/// Body of `POST /admin/subscriptions/{id}/disposal`: the agency's confirmation of destruction.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisposalConfirmation {
    /// How the data was destroyed.
    pub method: String,
    /// What was destroyed: the systems, tables, files and copies.
    pub scope: String,
}

/// A grant's disposal as `GET /admin/disposals` lists it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DisposalView {
    /// The subscription (`<agency>.<name>`).
    pub subscription: String,
    /// The agency that must confirm.
    pub agency: String,
    /// The schema (and catalogue entry) of the data.
    pub schema: String,
    /// Where it stands now.
    pub state: DisposalState,
    /// The disposal: why and when the grant ended, the due time, the confirmation.
    pub disposal: Disposal,
}

/// A SQL table the hub delivered into whose rows carry `retain_until`, and whose rows may still be waiting for it.
#[derive(Clone, Debug)]
pub struct SqlRetentionTarget {
    /// The subscription.
    pub subscription: String,
    /// The channel (URL and table).
    pub channel: Channel,
}

/// How long after the end of a grant the hub keeps sweeping its SQL table: the longest a delivered row's
/// `retain_until` can lie beyond the end (its retention) plus a day for records stamped after their event.
const SWEEP_AFTER_END_MARGIN_MS: i64 = 86_400_000;

impl Governance {
    /// Starts `next`'s disposal when it moves to `status` and its grant thereby ends (expired, revoked, purpose
    /// fulfilled); a subscription never granted has nothing to dispose of.
    pub(super) fn begin_disposal(
        &self,
        next: &mut Subscription,
        status: SubscriptionStatus,
        now_ms: i64,
    ) {
        let because = match status {
            SubscriptionStatus::Expired => GrantEnd::Expired,
            SubscriptionStatus::Revoked => GrantEnd::Revoked,
            SubscriptionStatus::Fulfilled => GrantEnd::PurposeFulfilled,
            _ => return,
        };
        if next.granted.is_none() || next.disposal.is_some() {
            return;
        }
        let (due_ms, provisional) = self.due_after(now_ms, DISPOSAL_WORKING_DAYS);
        next.disposal = Some(Disposal {
            ended_because: because,
            ended_at_ms: now_ms,
            due_ms,
            provisional,
            confirmation: None,
        });
    }

    /// Ends an active or paused subscription because its purpose is fulfilled (the owning agency, or a security
    /// administrator): nothing more is delivered, and its disposal falls due.
    pub async fn declare_fulfilled(
        &self,
        who: &Principal,
        id: &str,
        reason: String,
    ) -> Result<Subscription, ApiError> {
        authorize(who, Action::DeclareFulfilled)?;
        let current = self.visible_subscription(who, id)?;
        if !matches!(
            current.status,
            SubscriptionStatus::Active | SubscriptionStatus::Paused | SubscriptionStatus::Approved
        ) {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is {}; only a granted subscription that has not ended can have its purpose fulfilled",
                current.status.as_str()
            )));
        }
        self.change_status(
            who,
            current,
            SubscriptionStatus::Fulfilled,
            "subscription.purpose_fulfilled",
            reason,
        )
        .await
    }

    /// The owning agency confirms that it destroyed what it received under subscription `id`, whose grant has
    /// ended. Both items are required (every missing one named); a confirmation after the due time is recorded as
    /// late. Confirmed once.
    pub async fn confirm_disposal(
        &self,
        who: &Principal,
        id: &str,
        confirmation: DisposalConfirmation,
    ) -> Result<Subscription, ApiError> {
        authorize(who, Action::ConfirmDisposal)?;
        if !matches!(who, Principal::Agency(_)) {
            return Err(ApiError::Forbidden(
                "the agency that received the data confirms its destruction, with its own credential".into(),
            ));
        }
        let current = self.visible_subscription(who, id)?;
        let Some(disposal) = current.disposal.clone() else {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is {}; its grant has not ended, so there is no disposal to confirm",
                current.status.as_str()
            )));
        };
        if disposal.confirmation.is_some() {
            return Err(ApiError::Conflict(format!(
                "the disposal of subscription `{id}` is already confirmed"
            )));
        }
        require_items(
            "a confirmation of destruction (Art. 27) also states",
            &[
                ("method", &confirmation.method),
                ("scope", &confirmation.scope),
            ],
        )?;
        let now = unsilo_bus::now_ms();
        let confirmed = DestructionConfirmation {
            by: who.to_string(),
            at_ms: now,
            method: confirmation.method.trim().to_owned(),
            scope: confirmation.scope.trim().to_owned(),
            late: now > disposal.due_ms,
        };
        let mut next = current;
        next.disposal = Some(Disposal {
            confirmation: Some(confirmed.clone()),
            ..disposal.clone()
        });
        let next = self
            .save_subscription(
                who,
                next,
                "disposal.confirm",
                json!({
                    "ended_because": disposal.ended_because.as_str(),
                    "due_ms": disposal.due_ms,
                    "method": confirmed.method,
                    "scope": confirmed.scope,
                    "late": confirmed.late,
                }),
            )
            .await?;
        if confirmed.late {
            warn!(subscription = %next.id, "A destruction was confirmed after its due time; it stays flagged as late.");
        }
        Ok(next)
    }

    /// The disposals `who` may see (an agency its own, a reviewer its organisation's resources', administrators
    /// all), optionally only those in `state`, the most urgent (earliest due) first.
    pub fn disposals(
        &self,
        who: &Principal,
        state: Option<DisposalState>,
    ) -> Result<Vec<DisposalView>, ApiError> {
        authorize(who, Action::ViewDisposals)?;
        let now = unsilo_bus::now_ms();
        let control = self.control.read();
        let mut out: Vec<DisposalView> = control
            .subscriptions
            .values()
            .filter(|s| workflow::may_see_in(&control, who, &s.agency, &s.requested.schema))
            .filter_map(|s| {
                let disposal = s.disposal.clone()?;
                let current = disposal.state(now);
                state.is_none_or(|w| w == current).then(|| DisposalView {
                    subscription: s.id.clone(),
                    agency: s.agency.clone(),
                    schema: s.requested.schema.clone(),
                    state: current,
                    disposal,
                })
            })
            .collect();
        out.sort_by_key(|d| (d.disposal.due_ms, d.subscription.clone()));
        Ok(out)
    }

    /// The SQL tables whose delivered rows carry `retain_until` and may still hold rows past it: every granted
    /// subscription with a SQL channel and a retention, until its retention has run out after the grant ended.
    pub fn sql_retention_targets(&self, now_ms: i64) -> Vec<SqlRetentionTarget> {
        self.control
            .read()
            .subscriptions
            .values()
            .filter_map(|s| {
                let granted = s.granted.as_ref()?;
                let days = i64::from(granted.retain_days?);
                if !matches!(granted.channel, Channel::Sql { .. }) {
                    return None;
                }
                let swept_out = s.disposal.as_ref().is_some_and(|d| {
                    now_ms
                        > d.ended_at_ms
                            .saturating_add(days.saturating_mul(86_400_000))
                            .saturating_add(SWEEP_AFTER_END_MARGIN_MS)
                });
                (!swept_out).then(|| SqlRetentionTarget {
                    subscription: s.id.clone(),
                    channel: granted.channel.clone(),
                })
            })
            .collect()
    }

    /// Removes, from every agency SQL table the hub delivered into with a retention, the rows whose
    /// `retain_until` has passed; each removal of at least one row is an audit entry (`disposal.sql_rows_removed`,
    /// by the hub) and counted on `/metrics`. Each target is checked against the egress policy first, like every
    /// connection the hub makes; a target that fails is logged and tried again on the next pass. Returns the rows
    /// removed in all.
    pub async fn sweep_sql_retention(&self) -> u64 {
        let now = unsilo_bus::now_ms();
        let mut total = 0;
        for target in self.sql_retention_targets(now) {
            let Channel::Sql { url, table } = &target.channel else {
                continue;
            };
            if let Err(e) = self.settings.egress.check_channel(&target.channel).await {
                warn!(subscription = %target.subscription, error = %e, "The SQL table past its retention is not reachable under the egress policy; its rows stay until it is.");
                continue;
            }
            let sql_target = crate::delivery::sql::SqlTarget {
                url: url.clone(),
                table: table.clone(),
                retain_until: true,
            };
            match crate::delivery::sql::remove_rows_past_retention(&sql_target, now).await {
                Ok(0) => {}
                Ok(rows) => {
                    total += rows;
                    self.settings.metrics.count_disposal_rows_removed(rows);
                    info!(subscription = %target.subscription, table = %table, rows, "Removed rows past retain_until from the agency's SQL table.");
                    let detail = json!({
                        "table": table,
                        "database": sql_target.redacted_url(),
                        "rows": rows,
                        "retain_until_before_ms": now,
                    });
                    if let Err(e) = self
                        .record_control(
                            &Principal::Hub,
                            "disposal.sql_rows_removed",
                            &target.subscription,
                            detail,
                        )
                        .await
                    {
                        warn!(subscription = %target.subscription, error = %e, "The removal of rows past retain_until could not be recorded in the audit log.");
                    }
                }
                Err(e) => {
                    warn!(subscription = %target.subscription, error = %e, "Rows past retain_until could not be removed from the agency's SQL table; the next pass tries again.");
                }
            }
        }
        total
    }
}
