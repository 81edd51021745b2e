//! One entry of `relay.ipaddresses`: JES's whole-octet wildcards (`192.168.*.*`), plus exact IPv4
//! and IPv6 addresses and CIDR blocks.
//!
//! Patterns are parsed once at load so that the check made on every connection compares bytes and
//! allocates nothing; IPv4-mapped IPv6 peers (`::ffff:a.b.c.d`, as a dual-stack socket reports
//! them) match as the IPv4 address they carry.

use std::net::IpAddr;

/// A `relay.ipaddresses` entry: IPv4 with whole-octet `*` wildcards (`192.168.*.*`), an IPv6
/// address, or a CIDR block (`10.0.0.0/8`, `fd00::/8`). `::ffff:a.b.c.d` matches as IPv4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpPattern {
    /// Four octets, `None` for `*`.
    V4Wildcard([Option<u8>; 4]),
    Cidr(IpAddr, u8),
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

impl IpPattern {
    /// Parses one entry: `127.0.0.1`, `192.168.*.*`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    pub fn parse(s: &str) -> Result<IpPattern, String> {
        let s = s.trim();
        let bad = || {
            format!("{s:?} is not an IP address, an IPv4 pattern like 192.168.*.* or a CIDR block like 10.0.0.0/8")
        };
        if let Some((addr, bits)) = s.split_once('/') {
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let bits: u8 = bits.parse().map_err(|_| bad())?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            if bits > max {
                return Err(format!("{s:?}: prefix length {bits} is more than {max}"));
            }
            // A mapped IPv6 block with a prefix covering the mapping is an IPv4 block.
            return Ok(match (ip, unmap(ip)) {
                (IpAddr::V6(_), v4 @ IpAddr::V4(_)) if bits >= 96 => IpPattern::Cidr(v4, bits - 96),
                _ => IpPattern::Cidr(ip, bits),
            });
        }
        if s.contains('*') {
            let parts: Vec<&str> = s.split('.').collect();
            if parts.len() != 4 {
                return Err(bad());
            }
            let mut octets = [None; 4];
            for (slot, part) in octets.iter_mut().zip(&parts) {
                *slot = match *part {
                    "*" => None,
                    p if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                        Some(p.parse::<u8>().map_err(|_| bad())?)
                    }
                    _ => return Err(bad()),
                };
            }
            return Ok(IpPattern::V4Wildcard(octets));
        }
        let ip = unmap(s.parse::<IpAddr>().map_err(|_| bad())?);
        Ok(IpPattern::Cidr(ip, if ip.is_ipv4() { 32 } else { 128 }))
    }

    pub fn matches(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        match (self, ip) {
            (IpPattern::V4Wildcard(octets), IpAddr::V4(v4)) => octets
                .iter()
                .zip(v4.octets())
                .all(|(p, o)| p.is_none_or(|p| p == o)),
            (IpPattern::V4Wildcard(_), IpAddr::V6(_)) => false,
            (IpPattern::Cidr(IpAddr::V4(net), bits), IpAddr::V4(v4)) => {
                prefix_eq(&net.octets(), &v4.octets(), *bits)
            }
            (IpPattern::Cidr(IpAddr::V6(net), bits), IpAddr::V6(v6)) => {
                prefix_eq(&net.octets(), &v6.octets(), *bits)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpPattern::V4Wildcard(o) => {
                let parts: Vec<String> = o
                    .iter()
                    .map(|p| p.map_or_else(|| "*".to_string(), |p| p.to_string()))
                    .collect();
                write!(f, "{}", parts.join("."))
            }
            IpPattern::Cidr(ip, bits) if (ip.is_ipv4() && *bits == 32) || *bits == 128 => {
                write!(f, "{ip}")
            }
            IpPattern::Cidr(ip, bits) => write!(f, "{ip}/{bits}"),
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let full = bits / 8;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}
