//! The 政务数据共享条例's shape of a request: the items it must state (Art. 20), who decides it (Art. 21: the
//! providing organisation for 有条件 data, with the platform's 双人复核 kept for CORE data), and its deadlines on
//! the working-day calendar (Art. 21–22) — an answer within 1 working day (无条件) or 10 (有条件), extendable once
//! by up to 10 with a reason; delivery within 20 working days of approval — with the overdue requests listed.

#[allow(unused_imports)]
use super::*;

use unsilo_policy::catalogue::{CatalogueEntry, ShareAttribute};
use unsilo_policy::model::{DeadlineState, Deadlines, Extension};

/// Working days a provider has to answer a request for 无条件 data (Art. 21).
pub const ANSWER_DAYS_UNCONDITIONAL: u32 = 1;
/// Working days a provider has to answer a request for 有条件 data (Art. 21).
pub const ANSWER_DAYS_CONDITIONAL: u32 = 10;
/// The most working days one extension adds (Art. 21).
pub const MAX_EXTENSION_DAYS: u32 = 10;
/// Working days from approval to delivery (Art. 22).
pub const DELIVERY_DAYS: u32 = 20;

/// Body of `POST /admin/subscriptions/{id}/extend`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionRequest {
    /// Working days to add, 1–10.
    pub days: u32,
    /// Why more time is needed (recorded with the request and in the audit log).
    pub reason: String,
}

/// How many requests and ended grants are past a deadline, for `/metrics` (one pass over the subscriptions).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverdueCounts {
    /// Requests past their answer deadline.
    pub answer: u64,
    /// Approved requests past their delivery deadline.
    pub delivery: u64,
    /// Ended grants whose destruction is not confirmed by its due time.
    pub disposal: u64,
}

/// A request past one of its deadlines, as `GET /admin/requests/overdue` and `unsilo request overdue` list it.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OverdueRequest {
    /// The subscription (`<agency>.<name>`).
    pub subscription: String,
    /// The requesting agency.
    pub agency: String,
    /// The schema (and catalogue entry) requested.
    pub schema: String,
    /// The providing organisation that decides it, if the entry names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `answer_overdue` or `delivery_overdue`.
    pub state: DeadlineState,
    /// The deadline passed (ms since the epoch).
    pub due_ms: i64,
    /// The request's status.
    pub status: String,
    /// Set when the deadline is provisional (a year the calendar does not cover).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisional: Option<String>,
}

/// The Art. 20 items a request leaves out, every one of them (an incomplete request is answered with all that is
/// missing at once, never one at a time).
pub fn missing_request_items(spec: &SubscriptionSpec) -> Vec<&'static str> {
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|t| t.trim().is_empty());
    let mut missing = Vec::new();
    if blank(&spec.legal_basis) {
        missing.push("legal_basis (申请依据: the law, regulation or policy the request rests on)");
    }
    if blank(&spec.scenario) {
        missing.push("scenario (应用场景: the duty and business process the data serves)");
    }
    if blank(&spec.scope) {
        missing.push("scope (共享范围: which records, whose)");
    }
    if spec.purpose.trim().is_empty() {
        missing.push("purpose (用途)");
    }
    if spec.expires_at_ms.is_none() {
        missing.push("expires_at (使用时限: when use ends)");
    }
    missing
}

/// The providing organisation that must decide requests on `entry`: its provider, for 有条件 data.
pub fn deciding_provider(entry: &CatalogueEntry) -> Option<&str> {
    match entry.terms.share_attribute {
        ShareAttribute::Conditional => entry.terms.provider.as_deref(),
        _ => None,
    }
}

/// Whether `who` may see what agency `agency` holds under schema `schema` (a subscription, its usage entries),
/// read from a state the caller already holds: a reviewer when its organisation provides the schema's entry,
/// any other principal as [`Principal::may_see_agency`] says.
pub(super) fn may_see_in(
    state: &crate::control::ControlState,
    who: &Principal,
    agency: &str,
    schema: &str,
) -> bool {
    match who {
        Principal::Reviewer { agency: org, .. } => state
            .catalogue
            .get(schema)
            .is_some_and(|e| e.terms.provider.as_deref() == Some(org.as_str())),
        other => other.may_see_agency(agency),
    }
}

impl Governance {
    /// The working-day calendar the deadlines run on.
    pub fn calendar(&self) -> &crate::calendar::WorkingCalendar {
        &self.settings.calendar
    }

    /// The due time `days` working days after `start_ms`, and the note that makes it provisional, if any.
    pub(super) fn due_after(&self, start_ms: i64, days: u32) -> (i64, Option<String>) {
        let (due, uncovered) = self.settings.calendar.due_time(start_ms, days);
        let note = uncovered.map(|year| {
            warn!(year, "A sharing deadline runs into a year the working-day calendar does not cover; weekdays are counted there until the year is added.");
            format!("the working-day calendar has no {year}: weekdays were counted; add {year}.toml from the State Council's notice to [policy] calendar_dir")
        });
        (due, note)
    }

    /// The deadlines of a request on `entry` filed at `requested_at_ms`.
    pub(super) fn deadlines_for(&self, entry: &CatalogueEntry, requested_at_ms: i64) -> Deadlines {
        let answer_days = match entry.terms.share_attribute {
            ShareAttribute::Unconditional => ANSWER_DAYS_UNCONDITIONAL,
            _ => ANSWER_DAYS_CONDITIONAL,
        };
        let (answer_due_ms, provisional) = self.due_after(requested_at_ms, answer_days);
        Deadlines {
            answer_days,
            answer_due_ms,
            extension: None,
            answered_at_ms: None,
            delivery_due_ms: None,
            delivered_at_ms: None,
            provisional,
        }
    }

    /// Records that `s` was answered at `now_ms` (the first answer counts).
    pub(super) fn mark_answered(s: &mut Subscription, now_ms: i64) {
        if let Some(d) = s.deadlines.as_mut() {
            d.answered_at_ms.get_or_insert(now_ms);
        }
    }

    /// Records that `s` was approved at `now_ms`: answered, and delivery due 20 working days on.
    pub(super) fn mark_approved(&self, s: &mut Subscription, now_ms: i64) {
        Self::mark_answered(s, now_ms);
        let (due, note) = self.due_after(now_ms, DELIVERY_DAYS);
        if let Some(d) = s.deadlines.as_mut() {
            d.delivery_due_ms.get_or_insert(due);
            if d.provisional.is_none() {
                d.provisional = note;
            }
        }
    }

    /// Records that `s` began delivering at `now_ms`.
    pub(super) fn mark_delivered(s: &mut Subscription, now_ms: i64) {
        if let Some(d) = s.deadlines.as_mut() {
            d.delivered_at_ms.get_or_insert(now_ms);
        }
    }

    /// The providing organisation that decides subscription `s` (its entry's provider, for 有条件 data); `None`:
    /// the platform's security administrators decide it.
    pub fn deciding_provider_of(&self, s: &Subscription) -> Option<String> {
        self.entry_of(s)
            .and_then(|e| deciding_provider(&e).map(str::to_owned))
    }

    /// The catalogue entry of a subscription's schema, if there is one.
    pub(super) fn entry_of(&self, s: &Subscription) -> Option<CatalogueEntry> {
        self.control.catalogue_entry(&s.requested.schema)
    }

    /// Whether `who` may see subscription `s`: a reviewer sees the requests for its organisation's entries, any
    /// other principal what [`Principal::may_see_agency`] allows.
    pub(super) fn may_see(&self, who: &Principal, s: &Subscription) -> bool {
        may_see_in(&self.control.read(), who, &s.agency, &s.requested.schema)
    }

    /// Extends a request's answer deadline once, by 1–10 working days, with a reason: the provider's reviewer
    /// (for its own entries) or a security administrator.
    pub async fn extend_deadline(
        &self,
        who: &Principal,
        id: &str,
        extension: ExtensionRequest,
    ) -> Result<Subscription, ApiError> {
        authorize(who, Action::ExtendDeadline)?;
        let current = self.visible_subscription(who, id)?;
        if current.status != SubscriptionStatus::Requested {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` is {}; only a request waiting for its answer can be given more time",
                current.status.as_str()
            )));
        }
        let mut problems = Vec::new();
        if extension.days == 0 || extension.days > MAX_EXTENSION_DAYS {
            problems.push(format!(
                "days: 1–{MAX_EXTENSION_DAYS} working days (Art. 21), not {}",
                extension.days
            ));
        }
        if extension.reason.trim().is_empty() {
            problems.push("reason: say why more time is needed".to_owned());
        }
        if !problems.is_empty() {
            return Err(ApiError::Invalid(problems.join("; ")));
        }
        let Some(deadlines) = current.deadlines.clone() else {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` was filed before deadlines were kept; it has none to extend"
            )));
        };
        if deadlines.extension.is_some() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}`'s deadline was already extended once; the regulation allows one extension"
            )));
        }
        if deadlines.answered_at_ms.is_some() {
            return Err(ApiError::Conflict(format!(
                "subscription `{id}` has been answered; there is no answer deadline left to extend"
            )));
        }
        let now = unsilo_bus::now_ms();
        // The extension runs from the due day, not from today: the days added are working days after it.
        let (due, note) = self.due_after(deadlines.answer_due_ms, extension.days);
        let mut next = current.clone();
        let d = next.deadlines.as_mut().expect("checked above");
        d.extension = Some(Extension {
            days: extension.days,
            reason: extension.reason.trim().to_owned(),
            by: who.to_string(),
            at_ms: now,
            previous_due_ms: deadlines.answer_due_ms,
        });
        d.answer_due_ms = due;
        if d.provisional.is_none() {
            d.provisional = note;
        }
        self.save_subscription(
            who,
            next,
            "subscription.extend",
            json!({ "days": extension.days, "reason": extension.reason.trim(), "answer_due_ms": due, "previous_due_ms": deadlines.answer_due_ms }),
        )
        .await
    }

    /// The requests `who` may see that are past a deadline at `now_ms`, the longest overdue first.
    pub fn overdue_requests(
        &self,
        who: &Principal,
        now_ms: i64,
    ) -> Result<Vec<OverdueRequest>, ApiError> {
        authorize(who, Action::ViewSubscriptions)?;
        let all: Vec<Subscription> = self
            .control
            .read()
            .subscriptions
            .values()
            .cloned()
            .collect();
        let mut out: Vec<OverdueRequest> = all
            .into_iter()
            .filter(|s| !s.status.is_final())
            .filter(|s| self.may_see(who, s))
            .filter_map(|s| {
                let d = s.deadlines.as_ref()?;
                let state = d.state(now_ms);
                let due_ms = match state {
                    DeadlineState::AnswerOverdue => d.answer_due_ms,
                    DeadlineState::DeliveryOverdue => d.delivery_due_ms?,
                    _ => return None,
                };
                Some(OverdueRequest {
                    provider: self.deciding_provider_of(&s),
                    subscription: s.id.clone(),
                    agency: s.agency.clone(),
                    schema: s.requested.schema.clone(),
                    state,
                    due_ms,
                    status: s.status.as_str().to_owned(),
                    provisional: d.provisional.clone(),
                })
            })
            .collect();
        out.sort_by_key(|o| o.due_ms);
        Ok(out)
    }

    /// Sets `unsilo_requests_overdue` from the control plane's requests, now.
    pub fn refresh_overdue_metric(&self) {
        let now = unsilo_bus::now_ms();
        let overdue = self.overdue_counts(now);
        let metrics = &self.settings.metrics;
        metrics.set_requests_overdue(overdue.answer, overdue.delivery);
        metrics.set_disposals_overdue(overdue.disposal);
    }

    /// How many requests are past their answer and their delivery deadline at `now_ms`, and how many ended grants
    /// wait past due for the confirmation of their destruction (for `/metrics`).
    pub fn overdue_counts(&self, now_ms: i64) -> OverdueCounts {
        let state = self.control.read();
        let mut counts = OverdueCounts::default();
        for s in state.subscriptions.values() {
            if s.status.is_final() {
                if s.disposal.as_ref().is_some_and(|d| {
                    d.state(now_ms) == unsilo_policy::disposal::DisposalState::Overdue
                }) {
                    counts.disposal += 1;
                }
                continue;
            }
            match s.deadlines.as_ref().map(|d| d.state(now_ms)) {
                Some(DeadlineState::AnswerOverdue) => counts.answer += 1,
                Some(DeadlineState::DeliveryOverdue) => counts.delivery += 1,
                _ => {}
            }
        }
        counts
    }
}
