//! `GET /api/stats` and `GET /api/events`: what `stats` keeps in memory, as JSON for the console.
//! Nothing here touches the disk, so the console can poll these every few seconds.

use axum::Json;
use serde::Serialize;

use super::session::Admin;

#[derive(Debug, Serialize)]
pub struct Counts {
    accepted: u64,
    delivered: u64,
    bounced: u64,
    deferred: u64,
}

#[derive(Debug, Serialize)]
pub struct MinuteJson {
    /// Start of the minute, seconds since the epoch.
    start: u64,
    accepted: u64,
    delivered: u64,
    bounced: u64,
    deferred: u64,
}

#[derive(Debug, Serialize)]
pub struct QueueJson {
    depth: u64,
    oldest_age_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct SessionsJson {
    smtp: u64,
    pop3: u64,
}

#[derive(Debug, Serialize)]
pub struct StatsJson {
    totals: Counts,
    minutes: Vec<MinuteJson>,
    queue: QueueJson,
    sessions: SessionsJson,
    uptime_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct EventJson {
    time: u64,
    kind: &'static str,
    queue_id: String,
    recipient: String,
    detail: String,
}

pub async fn stats(_admin: Admin) -> Json<StatsJson> {
    let (minutes, _, totals) = crate::stats::snapshot();
    let g = crate::stats::gauges();
    Json(StatsJson {
        totals: Counts {
            accepted: totals.accepted,
            delivered: totals.delivered,
            bounced: totals.bounced,
            deferred: totals.deferred,
        },
        minutes: minutes
            .into_iter()
            .map(|m| MinuteJson {
                start: m.start,
                accepted: m.accepted,
                delivered: m.delivered,
                bounced: m.bounced,
                deferred: m.deferred,
            })
            .collect(),
        queue: QueueJson {
            depth: g.queue_depth,
            oldest_age_secs: g.queue_oldest_age_secs,
        },
        sessions: SessionsJson {
            smtp: g.smtp_sessions,
            pop3: g.pop3_sessions,
        },
        uptime_secs: g.uptime_secs,
    })
}

/// Newest first.
pub async fn events(_admin: Admin) -> Json<Vec<EventJson>> {
    let (_, events, _) = crate::stats::snapshot();
    Json(
        events
            .into_iter()
            .map(|e| EventJson {
                time: e.time,
                kind: e.kind.as_str(),
                queue_id: e.queue_id,
                recipient: e.recipient,
                detail: e.detail,
            })
            .collect(),
    )
}
