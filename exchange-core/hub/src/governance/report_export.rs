//! The monthly report (Art. 38) as an `.xlsx` workbook: a sheet per organisation's figures (组织), one per source
//! (数据源), and the refusals' reasons (拒绝理由), with Chinese headers.

use rust_xlsxwriter::{Format, Workbook, XlsxError};

use super::report::MonthlyReport;

/// The organisations sheet's columns.
pub const ORGANISATION_HEADERS: [&str; 17] = [
    "组织代码",
    "组织名称",
    "统一社会信用代码",
    "收到申请",
    "已答复",
    "按时答复",
    "拒绝",
    "提供记录数",
    "收到纠错",
    "已答复纠错",
    "按时答复纠错",
    "提出申请",
    "获批",
    "被拒",
    "待答复",
    "收到记录数",
    "提出纠错",
];

/// The sources sheet's columns.
pub const SOURCE_HEADERS: [&str; 5] = ["数据源", "接收", "拒收", "拒收率", "拒收原因"];

/// The workbook's bytes.
pub fn report_workbook(report: &MonthlyReport) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    let bold = Format::new().set_bold();
    let percent = Format::new().set_num_format("0.00%");
    let sheet = book.add_worksheet().set_name("组织")?;
    sheet.write_string_with_format(0, 0, format!("{} 政务数据共享月报", report.month), &bold)?;
    for (c, h) in ORGANISATION_HEADERS.iter().enumerate() {
        sheet.write_string_with_format(1, c as u16, *h, &bold)?;
    }
    for (r, o) in report.organisations.iter().enumerate() {
        let row = r as u32 + 2;
        sheet.write_string(row, 0, &o.organisation)?;
        sheet.write_string(row, 1, &o.name)?;
        sheet.write_string(row, 2, &o.uscc)?;
        let p = &o.as_provider;
        let q = &o.as_requester;
        let numbers = [
            p.requests_received,
            p.answered,
            p.answered_on_time,
            p.refused,
            p.records_delivered,
            p.corrections_received,
            p.corrections_answered,
            p.corrections_answered_on_time,
            q.requests_filed,
            q.approved,
            q.refused,
            q.waiting,
            q.records_received,
            q.corrections_filed,
        ];
        for (c, n) in numbers.iter().enumerate() {
            sheet.write_number(row, c as u16 + 3, *n as f64)?;
        }
    }
    let sources = book.add_worksheet().set_name("数据源")?;
    for (c, h) in SOURCE_HEADERS.iter().enumerate() {
        sources.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    for (r, s) in report.sources.iter().enumerate() {
        let row = r as u32 + 1;
        let reasons: Vec<String> = s
            .reasons
            .iter()
            .map(|x| format!("{}×{}", x.code, x.count))
            .collect();
        sources.write_string(row, 0, &s.source)?;
        sources.write_number(row, 1, s.accepted as f64)?;
        sources.write_number(row, 2, s.rejected as f64)?;
        sources.write_number_with_format(row, 3, s.rejection_rate, &percent)?;
        sources.write_string(row, 4, reasons.join("；"))?;
    }
    let refusals = book.add_worksheet().set_name("拒绝理由")?;
    for (c, h) in ["组织代码", "组织名称", "拒绝理由"].iter().enumerate() {
        refusals.write_string_with_format(0, c as u16, *h, &bold)?;
    }
    let mut row = 1;
    for o in &report.organisations {
        for reason in &o.as_provider.refusal_reasons {
            refusals.write_string(row, 0, &o.organisation)?;
            refusals.write_string(row, 1, &o.name)?;
            refusals.write_string(row, 2, reason)?;
            row += 1;
        }
    }
    book.save_to_buffer()
}
