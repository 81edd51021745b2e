//! `GET /api/cluster`: the servers on the shared database (`cluster::Members`), so the console of
//! any one of them shows which are up, which stopped and which were lost, each with its sessions
//! and counters. With the file store there is one server, this one, from its own counters.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;

use super::session::Admin;
use super::{ApiError, ApiResult, AppState};
use crate::cluster::{Member, Sessions, State as NodeState, Totals};

#[derive(Debug, Serialize)]
pub struct ClusterJson {
    /// This server's `node.name`.
    node: String,
    /// Whether the servers share a database (`store.url`).
    shared: bool,
    /// How many are up.
    up: usize,
    servers: Vec<Member>,
}

pub async fn cluster(_admin: Admin, State(state): State<AppState>) -> ApiResult<Json<ClusterJson>> {
    let config = state.shared.config();
    let node = config.mail.node_name.clone();
    let servers = match &state.members {
        Some(members) => members.list().await.map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the servers' table: {e}"),
            )
        })?,
        None => vec![this_server(&node, &config.mail.hostname)],
    };
    Ok(Json(ClusterJson {
        node,
        shared: state.members.is_some(),
        up: servers.iter().filter(|m| m.state == NodeState::Up).count(),
        servers,
    }))
}

/// This server alone, as the table would have it.
fn this_server(node: &str, hostname: &str) -> Member {
    let (_, _, t) = crate::stats::snapshot();
    let g = crate::stats::gauges();
    Member {
        name: node.to_string(),
        hostname: hostname.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started: crate::stats::started_secs(),
        seen_secs_ago: 0,
        state: NodeState::Up,
        sessions: Sessions {
            smtp: g.smtp_sessions,
            pop3: g.pop3_sessions,
        },
        totals: Totals {
            accepted: t.accepted,
            delivered: t.delivered,
            bounced: t.bounced,
            deferred: t.deferred,
        },
    }
}
