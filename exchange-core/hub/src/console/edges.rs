//! `/console/edges`: the nodes linked to this hub — edge nodes (前置交换节点) and member hubs (级联) — for its
//! operators: kind, state, version, last
//! contact, buffer depth against its limit (the alarm highlighted), lag, and per connector what was read,
//! forwarded and is waiting, with the last error; and each edge's local deliveries. A hub that is itself a
//! member of a higher hub shows its link to the parent first: state, last contact, requests and records each
//! way.

use axum::extract::State;
use axum::response::IntoResponse;
use maud::html;

use super::page::{self, badge, time, OrPage, PageResult};
use super::{Shared, Viewer};

/// Bytes as a person reads them.
fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// `GET /console/edges`.
pub(super) async fn list(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    let edges = console
        .links
        .list(&viewer.principal)
        .map_err(crate::api_error::ApiError::from)
        .or_page(l)?;
    let now = unsilo_bus::now_ms();
    let parent = crate::link::parent::parent_link_now(&console.links, &console.governance);
    let body = html! {
        @if let Some(p) = &parent {
            section.card #parent-link data-state=(p.state) {
                h2 { (l.t("上级平台", "Parent hub")) " " (badge(&p.state)) }
                table.spec {
                    tr { th { (l.t("地址", "Address")) } td { (p.hub) } }
                    @if let Some(id) = &p.parent_id { tr { th { (l.t("上级平台标识", "Parent's id")) } td.parent-id { (id) } } }
                    tr { th { (l.t("本平台在上级的节点标识", "This hub's node id there")) } td { (p.id) } }
                    tr { th { (l.t("最近联系", "Last contact")) } td.last-contact {
                        @match p.last_contact_ms { Some(t) => { (time(t)) } None => { (l.t("从未", "never")) } }
                    } }
                    tr { th { (l.t("上级申请本平台数据", "Parent's requests for this hub's data")) } td.requests-from-parent { (p.requests_from_parent) } }
                    tr { th { (l.t("本平台向上级申请（回流）", "This hub's requests to the parent (flow back)")) } td.requests-to-parent { (p.requests_to_parent) } }
                    tr { th { (l.t("上送记录", "Records sent up")) } td.records-up { (p.records_up) } }
                    tr { th { (l.t("回流记录", "Records taken back")) } td.records-down { (p.records_down) } }
                    @if let Some(e) = &p.last_error { tr { th { (l.t("最近错误", "Last error")) } td.muted.last-error { (e) } } }
                }
            }
        }
        p.muted { (l.t(
            "前置交换节点在各部门网络内运行部门的数据源，断线时缓存、恢复后从平台确认的位置续传；注册、证书和连接器定义由平台统一管理（unsilo edges）。",
            "Edge nodes run each department's sources inside its network, buffer while the link is down and resume from the position the hub acknowledged; the hub registers them, certifies them and pushes their connector definitions (unsilo edges)."
        )) }
        @if edges.is_empty() {
            p.muted #no-edges { (l.t("尚无前置节点。", "No edges yet.")) }
        }
        @for e in &edges {
            section.card.edge data-edge=(e.id) {
                h2 { (e.id) " " (badge(&e.state)) }
                table.spec {
                    tr { th { (l.t("类型", "Kind")) } td.kind { @match e.kind {
                        crate::link::NodeKind::Edge => { (l.t("部门前置节点", "department edge")) }
                        crate::link::NodeKind::MemberHub => { (l.t("下级平台（级联）", "member hub (cascade)")) }
                    } } }
                    tr { th { (l.t("说明", "Description")) } td { (e.description) } }
                    @if let Some(n) = e.catalogue_entries { tr { th { (l.t("上报目录", "Published catalogue")) } td { (n) " " (l.t("条", "entries")) } } }
                    @if let Some(o) = &e.organisation { tr { th { (l.t("所属部门", "Organisation")) } td { (o) } } }
                    tr { th { (l.t("最近联系", "Last contact")) } td.last-contact {
                        @match e.last_contact_ms {
                            Some(t) => { (time(t)) @if now - t > 60_000 { " " span.badge.overdue { (l.t("失联", "silent")) } } }
                            None => { (l.t("从未", "never")) }
                        }
                    } }
                    @if let Some(r) = &e.report {
                        tr { th { (l.t("版本", "Version")) } td { (r.version) } }
                        tr { th { (l.t("缓存", "Buffer")) } td.buffer data-bytes=(r.buffer_bytes) {
                            (bytes(r.buffer_bytes)) " / " (bytes(r.buffer_limit_bytes))
                            @if r.buffer_alarm { " " span.badge.overdue.buffer-alarm { (l.t("缓存告警", "buffer alarm")) } }
                        } }
                        tr { th { (l.t("积压", "Lag")) } td.lag { (r.lag_records) " " (l.t("条", "records")) @if r.lag_ms > 0 { ", " (r.lag_ms / 1000) " s" } } }
                    }
                    @if let Some(t) = e.code_expires_at_ms { tr { th { (l.t("注册码有效至", "Enrolment code valid until")) } td { (time(t)) } } }
                }
                @if let Some(r) = &e.report {
                    table.connectors {
                        tr { th { (l.t("连接器", "Connector")) } th { (l.t("定义版本", "Definition")) } th { (l.t("已读取", "Read")) } th { (l.t("已上送", "Forwarded")) } th { (l.t("待上送", "Waiting")) } th { (l.t("错误", "Errors")) } th { (l.t("最近错误", "Last error")) } }
                        @for c in &r.connectors {
                            tr data-connector=(c.name) {
                                td { (c.name) } td { "v" (c.definition_version) } td { (c.read) } td { (c.forwarded) } td { (c.waiting) } td { (c.errors) }
                                td.muted { (c.last_error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                    @if !r.deliveries.is_empty() {
                        table.deliveries {
                            tr { th { (l.t("本地投递", "Local delivery")) } th { (l.t("写入", "Target")) } th { (l.t("已写入", "Written")) } th { (l.t("错误", "Errors")) } th { (l.t("最近错误", "Last error")) } }
                            @for d in &r.deliveries {
                                tr { td { (d.subscription) } td { (d.target) } td { (d.written) } td { (d.errors) } td.muted { (d.last_error.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                } @else {
                    p.muted { (l.t("尚未上报状态。", "No report yet.")) }
                }
            }
        }
    };
    Ok(page::page(&viewer, l.t("前置节点", "Edges"), body).into_response())
}
