//! The operator's overview: each connector's flow (per-minute chart over the last hour, totals, last error,
//! checkpoint), each subscription's releases, deliveries, lag, dead letters and channel health, and the bus
//! topics with their sizes. The live part refreshes itself every 10 seconds (`GET /console/live`).

use axum::extract::State;
use axum::response::IntoResponse;
use maud::{html, Markup};
use unsilo_bus::Bus;
use unsilo_policy::model::{Channel, Subscription, SubscriptionStatus};
use unsilo_schemas::names;

use super::page::{self, badge, minute_chart, time, OrPage, PageResult};
use super::{subscriptions, Console, Shared, Viewer};
use crate::flows::{current_minute, HISTORY_MINUTES};

/// Records in a topic (the sum of its partitions' end offsets); `None` when it does not exist.
pub(super) async fn topic_size(bus: &dyn Bus, topic: &str) -> Option<u64> {
    bus.end_offsets(topic).await.ok().map(|o| o.iter().sum())
}

/// Records released to a subscription's topic that its consumer group has not yet committed.
async fn lag(bus: &dyn Bus, subscription: &Subscription) -> Option<u64> {
    let topic = subscription.topic();
    let group = match &subscription.spec().channel {
        Channel::Pull => names::pull_group(&subscription.id),
        Channel::Kafka {
            bootstrap_servers: None,
            ..
        } => return None,
        _ => names::delivery_group(&subscription.id),
    };
    let ends = bus.end_offsets(&topic).await.ok()?;
    let committed = bus.committed_offsets(&group, &topic).await.ok()?;
    Some(
        ends.iter()
            .enumerate()
            .map(|(p, end)| end.saturating_sub(committed.get(p).copied().flatten().unwrap_or(0)))
            .sum(),
    )
}

/// `GET /console/`: the overview for an operator, the agency's own subscriptions for an agency.
pub(super) async fn home(State(console): Shared, viewer: Viewer) -> PageResult {
    let l = viewer.lang;
    if !viewer.is_operator() {
        return subscriptions::portal_home(&console, &viewer).await;
    }
    // The security administrator's work starts at the request queue; the overview's operational figures are
    // the system (and audit) administrators'.
    if !viewer.may(crate::roles::Action::ViewOperationalMetrics) {
        return Ok(axum::response::Redirect::to("/console/requests").into_response());
    }
    let live = live_part(&console, &viewer).await?;
    let disowned = console.governance.audit().disowned_tail().cloned();
    let rejected = console.governance.control().refused_records();
    let body = html! {
        @if let Some(tail) = &disowned {
            p.error #evidence-alarm role="alert" {
                (l.t("证据链告警：启动时发现本中枢证据链末尾有 ", "Evidence alarm: at start this hub found "))
                (tail.entries)
                (l.t(" 条未经本中枢签名的记录（序号 ", " entries at the end of its audit chain that its key did not sign (seq "))
                (tail.verified_seq + 1) "–" (tail.last_seq)
                (l.t("），已拒绝承认并记入证据链。", "); it disowned them in the chain. "))
                a href="/console/audit/verify" { (l.t("校验证据链", "Verify the evidence chain")) }
            }
        }
        @if rejected > 0 {
            p.error #control-alarm role="alert" {
                (l.t("控制面告警：已拒绝 ", "Control-plane alarm: "))
                (rejected)
                (l.t(" 条非本部署中枢写入的配置记录；请排查谁能写入 _unsilo.config。",
                    " records of _unsilo.config were refused as not written by a hub of this deployment; find who can write to that topic."))
            }
        }
        p.hint { (l.t(
            "数据每 10 秒自动刷新（需启用 JavaScript；否则请刷新页面）。",
            "Figures refresh every 10 seconds (with JavaScript; otherwise reload the page)."
        )) }
        div #live data-live="/console/live" { (live) }
    };
    Ok(page::page(&viewer, l.t("概览", "Overview"), body).into_response())
}

/// `GET /console/live`: the live part of the overview, for the page's script.
pub(super) async fn live(State(console): Shared, viewer: Viewer) -> PageResult {
    Ok(live_part(&console, &viewer).await?.into_response())
}

async fn live_part(console: &Console, viewer: &Viewer) -> Result<Markup, page::PageError> {
    page::operator_page(viewer, crate::roles::Action::ViewOperationalMetrics)?;
    let l = viewer.lang;
    let flows = console.metrics.flows.snapshot();
    let now_minute = current_minute();
    let subscriptions = console
        .governance
        .list_subscriptions(&viewer.principal, None, None)
        .or_page(l)?;
    let bus = console.bus.as_ref();
    let mut sub_rows = Vec::new();
    for s in subscriptions
        .iter()
        .filter(|s| s.status == SubscriptionStatus::Active)
    {
        let flow = flows.subscriptions.get(&s.id).cloned().unwrap_or_default();
        let lag = lag(bus, s).await;
        // A pull subscription has no delivery worker: what the agency acknowledged is what it received.
        let delivered = match (&s.spec().channel, lag) {
            (Channel::Pull, Some(lag)) => topic_size(bus, &s.topic())
                .await
                .map(|size| size.saturating_sub(lag)),
            _ => Some(flow.delivered()),
        };
        sub_rows.push((
            s,
            flow,
            delivered,
            lag,
            topic_size(bus, &s.dlq_topic()).await,
            console.governance.delivery().channel_health(s),
        ));
    }
    let mut topics: Vec<String> = unsilo_schemas::shared_schemas()
        .iter()
        .map(|s| s.topic())
        .collect();
    for c in &console.connectors {
        topics.push(names::raw_topic(&c.name));
        topics.push(names::dlq_topic(&c.name));
    }
    for s in &subscriptions {
        if matches!(
            s.status,
            SubscriptionStatus::Active | SubscriptionStatus::Revoked | SubscriptionStatus::Expired
        ) {
            topics.push(s.topic());
            topics.push(s.dlq_topic());
        }
    }
    topics.push(names::AUDIT_TOPIC.to_owned());
    let mut sizes = Vec::new();
    for t in topics {
        if let Some(n) = topic_size(bus, &t).await {
            sizes.push((t, n));
        }
    }
    let pending = subscriptions
        .iter()
        .filter(|s| s.status == SubscriptionStatus::Requested)
        .count();
    Ok(html! {
        @if pending > 0 {
            p.notice { a href="/console/requests" {
                (pending) " " (l.t("个订阅申请待审批", "subscription request(s) waiting for a decision"))
            } }
        }
        h2 { (l.t("数据源", "Sources")) }
        table #connectors {
            thead { tr {
                th { (l.t("连接器", "Connector")) }
                th { (l.t("接入方式", "Transport")) }
                th.num { (l.t("接收", "Accepted")) }
                th.num { (l.t("拒收", "Rejected")) }
                th { (l.t("近一小时（每分钟）", "Last hour (per minute)")) }
                th { (l.t("最近错误", "Last error")) }
                th { (l.t("检查点", "Checkpoint")) }
                th {}
            } }
            tbody {
                @for c in &console.connectors {
                    @let flow = flows.connectors.get(&c.name).cloned().unwrap_or_default();
                    tr data-connector=(c.name) {
                        td { strong { (c.name) } br; span.muted { (c.schemas.join(", ")) } }
                        td { (c.transport) }
                        td.num.accepted { (flow.accepted) }
                        td.num.rejected { (flow.rejected) }
                        td { (minute_chart(&flow.last_minutes(now_minute, HISTORY_MINUTES), l)) }
                        td.last-error { @match &flow.last_error {
                            Some(e) => { span.error { (e.text) } br; span.muted { (time(e.at_ms)) } }
                            None => { span.muted { "—" } }
                        } }
                        td.checkpoint { @match &flow.checkpoint {
                            Some(c) => { code { (c.text) } br; span.muted { (time(c.at_ms)) } }
                            None => { span.muted { "—" } }
                        } }
                        td { a href=(format!("/console/sources/{}/dead-letters", c.name)) {
                            (l.t("拒收记录", "Dead letters"))
                        } }
                    }
                }
            }
        }
        h2 { (l.t("订阅", "Subscriptions")) }
        @if sub_rows.is_empty() {
            p.muted { (l.t("还没有生效的订阅。", "No active subscriptions yet.")) }
        } @else {
            table #subscriptions {
                thead { tr {
                    th { (l.t("订阅", "Subscription")) }
                    th { (l.t("通道", "Channel")) }
                    th.num { (l.t("已发布", "Released")) }
                    th.num { (l.t("已送达", "Delivered")) }
                    th.num { (l.t("积压", "Lag")) }
                    th.num { (l.t("投递死信", "Delivery DLQ")) }
                    th { (l.t("通道状态", "Channel health")) }
                } }
                tbody {
                    @for (s, flow, delivered, lag, dlq, health) in &sub_rows {
                        tr {
                            td { a href=(format!("/console/subscriptions/{}", s.id)) { (s.id) } }
                            td { (s.spec().channel.kind()) }
                            td.num { (flow.released) }
                            td.num { (delivered.map_or("—".to_owned(), |n| n.to_string())) }
                            td.num { (lag.map_or("—".to_owned(), |n| n.to_string())) }
                            td.num { (dlq.unwrap_or(0)) }
                            td { @match health {
                                Some(h) => { (badge(h)) }
                                None => { span.muted { "—" } }
                            } }
                        }
                    }
                }
            }
        }
        h2 { (l.t("总线主题", "Bus topics")) }
        table #topics {
            thead { tr { th { (l.t("主题", "Topic")) } th.num { (l.t("记录数", "Records")) } } }
            tbody { @for (t, n) in &sizes { tr { td { code { (t) } } td.num { (n) } } } }
        }
    })
}
