//! Messages this server stored for its own runner already leased to it
//! (`Queue::enqueue_for_attempt` on `postgres::PgQueue`), kept with their contents until the
//! runner's attempt takes them.
//!
//! Design. The accept step hands every message it queues to this server's runner at once, so a
//! claim by another server is of no use, and a claim of its own would cost a round trip and a
//! durable commit per relayed message (issue 15). The message is therefore stored with a lease
//! to this server (renewed like any other while the process lives), and its first `take` is
//! answered from here without asking the database. Bounded by count and bytes: past the bound a
//! message is stored free, as `enqueue` does, and claimed as usual. An entry older than half a
//! lease is not trusted (its renewals may have failed meanwhile): it is released and claimed
//! anew.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Lease, QueuedMessage};

/// At most this many messages wait here (the runner's backlog beyond them is claimed as usual).
pub(super) const READY_COUNT: usize = 256;
/// At most this many bytes of messages wait here.
pub(super) const READY_BYTES: usize = 8 << 20;

struct Entry {
    lease: Lease,
    msg: QueuedMessage,
    since: Instant,
}

#[derive(Default)]
pub(super) struct Ready {
    entries: HashMap<String, Entry>,
    bytes: usize,
}

impl Ready {
    /// Whether a message of `size` bytes may wait here.
    pub(super) fn has_room(&self, size: usize) -> bool {
        self.entries.len() < READY_COUNT && self.bytes.saturating_add(size) <= READY_BYTES
    }

    pub(super) fn insert(&mut self, lease: Lease, msg: QueuedMessage) {
        self.bytes += msg.message.len();
        let entry = Entry {
            lease,
            msg,
            since: Instant::now(),
        };
        if let Some(old) = self.entries.insert(entry.msg.id.clone(), entry) {
            self.bytes -= old.msg.message.len();
        }
    }

    /// Takes out every entry that has waited longer than `age`, for its lease to be given back.
    pub(super) fn take_older_than(&mut self, age: Duration) -> Vec<Lease> {
        let old: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.since.elapsed() > age)
            .map(|(id, _)| id.clone())
            .collect();
        old.iter()
            .filter_map(|id| self.take(id).map(|(lease, _, _)| lease))
            .collect()
    }

    /// Takes `id` out: its lease, the message as stored, and how long it waited.
    pub(super) fn take(&mut self, id: &str) -> Option<(Lease, QueuedMessage, Duration)> {
        let e = self.entries.remove(id)?;
        self.bytes -= e.msg.message.len();
        Some((e.lease, e.msg, e.since.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsn::MessageDsn;

    fn msg(id: &str, size: usize) -> (Lease, QueuedMessage) {
        let lease = Lease {
            id: id.into(),
            owner: "me".into(),
            token: 1,
            expires_ms: 0,
        };
        let msg = QueuedMessage {
            id: id.into(),
            sender: String::new(),
            recipients: Vec::new(),
            received_ms: 0,
            next_attempt_ms: 0,
            attempts: 0,
            delay_warned: false,
            dsn: MessageDsn::default(),
            message: vec![b'x'; size],
        };
        (lease, msg)
    }

    #[test]
    fn bytes_and_count_are_bounded_and_freed_on_take() {
        let mut r = Ready::default();
        assert!(r.has_room(READY_BYTES));
        assert!(!r.has_room(READY_BYTES + 1));
        let (l, m) = msg("1", READY_BYTES - 10);
        r.insert(l, m);
        assert!(r.has_room(10));
        assert!(!r.has_room(11));
        let (l, m, _) = r.take("1").unwrap();
        assert_eq!((l.id.as_str(), m.message.len()), ("1", READY_BYTES - 10));
        assert!(r.take("1").is_none(), "taken once");
        assert!(r.has_room(READY_BYTES));
        for i in 0..READY_COUNT {
            let (l, m) = msg(&i.to_string(), 1);
            assert!(r.has_room(1));
            r.insert(l, m);
        }
        assert!(!r.has_room(1), "count bound");
        r.take("7").unwrap();
        assert!(r.has_room(1));
    }

    #[test]
    fn entries_older_than_an_age_are_taken_out_with_their_leases() {
        let mut r = Ready::default();
        let (l, m) = msg("old", 10);
        r.insert(l, m);
        assert!(r.take_older_than(Duration::from_secs(60)).is_empty());
        std::thread::sleep(Duration::from_millis(20));
        let (l, m) = msg("new", 10);
        r.insert(l, m);
        let old = r.take_older_than(Duration::from_millis(10));
        assert_eq!(
            old.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
            ["old"]
        );
        assert!(r.take("old").is_none());
        assert!(r.take("new").is_some());
        assert!(r.has_room(READY_BYTES), "bytes freed");
    }
}
