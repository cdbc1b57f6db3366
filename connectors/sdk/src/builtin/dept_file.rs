//! The `dept-file` built-in connector: departmental roster exports dropped in a watched folder — the 残联
//! disability roster and the 民政 elderly living-alone roster, CSV or Excel in GBK — normalised into `resident`
//! with special-group tags. The definition folder is `connectors/builtin/dept-file/`; its README has the columns.

use super::Builtin;

/// The files of `connectors/builtin/dept-file/`.
pub(crate) const BUILTIN: Builtin = Builtin {
    name: "dept-file",
    files: &[
        (
            "connector.toml",
            include_str!("../../../builtin/dept-file/connector.toml"),
        ),
        (
            "contract.json",
            include_str!("../../../builtin/dept-file/contract.json"),
        ),
        (
            "mappings/disabled.toml",
            include_str!("../../../builtin/dept-file/mappings/disabled.toml"),
        ),
        (
            "mappings/elderly_alone.toml",
            include_str!("../../../builtin/dept-file/mappings/elderly_alone.toml"),
        ),
        (
            "README.md",
            include_str!("../../../builtin/dept-file/README.md"),
        ),
        (
            "fixtures/valid/disabled_limb.json",
            include_str!("../../../builtin/dept-file/fixtures/valid/disabled_limb.json"),
        ),
        (
            "fixtures/valid/disabled_workbook_date_cells.json",
            include_str!(
                "../../../builtin/dept-file/fixtures/valid/disabled_workbook_date_cells.json"
            ),
        ),
        (
            "fixtures/valid/elderly_alone.json",
            include_str!("../../../builtin/dept-file/fixtures/valid/elderly_alone.json"),
        ),
        (
            "fixtures/valid/elderly_left_behind.json",
            include_str!("../../../builtin/dept-file/fixtures/valid/elderly_left_behind.json"),
        ),
        (
            "fixtures/invalid/disabled_bad_cert_no.json",
            include_str!("../../../builtin/dept-file/fixtures/invalid/disabled_bad_cert_no.json"),
        ),
        (
            "fixtures/invalid/disabled_garbage_birth_date.json",
            include_str!(
                "../../../builtin/dept-file/fixtures/invalid/disabled_garbage_birth_date.json"
            ),
        ),
        (
            "fixtures/invalid/disabled_unknown_category.json",
            include_str!(
                "../../../builtin/dept-file/fixtures/invalid/disabled_unknown_category.json"
            ),
        ),
        (
            "fixtures/invalid/disabled_unknown_grade.json",
            include_str!("../../../builtin/dept-file/fixtures/invalid/disabled_unknown_grade.json"),
        ),
        (
            "fixtures/invalid/elderly_missing_community_code.json",
            include_str!(
                "../../../builtin/dept-file/fixtures/invalid/elderly_missing_community_code.json"
            ),
        ),
        (
            "fixtures/invalid/elderly_unknown_community.json",
            include_str!(
                "../../../builtin/dept-file/fixtures/invalid/elderly_unknown_community.json"
            ),
        ),
        (
            "fixtures/invalid/unknown_roster.json",
            include_str!("../../../builtin/dept-file/fixtures/invalid/unknown_roster.json"),
        ),
    ],
};
