//! The queue runner: takes queued messages to their recipients.
//!
//! Design. A message enters the runner in one of three ways: the accept step hands over the id
//! of a message it just queued (no storage access needed to notice it), the periodic look at the
//! queue (`Queue::arrivals`) finds one put there from outside (JES's spool, a restored backup),
//! or a retry request (`Queue::retry_requests`: the console, `jes queue retry`). From then on the
//! message lives in `queue::Schedule`, an in-memory timer heap on the monotonic clock: a deferred
//! message costs a heap entry while it waits and nothing reads it until it is due. Both looks are
//! cheap when nothing changed (the file backend compares modification times before listing), so
//! with 100,000 deferred messages the idle server reads no files.
//!
//! When a message is due, an attempt runs on its own task, bounded by `smtpdelivery.concurrency`.
//! The attempt takes the message with a lease (so `jes queue delete`, or another server sharing
//! the queue, waits for it), delivers (see `attempt`), records the new state, and tells the
//! runner when to try again, if ever. A message is never in two attempts of this runner at once:
//! it is out of the schedule while it is in flight; the lease guards against everyone else.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::attempt::{self, Outcome};
use super::remote::Remote;
use crate::config::Config;
use crate::event::now_ms;
use crate::queue::schedule::{due_instant, Schedule};
use crate::queue::{Queue, RetryRequest};
use crate::store::Mailboxes;

/// How often the retry folder is checked (one `stat`).
const RETRY_POLL: Duration = Duration::from_secs(1);
/// How often (in seconds) a shared queue is counted for its gauges: a query of the whole
/// queue table, so not every second on every server.
const SHARED_DEPTH_EVERY: u64 = 5;

/// What the runner needs from the server.
pub struct RunnerContext {
    pub config: Arc<dyn Fn() -> Arc<Config> + Send + Sync>,
    pub queue: Arc<dyn Queue>,
    pub mailboxes: Arc<dyn Mailboxes>,
}

/// A handle for the SMTP receiver: new queue ids go here.
#[derive(Clone)]
pub struct RunnerHandle {
    tx: mpsc::UnboundedSender<String>,
}

impl RunnerHandle {
    /// Tells the runner about a queue file just written.
    pub fn queued(&self, id: String) {
        // The runner only stops at shutdown; a file it misses is found at the next start.
        let _ = self.tx.send(id);
    }
}

pub fn channel() -> (RunnerHandle, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (RunnerHandle { tx }, rx)
}

struct Runner {
    ctx: RunnerContext,
    schedule: Schedule,
    in_flight: HashSet<String>,
    /// When each known message was received (epoch ms): queue depth and oldest age for metrics.
    received: HashMap<String, u64>,
    /// Ids an attempt is working on that were asked to retry meanwhile: due again at once.
    retry_after_flight: HashSet<String>,
    /// The next-attempt time this runner last knew to be stored for each message (read when
    /// it found the message, or written by its own attempt): a stored time that differs, and
    /// is still ahead, was written by another server's attempt since (see `attempt::run`).
    stored_next: HashMap<String, u64>,
    remote: Arc<Remote>,
    concurrency: usize,
    /// Who this runner is to the queue's leases: `node.name:pid`.
    owner: Arc<str>,
    /// Whether the queue is shared with other servers (its gauges are the backend's count);
    /// true until the queue says otherwise.
    shared_queue: bool,
    /// Seconds counted by `every_second`, to count a shared queue less often.
    seconds: u64,
}

impl Runner {
    /// Schedules messages found in the queue by reading their times once.
    async fn discover(&mut self, ids: Vec<String>) {
        let fresh: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.schedule.contains(id) && !self.in_flight.contains(id))
            .collect();
        if fresh.is_empty() {
            return;
        }
        let found = self.ctx.queue.times(fresh).await;
        let (now_ms, now) = (now_ms(), Instant::now());
        for (id, next, received) in found {
            let at = due_instant(next, now_ms, now);
            self.received.insert(id.clone(), received);
            self.stored_next.insert(id.clone(), next);
            self.schedule.insert(id, at);
        }
    }

    fn retry_now(&mut self, id: String) {
        if self.in_flight.contains(&id) {
            self.retry_after_flight.insert(id);
        } else {
            self.schedule.insert(id, Instant::now());
        }
    }
}

/// The attempts running now, and which message each works on (to put it back if its task panics).
type Attempts = JoinSet<(String, Outcome, Vec<String>)>;
type AttemptIds = HashMap<tokio::task::Id, String>;

/// Runs until `stop`. Attempts in flight at shutdown are abandoned; their messages stay queued
/// and are tried again at the next start (at least once, never lost).
pub async fn run(
    ctx: RunnerContext,
    mut new_ids: mpsc::UnboundedReceiver<String>,
    mut stop: watch::Receiver<bool>,
) {
    let config = (ctx.config)();
    let mut runner = Runner::new(ctx, &config);
    // Held (not just its address) so a reload can never be mistaken for the old one.
    let mut config_seen = config;
    runner.start().await;

    let mut attempts = Attempts::new();
    let mut attempt_ids = AttemptIds::new();
    let mut retry_tick = tokio::time::interval(RETRY_POLL);
    let mut scan_every = scan_interval(&config_seen);
    let mut scan_tick = tokio::time::interval(scan_every);
    loop {
        runner.start_due(&mut attempts, &mut attempt_ids);
        let sleep_until = runner.sleep_until();
        tokio::select! {
            _ = stop.changed() => {
                attempts.abort_all();
                return;
            }
            _ = tokio::time::sleep_until(sleep_until.into()) => {}
            Some(id) = new_ids.recv() => runner.arrived(id),
            Some(done) = attempts.join_next_with_id(), if !attempts.is_empty() => {
                match done {
                    Ok((task, (id, outcome, notices))) => {
                        attempt_ids.remove(&task);
                        runner.finished(id, outcome, notices);
                    }
                    // A panic in an attempt (a bug): its message may still be leased, so it
                    // comes back once the lease can be taken over.
                    Err(e) => runner.panicked(attempt_ids.remove(&e.id()), &e),
                }
            }
            _ = retry_tick.tick() => {
                runner.every_second(&mut config_seen).await;
                // smtpdelivery.interval applies on reload, like the other delivery keys.
                if scan_interval(&config_seen) != scan_every {
                    scan_every = scan_interval(&config_seen);
                    scan_tick = tokio::time::interval(scan_every);
                }
            }
            _ = scan_tick.tick() => runner.scan().await,
        }
    }
}

fn scan_interval(config: &Config) -> Duration {
    config.mail.delivery_interval.max(Duration::from_secs(1))
}

impl Runner {
    fn new(ctx: RunnerContext, config: &Config) -> Runner {
        Runner {
            ctx,
            schedule: Schedule::new(),
            in_flight: HashSet::new(),
            received: HashMap::new(),
            retry_after_flight: HashSet::new(),
            stored_next: HashMap::new(),
            remote: Arc::new(Remote::new(config)),
            concurrency: config.mail.delivery_concurrency.max(1),
            owner: format!("{}:{}", config.mail.node_name, std::process::id()).into(),
            shared_queue: true,
            seconds: 0,
        }
    }

    /// What is queued at the start, and the retry requests left from before it.
    async fn start(&mut self) {
        match self.ctx.queue.arrivals().await {
            Ok(ids) => {
                let ids = ids.unwrap_or_default();
                let n = ids.len();
                self.discover(ids).await;
                if n > 0 {
                    let at = self.ctx.queue.location();
                    tracing::info!("queue: {n} messages waiting in {at}");
                }
            }
            Err(e) => tracing::error!("cannot list the queue {}: {e}", self.ctx.queue.location()),
        }
        self.take_retry_requests().await;
    }

    /// Applies the queue's retry requests. Arrivals another server announced are scheduled by
    /// their stored times, not now: by the time the notice is read, the server that queued the
    /// message may have tried it already and set its next attempt a minute ahead.
    async fn take_retry_requests(&mut self) {
        let mut arrived = Vec::new();
        for request in self.ctx.queue.retry_requests().await {
            match request {
                RetryRequest::Arrived(id) => arrived.push(id),
                request => apply_retry(self, request),
            }
        }
        self.discover(arrived).await;
    }

    /// Starts every due attempt that fits under the concurrency cap.
    fn start_due(&mut self, attempts: &mut Attempts, attempt_ids: &mut AttemptIds) {
        let now = Instant::now();
        while self.in_flight.len() < self.concurrency {
            let Some(id) = self.schedule.pop_due(now) else {
                break;
            };
            self.in_flight.insert(id.clone());
            let known_next = self.stored_next.get(&id).copied();
            let config = (self.ctx.config)();
            let queue = self.ctx.queue.clone();
            let mailboxes = self.ctx.mailboxes.clone();
            let remote = self.remote.clone();
            let owner = self.owner.clone();
            let task_id = id.clone();
            let task = attempts.spawn(async move {
                let mailboxes = mailboxes.as_ref();
                let (outcome, notices) =
                    attempt::run(&id, config, queue, mailboxes, &remote, &owner, known_next).await;
                (id, outcome, notices)
            });
            attempt_ids.insert(task.id(), task_id);
        }
    }

    /// When to wake if nothing else happens: the next due message, if a slot is free for it.
    fn sleep_until(&mut self) -> Instant {
        match self.schedule.next_due() {
            Some(at) if self.in_flight.len() < self.concurrency => at,
            _ => Instant::now() + Duration::from_secs(3600),
        }
    }

    /// A message the accept step just queued: due now.
    fn arrived(&mut self, id: String) {
        self.received.insert(id.clone(), now_ms());
        self.schedule.insert(id, Instant::now());
    }

    /// An attempt ended: schedule what it says, and the notices it queued (due now).
    fn finished(&mut self, id: String, outcome: Outcome, notices: Vec<String>) {
        self.in_flight.remove(&id);
        for notice in notices {
            self.arrived(notice);
        }
        let again = self.retry_after_flight.remove(&id);
        match outcome {
            Outcome::Finished => {
                self.received.remove(&id);
                self.stored_next.remove(&id);
            }
            Outcome::RetryAt(next_ms) => {
                self.stored_next.insert(id.clone(), next_ms);
                let at = if again {
                    Instant::now()
                } else {
                    due_instant(next_ms, now_ms(), Instant::now())
                };
                self.schedule.insert(id, at);
            }
            Outcome::Busy => {
                self.schedule
                    .insert(id, Instant::now() + Duration::from_secs(5));
            }
        }
    }

    fn panicked(&mut self, id: Option<String>, e: &tokio::task::JoinError) {
        if let Some(id) = id {
            tracing::error!(queue_id = %id, "delivery attempt failed: {e}");
            self.in_flight.remove(&id);
            self.schedule
                .insert(id, Instant::now() + attempt::LEASE_TTL);
        }
    }

    /// The queue's gauges: this runner's own count for a queue it owns; for a shared one the
    /// backend's count of the whole queue, as cluster gauges, every `SHARED_DEPTH_EVERY` s.
    async fn queue_gauges(&mut self) {
        let now = now_ms();
        if self.shared_queue {
            self.seconds = self.seconds.wrapping_add(1);
            if self.seconds % SHARED_DEPTH_EVERY != 1 {
                return;
            }
            match self.ctx.queue.shared_depth().await {
                Some(Ok((depth, oldest))) => {
                    let age = oldest.map_or(0, |t| now.saturating_sub(t));
                    crate::stats::cluster_queue_state(depth, age as f64 / 1000.0);
                }
                Some(Err(e)) => tracing::debug!("cannot count the shared queue: {e}"),
                None => self.shared_queue = false,
            }
            return;
        }
        let oldest = self
            .received
            .values()
            .min()
            .map(|r| now.saturating_sub(*r))
            .unwrap_or(0);
        crate::stats::queue_state(self.received.len(), oldest as f64 / 1000.0);
    }

    /// The once-a-second chores: queue gauges, retry requests, a reloaded configuration (which
    /// may change smart hosts, TLS or DNS settings, and the concurrency).
    async fn every_second(&mut self, config_seen: &mut Arc<Config>) {
        self.queue_gauges().await;
        self.take_retry_requests().await;
        let config = (self.ctx.config)();
        if !Arc::ptr_eq(&config, config_seen) {
            self.remote = Arc::new(Remote::new(&config));
            self.concurrency = config.mail.delivery_concurrency.max(1);
            *config_seen = config;
        }
    }

    /// The periodic look for messages put into the queue from outside.
    async fn scan(&mut self) {
        match self.ctx.queue.arrivals().await {
            Ok(Some(ids)) => self.discover(ids).await,
            Ok(None) => {}
            Err(e) => tracing::error!("cannot list the queue: {e}"),
        }
    }
}

fn apply_retry(runner: &mut Runner, request: RetryRequest) {
    match request {
        RetryRequest::One(id) => {
            tracing::info!("queue: retry of {id} requested");
            runner.retry_now(id);
        }
        // `take_retry_requests` reads these with their times; due now otherwise.
        RetryRequest::Arrived(id) => {
            if !runner.schedule.contains(&id) && !runner.in_flight.contains(&id) {
                runner.received.insert(id.clone(), now_ms());
                runner.schedule.insert(id, Instant::now());
            }
        }
        RetryRequest::All => {
            tracing::info!("queue: retry of every message requested");
            // In flight too: the attempt's new time overwrites the request's "now", and the
            // other servers then leave the message to this one.
            let in_flight: Vec<String> = runner.in_flight.iter().cloned().collect();
            for id in runner.schedule.ids().into_iter().chain(in_flight) {
                runner.retry_now(id);
            }
        }
    }
}
