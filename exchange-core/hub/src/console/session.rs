//! Console sign-in: a token typed once becomes a session cookie; every later request is that session's.
//!
//! - **Sessions** live in memory, keyed by the SHA-256 of the cookie value (a memory dump does not give a
//!   usable cookie). A session keeps the principal's token *digest*, never the token, and checks it again on
//!   every request, so a revoked or expired token — or a client certificate the agency is bound to and the
//!   connection lacks — ends the session at once. Sessions end after [`SESSION_LIFETIME`], at sign-out, or
//!   when the hub restarts.
//! - **The cookie** is `HttpOnly`, `SameSite=Strict`, `Path=/console`, with a `Max-Age`, and `Secure` when the
//!   hub serves TLS.
//! - **CSRF**: every form carries the session's CSRF token in a hidden `csrf` field, and every POST without
//!   the right one is refused (403) before any handler runs ([`Console::guard`](super::Console::guard)). The
//!   sign-in form, which has no session yet, uses a double-submit token (a cookie and the same value in the
//!   form).
//! - **Guessing**: failed sign-ins count against the client address's rate limit, like refused API calls.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use rand::RngCore;

use crate::auth::{digests_equal, token_digest, Principal};

/// How long a session lasts from sign-in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Sessions kept at most; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "unsilo_session";

/// The sign-in form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "unsilo_login_csrf";

/// The language cookie.
pub const LANG_COOKIE: &str = "unsilo_lang";

/// One signed-in person.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who signed in (checked again on every request).
    pub principal: Principal,
    /// SHA-256 of the token they signed in with.
    pub token_digest: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// When the session ends (ms since the epoch).
    pub expires_at_ms: i64,
}

/// The console's sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    by_cookie_digest: Mutex<HashMap<String, Session>>,
}

/// A fresh random value, as hex (for cookies and CSRF tokens).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Opens a session for `principal`; returns the cookie value (shown once, to the browser).
    pub fn open(&self, principal: Principal, token: &str) -> (String, Session) {
        let cookie = random_hex();
        let session = Session {
            principal,
            token_digest: token_digest(token),
            csrf: random_hex(),
            expires_at_ms: unsilo_bus::now_ms() + SESSION_LIFETIME.as_millis() as i64,
        };
        let mut sessions = self
            .by_cookie_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let now = unsilo_bus::now_ms();
        sessions.retain(|_, s| s.expires_at_ms > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at_ms)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token_digest(&cookie), session.clone());
        (cookie, session)
    }

    /// The live session of a cookie value.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        let mut sessions = self
            .by_cookie_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = token_digest(cookie);
        match sessions.get(&key) {
            Some(s) if s.expires_at_ms > unsilo_bus::now_ms() => Some(s.clone()),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of a cookie value.
    pub fn close(&self, cookie: &str) {
        self.by_cookie_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&token_digest(cookie));
    }

    /// Ends every session of a principal (its token was found revoked).
    pub fn close_all_of(&self, principal: &Principal) {
        self.by_cookie_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| &s.principal != principal);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console: `HttpOnly`, `SameSite=Strict`, `Path=/console`, `Secure` under TLS.
pub fn set_cookie(name: &str, value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// A `Set-Cookie` value that removes a console cookie.
pub fn clear_cookie(name: &str, secure: bool) -> String {
    set_cookie(name, "", Duration::ZERO, secure)
}

/// Whether a presented CSRF token is the expected one (constant time).
pub fn csrf_matches(expected: &str, presented: Option<&str>) -> bool {
    presented.is_some_and(|p| !p.is_empty() && digests_equal(expected.as_bytes(), p.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let (cookie, session) = sessions.open(Principal::Operator("ops".into()), "secret-token");
        assert_ne!(
            session.token_digest, "secret-token",
            "only the digest is kept"
        );
        assert_eq!(
            sessions.get(&cookie).map(|s| s.principal),
            Some(Principal::Operator("ops".into()))
        );
        assert!(sessions.get("not-a-cookie").is_none());
        sessions.close(&cookie);
        assert!(sessions.get(&cookie).is_none());
        let (again, _) = sessions.open(Principal::Agency("a".into()), "t");
        sessions.close_all_of(&Principal::Agency("a".into()));
        assert!(sessions.get(&again).is_none());
    }

    #[test]
    fn cookies_are_read_and_written_strictly() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; unsilo_session=abc"),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
        let set = set_cookie(SESSION_COOKIE, "v", SESSION_LIFETIME, true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=28800",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("x", "v", SESSION_LIFETIME, false).contains("Secure"));
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", None));
        assert!(!csrf_matches("", Some("")));
    }
}
