//! Failed logins slow down the address they come from, and only that address.
//!
//! After `max.pass.attempts` failures from one client address, every further attempt from it
//! waits first (1 s, 2 s, 4 s, ... up to 30 s) and the session is closed after each failure. An
//! account is never locked: the tracker polling from 127.0.0.1 logs in at once however hard
//! someone hammers the same account from elsewhere. A success, or 15 quiet minutes, forgets the
//! address. Kept sans-clock: callers pass the instant, so tests need no sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const MAX_DELAY: Duration = Duration::from_secs(30);
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most; beyond that the oldest are dropped (memory stays bounded).
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: HashMap<IpAddr, Failures>,
}

impl LoginThrottle {
    /// How long an attempt from `ip` must wait before its password is checked.
    pub fn delay(&self, ip: IpAddr, max_attempts: u32, now: Instant) -> Duration {
        match self.failures.get(&ip) {
            Some(f) if now.duration_since(f.last) < FORGET_AFTER && f.count >= max_attempts => {
                let over = (f.count - max_attempts).min(10);
                Duration::from_secs(1u64 << over).min(MAX_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a result; returns true when the session should now be closed.
    pub fn record(&mut self, ip: IpAddr, ok: bool, max_attempts: u32, now: Instant) -> bool {
        if ok {
            self.failures.remove(&ip);
            return false;
        }
        if self.failures.len() >= MAX_TRACKED {
            self.failures
                .retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
            if self.failures.len() >= MAX_TRACKED {
                if let Some(oldest) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(ip, _)| *ip)
                {
                    self.failures.remove(&oldest);
                }
            }
        }
        let entry = self.failures.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
        });
        if now.duration_since(entry.last) >= FORGET_AFTER {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        entry.count >= max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_and_cuts_only_the_failing_address() {
        let mut t = LoginThrottle::default();
        let attacker: IpAddr = "127.0.0.2".parse().unwrap();
        let tracker: IpAddr = "127.0.0.1".parse().unwrap();
        let now = Instant::now();
        assert!(!t.record(attacker, false, 3, now));
        assert!(!t.record(attacker, false, 3, now));
        assert_eq!(
            t.delay(attacker, 3, now),
            Duration::ZERO,
            "no delay below the limit"
        );
        assert!(
            t.record(attacker, false, 3, now),
            "the third failure closes the session"
        );
        assert_eq!(t.delay(attacker, 3, now), Duration::from_secs(1));
        t.record(attacker, false, 3, now);
        assert_eq!(t.delay(attacker, 3, now), Duration::from_secs(2));
        for _ in 0..20 {
            t.record(attacker, false, 3, now);
        }
        assert_eq!(t.delay(attacker, 3, now), MAX_DELAY, "the delay is capped");
        assert_eq!(
            t.delay(tracker, 3, now),
            Duration::ZERO,
            "another address is not slowed"
        );
        assert!(!t.record(tracker, true, 3, now));
        let later = now + FORGET_AFTER;
        assert_eq!(
            t.delay(attacker, 3, later),
            Duration::ZERO,
            "forgotten after quiet minutes"
        );
    }

    #[test]
    fn success_forgets_the_address() {
        let mut t = LoginThrottle::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..5 {
            t.record(ip, false, 3, now);
        }
        t.record(ip, true, 3, now);
        assert_eq!(t.delay(ip, 3, now), Duration::ZERO);
    }
}
