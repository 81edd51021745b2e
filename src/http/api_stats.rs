//! `GET /api/stats` and `GET /api/events`: what `stats` keeps in memory, as JSON for the console.
//! Nothing here touches the disk, so the console can poll these every few seconds.

use axum::Json;
use serde::Serialize;

use super::session::Admin;
use super::AppState;
use axum::extract::State;

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
    /// This server's `node.name`: with several servers, the counters below are this one's.
    node: String,
    totals: Counts,
    minutes: Vec<MinuteJson>,
    queue: QueueJson,
    sessions: SessionsJson,
    uptime_secs: u64,
}

/// One outcome event (`event::Event`) as the console lists it.
#[derive(Debug, Serialize)]
pub struct EventJson {
    /// Seconds since the epoch.
    time: u64,
    kind: &'static str,
    /// The message's one id (queue file and mailbox file names carry it).
    queue_id: String,
    recipient: String,
    /// The reply, or the remote host when there is none: what the console shows in one column.
    detail: String,
    sender: String,
    message_id: Option<String>,
    subject: Option<String>,
    size: u64,
    remote_host: Option<String>,
    remote_ip: Option<String>,
    tls: Option<String>,
    reply: String,
    status: Option<String>,
    attempt: u32,
    /// The server that reported it, when the list is the database's history (`store.url`),
    /// this server's included; null when it is this server's memory.
    node: Option<String>,
}

impl From<crate::event::Event> for EventJson {
    fn from(e: crate::event::Event) -> Self {
        let detail = if e.reply.is_empty() {
            e.remote_host.clone().unwrap_or_default()
        } else {
            e.reply.clone()
        };
        EventJson {
            time: e.time_ms / 1000,
            kind: e.kind.as_str(),
            queue_id: e.message.id,
            recipient: e.recipient,
            detail,
            sender: e.message.sender,
            message_id: e.message.message_id,
            subject: e.message.subject,
            size: e.message.size,
            remote_host: e.remote_host,
            remote_ip: e.remote_ip.map(|ip| ip.to_string()),
            tls: e.tls,
            reply: e.reply,
            status: e.status,
            attempt: e.attempt,
            node: None,
        }
    }
}

pub async fn stats(_admin: Admin, State(state): State<AppState>) -> Json<StatsJson> {
    let (minutes, _, totals) = crate::stats::snapshot();
    let g = crate::stats::gauges();
    Json(StatsJson {
        node: state.shared.config().mail.node_name.clone(),
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

/// Newest first. With the history in the shared database (and on), the newest events of every
/// server, so the dashboard behind a load balancer shows the same list whichever server answers;
/// else, or while the database is away, this server's own (kept in memory).
pub async fn events(_admin: Admin, State(state): State<AppState>) -> Json<Vec<EventJson>> {
    if let Some(db) = crate::history::database() {
        if state.shared.config().mail.history_days > 0 {
            match db.recent_async(crate::stats::EVENTS).await {
                Ok(records) => {
                    return Json(records.iter().filter_map(EventJson::of_record).collect())
                }
                Err(e) => {
                    tracing::debug!("recent events from the history: {e}; showing this server's")
                }
            }
        }
    }
    let (_, events, _) = crate::stats::snapshot();
    Json(events.into_iter().map(EventJson::from).collect())
}

impl EventJson {
    /// A history record as the dashboard lists events (`None` for an event name this build
    /// does not know, written by a newer server).
    fn of_record(r: &crate::history::Record) -> Option<EventJson> {
        let kind = crate::event::Kind::parse(&r.event)?;
        let detail = if r.reply.is_empty() {
            r.remote_host.clone().unwrap_or_default()
        } else {
            r.reply.clone()
        };
        Some(EventJson {
            time: r.time_ms / 1000,
            kind: kind.as_str(),
            queue_id: r.id.clone(),
            recipient: r.recipient.clone(),
            detail,
            sender: r.sender.clone(),
            message_id: r.message_id.clone(),
            subject: r.subject.clone(),
            size: r.size,
            remote_host: r.remote_host.clone(),
            remote_ip: r.remote_ip.clone(),
            tls: r.tls.clone(),
            reply: r.reply.clone(),
            status: r.status.clone(),
            attempt: r.attempt,
            node: r.server.clone(),
        })
    }
}
