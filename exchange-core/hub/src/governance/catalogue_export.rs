//! The catalogue as an `.xlsx` workbook in the layout provincial catalogue systems import: a sheet of resources
//! (资源目录, one row per entry) and a sheet of data items (信息项, one row per item, keyed by the resource code),
//! with Chinese headers. Written with rust_xlsxwriter; the JSON export is the API's list itself.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::catalogue::CatalogueView;

/// The resources sheet's columns.
pub const RESOURCE_HEADERS: [&str; 16] = [
    "资源代码",
    "资源名称",
    "资源分类",
    "提供方",
    "提供方统一社会信用代码",
    "数据格式",
    "更新频率",
    "共享属性",
    "共享条件",
    "不予共享依据",
    "共享方式",
    "使用条件",
    "数据分级",
    "版本",
    "更新时间",
    "信息项数",
];

/// The data items sheet's columns.
pub const ITEM_HEADERS: [&str; 6] = [
    "资源代码",
    "资源名称",
    "信息项名称",
    "信息项说明",
    "数据类型",
    "敏感级别",
];

/// A workbook's bytes as a download named `file` (the API's and the console's exports alike).
pub fn workbook_response(bytes: Vec<u8>, file: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// The workbook's bytes.
pub fn catalogue_workbook(entries: &[CatalogueView]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let resources = book.add_worksheet().set_name("资源目录")?;
    for (c, h) in RESOURCE_HEADERS.iter().enumerate() {
        resources.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    for (r, v) in entries.iter().enumerate() {
        let t = &v.entry.terms;
        let modes: Vec<&str> = t.share_modes.iter().map(|m| m.title_zh()).collect();
        let row = [
            v.entry.id.clone(),
            t.title.clone(),
            t.classification.clone(),
            v.provider_name
                .clone()
                .or_else(|| t.provider.clone())
                .unwrap_or_else(|| "（未指定）".into()),
            v.provider_uscc.clone().unwrap_or_default(),
            t.format.clone(),
            t.update_frequency.clone(),
            t.share_attribute.title_zh().to_owned(),
            t.conditions.clone().unwrap_or_default(),
            t.not_shared_basis.clone().unwrap_or_default(),
            modes.join("、"),
            t.conditions_of_use.clone(),
            t.grade.clone(),
            v.entry.version.to_string(),
            crate::calendar::beijing_time(v.entry.changed_at_ms),
            v.items.len().to_string(),
        ];
        for (c, cell) in row.iter().enumerate() {
            resources.write_string(r as u32 + 1, c as u16, cell)?;
        }
    }
    let items = book.add_worksheet().set_name("信息项")?;
    for (c, h) in ITEM_HEADERS.iter().enumerate() {
        items.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    let mut r = 1u32;
    for v in entries {
        for i in &v.items {
            let row = [
                v.entry.id.as_str(),
                v.entry.terms.title.as_str(),
                i.field.as_str(),
                i.title.as_str(),
                &avro_type_name(&i.avro_type),
                i.sensitivity.as_str(),
            ];
            for (c, cell) in row.iter().enumerate() {
                items.write_string(r, c as u16, *cell)?;
            }
            r += 1;
        }
    }
    book.save_to_buffer()
}

/// A field's Avro type in a word: `string`, `long`, `array<string>`, an optional one with `?`.
fn avro_type_name(t: &serde_json::Value) -> String {
    match t {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(branches) => {
            let rest: Vec<String> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .map(avro_type_name)
                .collect();
            let optional = rest.len() < branches.len();
            format!("{}{}", rest.join("|"), if optional { "?" } else { "" })
        }
        serde_json::Value::Object(o) => match o.get("type").and_then(|t| t.as_str()) {
            Some("array") => format!("array<{}>", avro_type_name(&o["items"])),
            Some("record") => o
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("record")
                .to_owned(),
            Some("enum") => "enum".to_owned(),
            Some(other) => o
                .get("logicalType")
                .and_then(|l| l.as_str())
                .unwrap_or(other)
                .to_owned(),
            None => "?".to_owned(),
        },
        _ => "?".to_owned(),
    }
}
