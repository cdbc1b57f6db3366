//! Console sign-in: a token (and for an administrator a second factor) typed once becomes a session cookie;
//! every later request is that session's.
//!
//! - **Sessions** live in memory, keyed by the SHA-256 of the cookie value (a memory dump does not give a
//!   usable cookie). A session keeps the principal's token *digest*, never the token, and checks it again on
//!   every request, so a revoked or expired token — or a client certificate the agency is bound to and the
//!   connection lacks — ends the session at once. A session ends after `[admin.sign_in] idle_timeout` unused
//!   (default 15 minutes), at `session_lifetime` however busy (default 8 hours), at sign-out, or when the hub
//!   restarts; one person holds at most `max_sessions_per_person` (signing in past it ends their oldest).
//! - **Lockout**: `lockout_failures` failed sign-ins for one name (default 5) lock that name for
//!   `lockout_duration` (default 30 minutes) — the right credentials are refused meanwhile ([`SignInLocks`]);
//!   the address is slowed as on every surface ([`crate::access::FailureThrottle`]).
//! - **The cookie** is `HttpOnly`, `SameSite=Strict`, `Path=/console`, with a `Max-Age`, and `Secure` when the
//!   hub serves TLS.
//! - **CSRF**: every form carries the session's CSRF token in a hidden `csrf` field, and every POST without
//!   the right one is refused (403) before any handler runs ([`Console::guard`](super::Console::guard)). The
//!   sign-in form, which has no session yet, uses a double-submit token (a cookie and the same value in the
//!   form).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use rand::RngCore;

use crate::auth::{digests_equal, token_digest, Principal};

/// Sessions kept at most; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// Names whose failures are remembered at most (the oldest unlocked go first beyond it).
const MAX_TRACKED_NAMES: usize = 10_000;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "unsilo_session";

/// The sign-in form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "unsilo_login_csrf";

/// The language cookie.
pub const LANG_COOKIE: &str = "unsilo_lang";

/// How long sessions last: `[admin.sign_in]`'s limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused this long ends.
    pub idle: Duration,
    /// A session ends this long after sign-in.
    pub lifetime: Duration,
    /// Sessions one principal may hold at once.
    pub per_person: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        let c = crate::config::SignInConfig::default();
        Self::from(&c)
    }
}

impl From<&crate::config::SignInConfig> for SessionLimits {
    fn from(c: &crate::config::SignInConfig) -> Self {
        Self {
            idle: c.idle_timeout,
            lifetime: c.session_lifetime,
            per_person: c.max_sessions_per_person,
        }
    }
}

/// One signed-in person.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who signed in (checked again on every request).
    pub principal: Principal,
    /// SHA-256 of the token they signed in with.
    pub token_digest: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// When it was opened (ms since the epoch).
    pub opened_at_ms: i64,
    /// When it was last used (ms since the epoch).
    pub last_used_ms: i64,
    /// When it ends however busy (ms since the epoch).
    pub expires_at_ms: i64,
}

impl Session {
    fn live_at(&self, now_ms: i64, limits: &SessionLimits) -> bool {
        now_ms < self.expires_at_ms && now_ms - self.last_used_ms < limits.idle.as_millis() as i64
    }
}

/// The console's sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    limits: SessionLimits,
    by_cookie_digest: Mutex<HashMap<String, Session>>,
}

/// A fresh random value, as hex (for cookies and CSRF tokens).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// No sessions yet, under `limits`.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            by_cookie_digest: Mutex::default(),
        }
    }

    /// The limits sessions live under.
    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Opens a session for `principal`; returns the cookie value (shown once, to the browser), the session,
    /// and how many of the principal's older sessions it ended (past `per_person`).
    pub fn open(&self, principal: Principal, token: &str) -> (String, Session, usize) {
        self.open_at(principal, token, unsilo_bus::now_ms())
    }

    fn open_at(&self, principal: Principal, token: &str, now: i64) -> (String, Session, usize) {
        let cookie = random_hex();
        let session = Session {
            principal,
            token_digest: token_digest(token),
            csrf: random_hex(),
            opened_at_ms: now,
            last_used_ms: now,
            expires_at_ms: now + self.limits.lifetime.as_millis() as i64,
        };
        let mut sessions = self
            .by_cookie_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let limits = self.limits;
        sessions.retain(|_, s| s.live_at(now, &limits));
        // One person's sessions past the cap: the oldest end.
        let mut own: Vec<(String, i64)> = sessions
            .iter()
            .filter(|(_, s)| s.principal == session.principal)
            .map(|(k, s)| (k.clone(), s.opened_at_ms))
            .collect();
        own.sort_by_key(|(_, at)| *at);
        let excess = (own.len() + 1).saturating_sub(limits.per_person);
        for (key, _) in own.iter().take(excess) {
            sessions.remove(key);
        }
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used_ms)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(token_digest(&cookie), session.clone());
        (cookie, session, excess)
    }

    /// The live session of a cookie value, marked used now.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        self.get_at(cookie, unsilo_bus::now_ms())
    }

    fn get_at(&self, cookie: &str, now: i64) -> Option<Session> {
        let mut sessions = self
            .by_cookie_digest
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = token_digest(cookie);
        let limits = self.limits;
        match sessions.get_mut(&key) {
            Some(s) if s.live_at(now, &limits) => {
                s.last_used_ms = now;
                Some(s.clone())
            }
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

/// Failed sign-ins per name, and the names locked for them.
#[derive(Debug)]
pub struct SignInLocks {
    failures: u32,
    duration: Duration,
    by_name: Mutex<HashMap<String, NameFailures>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct NameFailures {
    count: u32,
    locked_until_ms: Option<i64>,
}

impl Default for SignInLocks {
    fn default() -> Self {
        Self::new(&crate::config::SignInConfig::default())
    }
}

impl SignInLocks {
    /// Locks after `lockout_failures` for `lockout_duration`.
    pub fn new(c: &crate::config::SignInConfig) -> Self {
        Self {
            failures: c.lockout_failures.max(1),
            duration: c.lockout_duration,
            by_name: Mutex::default(),
        }
    }

    /// How long `name` stays locked, if it is.
    pub fn locked(&self, name: &str) -> Option<Duration> {
        self.locked_at(name, unsilo_bus::now_ms())
    }

    fn locked_at(&self, name: &str, now: i64) -> Option<Duration> {
        let by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let until = by_name.get(name)?.locked_until_ms?;
        (until > now).then(|| Duration::from_millis((until - now) as u64))
    }

    /// Counts a failure for `name`; returns the lock's length when this failure locks it.
    pub fn failed(&self, name: &str) -> Option<Duration> {
        self.failed_at(name, unsilo_bus::now_ms())
    }

    fn failed_at(&self, name: &str, now: i64) -> Option<Duration> {
        let mut by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        if by_name.len() >= MAX_TRACKED_NAMES && !by_name.contains_key(name) {
            by_name.retain(|_, f| f.locked_until_ms.is_some_and(|u| u > now));
        }
        let entry = by_name.entry(name.to_owned()).or_default();
        if entry.locked_until_ms.is_some_and(|u| u <= now) {
            *entry = NameFailures::default();
        }
        entry.count += 1;
        if entry.count >= self.failures && entry.locked_until_ms.is_none() {
            entry.locked_until_ms = Some(now + self.duration.as_millis() as i64);
            return Some(self.duration);
        }
        None
    }

    /// Clears `name`'s failures after a successful sign-in.
    pub fn succeeded(&self, name: &str) {
        self.by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
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

    fn ops() -> Principal {
        Principal::Operator {
            name: "ops".into(),
            role: crate::roles::Role::Security,
        }
    }

    #[test]
    fn sessions_open_find_and_close() {
        let sessions = Sessions::default();
        let (cookie, session, _) = sessions.open(ops(), "secret-token");
        assert_ne!(
            session.token_digest, "secret-token",
            "only the digest is kept"
        );
        assert_eq!(sessions.get(&cookie).map(|s| s.principal), Some(ops()));
        assert!(sessions.get("not-a-cookie").is_none());
        sessions.close(&cookie);
        assert!(sessions.get(&cookie).is_none());
        let (again, _, _) = sessions.open(Principal::Agency("a".into()), "t");
        sessions.close_all_of(&Principal::Agency("a".into()));
        assert!(sessions.get(&again).is_none());
    }

    #[test]
    fn sessions_end_when_idle_at_their_lifetime_and_past_the_per_person_cap() {
        let sessions = Sessions::new(SessionLimits {
            idle: Duration::from_secs(15 * 60),
            lifetime: Duration::from_secs(3600),
            per_person: 2,
        });
        let t0 = 1_000_000_000_000;
        let minute = 60_000;
        let (idle, _, _) = sessions.open_at(ops(), "t", t0);
        assert!(sessions.get_at(&idle, t0 + 14 * minute).is_some());
        // Used at 14 minutes, so still live at 28; unused after that, gone at 44.
        assert!(sessions.get_at(&idle, t0 + 28 * minute).is_some());
        assert!(sessions.get_at(&idle, t0 + 44 * minute).is_none(), "idle");
        let (busy, _, _) = sessions.open_at(ops(), "t", t0);
        for m in (10..60).step_by(10) {
            assert!(sessions.get_at(&busy, t0 + m * minute).is_some());
        }
        assert!(
            sessions.get_at(&busy, t0 + 61 * minute).is_none(),
            "lifetime"
        );
        let t1 = t0 + 120 * minute;
        let (first, _, ended) = sessions.open_at(ops(), "t", t1);
        assert_eq!(ended, 0);
        let (second, _, _) = sessions.open_at(ops(), "t", t1 + 1);
        let (third, _, ended) = sessions.open_at(ops(), "t", t1 + 2);
        assert_eq!(ended, 1, "the third session ends the oldest");
        assert!(sessions.get_at(&first, t1 + 3).is_none());
        assert!(sessions.get_at(&second, t1 + 3).is_some());
        assert!(sessions.get_at(&third, t1 + 3).is_some());
    }

    #[test]
    fn five_failures_lock_a_name_for_thirty_minutes() {
        let locks = SignInLocks::default();
        let t0 = 1_000_000_000_000;
        for _ in 0..4 {
            assert!(locks.failed_at("li", t0).is_none());
        }
        assert!(locks.locked_at("li", t0).is_none());
        assert_eq!(
            locks.failed_at("li", t0),
            Some(Duration::from_secs(1800)),
            "the fifth locks"
        );
        assert!(locks.locked_at("li", t0 + 29 * 60_000).is_some());
        assert!(locks.locked_at("wang", t0).is_none(), "per name");
        assert!(locks.locked_at("li", t0 + 31 * 60_000).is_none());
        // After the lock, counting starts over.
        assert!(locks.failed_at("li", t0 + 31 * 60_000).is_none());
        locks.succeeded("li");
        assert!(locks.locked_at("li", t0 + 31 * 60_000).is_none());
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
        let set = set_cookie(SESSION_COOKIE, "v", Duration::from_secs(8 * 3600), true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/console",
            "Max-Age=28800",
        ] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set_cookie("x", "v", Duration::from_secs(60), false).contains("Secure"));
        assert!(csrf_matches("abc", Some("abc")));
        assert!(!csrf_matches("abc", Some("abd")));
        assert!(!csrf_matches("abc", None));
        assert!(!csrf_matches("", Some("")));
    }
}
