//! The usage register (使用登记, 政务数据共享条例 Art. 29): for each subscription the requesting agency records how
//! it used the data — the scenario, the process, the outcome, how it is stored and how and when it was destroyed.
//! Entries are never changed or removed: they are kept on the compacted control-plane topic, which no retention
//! setting shortens, so the register outlives the data it describes (the regulation asks for three years).

use serde::{Deserialize, Serialize};

/// One entry of the usage register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    /// The entry's id, `use-…`.
    pub id: String,
    /// The subscription the data came under.
    pub subscription: String,
    /// The agency that used it.
    pub agency: String,
    /// The schema (and catalogue entry) of the data.
    pub schema: String,
    /// 使用场景: where the data was used.
    pub scenario: String,
    /// 使用过程: how.
    pub process: String,
    /// 使用结果: what came of it.
    pub outcome: String,
    /// 存储: where and how the data is kept.
    pub storage: String,
    /// 销毁: how and when it was destroyed, once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destruction: Option<String>,
    /// Who recorded it.
    pub recorded_by: String,
    /// When (ms since the epoch).
    pub recorded_at_ms: i64,
    /// Always 1: entries are never changed.
    pub revision: u64,
}
