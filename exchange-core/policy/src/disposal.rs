//! Disposal after a grant ends (政务数据共享条例 Art. 27): when a granted subscription expires, is revoked or its
//! purpose is fulfilled, the requesting agency must destroy what it received and confirm that it did. The hub
//! records when the grant ended, when the confirmation is due, and the confirmation itself (how, what), flagging
//! one that came late. Rows the hub itself delivered into an agency's SQL table are removed by the hub once their
//! `retain_until` passes, whatever the agency does.

use serde::{Deserialize, Serialize};

/// Working days after the end of a grant within which the agency confirms destruction. The regulation names no
/// number; the platform holds agencies to the same ten working days it gives providers for an answer.
pub const DISPOSAL_WORKING_DAYS: u32 = 10;

/// Why a grant ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantEnd {
    /// Its expiry (time limit, Art. 20) was reached.
    Expired,
    /// A security administrator (or a catalogue change to 不予共享) revoked it.
    Revoked,
    /// The agency, or a security administrator, declared its purpose fulfilled.
    PurposeFulfilled,
}

impl GrantEnd {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::Revoked => "revoked",
            Self::PurposeFulfilled => "purpose_fulfilled",
        }
    }
}

/// A subscription's disposal: set when its grant ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disposal {
    /// Why the grant ended.
    pub ended_because: GrantEnd,
    /// When (ms since the epoch).
    pub ended_at_ms: i64,
    /// When the agency's confirmation is due: the end of the [`DISPOSAL_WORKING_DAYS`]-th working day after the
    /// end (ms since the epoch, Beijing working-day calendar).
    pub due_ms: i64,
    /// Set when the due day was counted over a year the working-day calendar does not cover (weekdays only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisional: Option<String>,
    /// The agency's confirmation, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<DestructionConfirmation>,
}

/// The agency's confirmation that it destroyed what it received under a grant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestructionConfirmation {
    /// Who confirmed (the agency's principal).
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// How the data was destroyed (e.g. "数据库记录删除并覆写，备份同步清除").
    pub method: String,
    /// What was destroyed: the systems, tables, files and copies.
    pub scope: String,
    /// Given after [`Disposal::due_ms`].
    pub late: bool,
}

/// Where a disposal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisposalState {
    /// Waiting for the agency's confirmation, not yet due.
    Pending,
    /// Waiting for the agency's confirmation, past due.
    Overdue,
    /// Confirmed in time.
    Confirmed,
    /// Confirmed after the due time.
    ConfirmedLate,
}

impl DisposalState {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Overdue => "overdue",
            Self::Confirmed => "confirmed",
            Self::ConfirmedLate => "confirmed_late",
        }
    }

    /// Parses a snake-case name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Overdue,
            Self::Confirmed,
            Self::ConfirmedLate,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl Disposal {
    /// Where this disposal stands at `now_ms`.
    pub fn state(&self, now_ms: i64) -> DisposalState {
        match &self.confirmation {
            Some(c) if c.late => DisposalState::ConfirmedLate,
            Some(_) => DisposalState::Confirmed,
            None if now_ms > self.due_ms => DisposalState::Overdue,
            None => DisposalState::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disposal(confirmation: Option<DestructionConfirmation>) -> Disposal {
        Disposal {
            ended_because: GrantEnd::Expired,
            ended_at_ms: 1_000,
            due_ms: 2_000,
            provisional: None,
            confirmation,
        }
    }

    #[test]
    fn a_disposal_is_pending_then_overdue_until_confirmed_and_a_late_confirmation_stays_flagged() {
        assert_eq!(disposal(None).state(1_500), DisposalState::Pending);
        assert_eq!(disposal(None).state(2_001), DisposalState::Overdue);
        let confirm = |late| DestructionConfirmation {
            by: "agency civil-affairs".into(),
            at_ms: 2_500,
            method: "deleted".into(),
            scope: "all copies".into(),
            late,
        };
        assert_eq!(
            disposal(Some(confirm(false))).state(9_000),
            DisposalState::Confirmed
        );
        assert_eq!(
            disposal(Some(confirm(true))).state(9_000),
            DisposalState::ConfirmedLate
        );
        for s in ["pending", "overdue", "confirmed", "confirmed_late"] {
            assert_eq!(DisposalState::parse(s).map(|v| v.as_str()), Some(s));
        }
        assert_eq!(DisposalState::parse("done"), None);
    }
}
