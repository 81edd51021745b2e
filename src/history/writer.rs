//! The feed and the one writer thread.
//!
//! [`record`] runs on whatever thread reported the outcome, often an async worker: it only tries
//! to put the events on a bounded channel and never waits. The writer thread gathers what arrives
//! into a batch and commits it once the batch is a second old or holds `BATCH_MAX` events, so a
//! crash loses at most the last second of history. Between batches it prunes events older than
//! `history.days`, a bounded chunk at a time so that pruning a large backlog never starves
//! appends. The settings are atomics: a reload changes them without touching the thread.
//!
//! The store is the file or the database (`super::database`). A database can be away for a
//! while (a restart, a fail-over): then the writer keeps its batch and tries it again, first after
//! a second and then less often, while it gathers at most `BATCH_MAX` events; beyond that it
//! leaves the channel alone, which fills and drops further events (counted) instead of growing
//! memory. It says so once in the log when the trouble starts and once when it ends, not at every
//! try. An error that is not the database being away (the statement refused) drops the batch.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{db_path, HistoryError, HistoryStore, Record, SqliteHistory, BATCH_MAX};
use crate::event::{now_ms, Event};

/// The counter of events dropped because the writer fell behind (or is gone).
pub const DROPPED_METRIC: &str = "jes_history_dropped_total";
/// Batches of events (one `emit_all` each) the channel holds before events are dropped.
const CHANNEL_CAPACITY: usize = 16_384;
/// Longest time an event waits in the writer before its batch is committed.
const BATCH_AGE: Duration = Duration::from_secs(1);
/// How often old events are looked for.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Most events one pruning step removes.
const PRUNE_CHUNK: usize = 5_000;
const DAY_MS: u64 = 86_400_000;
/// The first wait before a batch the database did not take is tried again; it doubles up to
/// `RETRY_MAX`, so a database back after an outage gets the history within seconds.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(8);

enum Msg {
    Events(Vec<Event>),
    /// Commit what is pending, close the database (its `-wal` and `-shm` files go), then answer.
    Close(SyncSender<()>),
}

static FEED: OnceLock<SyncSender<Msg>> = OnceLock::new();
static ON: AtomicBool = AtomicBool::new(false);
static SUBJECTS: AtomicBool = AtomicBool::new(true);
static DAYS: AtomicU32 = AtomicU32::new(30);

/// Applies `history.days` and `history.subjects` (at start and after each reload). The first time
/// history is on, opens the store (the database named by `super::use_database`, else `history.db`
/// in `store_dir`) and starts the writer thread: blocking work, done at start or in the reload
/// task, never on the mail path.
pub fn configure(store_dir: &Path, days: u32, subjects: bool) -> Result<(), HistoryError> {
    DAYS.store(days, Ordering::Relaxed);
    SUBJECTS.store(subjects, Ordering::Relaxed);
    if days == 0 {
        ON.store(false, Ordering::Relaxed);
        return Ok(());
    }
    if FEED.get().is_none() {
        let path = db_path(store_dir);
        let store: Box<dyn HistoryStore> = match super::database() {
            Some(db) => Box::new(db.clone()),
            None => Box::new(SqliteHistory::create(&path)?),
        };
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        std::thread::Builder::new()
            .name("jes-history".into())
            .spawn(move || Writer::new(store).run(rx))
            .map_err(|source| HistoryError::Io { path, source })?;
        let _ = FEED.set(tx);
    }
    ON.store(true, Ordering::Relaxed);
    Ok(())
}

/// Hands reported events to the writer without waiting: dropped and counted when it is behind.
/// Called by `outcome::emit_all` only.
pub fn record(events: &[Event]) {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    if let Some(feed) = FEED.get() {
        offer(feed, events);
    }
}

fn offer(feed: &SyncSender<Msg>, events: &[Event]) -> bool {
    match feed.try_send(Msg::Events(events.to_vec())) {
        Ok(()) => true,
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            metrics::counter!(DROPPED_METRIC).increment(events.len() as u64);
            false
        }
    }
}

/// Commits what the writer holds and closes the history, waiting at most `wait` (a clean
/// shutdown keeps the last second of history too). Blocking: call it from a blocking thread.
pub fn close(wait: Duration) {
    let Some(feed) = FEED.get() else { return };
    let (tx, rx) = sync_channel(1);
    let deadline = Instant::now() + wait;
    let mut msg = Msg::Close(tx);
    loop {
        match feed.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return,
        }
    }
    let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

/// A batch the store did not take because it was away: when to try again.
struct Retry {
    at: Instant,
    delay: Duration,
    since: Instant,
}

/// The writer thread's state.
struct Writer {
    store: Box<dyn HistoryStore>,
    batch: Vec<Record>,
    batch_started: Instant,
    retry: Option<Retry>,
    next_prune: Instant,
    pruning: bool,
}

impl Writer {
    fn new(store: Box<dyn HistoryStore>) -> Writer {
        Writer {
            store,
            batch: Vec::new(),
            batch_started: Instant::now(),
            retry: None,
            next_prune: Instant::now(),
            pruning: false,
        }
    }

    /// Until `Close` or the feed's end.
    fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let due = match &self.retry {
                Some(r) => r.at,
                None if !self.batch.is_empty() => self.batch_started + BATCH_AGE,
                None if self.pruning => Instant::now(),
                None => self.next_prune,
            };
            let wait = due.saturating_duration_since(Instant::now());
            if self.retry.is_some() && self.batch.len() >= BATCH_MAX {
                // Holding all it may while the store is away: what comes now waits in the
                // channel, which drops (and counts) once it is full.
                std::thread::sleep(wait);
            } else {
                match rx.recv_timeout(wait) {
                    Ok(Msg::Events(events)) => self.add(&events),
                    Ok(Msg::Close(done)) => {
                        self.finish();
                        drop(self.store);
                        let _ = done.try_send(());
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.finish();
                        return;
                    }
                }
            }
            let ready = match &self.retry {
                Some(r) => Instant::now() >= r.at,
                None => self.batch.len() >= BATCH_MAX || self.batch_started.elapsed() >= BATCH_AGE,
            };
            if ready {
                self.commit();
            }
            if self.batch.is_empty() && (self.pruning || Instant::now() >= self.next_prune) {
                if !self.pruning {
                    self.next_prune = Instant::now() + PRUNE_EVERY;
                }
                self.pruning = prune_step(self.store.as_mut());
            }
        }
    }

    fn add(&mut self, events: &[Event]) {
        if self.batch.is_empty() {
            self.batch_started = Instant::now();
        }
        let subjects = SUBJECTS.load(Ordering::Relaxed);
        self.batch
            .extend(events.iter().map(|e| Record::of(e, subjects)));
    }

    /// The last commit: what the store does not take now is dropped (and counted).
    fn finish(&mut self) {
        self.commit();
        if !self.batch.is_empty() {
            metrics::counter!(DROPPED_METRIC).increment(self.batch.len() as u64);
            self.batch.clear();
        }
    }

    /// Stores the batch; keeps it for another try when the store is away.
    fn commit(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        match self.store.append(&self.batch) {
            Ok(()) => {
                if let Some(r) = self.retry.take() {
                    tracing::info!(
                        "delivery history: the database is back after {}s; stored the {} events kept meanwhile",
                        r.since.elapsed().as_secs(),
                        self.batch.len()
                    );
                }
            }
            Err(e) if e.is_transient() => {
                let retry = match self.retry.take() {
                    None => {
                        tracing::warn!(
                            "delivery history: cannot store events ({e}); keeping up to {BATCH_MAX} and trying again; \
                             events beyond that are dropped and counted in {DROPPED_METRIC} until it works"
                        );
                        Retry {
                            at: Instant::now() + RETRY_FIRST,
                            delay: RETRY_FIRST,
                            since: Instant::now(),
                        }
                    }
                    Some(r) => {
                        tracing::debug!("delivery history: still cannot store events: {e}");
                        let delay = (r.delay * 2).min(RETRY_MAX);
                        Retry {
                            at: Instant::now() + delay,
                            delay,
                            since: r.since,
                        }
                    }
                };
                self.retry = Some(retry);
                return;
            }
            Err(e) => {
                tracing::warn!(
                    "delivery history: cannot store {} events: {e}",
                    self.batch.len()
                );
                metrics::counter!(DROPPED_METRIC).increment(self.batch.len() as u64);
                self.retry = None;
            }
        }
        self.batch.clear();
    }
}

/// Removes one chunk of expired events; whether more may be left.
fn prune_step(store: &mut dyn HistoryStore) -> bool {
    let days = DAYS.load(Ordering::Relaxed);
    if days == 0 {
        return false;
    }
    let before = now_ms().saturating_sub(u64::from(days) * DAY_MS);
    match store.prune(before, PRUNE_CHUNK) {
        Ok(n) => {
            if n > 0 {
                tracing::debug!("delivery history: removed {n} events older than {days} days");
            }
            n == PRUNE_CHUNK
        }
        Err(e) => {
            tracing::warn!("delivery history: cannot remove old events: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Kind, MessageFacts};

    #[test]
    fn a_full_channel_drops_and_counts_without_waiting() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let (tx, _rx) = sync_channel(1);
        let facts = MessageFacts::of("1", "a@x.test", b"Subject: s\r\n\r\n", 0);
        let events = vec![
            Event::new(Kind::Accepted, &facts, "b@y.test"),
            Event::new(Kind::Accepted, &facts, "c@y.test"),
        ];
        let count = || {
            handle
                .render()
                .lines()
                .find(|l| l.starts_with(DROPPED_METRIC))
                .map(str::to_string)
        };
        metrics::with_local_recorder(&recorder, || {
            assert!(offer(&tx, &events));
            assert_eq!(count(), None);
            let started = Instant::now();
            assert!(!offer(&tx, &events));
            assert!(started.elapsed() < Duration::from_millis(100));
        });
        assert_eq!(count().as_deref(), Some("jes_history_dropped_total 2"));
        drop(_rx);
        metrics::with_local_recorder(&recorder, || assert!(!offer(&tx, &events[..1])));
        assert_eq!(count().as_deref(), Some("jes_history_dropped_total 3"));
    }

    /// A store that is away for the first `away` appends, then takes everything.
    struct Flaky {
        away: usize,
        tries: std::sync::Arc<std::sync::Mutex<Vec<(Instant, usize)>>>,
        stored: std::sync::Arc<std::sync::Mutex<Vec<Record>>>,
    }

    impl HistoryStore for Flaky {
        fn append(&mut self, records: &[Record]) -> Result<(), HistoryError> {
            self.tries
                .lock()
                .unwrap()
                .push((Instant::now(), records.len()));
            if self.away > 0 {
                self.away -= 1;
                return Err(HistoryError::Database {
                    location: "test".into(),
                    why: "connection refused".into(),
                    transient: true,
                });
            }
            self.stored.lock().unwrap().extend_from_slice(records);
            Ok(())
        }
        fn query(
            &self,
            _: &super::super::Query,
            _: u64,
            _: Option<usize>,
        ) -> Result<Vec<Record>, HistoryError> {
            Ok(Vec::new())
        }
        fn prune(&mut self, _: u64, _: usize) -> Result<usize, HistoryError> {
            Ok(0)
        }
        fn forget(&mut self, _: &str) -> Result<usize, HistoryError> {
            Ok(0)
        }
    }

    #[test]
    fn while_the_store_is_away_the_batch_is_kept_bounded_and_tried_again() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let tries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stored = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Flaky {
            away: 2,
            tries: tries.clone(),
            stored: stored.clone(),
        };
        // A channel of 4 emits in front of the writer, so that the bound shows quickly.
        let (tx, rx) = sync_channel(4);
        let writer = std::thread::spawn(move || {
            metrics::with_local_recorder(&recorder, || Writer::new(Box::new(store)).run(rx))
        });
        let facts = MessageFacts::of("1", "a@x.test", b"Subject: s\r\n\r\n", 0);
        let one = vec![Event::new(Kind::Accepted, &facts, "b@y.test")];
        let full: Vec<Event> = (0..BATCH_MAX)
            .map(|i| Event::new(Kind::Accepted, &facts, &format!("r{i}@y.test")))
            .collect();
        // The full batch is tried at once and fails; the writer keeps it and, with a full
        // batch, stops reading the channel until the next try, a second later.
        assert!(offer(&tx, &full));
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(tries.lock().unwrap().len(), 1, "one try so far");
        let offers = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let offers_count = offers.handle();
        let accepted =
            metrics::with_local_recorder(&offers, || (0..10).filter(|_| offer(&tx, &one)).count());
        assert_eq!(accepted, 4, "the channel is the bound");
        assert!(offers_count
            .render()
            .contains(&format!("{DROPPED_METRIC} 6")));
        // Tried again after a second, then two seconds later, and stored: nothing lost but the
        // six events the full channel refused.
        let deadline = Instant::now() + Duration::from_secs(10);
        while stored.lock().unwrap().len() < BATCH_MAX + 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(stored.lock().unwrap().len(), BATCH_MAX + 4);
        let tries = tries.lock().unwrap().clone();
        assert!(tries.len() >= 3, "{tries:?}");
        assert!(
            tries.iter().take(3).all(|&(_, n)| n == BATCH_MAX),
            "{tries:?}"
        );
        let gap = |i: usize| tries[i + 1].0 - tries[i].0;
        assert!(gap(0) >= Duration::from_millis(950), "{tries:?}");
        assert!(
            gap(1) >= Duration::from_millis(1950),
            "waits longer each time: {tries:?}"
        );
        drop(tx);
        writer.join().unwrap();
        let count = handle
            .render()
            .lines()
            .find(|l| l.starts_with(DROPPED_METRIC))
            .map(str::to_string);
        // The writer dropped none of what it held.
        assert_eq!(count, None);
    }

    #[test]
    fn what_the_store_never_took_by_the_close_is_counted_as_dropped() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let store = Flaky {
            away: usize::MAX,
            tries: Default::default(),
            stored: Default::default(),
        };
        let (tx, rx) = sync_channel(4);
        let writer = std::thread::spawn(move || {
            metrics::with_local_recorder(&recorder, || Writer::new(Box::new(store)).run(rx))
        });
        let facts = MessageFacts::of("1", "a@x.test", b"Subject: s\r\n\r\n", 0);
        let events: Vec<Event> = (0..3)
            .map(|i| Event::new(Kind::Accepted, &facts, &format!("r{i}@y.test")))
            .collect();
        assert!(offer_plain(&tx, &events));
        std::thread::sleep(Duration::from_millis(1200));
        let (done_tx, done_rx) = sync_channel(1);
        assert!(tx.try_send(Msg::Close(done_tx)).is_ok());
        done_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        writer.join().unwrap();
        assert!(handle.render().contains(&format!("{DROPPED_METRIC} 3")));
    }

    fn offer_plain(tx: &SyncSender<Msg>, events: &[Event]) -> bool {
        tx.try_send(Msg::Events(events.to_vec())).is_ok()
    }
}
