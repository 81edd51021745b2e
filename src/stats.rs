//! What the server has done lately: Prometheus counters (through the `metrics` facade, so any
//! module can count without plumbing) and, for the console, a per-minute series of the last hour
//! and the most recent delivery events. Everything here is in memory and bounded; a restart
//! starts the series afresh (the queue and mailboxes on disk are the lasting record).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Minutes kept in the per-minute series.
pub const MINUTES: usize = 60;
/// Delivery events kept for the console.
pub const EVENTS: usize = 200;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Start of the minute, seconds since the epoch.
    pub start: u64,
    pub accepted: u64,
    pub delivered: u64,
    pub bounced: u64,
    pub deferred: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Delivered,
    Deferred,
    Bounced,
    DeliveredLocally,
}

impl EventKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Delivered => "delivered",
            EventKind::Deferred => "deferred",
            EventKind::Bounced => "bounced",
            EventKind::DeliveredLocally => "delivered-locally",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Seconds since the epoch.
    pub time: u64,
    pub kind: EventKind,
    pub queue_id: String,
    pub recipient: String,
    pub detail: String,
}

#[derive(Debug, Default)]
struct Recent {
    minutes: VecDeque<Minute>,
    events: VecDeque<Event>,
    totals: Minute,
}

fn recent() -> &'static Mutex<Recent> {
    static RECENT: OnceLock<Mutex<Recent>> = OnceLock::new();
    RECENT.get_or_init(Mutex::default)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn bump(f: impl Fn(&mut Minute)) {
    let minute = now_secs() / 60 * 60;
    let mut r = recent().lock().unwrap_or_else(|p| p.into_inner());
    if r.minutes.back().map(|m| m.start) != Some(minute) {
        r.minutes.push_back(Minute {
            start: minute,
            ..Minute::default()
        });
        while r.minutes.len() > MINUTES {
            r.minutes.pop_front();
        }
    }
    if let Some(m) = r.minutes.back_mut() {
        f(m);
    }
    f(&mut r.totals);
}

fn event(kind: EventKind, queue_id: &str, recipient: &str, detail: &str) {
    let mut r = recent().lock().unwrap_or_else(|p| p.into_inner());
    r.events.push_back(Event {
        time: now_secs(),
        kind,
        queue_id: queue_id.to_string(),
        recipient: recipient.to_string(),
        detail: detail.to_string(),
    });
    while r.events.len() > EVENTS {
        r.events.pop_front();
    }
}

/// A message was accepted over SMTP (answered 250).
pub fn accepted() {
    metrics::counter!("jes_messages_accepted_total").increment(1);
    bump(|m| m.accepted += 1);
}

/// A recipient's copy reached its destination; `latency_secs` from acceptance.
pub fn delivered(queue_id: &str, recipient: &str, host: &str, latency_secs: f64) {
    metrics::counter!("jes_recipients_delivered_total").increment(1);
    metrics::histogram!("jes_delivery_latency_seconds").record(latency_secs);
    bump(|m| m.delivered += 1);
    event(EventKind::Delivered, queue_id, recipient, host);
}

/// A recipient's copy went into a local mailbox.
pub fn delivered_locally(queue_id: &str, recipient: &str) {
    metrics::counter!("jes_recipients_delivered_total").increment(1);
    bump(|m| m.delivered += 1);
    event(EventKind::DeliveredLocally, queue_id, recipient, "");
}

/// A recipient failed for good and was bounced to the sender.
pub fn bounced(queue_id: &str, recipient: &str, reason: &str) {
    metrics::counter!("jes_recipients_bounced_total").increment(1);
    bump(|m| m.bounced += 1);
    event(EventKind::Bounced, queue_id, recipient, reason);
}

/// A recipient's delivery failed for now and will be retried.
pub fn deferred(queue_id: &str, recipient: &str, reason: &str) {
    metrics::counter!("jes_recipients_deferred_total").increment(1);
    bump(|m| m.deferred += 1);
    event(EventKind::Deferred, queue_id, recipient, reason);
}

/// Sessions open now, by protocol, and the queue as the runner last saw it: kept here as well as
/// in the gauges because the `metrics` facade cannot be read back, and the console wants them.
static SMTP_OPEN: AtomicI64 = AtomicI64::new(0);
static POP3_OPEN: AtomicI64 = AtomicI64::new(0);
static QUEUE_DEPTH: AtomicU64 = AtomicU64::new(0);
static QUEUE_OLDEST_SECS: AtomicU64 = AtomicU64::new(0);

fn open_counter(protocol: &str) -> &'static AtomicI64 {
    if protocol == "pop3" {
        &POP3_OPEN
    } else {
        &SMTP_OPEN
    }
}

/// A session opened or closed (`protocol`: "smtp" or "pop3").
pub fn session_opened(protocol: &'static str) {
    open_counter(protocol).fetch_add(1, Ordering::Relaxed);
    metrics::gauge!("jes_sessions_open", "protocol" => protocol).increment(1.0);
}

pub fn session_closed(protocol: &'static str) {
    open_counter(protocol).fetch_sub(1, Ordering::Relaxed);
    metrics::gauge!("jes_sessions_open", "protocol" => protocol).decrement(1.0);
}

/// A TLS handshake finished (`ok`) or failed.
pub fn tls_handshake(ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    metrics::counter!("jes_tls_handshakes_total", "outcome" => outcome).increment(1);
}

/// A login (POP3 or SMTP AUTH) was refused.
pub fn auth_failure() {
    metrics::counter!("jes_auth_failures_total").increment(1);
}

/// Queue depth and the age of the oldest message, set by the queue runner.
pub fn queue_state(depth: usize, oldest_age_secs: f64) {
    QUEUE_DEPTH.store(depth as u64, Ordering::Relaxed);
    QUEUE_OLDEST_SECS.store(oldest_age_secs as u64, Ordering::Relaxed);
    metrics::gauge!("jes_queue_depth").set(depth as f64);
    metrics::gauge!("jes_queue_oldest_age_seconds").set(oldest_age_secs);
}

/// The per-minute series (oldest first, minutes without events left out), the recent events
/// (newest first) and the totals since start.
pub fn snapshot() -> (Vec<Minute>, Vec<Event>, Minute) {
    let r = recent().lock().unwrap_or_else(|p| p.into_inner());
    (
        r.minutes.iter().copied().collect(),
        r.events.iter().rev().cloned().collect(),
        r.totals,
    )
}

/// Gauges the console shows beside the series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub smtp_sessions: u64,
    pub pop3_sessions: u64,
    pub queue_depth: u64,
    pub queue_oldest_age_secs: u64,
    /// Seconds since `install_recorder` (server start).
    pub uptime_secs: u64,
}

static STARTED: OnceLock<u64> = OnceLock::new();

pub fn gauges() -> Gauges {
    let open = |a: &AtomicI64| u64::try_from(a.load(Ordering::Relaxed)).unwrap_or(0);
    let started = STARTED.get().copied().unwrap_or_else(now_secs);
    Gauges {
        smtp_sessions: open(&SMTP_OPEN),
        pop3_sessions: open(&POP3_OPEN),
        queue_depth: QUEUE_DEPTH.load(Ordering::Relaxed),
        queue_oldest_age_secs: QUEUE_OLDEST_SECS.load(Ordering::Relaxed),
        uptime_secs: now_secs().saturating_sub(started),
    }
}

/// Latency buckets (seconds): a local relay takes milliseconds, a deferred message hours.
const LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process; later calls do nothing) and registers every
/// series at zero, so that a scrape right after start already shows each name: dashboards and
/// alerts should not have to tell "no such metric" from "nothing happened yet".
pub fn install_recorder() {
    let _ = STARTED.set(now_secs());
    if PROMETHEUS.get().is_some() {
        return;
    }
    let builder = PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full("jes_delivery_latency_seconds".into()),
        LATENCY_BUCKETS,
    );
    let handle = match builder.and_then(|b| b.install_recorder()) {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!("metrics are off: cannot install the Prometheus recorder: {e}");
            return;
        }
    };
    let _ = PROMETHEUS.set(handle);
    for name in [
        "jes_messages_accepted_total",
        "jes_recipients_delivered_total",
        "jes_recipients_bounced_total",
        "jes_recipients_deferred_total",
        "jes_auth_failures_total",
    ] {
        metrics::counter!(name).increment(0);
    }
    for outcome in ["ok", "failed"] {
        metrics::counter!("jes_tls_handshakes_total", "outcome" => outcome).increment(0);
    }
    for protocol in ["smtp", "pop3"] {
        metrics::gauge!("jes_sessions_open", "protocol" => protocol).increment(0.0);
    }
    metrics::gauge!("jes_queue_depth").set(0.0);
    metrics::gauge!("jes_queue_oldest_age_seconds").set(0.0);
    let _ = metrics::histogram!("jes_delivery_latency_seconds");
}

/// The Prometheus text exposition of every metric, `None` when no recorder is installed.
pub fn render_prometheus() -> Option<String> {
    let handle = PROMETHEUS.get()?;
    // Histograms are drained into their buckets on upkeep; a scrape is a fine time for it.
    handle.run_upkeep();
    Some(handle.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_into_the_current_minute_and_keeps_events_bounded() {
        let (_, _, before) = snapshot();
        accepted();
        bounced("1", "x@y.test", "550 5.1.1 no such user");
        for i in 0..(EVENTS + 10) {
            deferred("2", &format!("r{i}@y.test"), "451 later");
        }
        let (minutes, events, totals) = snapshot();
        assert!(totals.accepted > before.accepted);
        assert!(totals.bounced > before.bounced);
        assert!(minutes
            .last()
            .is_some_and(|m| m.accepted >= 1 && m.deferred >= EVENTS as u64));
        assert_eq!(events.len(), EVENTS, "events are bounded");
        assert_eq!(
            events[0].recipient,
            format!("r{}@y.test", EVENTS + 9),
            "newest first"
        );
    }
}
