//! Connection limits: at most so many sessions in all and from one client address, per protocol.
//! A connection over the limit is told so and closed at once, so a flood of idle connections
//! from one place cannot keep the tracker out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Total,
    PerAddress,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

#[derive(Debug, Default)]
pub struct ConnLimits {
    counts: Mutex<Counts>,
}

/// Held for the life of a session; frees its place when dropped.
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    pub fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<ConnGuard, LimitHit> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if c.total >= max_total {
            return Err(LimitHit::Total);
        }
        let here = c.per_ip.get(&ip).copied().unwrap_or(0);
        if here >= max_per_ip {
            return Err(LimitHit::PerAddress);
        }
        c.total += 1;
        c.per_ip.insert(ip, here + 1);
        Ok(ConnGuard {
            limits: self.clone(),
            ip,
        })
    }

    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut c = self.limits.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_in_all_and_per_address_and_frees_on_drop() {
        let limits = Arc::new(ConnLimits::default());
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.1".parse().unwrap();
        let g1 = limits.try_acquire(a, 3, 2).unwrap();
        let _g2 = limits.try_acquire(a, 3, 2).unwrap();
        assert_eq!(
            limits.try_acquire(a, 3, 2).err(),
            Some(LimitHit::PerAddress)
        );
        let _g3 = limits.try_acquire(b, 3, 2).unwrap();
        assert_eq!(limits.try_acquire(b, 3, 2).err(), Some(LimitHit::Total));
        drop(g1);
        assert!(
            limits.try_acquire(a, 3, 2).is_ok(),
            "a place is freed when a session ends"
        );
        assert_eq!(limits.open(), 2);
    }
}
