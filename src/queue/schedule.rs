//! When each queued message is next due, and the retry policy that decides it.
//!
//! Deferred mail waits in memory, not on disk: a binary heap of (due instant, id) on the monotonic
//! clock, with a map holding each id's current due time so that rescheduling is a push and stale
//! heap entries are skipped when popped (lazy deletion). A message that waits costs one heap
//! entry and one map entry; nothing reads its file until it is due. Wall-clock times from files
//! are turned into instants once, when the file is first seen; a time further ahead than the
//! longest back-off (the clock was set back, or the file came from elsewhere) counts as due now.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// JES's back-off: retry n (from 0) comes 2^n minutes after a failed attempt, capped here.
pub const MAX_BACKOFF_MINUTES: u64 = 1024;

/// The wait before the next attempt, after `attempts` failed attempts (`attempts` >= 1).
pub fn backoff(attempts: u32) -> Duration {
    let exponent = attempts.saturating_sub(1).min(10);
    let minutes = (1u64 << exponent).min(MAX_BACKOFF_MINUTES);
    Duration::from_secs(minutes * 60)
}

/// Turns a next-attempt wall time (epoch ms) into a monotonic instant.
pub fn due_instant(next_attempt_ms: u64, now_ms: u64, now: Instant) -> Instant {
    let ahead = Duration::from_millis(next_attempt_ms.saturating_sub(now_ms));
    if ahead > Duration::from_secs(MAX_BACKOFF_MINUTES * 60 + 3600) {
        return now;
    }
    now + ahead
}

/// The timer heap.
#[derive(Debug, Default)]
pub struct Schedule {
    heap: BinaryHeap<Reverse<(Instant, String)>>,
    due: HashMap<String, Instant>,
}

impl Schedule {
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules (or reschedules) `id` at `at`.
    pub fn insert(&mut self, id: String, at: Instant) {
        self.due.insert(id.clone(), at);
        self.heap.push(Reverse((at, id)));
        // Rescheduling leaves stale entries behind; rebuild when they dominate.
        if self.heap.len() > 64 && self.heap.len() > 2 * self.due.len() {
            self.heap = self
                .due
                .iter()
                .map(|(id, at)| Reverse((*at, id.clone())))
                .collect();
        }
    }

    /// Forgets `id` (delivered, deleted, or being worked on).
    pub fn remove(&mut self, id: &str) {
        self.due.remove(id);
    }

    pub fn contains(&self, id: &str) -> bool {
        self.due.contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.due.len()
    }

    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// All known ids (for "retry everything").
    pub fn ids(&self) -> Vec<String> {
        self.due.keys().cloned().collect()
    }

    /// The earliest due instant, skipping stale entries.
    pub fn next_due(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.heap.peek() {
            if self.due.get(id) == Some(at) {
                return Some(*at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the next id due at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<String> {
        let at = self.next_due()?;
        if at > now {
            return None;
        }
        let Reverse((_, id)) = self.heap.pop()?;
        self.due.remove(&id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_minute_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(4), Duration::from_secs(8 * 60));
        assert_eq!(backoff(11), Duration::from_secs(1024 * 60));
        assert_eq!(backoff(40), Duration::from_secs(1024 * 60));
    }

    #[test]
    fn far_future_counts_as_due() {
        let now = Instant::now();
        assert_eq!(due_instant(u64::MAX, 1000, now), now);
        assert_eq!(due_instant(500, 1000, now), now, "past times are due now");
        assert_eq!(
            due_instant(61_000, 1000, now),
            now + Duration::from_secs(60)
        );
    }

    #[test]
    fn pops_in_order_and_skips_rescheduled_entries() {
        let now = Instant::now();
        let mut s = Schedule::new();
        s.insert("b".into(), now + Duration::from_secs(2));
        s.insert("a".into(), now + Duration::from_secs(1));
        s.insert("c".into(), now + Duration::from_secs(3));
        s.insert("a".into(), now + Duration::from_secs(5)); // rescheduled later
        s.remove("c");
        assert_eq!(s.next_due(), Some(now + Duration::from_secs(2)));
        assert_eq!(
            s.pop_due(now + Duration::from_secs(10)).as_deref(),
            Some("b")
        );
        assert_eq!(
            s.pop_due(now + Duration::from_secs(4)),
            None,
            "a is not due until 5 s"
        );
        assert_eq!(
            s.pop_due(now + Duration::from_secs(10)).as_deref(),
            Some("a")
        );
        assert!(s.is_empty());
        assert_eq!(s.pop_due(now + Duration::from_secs(100)), None);
    }

    #[test]
    fn stale_entries_do_not_grow_without_bound() {
        let now = Instant::now();
        let mut s = Schedule::new();
        for i in 0..10_000u64 {
            s.insert("x".into(), now + Duration::from_millis(i));
        }
        assert!(
            s.heap.len() <= 130,
            "heap holds {} entries for one id",
            s.heap.len()
        );
    }
}
