//! The one place an outcome is reported.
//!
//! Whatever decides a recipient's fate (the accept step, a delivery attempt, a POP3 session, an
//! administrator) builds an `event::Event` and hands it to [`emit`]; nothing else writes an outcome
//! to the log, counts it or shows it to the console. So every outcome is logged with its cause
//! (reply and enhanced status), counted exactly once and listed once, and a new consumer (the
//! delivery history) is one more line here rather than a hunt through the code.
//!
//! The delivery history (`history`) gets each batch here too, through a channel that never waits.
//!
//! Metrics keep the names the README documents: `jes_messages_accepted_total` counts messages (one
//! per distinct id among the `accepted` events of a batch), the `jes_recipients_*` counters count
//! recipients, an `expired` recipient is also a bounced one (it was bounced after the last try), and
//! `jes_delivery_latency_seconds` measures acceptance to relay.

use crate::event::{Event, Kind};

/// Reports one event.
pub fn emit(event: Event) {
    emit_all(vec![event]);
}

/// Reports the events one step produced about one message (e.g. every recipient of an accepted
/// message): each is logged and listed; the message counter moves once per message.
pub fn emit_all(events: Vec<Event>) {
    let mut accepted_ids: Vec<&str> = Vec::new();
    for event in &events {
        log(event);
        count(event);
        if event.kind == Kind::Accepted && !accepted_ids.contains(&event.message.id.as_str()) {
            accepted_ids.push(&event.message.id);
        }
    }
    for _ in &accepted_ids {
        metrics::counter!("jes_messages_accepted_total").increment(1);
    }
    crate::stats::messages_accepted(accepted_ids.len() as u64);
    // Never waits: a full channel drops the events and counts them (`jes_history_dropped_total`).
    crate::history::record(&events);
    crate::stats::record_events(events);
}

fn count(event: &Event) {
    match event.kind {
        Kind::Accepted => {}
        Kind::Refused => metrics::counter!("jes_recipients_refused_total").increment(1),
        Kind::DeliveredLocally => metrics::counter!("jes_recipients_delivered_total").increment(1),
        Kind::Delivered => {
            metrics::counter!("jes_recipients_delivered_total").increment(1);
            if let Some(secs) = event.latency_secs() {
                metrics::histogram!("jes_delivery_latency_seconds").record(secs);
            }
        }
        Kind::Deferred => metrics::counter!("jes_recipients_deferred_total").increment(1),
        Kind::Bounced | Kind::Expired => {
            metrics::counter!("jes_recipients_bounced_total").increment(1)
        }
        Kind::DelayNotice => metrics::counter!("jes_delay_notices_total").increment(1),
        Kind::DeletedAdmin => {
            metrics::counter!("jes_messages_deleted_total", "by" => "admin").increment(1)
        }
        Kind::Pop3Deleted => {
            metrics::counter!("jes_messages_deleted_total", "by" => "pop3").increment(1)
        }
        Kind::Pop3Retrieved => metrics::counter!("jes_messages_retrieved_total").increment(1),
        Kind::WebhookSent => {
            metrics::counter!("jes_webhook_calls_total", "result" => "success").increment(1)
        }
        Kind::WebhookFailed => {
            metrics::counter!("jes_webhook_calls_total", "result" => "failure").increment(1)
        }
        Kind::WebhookExpired => metrics::counter!("jes_webhook_expired_total").increment(1),
        Kind::WebhookDeleted => {
            metrics::counter!("jes_messages_deleted_total", "by" => "webhook").increment(1)
        }
        Kind::Held => metrics::counter!("jes_recipients_held_total").increment(1),
        Kind::Released => metrics::counter!("jes_recipients_released_total").increment(1),
    }
}

/// Every metric `count` moves, with its labels: registered at zero when the recorder is installed.
pub const COUNTERS: &[(&str, Option<(&str, &str)>)] = &[
    ("jes_messages_accepted_total", None),
    ("jes_recipients_refused_total", None),
    ("jes_recipients_delivered_total", None),
    ("jes_recipients_deferred_total", None),
    ("jes_recipients_bounced_total", None),
    ("jes_delay_notices_total", None),
    ("jes_messages_deleted_total", Some(("by", "admin"))),
    ("jes_messages_deleted_total", Some(("by", "pop3"))),
    ("jes_messages_retrieved_total", None),
    ("jes_webhook_calls_total", Some(("result", "success"))),
    ("jes_webhook_calls_total", Some(("result", "failure"))),
    ("jes_webhook_expired_total", None),
    ("jes_messages_deleted_total", Some(("by", "webhook"))),
    ("jes_recipients_held_total", None),
    ("jes_recipients_released_total", None),
];

/// Registers every counter `count` moves, and the history's dropped-events counter, at zero, so
/// that a scrape right after start shows each name (call once the recorder is installed).
pub fn register_metrics() {
    metrics::counter!(crate::history::DROPPED_METRIC).increment(0);
    for (name, label) in COUNTERS {
        match label {
            Some((k, v)) => metrics::counter!(*name, *k => *v).increment(0),
            None => metrics::counter!(*name).increment(0),
        }
    }
}

/// The log line: the kind, then who and what, then the cause. Failures are warnings, so that an
/// administrator who reads only warnings sees every bounce and its reason; a POP3 read is a debug
/// line (a poller reads every message it deletes, and the deletion is what matters).
fn log(e: &Event) {
    let m = &e.message;
    let from = format!("<{}>", m.sender);
    let to = format!("<{}>", e.recipient);
    let msgid = m.message_id.as_deref().unwrap_or("");
    let subject = m.subject.as_deref().unwrap_or("");
    let host = e.remote_host.as_deref().unwrap_or("");
    let ip = e.remote_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let client = e.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let session = e.session.as_deref().unwrap_or("");
    let tls = e.tls.as_deref().unwrap_or("none");
    let status = e.status.as_deref().unwrap_or("");
    macro_rules! line {
        ($level:ident) => {
            tracing::$level!(
                outcome = e.kind.as_str(), id = %m.id, from = %from, to = %to,
                size = m.size, msgid = %msgid, subject = ?subject, session = %session,
                client = %client, host = %host, ip = %ip, tls = %tls, attempt = e.attempt,
                status = %status, reply = ?e.reply, "{}", e.kind
            )
        };
    }
    match e.kind {
        Kind::Bounced | Kind::Expired | Kind::WebhookFailed => line!(warn),
        // Given up: the application never heard of the message (issue 18 asks for an ERROR).
        Kind::WebhookExpired => line!(error),
        Kind::Pop3Retrieved => line!(debug),
        _ => line!(info),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MessageFacts;

    #[test]
    fn accepted_counts_messages_once_and_events_per_recipient() {
        let facts = MessageFacts::of("4242", "a@x.test", b"Subject: s\r\n\r\nx\r\n", 1);
        let (_, before_events, before) = crate::stats::snapshot();
        let before_n = before_events
            .iter()
            .filter(|e| e.message.id == "4242")
            .count();
        emit_all(vec![
            Event::new(Kind::Accepted, &facts, "b@y.test"),
            Event::new(Kind::Accepted, &facts, "c@y.test"),
        ]);
        let (_, events, after) = crate::stats::snapshot();
        assert!(after.accepted > before.accepted);
        let mine = events.iter().filter(|e| e.message.id == "4242").count();
        assert_eq!(mine - before_n, 2);
    }
}
