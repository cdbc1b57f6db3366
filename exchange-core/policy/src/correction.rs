//! Corrections (校核纠错, 政务数据共享条例 Art. 26): a subscriber says a record it received is wrong; the providing
//! organisation answers within 10 working days — corrected (a new version of the record reaches every subscriber
//! of it, with lineage back to the original) or refused with reasons.
//!
//! A [`Correction`] is kept on the control plane like a subscription; the hub's operations decide who may file
//! and answer it.

use serde::{Deserialize, Serialize};

/// Where a correction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionStatus {
    /// Filed, waiting for the provider's answer.
    Filed,
    /// The provider corrected the record: a new version was published.
    Corrected,
    /// The provider refused, with reasons.
    Refused,
}

impl CorrectionStatus {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Filed => "filed",
            Self::Corrected => "corrected",
            Self::Refused => "refused",
        }
    }
}

/// The provider's answer to a correction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectionAnswer {
    /// Who answered (the reviewer, or a security administrator where the entry has no provider).
    pub by: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// The reasons of a refusal, or the note of a correction.
    pub reason: String,
    /// The corrected value of the field (for a correction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// The record id of the corrected version published (for a correction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_record_id: Option<String>,
}

/// A correction a subscriber filed on a record it received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// The correction's id, `cor-…`.
    pub id: String,
    /// The agency that filed it.
    pub agency: String,
    /// The subscription the agency received the record under.
    pub subscription: String,
    /// The record's shared schema (and catalogue entry).
    pub schema: String,
    /// The record's id (`envelope.record_id`).
    pub record_id: String,
    /// The field that is wrong (a top-level field of the schema).
    pub field: String,
    /// What is wrong.
    pub problem: String,
    /// The evidence (a document number, a check made, a reference).
    pub evidence: String,
    /// The value the subscriber believes right, if it knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposed_value: Option<serde_json::Value>,
    /// The providing organisation that answers it; `None`: the platform's security administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// When it was filed (ms since the epoch).
    pub filed_at_ms: i64,
    /// When the answer is due: 10 working days after filing, the end of that day in Beijing.
    pub due_ms: i64,
    /// Set when the due time is provisional (a year the working-day calendar does not cover).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisional: Option<String>,
    /// Where it stands.
    pub status: CorrectionStatus,
    /// The answer, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<CorrectionAnswer>,
    /// Bumped on every write (optimistic concurrency on the control plane).
    pub revision: u64,
}

impl Correction {
    /// Whether the answer was late at `now_ms` (unanswered past its due time, or answered after it).
    pub fn is_late(&self, now_ms: i64) -> bool {
        match &self.answer {
            Some(a) => a.at_ms > self.due_ms,
            None => now_ms > self.due_ms,
        }
    }
}
