//! The envelope's classification symbols — `share_attribute` (政务数据共享条例: 无条件 / 有条件 / 不予共享) and
//! `data_grade` (GB/T 43697: 一般 / 重要 / 核心) — and the one rule of which of them are known.
//!
//! The router's gates, the mapping loader's warnings and the tests read the sets from here, so "known" means one
//! thing everywhere. What is not known fails closed: a grade outside [`GRADES_BELOW_CORE`] is gated as
//! [`CORE`], a sharing class other than [`UNCONDITIONAL`] is conditional.
//!
//! ```
//! use unsilo_schemas::classification::{is_below_core, CORE};
//! assert!(is_below_core(Some("IMPORTANT")));
//! assert!(!is_below_core(Some(CORE)) && !is_below_core(Some("UNKNOWN")) && !is_below_core(None));
//! ```

/// `data_grade` of core data (核心数据): released only under a grant two operators approved.
pub const CORE: &str = "CORE";
/// The grades released under one operator's approval (一般数据, 重要数据).
pub const GRADES_BELOW_CORE: [&str; 2] = ["GENERAL", "IMPORTANT"];
/// Every grade the gates know.
pub const KNOWN_GRADES: [&str; 3] = ["GENERAL", "IMPORTANT", CORE];

/// `share_attribute` of data shared without conditions (无条件共享): the only class automatic approval releases.
pub const UNCONDITIONAL: &str = "UNCONDITIONAL";
/// `share_attribute` of data never shared (不予共享): released to no one.
pub const NOT_SHARED: &str = "NOT_SHARED";
/// Every sharing class the gates know.
pub const KNOWN_SHARE_ATTRIBUTES: [&str; 3] = [UNCONDITIONAL, "CONDITIONAL", NOT_SHARED];

/// Whether a record of grade `grade` (`None`: the record has none) may be released under one approval.
pub fn is_below_core(grade: Option<&str>) -> bool {
    grade.is_some_and(|g| GRADES_BELOW_CORE.contains(&g))
}
