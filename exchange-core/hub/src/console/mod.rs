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
mod overview;
mod page;
mod reference;
mod reports;
mod schemas;
pub mod session;
mod sources;
mod subscriptions;

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
use crate::governance::Governance;
use crate::metrics::Metrics;
pub use page::Lang;
use session::{cookie, csrf_matches, Sessions, LANG_COOKIE, SESSION_COOKIE};
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
        matches!(self.principal, Principal::Operator(_))
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
    use session::{clear_cookie, set_cookie, LOGIN_CSRF_COOKIE, SESSION_LIFETIME};

    /// The sign-in form's fields.
    struct SignIn {
        token: String,
        csrf: String,
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
                label for="token" { (lang.t("令牌", "Token")) }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                p.hint { (lang.t(
                    "运维人员令牌或部门令牌（演示模式下见 demo-tokens 目录）。",
                    "An operator's or an agency's token (the demo writes them to its demo-tokens folder)."
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
            token: form_value(&bytes, "token").unwrap_or_default(),
            csrf: form_value(&bytes, "csrf").unwrap_or_default(),
        };
        if form.token.trim().is_empty() {
            return form_page(
                &console,
                lang,
                Some(lang.t("请输入令牌。", "Enter a token.")),
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
        let credential = crate::auth::Credential {
            name: None,
            token: form.token.trim().to_owned(),
        };
        let principal = console.access.authenticator.principal_of(
            &credential,
            certificate.as_ref(),
            unsilo_bus::now_ms(),
        );
        let principal = match principal {
            Ok(p @ (Principal::Operator(_) | Principal::Agency(_))) => p,
            refused => {
                if let Err(wait) = console.access.limiter.check(
                    Surface::Console,
                    &format!("refused:{address}"),
                    console.access.limits.rate(Surface::Console),
                ) {
                    return page::too_many(lang, wait);
                }
                let reason = match refused {
                    Ok(_) => lang
                        .t(
                            "推送数据源的令牌不能登录控制台。",
                            "A push source's token cannot sign in to the console.",
                        )
                        .to_owned(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(%address, reason = %reason, "Console sign-in refused.");
                if let Some(block) = console
                    .access
                    .failures
                    .failed(&address, console.access.limits.auth_failures)
                {
                    tracing::warn!(%address, block_secs = block.as_secs(), "Address blocked: too many failed authentications.");
                }
                return form_page(&console, lang, Some(&reason), StatusCode::UNAUTHORIZED);
            }
        };
        tracing::info!(%principal, %address, "Console sign-in.");
        let (cookie_value, _) = console.sessions.open(principal, &credential.token);
        let mut response = Redirect::to("/console/").into_response();
        for value in [
            set_cookie(
                SESSION_COOKIE,
                &cookie_value,
                SESSION_LIFETIME,
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
        let mut response = Redirect::to("/console/login").into_response();
        if let Ok(v) = HeaderValue::from_str(&clear_cookie(SESSION_COOKIE, console.secure_cookies))
        {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
        response
    }
}
