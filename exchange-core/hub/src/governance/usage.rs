//! The usage register (使用登记, 政务数据共享条例 Art. 29): the agency records, per subscription, the scenario,
//! process and outcome of each use and how the data is stored and destroyed; the platform's administrators and
//! the providing organisation's reviewers read it. Entries are written once and kept on the control plane, which
//! retention never shortens.

#[allow(unused_imports)]
use super::*;

use unsilo_policy::usage::UsageRecord;

/// Body of `POST /admin/subscriptions/{id}/usage`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUsage {
    /// 使用场景.
    pub scenario: String,
    /// 使用过程.
    pub process: String,
    /// 使用结果.
    pub outcome: String,
    /// 存储: where and how the data is kept.
    pub storage: String,
    /// 销毁: how and when it was destroyed, if it was.
    #[serde(default)]
    pub destruction: Option<String>,
}

impl Governance {
    /// Adds an entry to subscription `id`'s usage register (the owning agency); every missing item is named.
    pub async fn record_usage(
        &self,
        who: &Principal,
        id: &str,
        new: NewUsage,
    ) -> Result<UsageRecord, ApiError> {
        authorize(who, Action::RecordUsage)?;
        let Principal::Agency(agency) = who else {
            return Err(ApiError::Forbidden(
                "the agency that used the data records its use, with its own credential".into(),
            ));
        };
        let subscription = self.visible_subscription(who, id)?;
        if subscription.granted.is_none() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` was never granted; there is no use to record"
            )));
        }
        require_items(
            "a usage entry (使用登记, Art. 29) also states",
            &[
                ("scenario", &new.scenario),
                ("process", &new.process),
                ("outcome", &new.outcome),
                ("storage", &new.storage),
            ],
        )?;
        let now = unsilo_bus::now_ms();
        let entry = UsageRecord {
            id: format!("use-{now}-{:04x}", rand::random::<u16>()),
            subscription: subscription.id.clone(),
            agency: agency.clone(),
            schema: subscription.requested.schema.clone(),
            scenario: new.scenario.trim().to_owned(),
            process: new.process.trim().to_owned(),
            outcome: new.outcome.trim().to_owned(),
            storage: new.storage.trim().to_owned(),
            destruction: new
                .destruction
                .map(|d| d.trim().to_owned())
                .filter(|d| !d.is_empty()),
            recorded_by: who.to_string(),
            recorded_at_ms: now,
            revision: 1,
        };
        self.control
            .put_usage(&entry)
            .await
            .map_err(control_error)?;
        self.record_control(who, "usage.record", &entry.id, json!(entry))
            .await?;
        Ok(entry)
    }

    /// The usage register as `who` may read it (an agency its own, a reviewer its organisation's entries'
    /// subscriptions, administrators all), optionally of one subscription, the newest first.
    pub fn usage_register(
        &self,
        who: &Principal,
        subscription: Option<&str>,
    ) -> Result<Vec<UsageRecord>, ApiError> {
        authorize(who, Action::ViewUsage)?;
        let state = self.control.read();
        let mut out: Vec<UsageRecord> = state
            .usage
            .values()
            .filter(|u| subscription.is_none_or(|s| s == u.subscription))
            .filter(|u| workflow::may_see_in(&state, who, &u.agency, &u.schema))
            .cloned()
            .collect();
        out.sort_by_key(|u| std::cmp::Reverse(u.recorded_at_ms));
        Ok(out)
    }
}
