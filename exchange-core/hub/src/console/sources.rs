//! A connector's dead-letter topic (`dlq.<connector>`), newest first: each rejected original with the stage,
//! code, field and reason it was rejected for, filterable by code and time. Originals are shown as text,
//! escaped — never interpreted — and as hex when they are not UTF-8.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::html;
use serde::Deserialize;
use unsilo_bus::{ConsumedRecord, FetchRequest};
use unsilo_schemas::names;

use super::page::{self, time, OrPage, PageError, PageResult};
use super::{Shared, Viewer};

/// How many of the newest dead letters per partition are read for the page.
const NEWEST: u64 = 500;

/// The longest part of an original shown.
const MAX_SHOWN_BYTES: usize = 4096;

/// The page's filters.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DeadLetterFilter {
    /// Only this reason code.
    #[serde(default)]
    code: Option<String>,
    /// Only this recent: `15m`, `1h`, `24h` (default: everything read).
    #[serde(default)]
    since: Option<String>,
}

/// One dead letter as shown.
struct DeadLetter {
    offset: u64,
    partition: u32,
    at_ms: i64,
    stage: String,
    code: String,
    field: Option<String>,
    message: String,
    origin: Option<String>,
    original: Vec<u8>,
}

fn header_text(record: &ConsumedRecord, name: &str) -> Option<String> {
    record
        .record
        .header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn dead_letter(r: ConsumedRecord) -> DeadLetter {
    let reason: serde_json::Value = r
        .record
        .header(names::HEADER_REASON)
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or_default();
    let text = |k: &str| reason.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    DeadLetter {
        offset: r.position.offset,
        partition: r.position.partition,
        at_ms: r.record.timestamp_ms,
        stage: text("stage").unwrap_or_default(),
        code: text("code").unwrap_or_else(|| "unknown".into()),
        field: text("field"),
        message: text("message").unwrap_or_default(),
        origin: header_text(&r, names::HEADER_ORIGIN),
        original: r.record.value.clone().unwrap_or_default(),
    }
}

/// An original, as text when it is UTF-8 (cut to a few KiB), else as hex.
fn shown(original: &[u8]) -> (String, bool) {
    let cut = &original[..original.len().min(MAX_SHOWN_BYTES)];
    match std::str::from_utf8(cut) {
        Ok(text) => (text.to_owned(), original.len() > MAX_SHOWN_BYTES),
        Err(e) if e.valid_up_to() > 0 && original.len() > MAX_SHOWN_BYTES => (
            String::from_utf8_lossy(&cut[..e.valid_up_to()]).into_owned(),
            true,
        ),
        Err(_) => (hex::encode(cut), original.len() > MAX_SHOWN_BYTES),
    }
}

/// `GET /console/sources/{connector}/dead-letters?code=&since=`.
pub(super) async fn dead_letters(
    State(console): Shared,
    viewer: Viewer,
    Path(connector): Path<String>,
    Query(filter): Query<DeadLetterFilter>,
) -> PageResult {
    page::operator_page(&viewer, crate::roles::Action::OperateConnectors)?;
    let l = viewer.lang;
    if !console.connectors.iter().any(|c| c.name == connector) {
        return Err(PageError::new(
            l,
            StatusCode::NOT_FOUND,
            format!("{} `{connector}`", l.t("没有连接器", "no connector")),
        ));
    }
    let topic = names::dlq_topic(&connector);
    let ends = console.bus.end_offsets(&topic).await.unwrap_or_default();
    let mut letters = Vec::new();
    for (partition, end) in ends.iter().enumerate() {
        let mut offset = end.saturating_sub(NEWEST);
        while offset < *end {
            let read = FetchRequest::new(
                &topic,
                partition as u32,
                offset,
                (end - offset) as usize,
                Duration::ZERO,
            );
            let batch = console.bus.fetch(&read).await.map_err(|e| {
                PageError::api(l, crate::api_error::ApiError::Internal(e.to_string()))
            })?;
            let Some(last) = batch.last() else { break };
            offset = last.position.offset + 1;
            letters.extend(batch.into_iter().map(dead_letter));
        }
    }
    let since_ms = match filter.since.as_deref() {
        Some("15m") => Some(15 * 60_000),
        Some("1h") => Some(3_600_000),
        Some("24h") => Some(86_400_000),
        _ => None,
    }
    .map(|window| unsilo_bus::now_ms() - window);
    let mut codes: Vec<String> = letters.iter().map(|d| d.code.clone()).collect();
    codes.sort();
    codes.dedup();
    let code = filter.code.as_deref().filter(|c| !c.is_empty());
    letters.retain(|d| {
        code.is_none_or(|c| d.code == c) && since_ms.is_none_or(|since| d.at_ms >= since)
    });
    letters.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.offset.cmp(&a.offset)));
    letters.truncate(200);
    let title = format!("{} · {connector}", l.t("拒收记录", "Dead letters"));
    let body = html! {
        p.hint { (l.t(
            "被拒收的原始记录保存在死信主题上，附带拒收的阶段、代码、字段和原因。原文仅作为文本显示。",
            "Rejected originals stay on the dead-letter topic with the stage, code, field and reason. Originals are shown as text only."
        )) " " code { (topic) } }
        form.filters method="get" {
            div { label for="code" { (l.t("原因代码", "Reason code")) }
                select #code name="code" {
                    option value="" { (l.t("全部", "all")) }
                    @for c in &codes { option value=(c) selected[code == Some(c.as_str())] { (c) } }
                } }
            div { label for="since" { (l.t("时间", "Time")) }
                select #since name="since" {
                    option value="" { (l.t("全部", "all")) }
                    @for (v, zh, en) in [("15m", "近 15 分钟", "last 15 minutes"), ("1h", "近 1 小时", "last hour"), ("24h", "近 24 小时", "last 24 hours")] {
                        option value=(v) selected[filter.since.as_deref() == Some(v)] { (l.t(zh, en)) }
                    }
                } }
            button type="submit" { (l.t("筛选", "Filter")) }
        }
        form.card #replay-source method="post" action=(format!("/console/sources/{connector}/dead-letters/replay"))
            data-confirm=(l.t("用当前的映射重新处理这些拒收记录？", "Run these rejected records through the current mapping again?")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="code" value=(code.unwrap_or(""));
            p.hint { (l.t(
                "修正映射或代码表后，可用当前定义重新处理拒收记录：通过的进入标准主题（记录编号不变），仍不通过的带新原因留在死信主题。已重放过的不会再次处理。",
                "After a mapping or code-table fix, run the rejected originals through the current definition: what passes lands on std. with its normal record id, what still fails stays on the DLQ with its new reason. Entries replayed before are not taken again."
            )) }
            button type="submit" { (l.t("重放", "Replay")) @if let Some(c) = code { " (" (c) ")" } }
        }
        form.card.filters #renormalise-source method="post" action=(format!("/console/sources/{connector}/renormalise"))
            data-confirm=(l.t("用当前的映射重新处理已接收的原始记录？", "Run the stored originals through the current mapping again?")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            div { label for="renormalise-since" { (l.t("重新标准化 raw. 中的原始记录", "Re-normalise the originals on raw. from")) }
                select #renormalise-since name="since" {
                    @for (v, zh, en) in [("1h", "近 1 小时", "the last hour"), ("24h", "近 24 小时", "the last 24 hours"), ("7d", "近 7 天", "the last 7 days"), ("all", "全部", "the beginning")] {
                        option value=(v) { (l.t(zh, en)) }
                    }
                } }
            button type="submit" { (l.t("重新标准化", "Re-normalise")) }
        }
        p.muted { (letters.len()) " " (l.t("条（最新在前）", "shown, newest first")) }
        @for d in &letters {
            @let (text, cut) = shown(&d.original);
            details.card.dead-letter data-code=(d.code) {
                summary {
                    (time(d.at_ms)) " · " strong { (d.code) } " · " (d.stage)
                    @if let Some(f) = &d.field { " · " code { (f) } }
                    " — " span.reason { (d.message) }
                }
                table {
                    tr { th { (l.t("阶段", "Stage")) } td { (d.stage) } }
                    tr { th { (l.t("代码", "Code")) } td { (d.code) } }
                    tr { th { (l.t("字段", "Field")) } td { (d.field.as_deref().unwrap_or("—")) } }
                    tr { th { (l.t("原因", "Reason")) } td { (d.message) } }
                    tr { th { (l.t("来源位置", "Origin")) } td { (d.origin.as_deref().unwrap_or("—")) } }
                    tr { th { (l.t("位置", "Position")) } td { (topic) "/" (d.partition) "@" (d.offset) } }
                }
                h3 { (l.t("原始记录", "Original")) " (" (d.original.len()) " B" @if cut { ", " (l.t("已截断", "cut")) } ")" }
                pre.original { (text) }
            }
        }
    };
    Ok(page::page(&viewer, &title, body).into_response())
}

/// The replay form.
#[derive(Debug, Deserialize)]
pub(super) struct ReplayForm {
    #[serde(default)]
    code: String,
}

/// `POST /console/sources/{connector}/dead-letters/replay`: the source's dead letters through its current
/// definition again, and what became of them.
pub(super) async fn replay(
    State(console): Shared,
    viewer: Viewer,
    Path(connector): Path<String>,
    axum::Form(form): axum::Form<ReplayForm>,
) -> PageResult {
    let l = viewer.lang;
    let filter = crate::control::DeadLetterFilter {
        code: Some(form.code).filter(|c| !c.is_empty()),
        since_ms: None,
    };
    let outcome = console
        .governance
        .replay_source_dead_letters(&viewer.principal, &connector, filter)
        .await
        .or_page(l)?;
    let body = html! {
        table #replay-outcome {
            tr { th { (l.t("本次处理", "Taken")) } td.num { (outcome.taken) } }
            tr { th { (l.t("现已通过", "Now accepted")) } td.num { (outcome.accepted) } }
            tr { th { (l.t("仍被拒收", "Rejected again")) } td.num { (outcome.rejected) } }
            tr { th { (l.t("此前已重放", "Replayed before")) } td.num { (outcome.already_replayed) } }
            tr { th { (l.t("无法重放（非 JSON 原文）", "Not replayable (not JSON)")) } td.num { (outcome.not_replayable) } }
        }
        p { a href=(format!("/console/sources/{connector}/dead-letters")) { (l.t("返回拒收记录", "Back to the dead letters")) } }
    };
    Ok(page::page(
        &viewer,
        &format!("{} · {connector}", l.t("重放结果", "Replay")),
        body,
    )
    .into_response())
}

/// The re-normalisation form.
#[derive(Debug, Deserialize)]
pub(super) struct RenormaliseForm {
    #[serde(default)]
    since: String,
}

/// `POST /console/sources/{connector}/renormalise`: `raw.<connector>` through the current definition again.
pub(super) async fn renormalise(
    State(console): Shared,
    viewer: Viewer,
    Path(connector): Path<String>,
    axum::Form(form): axum::Form<RenormaliseForm>,
) -> PageResult {
    let l = viewer.lang;
    let window_ms: i64 = match form.since.as_str() {
        "1h" => 3_600_000,
        "24h" => 86_400_000,
        "7d" => 7 * 86_400_000,
        _ => i64::MAX,
    };
    let from_ms = unsilo_bus::now_ms().saturating_sub(window_ms).max(0);
    let range = crate::governance::RenormaliseRequest {
        from_ms,
        to_ms: None,
    };
    let outcome = console
        .governance
        .renormalise(&viewer.principal, &connector, range)
        .await
        .or_page(l)?;
    let body = html! {
        table #renormalise-outcome {
            tr { th { (l.t("读取的原始记录", "Originals read")) } td.num { (outcome.taken) } }
            tr { th { (l.t("重新发布到标准主题", "Published to std. again")) } td.num { (outcome.accepted) } }
            tr { th { (l.t("当前映射拒收（原记录保留）", "Rejected by the current mapping (earlier records stay)")) } td.num { (outcome.rejected) } }
            tr { th { (l.t("无法处理（非 JSON 原文）", "Not replayable (not JSON)")) } td.num { (outcome.not_replayable) } }
        }
        p { a href=(format!("/console/sources/{connector}/dead-letters")) { (l.t("返回", "Back")) } }
    };
    Ok(page::page(
        &viewer,
        &format!("{} · {connector}", l.t("重新标准化", "Re-normalised")),
        body,
    )
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn originals_are_text_or_hex_and_cut() {
        assert_eq!(shown(b"{\"a\":1}"), ("{\"a\":1}".to_owned(), false));
        assert_eq!(shown(&[0xff, 0x00]), ("ff00".to_owned(), false));
        let long = "好".repeat(MAX_SHOWN_BYTES);
        let (text, cut) = shown(long.as_bytes());
        assert!(cut && !text.is_empty() && text.len() <= MAX_SHOWN_BYTES);
    }
}
