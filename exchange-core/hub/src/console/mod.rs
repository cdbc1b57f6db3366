//! The operator's console and the agency's portal at `/console/`: server-rendered HTML (maud) with one small
//! script of our own for live updates, all embedded in the binary — no separate process, no Node toolchain.
//! Chinese first, English switchable (`?lang=en`); every page reads with JavaScript off.
//!
//! Who may see and do what is exactly what the admin API allows, because both call the same operations of
//! [`crate::governance`]; this module only turns forms into those calls and their answers into pages.
//!
//! # Layout
//!
//! - [`session`]: sign-in, the session cookie, CSRF tokens.
//! - `page`: the page frame (navigation, language switch), shared pieces (times, badges, the SVG chart) and
//!   error pages.
//! - `overview`: flows per connector (a per-minute chart over the last hour), per subscription, bus topics.
//! - `sources`: each connector's dead-letter topic, browsable and filterable.
//! - `subscriptions`: the request queue, a subscription's page (approve with narrowing, reject, revoke,
//!   replay), the agency's request form with its field picker and live filter check, the last records of a
//!   pull subscription.
//! - `workflow`: the resource catalogue (browse, search, an entry with its items and versions, `.xlsx`) and a
//!   request's deadline extension; a provider's reviewer signs in here too and decides on the requests page.
//! - `monthly`: the supervisor's monthly report (Art. 38), tables and charts, `.xlsx`, printable.
//! - `edges`: the edge nodes linked to the hub, their buffers, lag and per-connector counts.
//! - `disposal`: ending a grant whose purpose is fulfilled, the agency's confirmation of destruction, the list of
//!   disposals (Art. 27).
//! - `corrections`: 校核纠错 — an agency files a correction on a record received, the provider answers it.
//! - `agencies`: agencies and their tokens (a token is shown once).
//! - `audit`: verification and queries of the evidence log.
//! - `reports`: a person's release report, printable (PIPL Art. 44–45).
//! - `schemas`: the registry's subjects, each field with its sensitivity and PII kind.
//! - `reference`: the OpenAPI document as a readable page (`/console/api`).
//! - `static/`: the stylesheet and the script, served from `/console/static/`.
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style), `X-Frame-Options:
//! DENY`, `nosniff`, `no-referrer` and `no-store`.

mod agencies;
mod audit;
mod corrections;
mod disposal;
mod edges;
mod monthly;
mod overview;
mod page;
mod reference;
mod reports;
mod schemas;
pub mod session;
mod sources;
mod subscriptions;
mod workflow;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::access::{Access, Surface};
use crate::auth::{ClientCertificate, Principal};
use crate::config::SecondFactor;
use crate::governance::Governance;
use crate::metrics::Metrics;
use crate::totp::OperatorCodes;
pub use page::Lang;
use session::{cookie, csrf_matches, Sessions, LANG_COOKIE, SESSION_COOKIE};
pub use session::{SessionLimits, SignInLocks};
use unsilo_bus::Bus;
use unsilo_registry::Registry;

/// A connector as the console lists it.
#[derive(Clone, Debug)]
pub struct ConnectorSummary {
    /// Its name (`grid`, `hotline12345`, …).
    pub name: String,
    /// How records arrive (`http_push`, `sql_poll`, …).
    pub transport: String,
    /// Its definition (`builtin:grid` or a folder).
    pub definition: String,
    /// The shared schemas it writes.
    pub schemas: Vec<String>,
}

/// What the console needs of the hub.
pub struct Console {
    /// The operations (and their rules).
    pub governance: Arc<Governance>,
    /// The door: authentication and rate limits.
    pub access: Arc<Access>,
    /// Live flows.
    pub metrics: Arc<Metrics>,
    /// The bus (topic sizes, dead letters, released records).
    pub bus: Arc<dyn Bus>,
    /// The schema registry.
    pub registry: Arc<Registry>,
    /// The configured connectors.
    pub connectors: Vec<ConnectorSummary>,
    /// Whether cookies are `Secure` (the hub serves TLS).
    pub secure_cookies: bool,
    /// Signed-in sessions.
    pub sessions: Sessions,
    /// The administrators' second factor, and the names locked after failed sign-ins.
    pub sign_in: SignInGate,
    /// The edge nodes linked to the hub.
    pub links: Arc<crate::link::Links>,
}

/// What a sign-in is checked against besides the token: the administrators' second factor and the lockout.
pub struct SignInGate {
    /// Which second factor operators give.
    pub factor: SecondFactor,
    /// The operators' one-time codes (shared with the API's check).
    pub codes: Arc<OperatorCodes>,
    /// Failures per name.
    pub locks: SignInLocks,
}

impl SignInGate {
    /// The gate of `[admin]`, over the deployment's operator codes.
    pub fn new(admin: &crate::config::AdminConfig, codes: Arc<OperatorCodes>) -> Self {
        Self {
            factor: admin.sign_in.second_factor,
            codes,
            locks: SignInLocks::new(&admin.sign_in),
        }
    }
}

impl std::fmt::Debug for SignInGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInGate")
            .field("factor", &self.factor)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("connectors", &self.connectors.len())
            .finish_non_exhaustive()
    }
}

/// The console's shared state, as handlers reach it.
type Shared = State<Arc<Console>>;

/// The signed-in person behind a console request, with the session's CSRF token and the page language.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// Who.
    pub principal: Principal,
    /// The token every form carries.
    pub csrf: String,
    /// The language pages are written in.
    pub lang: Lang,
}

impl Viewer {
    /// Whether the viewer is an operator.
    pub fn is_operator(&self) -> bool {
        self.principal.is_operator()
    }

    /// Whether the viewer may perform `action` ([`crate::roles::MATRIX`]): pages show only what the viewer's
    /// role may do.
    pub fn may(&self, action: crate::roles::Action) -> bool {
        crate::roles::allows(&self.principal, action)
    }

    /// Whether the viewer is an operator whose role may perform `action`.
    pub fn operator_may(&self, action: crate::roles::Action) -> bool {
        self.is_operator() && self.may(action)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        // Only reachable behind `Console::guard`, which puts it there; fail closed otherwise.
        parts
            .extensions
            .get::<Viewer>()
            .cloned()
            .ok_or_else(|| Redirect::to("/console/login").into_response())
    }
}

/// The console's routes: sign-in and static files open, everything else behind a session. `api` is the
/// hub's OpenAPI document, shown at `/console/api`.
pub fn router(console: Arc<Console>, api: Arc<utoipa::openapi::OpenApi>) -> Router {
    let signed_in = Router::new()
        .route("/console/", get(overview::home))
        .route("/console/live", get(overview::live))
        .route("/console/logout", post(session_pages::sign_out))
        .route(
            "/console/sources/{connector}/dead-letters",
            get(sources::dead_letters),
        )
        .route(
            "/console/sources/{connector}/dead-letters/replay",
            post(sources::replay),
        )
        .route(
            "/console/sources/{connector}/renormalise",
            post(sources::renormalise),
        )
        .route("/console/requests", get(subscriptions::queue))
        .route("/console/disposals", get(disposal::list))
        .route("/console/edges", get(edges::list))
        .route("/console/reports/monthly", get(monthly::show))
        .route("/console/reports/monthly.xlsx", get(monthly::export))
        .route(
            "/console/subscriptions/{id}/fulfilled",
            post(disposal::fulfilled),
        )
        .route(
            "/console/subscriptions/{id}/disposal",
            post(disposal::confirm),
        )
        .route("/console/corrections", get(corrections::list))
        .route(
            "/console/corrections/new",
            get(corrections::file_form).post(corrections::file),
        )
        .route(
            "/console/corrections/{id}/answer",
            post(corrections::answer),
        )
        .route("/console/catalogue", get(workflow::list))
        .route("/console/catalogue/export.xlsx", get(workflow::export))
        .route("/console/catalogue/{id}", get(workflow::show))
        .route("/console/subscriptions/{id}/extend", post(workflow::extend))
        .route("/console/subscriptions", get(subscriptions::list))
        .route(
            "/console/subscriptions/new",
            get(subscriptions::request_form).post(subscriptions::file_request),
        )
        .route("/console/filter-check", get(subscriptions::filter_check))
        .route("/console/subscriptions/{id}", get(subscriptions::show))
        .route(
            "/console/subscriptions/{id}/approve",
            post(subscriptions::approve),
        )
        .route(
            "/console/subscriptions/{id}/{ending}",
            post(subscriptions::decide),
        )
        .route(
            "/console/subscriptions/{id}/replay",
            post(subscriptions::replay),
        )
        .route(
            "/console/agencies",
            get(agencies::list).post(agencies::create),
        )
        .route("/console/agencies/{id}", get(agencies::show))
        .route("/console/agencies/{id}/tokens", post(agencies::issue_token))
        .route(
            "/console/agencies/{id}/tokens/{token_id}/revoke",
            post(agencies::revoke_token),
        )
        .route("/console/audit", get(audit::form_page).post(audit::search))
        .route(
            "/console/reports/person",
            get(reports::form_page).post(reports::report),
        )
        .route("/console/audit/verify", get(audit::verify))
        .route("/console/schemas", get(schemas::list))
        .route("/console/schemas/{subject}", get(schemas::show))
        .route("/console/api", get(reference::page))
        .layer(axum::Extension(api))
        .layer(axum::middleware::from_fn_with_state(
            console.clone(),
            Console::guard,
        ));
    Router::new()
        .route(
            "/console/login",
            get(session_pages::sign_in_form).post(session_pages::sign_in),
        )
        .route("/console/static/{file}", get(page::static_file))
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .merge(signed_in)
        .route(
            "/console/{*rest}",
            get(page::not_found).post(page::not_found),
        )
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(console)
}

/// The largest form a console POST may send.
const MAX_FORM_BYTES: usize = 256 * 1024;

impl Console {
    /// The door of every signed-in page: the session (checked against the token it was opened with), rate
    /// limits per person, and the CSRF token of every POST.
    async fn guard(State(console): Shared, mut request: Request, next: Next) -> Response {
        let lang = Lang::of(request.headers(), request.uri().query());
        let address = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        let is_post = request.method() == Method::POST;
        let session =
            cookie(request.headers(), SESSION_COOKIE).and_then(|c| console.sessions.get(c));
        let Some(session) = session else {
            if let Err(wait) = console.access.limiter.check(
                Surface::Console,
                &format!("refused:{address}"),
                console.access.limits.rate(Surface::Console),
            ) {
                return page::too_many(lang, wait);
            }
            return if is_post {
                page::error_page(
                    lang,
                    StatusCode::UNAUTHORIZED,
                    lang.t("请先登录。", "Please sign in first."),
                )
            } else {
                Redirect::to("/console/login").into_response()
            };
        };
        let certificate = request.extensions().get::<ClientCertificate>().cloned();
        let principal = match console.access.authenticator.principal_of_digest(
            &session.token_digest,
            certificate.as_ref(),
            unsilo_bus::now_ms(),
        ) {
            Ok(p) if p == session.principal => p,
            _ => {
                // Revoked, expired or otherwise no longer valid: every session of that token ends now.
                console.sessions.close_all_of(&session.principal);
                return Redirect::to("/console/login?ended=1").into_response();
            }
        };
        if let Err(wait) = console.access.limiter.check(
            Surface::Console,
            &principal.to_string(),
            console.access.limits.rate(Surface::Console),
        ) {
            return page::too_many(lang, wait);
        }
        if is_post {
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
                Ok(b) => b,
                Err(_) => {
                    return page::error_page(
                        lang,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        lang.t("表单过大。", "The form is too large."),
                    )
                }
            };
            let presented = form_value(&bytes, "csrf");
            if !csrf_matches(&session.csrf, presented.as_deref()) {
                tracing::warn!(%principal, %address, "Console form refused: missing or wrong CSRF token.");
                return page::error_page(
                    lang,
                    StatusCode::FORBIDDEN,
                    lang.t(
                        "表单缺少有效的防伪令牌（CSRF），已拒绝。请从控制台页面重新提交。",
                        "The form's CSRF token is missing or wrong, so it was refused. Submit it again from the console's own page.",
                    ),
                );
            }
            request = Request::from_parts(parts, Body::from(bytes));
        }
        request.extensions_mut().insert(Viewer {
            principal,
            csrf: session.csrf,
            lang,
        });
        match tokio::time::timeout(console.access.limits.request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => page::error_page(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                lang.t("请求超时。", "The request took too long."),
            ),
        }
    }
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The Content-Security-Policy of every console response: scripts and styles only from the console itself,
/// no inline script or style, no framing, forms only to the console.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the console's security headers to every response, and remembers a language chosen with `?lang=`.
async fn security_headers(request: Request, next: Next) -> Response {
    let chosen = Lang::from_query(request.uri().query());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Some(lang) = chosen {
        let value = format!(
            "{LANG_COOKIE}={}; Path=/console; Max-Age=31536000; SameSite=Strict",
            lang.code()
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Sign-in and sign-out pages.
mod session_pages {
    use super::*;
    use maud::html;
    use serde::Deserialize;
    use serde_json::json;
    use session::{clear_cookie, set_cookie, LOGIN_CSRF_COOKIE};

    /// The sign-in form's fields.
    struct SignIn {
        name: String,
        token: String,
        code: String,
        csrf: String,
    }

    /// Who a sign-in attempt names, for the audit entry of a refusal: the operator or agency of that name if
    /// there is one, else what was typed (trimmed, at most 64 characters, no control characters).
    fn attempted_actor(console: &Console, name: &str) -> (String, Option<crate::roles::Role>) {
        if let Some(role) = console.access.authenticator.operator_role(name) {
            return (format!("operator:{name}"), Some(role));
        }
        if console.governance.control().agency(name).is_some() {
            return (format!("agency:{name}"), None);
        }
        let typed: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        (format!("unknown:{typed}"), None)
    }

    /// Records a sign-in event; a refusal's entry failing to be written is logged (the refusal stands).
    async fn record_sign_in(
        console: &Console,
        actor: (String, Option<crate::roles::Role>),
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), crate::api_error::ApiError> {
        console
            .governance
            .record_entry(actor.0, actor.1, action, "console", detail)
            .await
    }

    #[derive(Deserialize)]
    pub(super) struct SignInQuery {
        #[serde(default)]
        ended: Option<String>,
    }

    /// `GET /console/login`.
    pub(super) async fn sign_in_form(
        State(console): Shared,
        headers: axum::http::HeaderMap,
        uri: axum::http::Uri,
        axum::extract::Query(q): axum::extract::Query<SignInQuery>,
    ) -> Response {
        let lang = Lang::of(&headers, uri.query());
        let note = q.ended.map(|_| {
            lang.t(
                "会话已结束（令牌已吊销或过期），请重新登录。",
                "Your session ended (the token was revoked or expired); sign in again.",
            )
        });
        form_page(&console, lang, note, StatusCode::OK)
    }

    fn form_page(
        console: &Console,
        lang: Lang,
        note: Option<&str>,
        status: StatusCode,
    ) -> Response {
        let csrf = session::random_hex();
        let body = html! {
            form.signin method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(csrf);
                @if let Some(note) = note { p.error role="alert" { (note) } }
                label for="name" { (lang.t("用户名（管理员姓名或部门编号）", "Name (an administrator's name or an agency's id)")) }
                input #name type="text" name="name" autocomplete="username" required autofocus;
                label for="token" { (lang.t("令牌", "Token")) }
                input #token type="password" name="token" autocomplete="off" required;
                @if console.sign_in.factor == SecondFactor::Totp {
                    label for="code" { (lang.t("动态口令（管理员）", "One-time code (administrators)")) }
                    input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6";
                }
                p.hint { (lang.t(
                    "管理员：令牌加认证器应用中的 6 位动态口令（或绑定的客户端证书）；部门：部门令牌。演示模式下见 demo-tokens 目录。",
                    "Administrators: the token and the 6-digit code of the authenticator app (or the bound client certificate); agencies: the agency's token. The demo writes them to its demo-tokens folder."
                )) }
                button type="submit" { (lang.t("登录", "Sign in")) }
            }
        };
        let mut response =
            (status, page::bare(lang, lang.t("登录", "Sign in"), body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&set_cookie(
            LOGIN_CSRF_COOKIE,
            &csrf,
            std::time::Duration::from_secs(3600),
            console.secure_cookies,
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
    }

    /// `POST /console/login`: a valid operator or agency token opens a session.
    pub(super) async fn sign_in(
        State(console): Shared,
        ConnectInfo(peer): ConnectInfo<SocketAddr>,
        headers: axum::http::HeaderMap,
        uri: axum::http::Uri,
        request: Request,
    ) -> Response {
        let lang = Lang::of(&headers, uri.query());
        let certificate = request.extensions().get::<ClientCertificate>().cloned();
        let bytes = match axum::body::to_bytes(request.into_body(), MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return page::error_page(lang, StatusCode::PAYLOAD_TOO_LARGE, "form too large")
            }
        };
        let form = SignIn {
            name: form_value(&bytes, "name").unwrap_or_default(),
            token: form_value(&bytes, "token").unwrap_or_default(),
            code: form_value(&bytes, "code").unwrap_or_default(),
            csrf: form_value(&bytes, "csrf").unwrap_or_default(),
        };
        let name = form.name.trim().to_owned();
        if form.token.trim().is_empty() || name.is_empty() {
            return form_page(
                &console,
                lang,
                Some(lang.t("请输入用户名和令牌。", "Enter your name and token.")),
                StatusCode::UNPROCESSABLE_ENTITY,
            );
        }
        let expected = cookie(&headers, LOGIN_CSRF_COOKIE)
            .unwrap_or_default()
            .to_owned();
        if expected.is_empty() || !csrf_matches(&expected, Some(&form.csrf)) {
            return page::error_page(
                lang,
                StatusCode::FORBIDDEN,
                lang.t(
                    "登录表单缺少有效的防伪令牌（CSRF），已拒绝。请刷新登录页后重试。",
                    "The sign-in form's CSRF token is missing or wrong, so it was refused. Reload the sign-in page and try again.",
                ),
            );
        }
        let address = peer.ip().to_string();
        // The same door as every surface: a blocked address is refused before its token is checked.
        if let Some(wait) = console.access.failures.blocked(&address) {
            return page::too_many(lang, wait);
        }
        // A locked name is refused before anything it presents is checked.
        if let Some(wait) = console.sign_in.locks.locked(&name) {
            let minutes = wait.as_secs().div_ceil(60);
            if let Err(e) = record_sign_in(
                &console,
                attempted_actor(&console, &name),
                "console.sign_in",
                json!({ "outcome": "locked", "address": address }),
            )
            .await
            {
                tracing::warn!(error = %e, "A refused sign-in could not be recorded.");
            }
            return form_page(
                &console,
                lang,
                Some(&format!(
                    "{} {minutes} {}",
                    lang.t(
                        "该用户名因多次登录失败已被锁定，剩余约",
                        "This name is locked after repeated failed sign-ins, for about"
                    ),
                    lang.t("分钟。", "more minutes.")
                )),
                StatusCode::LOCKED,
            );
        }
        let credential = crate::auth::Credential {
            name: Some(name.clone()),
            token: form.token.trim().to_owned(),
        };
        let principal = console.access.authenticator.principal_of(
            &credential,
            certificate.as_ref(),
            unsilo_bus::now_ms(),
        );
        // An administrator also gives the second factor (a bound client certificate was checked with the token).
        let principal = match principal {
            Ok(Principal::Operator { name: op, .. })
                if console.sign_in.factor == SecondFactor::Totp
                    && !console.sign_in.codes.sign_in(&op, &form.code) =>
            {
                Err(None)
            }
            Ok(
                p
                @ (Principal::Operator { .. } | Principal::Agency(_) | Principal::Reviewer { .. }),
            ) => Ok(p),
            Ok(_) => Err(Some(
                lang.t(
                    "推送数据源的令牌不能登录控制台。",
                    "A push source's token cannot sign in to the console.",
                )
                .to_owned(),
            )),
            Err(e) => Err(Some(e.to_string())),
        };
        let principal = match principal {
            Ok(p) => p,
            Err(refused) => {
                if let Err(wait) = console.access.limiter.check(
                    Surface::Console,
                    &format!("refused:{address}"),
                    console.access.limits.rate(Surface::Console),
                ) {
                    return page::too_many(lang, wait);
                }
                let reason = refused.unwrap_or_else(|| {
                    lang.t(
                        "动态口令不正确或已使用过。",
                        "The one-time code is wrong or was already used.",
                    )
                    .to_owned()
                });
                tracing::warn!(%address, name = %name, reason = %reason, "Console sign-in refused.");
                if let Some(block) = console
                    .access
                    .failures
                    .failed(&address, console.access.limits.auth_failures)
                {
                    tracing::warn!(%address, block_secs = block.as_secs(), "Address blocked: too many failed authentications.");
                }
                let actor = attempted_actor(&console, &name);
                if let Err(e) = record_sign_in(
                    &console,
                    actor.clone(),
                    "console.sign_in",
                    json!({ "outcome": "refused", "address": address, "reason": reason }),
                )
                .await
                {
                    tracing::warn!(error = %e, "A refused sign-in could not be recorded.");
                }
                if let Some(lock) = console.sign_in.locks.failed(&name) {
                    tracing::warn!(name = %name, minutes = lock.as_secs() / 60, "Name locked: too many failed sign-ins.");
                    if let Err(e) = record_sign_in(
                        &console,
                        actor,
                        "console.lock",
                        json!({ "address": address, "locked_seconds": lock.as_secs() }),
                    )
                    .await
                    {
                        tracing::warn!(error = %e, "A lock could not be recorded.");
                    }
                }
                return form_page(&console, lang, Some(&reason), StatusCode::UNAUTHORIZED);
            }
        };
        // The sign-in is evidence before it is a session: if the entry cannot be written, nobody is let in.
        if let Err(e) = record_sign_in(
            &console,
            (principal.to_string(), principal.role()),
            "console.sign_in",
            json!({ "outcome": "ok", "address": address }),
        )
        .await
        {
            tracing::error!(error = %e, "Sign-in refused: its audit entry could not be written.");
            return page::error_page(
                lang,
                StatusCode::SERVICE_UNAVAILABLE,
                lang.t(
                    "无法写入审计记录，暂不能登录。",
                    "The audit log cannot be written, so nobody can sign in now.",
                ),
            );
        }
        console.sign_in.locks.succeeded(&name);
        tracing::info!(%principal, %address, "Console sign-in.");
        let lifetime = console.sessions.limits().lifetime;
        let (cookie_value, _, ended) = console.sessions.open(principal.clone(), &credential.token);
        if ended > 0 {
            tracing::info!(%principal, ended, "Oldest console sessions ended: over the per-person limit.");
        }
        let mut response = Redirect::to("/console/").into_response();
        for value in [
            set_cookie(
                SESSION_COOKIE,
                &cookie_value,
                lifetime,
                console.secure_cookies,
            ),
            clear_cookie(LOGIN_CSRF_COOKIE, console.secure_cookies),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        response
    }

    /// `POST /console/logout`.
    pub(super) async fn sign_out(
        State(console): Shared,
        viewer: Viewer,
        headers: axum::http::HeaderMap,
    ) -> Response {
        if let Some(c) = cookie(&headers, SESSION_COOKIE) {
            console.sessions.close(c);
        }
        tracing::info!(principal = %viewer.principal, "Console sign-out.");
        if let Err(e) = record_sign_in(
            &console,
            (viewer.principal.to_string(), viewer.principal.role()),
            "console.sign_out",
            serde_json::Value::Null,
        )
        .await
        {
            tracing::warn!(error = %e, "A sign-out could not be recorded.");
        }
        let mut response = Redirect::to("/console/login").into_response();
        if let Ok(v) = HeaderValue::from_str(&clear_cookie(SESSION_COOKIE, console.secure_cookies))
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
    }
}
