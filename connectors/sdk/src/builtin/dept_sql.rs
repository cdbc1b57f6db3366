//! The `dept-sql` built-in connector: departmental database tables polled by the hub — the civil-affairs 低保
//! roster (PostgreSQL) and the public-security incident table (MySQL/MariaDB) — normalised into `dept_record`.
//! The definition folder is `connectors/builtin/dept-sql/`; its README has the DDL and the field tables.

use super::Builtin;

/// The files of `connectors/builtin/dept-sql/`.
pub(crate) const BUILTIN: Builtin = Builtin {
    name: "dept-sql",
    files: &[
        (
            "connector.toml",
            include_str!("../../../builtin/dept-sql/connector.toml"),
        ),
        (
            "contract.json",
            include_str!("../../../builtin/dept-sql/contract.json"),
        ),
        (
            "mappings/dibao.toml",
            include_str!("../../../builtin/dept-sql/mappings/dibao.toml"),
        ),
        (
            "mappings/police_incident.toml",
            include_str!("../../../builtin/dept-sql/mappings/police_incident.toml"),
        ),
        (
            "README.md",
            include_str!("../../../builtin/dept-sql/README.md"),
        ),
        (
            "fixtures/valid/dibao_urban_active.json",
            include_str!("../../../builtin/dept-sql/fixtures/valid/dibao_urban_active.json"),
        ),
        (
            "fixtures/valid/dibao_rural_terminated.json",
            include_str!("../../../builtin/dept-sql/fixtures/valid/dibao_rural_terminated.json"),
        ),
        (
            "fixtures/valid/police_dispute.json",
            include_str!("../../../builtin/dept-sql/fixtures/valid/police_dispute.json"),
        ),
        (
            "fixtures/valid/police_handled_update.json",
            include_str!("../../../builtin/dept-sql/fixtures/valid/police_handled_update.json"),
        ),
        (
            "fixtures/invalid/dibao_bad_cert_no.json",
            include_str!("../../../builtin/dept-sql/fixtures/invalid/dibao_bad_cert_no.json"),
        ),
        (
            "fixtures/invalid/dibao_bad_month.json",
            include_str!("../../../builtin/dept-sql/fixtures/invalid/dibao_bad_month.json"),
        ),
        (
            "fixtures/invalid/dibao_negative_allowance.json",
            include_str!(
                "../../../builtin/dept-sql/fixtures/invalid/dibao_negative_allowance.json"
            ),
        ),
        (
            "fixtures/invalid/dibao_unknown_village.json",
            include_str!("../../../builtin/dept-sql/fixtures/invalid/dibao_unknown_village.json"),
        ),
        (
            "fixtures/invalid/police_bad_phone.json",
            include_str!("../../../builtin/dept-sql/fixtures/invalid/police_bad_phone.json"),
        ),
        (
            "fixtures/invalid/police_unknown_region.json",
            include_str!("../../../builtin/dept-sql/fixtures/invalid/police_unknown_region.json"),
        ),
        (
            "fixtures/invalid/unknown_table.json",
            include_str!("../../../builtin/dept-sql/fixtures/invalid/unknown_table.json"),
        ),
    ],
};
