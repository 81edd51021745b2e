//! The feed and the one writer thread.
//!
//! [`record`] runs on whatever thread reported the outcome, often an async worker: it only tries
//! to put the events on a bounded channel and never waits. The writer thread gathers what arrives
//! into a batch and commits it once the batch is a second old or holds `BATCH_MAX` events, so a
//! crash loses at most the last second of history. Between batches it prunes events older than
//! `history.days`, a bounded chunk at a time so that pruning a large backlog never starves
//! appends. The settings are atomics: a reload changes them without touching the thread.

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
/// history is on, opens `history.db` in `store_dir` and starts the writer thread: blocking file
/// work, done at start or in the reload task, never on the mail path.
pub fn configure(store_dir: &Path, days: u32, subjects: bool) -> Result<(), HistoryError> {
    DAYS.store(days, Ordering::Relaxed);
    SUBJECTS.store(subjects, Ordering::Relaxed);
    if days == 0 {
        ON.store(false, Ordering::Relaxed);
        return Ok(());
    }
    if FEED.get().is_none() {
        let path = db_path(store_dir);
        let store = SqliteHistory::create(&path)?;
        let (tx, rx) = sync_channel(CHANNEL_CAPACITY);
        std::thread::Builder::new()
            .name("jes-history".into())
            .spawn(move || write_loop(store, rx))
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

fn write_loop(mut store: SqliteHistory, rx: Receiver<Msg>) {
    let mut batch: Vec<Record> = Vec::new();
    let mut batch_started = Instant::now();
    let mut next_prune = Instant::now();
    let mut pruning = false;
    loop {
        let wait = if !batch.is_empty() {
            BATCH_AGE.saturating_sub(batch_started.elapsed())
        } else if pruning {
            Duration::ZERO
        } else {
            next_prune.saturating_duration_since(Instant::now())
        };
        match rx.recv_timeout(wait) {
            Ok(Msg::Events(events)) => {
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                let subjects = SUBJECTS.load(Ordering::Relaxed);
                batch.extend(events.iter().map(|e| Record::of(e, subjects)));
            }
            Ok(Msg::Close(done)) => {
                commit(&mut store, &mut batch);
                drop(store);
                let _ = done.try_send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                commit(&mut store, &mut batch);
                return;
            }
        }
        if batch.len() >= BATCH_MAX || batch_started.elapsed() >= BATCH_AGE {
            commit(&mut store, &mut batch);
        }
        if batch.is_empty() && (pruning || Instant::now() >= next_prune) {
            if !pruning {
                next_prune = Instant::now() + PRUNE_EVERY;
            }
            pruning = prune_step(&mut store);
        }
    }
}

fn commit(store: &mut SqliteHistory, batch: &mut Vec<Record>) {
    if batch.is_empty() {
        return;
    }
    if let Err(e) = store.append(batch) {
        tracing::warn!("delivery history: cannot store {} events: {e}", batch.len());
        metrics::counter!(DROPPED_METRIC).increment(batch.len() as u64);
    }
    batch.clear();
}

/// Removes one chunk of expired events; whether more may be left.
fn prune_step(store: &mut SqliteHistory) -> bool {
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
}
