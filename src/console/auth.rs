//! Who may write: an operator who entered their token at `/login` (their own, from
//! `revenue-os operator add`, or the bootstrap `REVENUE_OS_CONSOLE_TOKEN`) gets a random
//! session id in a cookie (`HttpOnly; SameSite=Strict; Path=/`); the session, kept only in
//! this process, holds the operator's name, role and a CSRF token that every form carries
//! back. The token itself never leaves the server.

use crate::store::OperatorRole;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const COOKIE: &str = "revenue_os_console";
/// A session lasts this long after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many live sessions; the oldest goes first.
const MAX_SESSIONS: usize = 1024;

/// Equal bytes, in time that depends only on the lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// 244 random bits (two UUID v4s, from the OS's generator), as 64 hex digits.
fn random_id() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub operator: String,
    pub role: OperatorRole,
    /// Signed in with a token of their own (`operator add`), not the bootstrap token.
    pub named: bool,
    pub csrf: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// A new session for `operator`: (session id for the cookie, the session).
    pub fn create(&self, operator: &str, role: OperatorRole, named: bool) -> (String, Session) {
        let id = random_id();
        let session = Session {
            operator: operator.to_owned(),
            role,
            named,
            csrf: random_id(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session named by the request's cookie.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&id)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.remove(&id);
        }
    }
}

/// The `Set-Cookie` value that names a session.
pub fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_TTL.as_secs()
    )
}

/// The `Set-Cookie` value that ends it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A new operator token: `ros_` and 244 random bits as hex. Shown once; only its hash is kept.
pub fn new_token() -> String {
    format!("ros_{}", random_id())
}

/// The SHA-256 of a token, as hex: what the store keeps and looks up.
pub fn token_hash(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_equality_is_equality() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let s = Sessions::default();
        let (id, session) = s.create("ana", OperatorRole::Approver, true);
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            format!("other=1; {COOKIE}={id}").parse().unwrap(),
        );
        assert_eq!(s.find(&h).unwrap().operator, "ana");
        let mut wrong = HeaderMap::new();
        wrong.insert(
            axum::http::header::COOKIE,
            format!("{COOKIE}={}", session.csrf).parse().unwrap(),
        );
        assert!(s.find(&wrong).is_none());
        s.remove(&h);
        assert!(s.find(&h).is_none());
        assert!(set_cookie(&id).contains("HttpOnly; SameSite=Strict; Path=/"));
    }
}
