//! What the server has done lately: Prometheus counters (through the `metrics` facade, so any
//! module can count without plumbing) and, for the console, a per-minute series of the last hour
//! and the most recent delivery events. Everything here is in memory and bounded; a restart
//! starts the series afresh (the queue and mailboxes on disk are the lasting record).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::event::{Event, Kind};

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

/// Messages accepted over SMTP (answered 250), for the console's series: called by
/// `outcome::emit_all`, which counts each message once.
pub fn messages_accepted(n: u64) {
    if n > 0 {
        bump(|m| m.accepted += n);
    }
}

/// Keeps reported outcome events for the console (the newest `EVENTS`) and counts them into the
/// per-minute series: called by `outcome::emit_all` only.
pub fn record_events(events: Vec<Event>) {
    for e in &events {
        match e.kind {
            Kind::Delivered | Kind::DeliveredLocally => bump(|m| m.delivered += 1),
            Kind::Bounced | Kind::Expired => bump(|m| m.bounced += 1),
            Kind::Deferred => bump(|m| m.deferred += 1),
            _ => {}
        }
    }
    let mut r = recent().lock().unwrap_or_else(|p| p.into_inner());
    for e in events {
        r.events.push_back(e);
    }
    while r.events.len() > EVENTS {
        r.events.pop_front();
    }
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

/// `n` message bodies nothing referred to were removed from the database by a sweep.
pub fn bodies_swept(n: u64) {
    metrics::counter!("jes_bodies_swept_total").increment(n);
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

/// The whole queue's depth and oldest age when several servers share it (`store.url`): gauges of
/// their own names, so that summing a gauge over the servers does not count the queue once per
/// server. The console shows the same numbers.
pub fn cluster_queue_state(depth: usize, oldest_age_secs: f64) {
    QUEUE_DEPTH.store(depth as u64, Ordering::Relaxed);
    QUEUE_OLDEST_SECS.store(oldest_age_secs as u64, Ordering::Relaxed);
    metrics::gauge!("jes_cluster_queue_depth").set(depth as f64);
    metrics::gauge!("jes_cluster_queue_oldest_age_seconds").set(oldest_age_secs);
}

/// How many servers on the shared database are up (`cluster::State::Up`), as this server last read
/// the servers' table.
pub fn cluster_servers_up(n: usize) {
    metrics::gauge!("jes_cluster_servers_up").set(n as f64);
}

/// The epoch second `install_recorder` ran (the server's start).
pub fn started_secs() -> u64 {
    STARTED.get().copied().unwrap_or_else(now_secs)
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
/// alerts should not have to tell "no such metric" from "nothing happened yet". With a queue
/// several servers share (`shared_queue`), the queue's gauges are the cluster ones
/// (`cluster_queue_state`) and the per-server names are not shown: they would stay at zero.
pub fn install_recorder(shared_queue: bool) {
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
    metrics::counter!("jes_auth_failures_total").increment(0);
    for outcome in ["ok", "failed"] {
        metrics::counter!("jes_tls_handshakes_total", "outcome" => outcome).increment(0);
    }
    for protocol in ["smtp", "pop3"] {
        metrics::gauge!("jes_sessions_open", "protocol" => protocol).increment(0.0);
    }
    if shared_queue {
        metrics::gauge!("jes_cluster_queue_depth").set(0.0);
        metrics::gauge!("jes_cluster_queue_oldest_age_seconds").set(0.0);
        metrics::gauge!("jes_cluster_servers_up").set(0.0);
    } else {
        metrics::gauge!("jes_queue_depth").set(0.0);
        metrics::gauge!("jes_queue_oldest_age_seconds").set(0.0);
    }
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
        let facts = crate::event::MessageFacts::default();
        messages_accepted(1);
        record_events(vec![Event::new(Kind::Bounced, &facts, "x@y.test")]);
        let deferred: Vec<Event> = (0..(EVENTS + 10))
            .map(|i| Event::new(Kind::Deferred, &facts, &format!("r{i}@y.test")))
            .collect();
        record_events(deferred);
        let (minutes, events, totals) = snapshot();
        assert!(totals.accepted > before.accepted);
        assert!(totals.bounced > before.bounced);
        assert!(minutes
            .last()
            .is_some_and(|m| m.accepted >= 1 && m.deferred >= EVENTS as u64));
        assert_eq!(events.len(), EVENTS, "events are bounded");
        // Other tests report events too: the newest of ours comes before our older ones.
        let ours: Vec<&str> = events
            .iter()
            .filter(|e| e.kind == Kind::Deferred && e.recipient.starts_with('r'))
            .map(|e| e.recipient.as_str())
            .collect();
        let newest = format!("r{}@y.test", EVENTS + 9);
        let older = format!("r{}@y.test", EVENTS + 8);
        assert_eq!(ours.first().copied(), Some(newest.as_str()), "newest first");
        assert_eq!(ours.get(1).copied(), Some(older.as_str()));
    }
}
