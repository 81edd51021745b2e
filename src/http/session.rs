//! Console logins: sessions, a cookie, and a CSRF token.
//!
//! A session is a random 128-bit token in the cookie `jes_session` (HttpOnly so scripts cannot read
//! it, SameSite=Strict so other sites cannot send it), valid 8 hours. Where sessions live is the
//! [`ConsoleSessions`] interface: in memory for a server on its own files ([`Sessions`]: a restart
//! logs everyone out, which is acceptable for an administrator's console and leaves nothing on
//! disk to steal), in the database with `store.url` (`session_pg`), so that a load balancer
//! switching an administrator between servers does not log them out. The password is checked by `Shared::check_login`, the same check (with the
//! same per-address throttle and bounded pool) as POP3 and SMTP AUTH, so the console is no easier
//! a target for guessing than the mail ports. Only addresses listed in `http.admins` may log in.
//!
//! CSRF: SameSite=Strict already keeps other sites' requests cookie-less in current browsers; as a
//! second line, every state-changing call (any method but GET under /api, except login) must carry
//! `X-CSRF-Token` equal to the session's token, which a page from another origin cannot read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use password_hash::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiResult, AppState};

pub const SESSION_COOKIE: &str = "jes_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most: a bound on memory whatever a client does.
const MAX_SESSIONS: usize = 1000;

#[derive(Debug, Clone)]
struct Session {
    user: String,
    csrf: String,
    expires: Instant,
}

/// The logged-in sessions by token, in memory.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

/// A session as the backends keep it: who, the CSRF token, and whether it is still valid.
#[derive(Debug, Clone)]
pub struct StoredSession {
    pub user: String,
    pub csrf: String,
}

/// Where console sessions live. An error is the store failing (the database away), which the
/// console answers with 503, never with "logged out".
#[async_trait::async_trait]
pub trait ConsoleSessions: Send + Sync {
    /// Starts a session for `user`: `(token, csrf)`.
    async fn create(&self, user: &str) -> std::io::Result<(String, String)>;
    /// The unexpired session of `token`.
    async fn get(&self, token: &str) -> std::io::Result<Option<StoredSession>>;
    /// Ends the session of `token`.
    async fn remove(&self, token: &str) -> std::io::Result<()>;
}

#[async_trait::async_trait]
impl ConsoleSessions for Sessions {
    async fn create(&self, user: &str) -> std::io::Result<(String, String)> {
        Ok(Sessions::create(self, user))
    }
    async fn get(&self, token: &str) -> std::io::Result<Option<StoredSession>> {
        Ok(Sessions::get(self, token).map(|s| StoredSession {
            user: s.user,
            csrf: s.csrf,
        }))
    }
    async fn remove(&self, token: &str) -> std::io::Result<()> {
        Sessions::remove(self, token);
        Ok(())
    }
}

/// 128 random bits as 32 hex digits.
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference, so timing does not reveal a prefix (the
/// length is not secret: every token has 32 digits).
fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session for `user`: `(token, csrf)`.
    fn create(&self, user: &str) -> (String, String) {
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            // Drop the one closest to expiry rather than refuse a login.
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let token = random_token();
        let csrf = random_token();
        map.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        (token, csrf)
    }

    fn get(&self, token: &str) -> Option<Session> {
        let mut map = self.lock();
        match map.get(token) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    fn remove(&self, token: &str) {
        self.lock().remove(token);
    }
}

/// The session token from the request's cookies, if any.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// A logged-in administrator; extracting it answers 401 without a valid session and 403 for a
/// state-changing request without the right CSRF header.
#[derive(Debug, Clone)]
pub struct Admin {
    pub user: String,
    pub csrf: String,
    token: String,
}

impl Admin {
    /// The session of `parts`, checking CSRF for methods other than GET and HEAD.
    pub async fn from_parts(parts: &Parts, state: &AppState) -> ApiResult<Admin> {
        let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, "not logged in");
        let token = cookie_token(&parts.headers).ok_or_else(unauthorized)?;
        let session = state
            .sessions
            .get(&token)
            .await
            .map_err(unavailable)?
            .ok_or_else(unauthorized)?;
        // Taken off http.admins (or out of user.conf) since logging in: the session ends now,
        // not at its expiry, since the configuration is re-read without a restart.
        let config = state.shared.config();
        if !config.mail.http.is_admin(&session.user) || !config.users.exists(&session.user) {
            state.sessions.remove(&token).await.map_err(unavailable)?;
            return Err(unauthorized());
        }
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !same(sent, &session.csrf) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token header",
                ));
            }
        }
        Ok(Admin {
            user: session.user,
            csrf: session.csrf,
            token,
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Admin> {
        Admin::from_parts(parts, state).await
    }
}

/// The answer when the session store fails (the database away): try again, not "log in".
fn unavailable(e: std::io::Error) -> ApiError {
    tracing::warn!("console sessions: {e}");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "console sessions are unavailable (database); try again",
    )
}

#[derive(Debug, Deserialize)]
struct LoginBody {
    user: String,
    password: String,
}

#[derive(Debug, Serialize)]
pub struct SessionInfo {
    pub user: String,
    pub csrf: String,
    /// Whether capture mode holds outgoing mail (`capture=true`), for the console's banner.
    pub capture: bool,
    /// The `node.name` of the server that answered, for the console's title bar.
    pub node: String,
}

fn set_cookie(value: &str, max_age: u64) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}"
    ))
    .map_err(ApiError::internal)
}

/// `POST /api/login`. The body is parsed here rather than by axum's `Json` so that a malformed one
/// also gets a JSON error.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> ApiResult<Response> {
    let body: LoginBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("expected {{\"user\": ..., \"password\": ...}}: {e}"),
        )
    })?;
    let user = crate::address::canonical(&body.user);
    let config = state.shared.config();
    // The password is checked even for a non-admin, so that timing does not tell who is one.
    let result = state
        .shared
        .check_console_login(peer.ip(), &user, &body.password)
        .await;
    if !result.ok || !config.mail.http.is_admin(&user) {
        if result.ok {
            tracing::warn!(client = %peer.ip(), user, "console login refused: not in http.admins");
        }
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "wrong user or password, or not an administrator (http.admins)",
        ));
    }
    tracing::info!(client = %peer.ip(), user, "console login");
    let (token, csrf) = state.sessions.create(&user).await.map_err(unavailable)?;
    let cookie = set_cookie(&token, SESSION_TTL.as_secs())?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(SessionInfo {
            user,
            csrf,
            capture: state.shared.config().mail.capture,
            node: state.shared.config().mail.node_name.clone(),
        }),
    )
        .into_response())
}

/// `POST /api/logout`: ends the session and clears the cookie.
pub async fn logout(State(state): State<AppState>, admin: Admin) -> ApiResult<Response> {
    state
        .sessions
        .remove(&admin.token)
        .await
        .map_err(unavailable)?;
    let cookie = set_cookie("", 0)?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)], ()).into_response())
}

/// `GET /api/session`: who is logged in, and the CSRF token for the console's later calls.
pub async fn current(State(state): State<AppState>, admin: Admin) -> Json<SessionInfo> {
    Json(SessionInfo {
        user: admin.user,
        csrf: admin.csrf,
        capture: state.shared.config().mail.capture,
        node: state.shared.config().mail.node_name.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_of_128_bits() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn sessions_expire_and_can_be_removed() {
        let s = Sessions::default();
        let (token, csrf) = s.create("admin@x");
        assert_eq!(s.get(&token).map(|x| x.csrf), Some(csrf));
        s.remove(&token);
        assert!(s.get(&token).is_none());
        let (token, _) = s.create("admin@x");
        if let Some(x) = s.lock().get_mut(&token) {
            x.expires = Instant::now() - Duration::from_secs(1);
        }
        assert!(s.get(&token).is_none(), "expired");
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; jes_session=abc ; b=2"),
        );
        assert_eq!(cookie_token(&h).as_deref(), Some("abc"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
