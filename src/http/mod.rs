//! The HTTP listener: the administrator's web console, its JSON API, `/metrics` and `/healthz`.
//!
//! It runs on the server's own tokio runtime and reaches mail through the same `Shared` state as
//! the protocol drivers, so it sees the live configuration, takes the same mailbox locks as POP3
//! and wakes the queue runner through the same retry requests as `jes queue`. It is off unless
//! `http.port` is set, and listens on loopback by default.
//!
//! One file per concern: `session` (login, cookie, CSRF, the `Admin` extractor), `api_stats`,
//! `api_cluster` (the servers on a shared database), `api_history`,
//! `api_queue`, `api_mail` (with `message` for MIME parsing), `metrics` (Prometheus and health),
//! `ui` (the console's static files, owned by the console's authors). This file holds the router,
//! the error type every handler returns, and the headers every response gets.
//!
//! Every error is JSON `{"error": msg}` with a fitting status, including the router's own 404 and
//! 405, so that the console and API clients need exactly one error path.

mod api_captured;
mod api_cluster;
mod api_history;
mod api_mail;
mod api_queue;
mod api_stats;
mod conn_limits;
pub mod message;
mod metrics;
mod session;
mod session_pg;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::shared::{ConnLimits, Shared};
pub use session::SESSION_COOKIE;

/// The console's policy: only its own scripts and styles; message HTML is shown in a frame from
/// this origin, which gets its own, stricter policy (see `api_mail`).
pub const CONSOLE_CSP: &str = "default-src 'self'; frame-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'";

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub sessions: Arc<dyn session::ConsoleSessions>,
    /// The servers on the shared database; `None`: this server alone (the file store).
    pub members: Option<Arc<dyn crate::cluster::Members>>,
}

/// An error answer: a status and a message, sent as `{"error": msg}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError(status, msg.into())
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, what.into())
    }

    pub fn internal(msg: impl std::fmt::Display) -> Self {
        tracing::warn!("HTTP API: {msg}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking file work (queue files, mailboxes) off the protocol threads.
pub async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

/// Every route, with its methods, as `(path, methods)`: the router is built from the same
/// handlers, and the test that compares the API with `docs/openapi.yaml` reads this list.
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/", &["GET"]),
    ("/assets/{file}", &["GET"]),
    ("/healthz", &["GET"]),
    ("/metrics", &["GET"]),
    ("/api/login", &["POST"]),
    ("/api/logout", &["POST"]),
    ("/api/session", &["GET"]),
    ("/api/stats", &["GET"]),
    ("/api/cluster", &["GET"]),
    ("/api/events", &["GET"]),
    ("/api/history", &["GET"]),
    ("/api/queue", &["GET"]),
    ("/api/queue/retry-all", &["POST"]),
    ("/api/queue/{id}", &["GET", "DELETE"]),
    ("/api/queue/{id}/retry", &["POST"]),
    ("/api/captured", &["GET"]),
    ("/api/captured/release-all", &["POST"]),
    ("/api/captured/{id}", &["GET", "DELETE"]),
    ("/api/captured/{id}/release", &["POST"]),
    ("/api/captured/{id}/html", &["GET"]),
    ("/api/captured/{id}/raw", &["GET"]),
    ("/api/captured/{id}/attachments/{index}", &["GET"]),
    ("/api/mailboxes", &["GET"]),
    ("/api/mailboxes/{address}/messages", &["GET"]),
    ("/api/mailboxes/{address}/messages/{id}", &["GET", "DELETE"]),
    ("/api/mailboxes/{address}/messages/{id}/raw", &["GET"]),
    ("/api/mailboxes/{address}/messages/{id}/html", &["GET"]),
    (
        "/api/mailboxes/{address}/messages/{id}/attachments/{index}",
        &["GET"],
    ),
];

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{file}", get(asset))
        .route("/healthz", get(metrics::healthz))
        .route("/metrics", get(metrics::metrics))
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/session", get(session::current))
        .route("/api/stats", get(api_stats::stats))
        .route("/api/cluster", get(api_cluster::cluster))
        .route("/api/events", get(api_stats::events))
        .route("/api/history", get(api_history::history))
        .route("/api/queue", get(api_queue::list))
        .route("/api/queue/retry-all", post(api_queue::retry_all))
        .route(
            "/api/queue/{id}",
            get(api_queue::show).delete(api_queue::delete),
        )
        .route("/api/queue/{id}/retry", post(api_queue::retry))
        .route("/api/captured", get(api_captured::list))
        .route("/api/captured/release-all", post(api_captured::release_all))
        .route(
            "/api/captured/{id}",
            get(api_captured::show).delete(api_captured::delete),
        )
        .route("/api/captured/{id}/release", post(api_captured::release))
        .route("/api/captured/{id}/html", get(api_captured::html))
        .route("/api/captured/{id}/raw", get(api_captured::raw))
        .route(
            "/api/captured/{id}/attachments/{index}",
            get(api_captured::attachment),
        )
        .route("/api/mailboxes", get(api_mail::mailboxes))
        .route("/api/mailboxes/{address}/messages", get(api_mail::messages))
        .route(
            "/api/mailboxes/{address}/messages/{id}",
            get(api_mail::message).delete(api_mail::delete),
        )
        .route(
            "/api/mailboxes/{address}/messages/{id}/raw",
            get(api_mail::raw),
        )
        .route(
            "/api/mailboxes/{address}/messages/{id}/html",
            get(api_mail::html),
        )
        .route(
            "/api/mailboxes/{address}/messages/{id}/attachments/{index}",
            get(api_mail::attachment),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
}

/// Headers every response carries unless the handler chose its own (the message HTML endpoint
/// sets a stricter CSP and allows framing by the console).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let defaults: [(HeaderName, &'static str); 4] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
    ];
    for (name, value) in defaults {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    }
    // Nothing here should be kept by a shared cache: it is someone's mail.
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn static_file(path: &str) -> Response {
    match ui::asset(path) {
        Some((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => ApiError::not_found("no such file").into_response(),
    }
}

async fn index() -> Response {
    static_file("index.html")
}

async fn asset(Path(file): Path<String>) -> Response {
    static_file(&file)
}

/// The console's port could not be bound.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    pub source: std::io::Error,
}

/// Binds `http.address:http.port`; `Ok(None)` when the console is off. Bound before the server
/// announces itself, so a port in use stops the start like the mail ports do.
pub fn bind(shared: &Shared) -> Result<Option<std::net::TcpListener>, BindError> {
    let config = shared.config();
    let Some(port) = config.mail.http.port else {
        return Ok(None);
    };
    let addr = SocketAddr::new(config.mail.http.address, port);
    let bind_err = |source| BindError { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(Some(listener))
}

/// Serves HTTP on `listener` until `stop` turns true.
///
/// Connections are driven with hyper's HTTP/1 builder rather than `axum::serve`, which offers
/// no way to set the request-head deadline (`conn_limits::HEAD_TIMEOUT`).
/// Serves the console on `listener` until `stop`. With `database` (`store.url`) its login
/// sessions live there, shared with the other servers; otherwise in memory.
pub async fn run(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    database: Option<crate::pg::Database>,
    members: Option<Arc<dyn crate::cluster::Members>>,
    stop: watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("HTTP console: cannot use the listening socket: {e}");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("HTTP console listening on http://{addr}/");
    }
    let app = router(AppState {
        shared,
        sessions: match database {
            Some(db) => Arc::new(session_pg::PgConsoleSessions::new(db)),
            None => Arc::new(session::Sessions::default()),
        },
        members,
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(conn_limits::HEAD_TIMEOUT);
    let limits = Arc::new(ConnLimits::default());
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = conn_limits::accept(&listener, &limits, conn_limits::IDLE_TIMEOUT) => accepted,
            _ = stopped(stop.clone()) => break,
        };
        // Finished connections are reaped here, so the set holds only open ones.
        while conns.try_join_next().is_some() {}
        let app = app.clone();
        // Handlers see the client's address as `ConnectInfo`, as `axum::serve` would give it.
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move { tower_service::Service::call(&mut app, req).await }
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        conns.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => log_conn_end(peer, result),
                _ = stopped(stop) => {
                    // Answer the request in progress, if any, then close.
                    conn.as_mut().graceful_shutdown();
                    log_conn_end(peer, conn.await);
                }
            }
        });
    }
    while conns.join_next().await.is_some() {}
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// A connection ended: timeouts and resets are the client's business, not an error of ours.
fn log_conn_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::debug!(client = %peer, "HTTP console connection closed: {e}");
    }
}
