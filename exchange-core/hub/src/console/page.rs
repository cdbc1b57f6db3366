//! The page frame and the pieces every console page shares: the language, the navigation, times, badges,
//! the per-minute SVG chart, error pages and the static files.

use std::time::Duration;

use crate::roles::Action;
use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::session::{cookie, LANG_COOKIE};
use super::Viewer;
use crate::api_error::ApiError;
use crate::flows::MinuteCount;

/// The language of a page: Chinese unless English was chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// 简体中文 (the default).
    #[default]
    Zh,
    /// English.
    En,
}

impl Lang {
    /// The language asked for with `?lang=`, if any.
    pub fn from_query(query: Option<&str>) -> Option<Lang> {
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| Lang::parse(&v))
    }

    fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" | "zh-CN" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// The language of a request: `?lang=`, else the language cookie, else Chinese.
    pub fn of(headers: &HeaderMap, query: Option<&str>) -> Lang {
        Lang::from_query(query)
            .or_else(|| cookie(headers, LANG_COOKIE).and_then(Lang::parse))
            .unwrap_or_default()
    }

    /// The `lang` attribute and cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The text in this language.
    pub fn t<'a>(self, zh: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Zh => zh,
            Lang::En => en,
        }
    }
}

/// The page frame for a signed-in viewer.
pub(super) fn page(viewer: &Viewer, title: &str, body: Markup) -> Markup {
    let l = viewer.lang;
    let operator = viewer.is_operator();
    let reviewer = matches!(viewer.principal, crate::auth::Principal::Reviewer { .. });
    let link = |action| viewer.operator_may(action);
    html! {
        (DOCTYPE)
        html lang=(l.code()) {
            (head(title))
            body {
                header.top {
                    a.brand href="/console/" { "unsilo" }
                    nav {
                        @if operator {
                            @if link(Action::ViewOperationalMetrics) { a href="/console/" { (l.t("概览", "Overview")) } }
                            @if link(Action::DecideRequest) { a href="/console/requests" { (l.t("待审批", "Requests")) } }
                            a href="/console/subscriptions" { (l.t("订阅", "Subscriptions")) }
                            a href="/console/agencies" { (l.t("部门", "Agencies")) }
                            @if link(Action::ReadAuditLog) { a href="/console/audit" { (l.t("审计", "Audit")) } }
                            @if link(Action::PersonReport) { a href="/console/reports/person" { (l.t("个人报告", "Person report")) } }
                            @if link(Action::ViewReports) { a href="/console/reports/monthly" { (l.t("月报", "Monthly report")) } }
                            a href="/console/catalogue" { (l.t("目录", "Catalogue")) }
                            a href="/console/corrections" { (l.t("纠错", "Corrections")) }
                            a href="/console/disposals" { (l.t("销毁", "Disposals")) }
                            @if link(Action::ViewEdges) { a href="/console/edges" { (l.t("前置节点", "Edges")) } }
                            a href="/console/schemas" { (l.t("数据模式", "Schemas")) }
                            a href="/console/api" { (l.t("接口", "API")) }
                        } @else if reviewer {
                            a href="/console/requests" { (l.t("待我审核", "Requests to decide")) }
                            a href="/console/subscriptions" { (l.t("本单位资源的申请", "Requests for our resources")) }
                            a href="/console/catalogue" { (l.t("目录", "Catalogue")) }
                            a href="/console/corrections" { (l.t("纠错", "Corrections")) }
                            a href="/console/schemas" { (l.t("数据模式", "Schemas")) }
                        } @else {
                            a href="/console/" { (l.t("我的订阅", "My subscriptions")) }
                            a href="/console/catalogue" { (l.t("目录", "Catalogue")) }
                            a href="/console/corrections" { (l.t("纠错", "Corrections")) }
                            a href="/console/disposals" { (l.t("销毁", "Disposals")) }
                            a href="/console/subscriptions/new" { (l.t("申请订阅", "Request data")) }
                            a href="/console/schemas" { (l.t("数据模式", "Schemas")) }
                            a href="/console/api" { (l.t("接口", "API")) }
                        }
                    }
                    div.who {
                        span.principal { (viewer.principal.to_string()) }
                        @if let Some(role) = viewer.principal.role() {
                            " " span.role #role { (l.t(role.title_zh(), role.as_str())) }
                        }
                        a.lang href=(if l == Lang::Zh { "?lang=en" } else { "?lang=zh" }) {
                            (if l == Lang::Zh { "English" } else { "中文" })
                        }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { (l.t("退出", "Sign out")) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without navigation (sign-in, errors before sign-in).
pub(super) fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            (head(title))
            body.bare {
                header.top { a.brand href="/console/" { "unsilo" }
                    div.who { a.lang href=(if lang == Lang::Zh { "?lang=en" } else { "?lang=zh" }) {
                        (if lang == Lang::Zh { "English" } else { "中文" }) } } }
                main { h1 { (title) } (body) }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · unsilo" }
            // No icon request (and no 404 in the browser's console).
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

/// An error page with `status`.
pub(super) fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    let body = html! {
        p.error role="alert" { (message) }
        p { a href="/console/" { (lang.t("返回控制台", "Back to the console")) } }
    };
    let title = match status {
        StatusCode::FORBIDDEN => lang.t("无权访问", "Not allowed"),
        StatusCode::NOT_FOUND => lang.t("未找到", "Not found"),
        StatusCode::UNAUTHORIZED => lang.t("未登录", "Not signed in"),
        s if s.is_client_error() => lang.t("请求有误", "Cannot do that"),
        _ => lang.t("出错了", "Something went wrong"),
    };
    (status, bare(lang, title, body)).into_response()
}

/// 429 with `Retry-After`.
pub(super) fn too_many(lang: Lang, wait: Duration) -> Response {
    let mut response = error_page(
        lang,
        StatusCode::TOO_MANY_REQUESTS,
        lang.t(
            "请求过于频繁，请稍后再试。",
            "Too many requests; try again shortly.",
        ),
    );
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// A page the console does not have.
pub(super) async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let lang = Lang::of(&headers, uri.query());
    error_page(
        lang,
        StatusCode::NOT_FOUND,
        lang.t("没有这个页面。", "There is no such page."),
    )
}

/// What a console handler returns: a page, a redirect, or an error page.
pub(super) type PageResult = Result<Response, PageError>;

/// An operation's refusal, shown as a page in the viewer's language.
#[derive(Debug)]
pub(super) struct PageError {
    lang: Lang,
    status: StatusCode,
    message: String,
}

impl PageError {
    /// A refusal with its status and message.
    pub(super) fn new(lang: Lang, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            lang,
            status,
            message: message.into(),
        }
    }

    /// The operation's own error (the same words the admin API answers with).
    pub(super) fn api(lang: Lang, error: ApiError) -> Self {
        if let ApiError::Internal(cause) = &error {
            tracing::error!(cause = %cause, "Console request failed.");
            return Self::new(
                lang,
                StatusCode::INTERNAL_SERVER_ERROR,
                lang.t(
                    "内部错误；原因见中枢日志。",
                    "Internal error; the hub's log has the cause.",
                ),
            );
        }
        let status = error.status();
        Self::new(lang, status, error.to_string())
    }

    /// The operation's message, for a form shown again with it.
    pub(super) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(self.lang, self.status, &self.message)
    }
}

/// Turns an operation's `ApiError` into a page error in the viewer's language.
pub(super) trait OrPage<T> {
    /// The value, or the error as a page.
    fn or_page(self, lang: Lang) -> Result<T, PageError>;
}

impl<T> OrPage<T> for Result<T, ApiError> {
    fn or_page(self, lang: Lang) -> Result<T, PageError> {
        self.map_err(|e| PageError::api(lang, e))
    }
}

/// A time in Beijing time, `YYYY-MM-DD HH:MM:SS`.
pub(super) fn time(ms: i64) -> String {
    crate::calendar::beijing_time(ms)
}

/// A status word with its colour class.
pub(super) fn badge(text: &str) -> Markup {
    let class = match text {
        "active" | "closed" | "intact" => "badge ok",
        "requested" | "approved" | "half-open" => "badge wait",
        "rejected" | "revoked" | "expired" | "open" | "broken" => "badge bad",
        _ => "badge",
    };
    html! { span class=(class) { (text) } }
}

/// A bar chart of accepted (and, stacked on top, rejected) records per minute, as inline SVG.
pub(super) fn minute_chart(minutes: &[MinuteCount], lang: Lang) -> Markup {
    const WIDTH: usize = 240;
    const HEIGHT: u64 = 40;
    let peak = minutes
        .iter()
        .map(|m| m.accepted + m.rejected)
        .max()
        .unwrap_or(0)
        .max(1);
    let bar = (WIDTH / minutes.len().max(1)).max(1);
    let total_accepted: u64 = minutes.iter().map(|m| m.accepted).sum();
    let total_rejected: u64 = minutes.iter().map(|m| m.rejected).sum();
    let label = format!(
        "{} {total_accepted} / {} {total_rejected}",
        lang.t("近一小时接收", "last hour accepted"),
        lang.t("拒收", "rejected")
    );
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(HEIGHT)
            viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(label) {
            title { (label) }
            @for (i, m) in minutes.iter().enumerate() {
                @let ok_h = m.accepted * HEIGHT / peak;
                @let bad_h = m.rejected * HEIGHT / peak;
                @let x = i * bar;
                @if ok_h > 0 {
                    rect.ok x=(x) y=(HEIGHT - ok_h) width=(bar.saturating_sub(1).max(1)) height=(ok_h) {}
                }
                @if bad_h > 0 {
                    rect.bad x=(x) y=(HEIGHT - ok_h - bad_h) width=(bar.saturating_sub(1).max(1)) height=(bad_h) {}
                }
            }
        }
    }
}

/// `GET /console/static/{file}`: the stylesheet and the script, embedded in the binary.
pub(super) async fn static_file(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "console.css" => (
            include_str!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        "console.js" => (
            include_str!("static/console.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether the viewer is an operator whose role may perform `action` (the role matrix,
/// [`crate::roles::MATRIX`]), or a 403 page naming who may.
pub(super) fn operator_page(
    viewer: &Viewer,
    action: crate::roles::Action,
) -> Result<(), PageError> {
    if !viewer.is_operator() {
        return Err(crate::api_error::ApiError::Forbidden(
            "this page is for operators".into(),
        ))
        .or_page(viewer.lang);
    }
    crate::governance::authorize(&viewer.principal, action)
        .map(|_| ())
        .or_page(viewer.lang)
}
