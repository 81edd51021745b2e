//! MX resolution for direct delivery (no smart host): which hosts, in which order, at which
//! addresses, or why there are none.
//!
//! The answer is split into what the queue can act on: a definite "this domain takes no mail"
//! (null MX, NXDOMAIN, no address at all) bounces at once, a DNS failure retries later, and a
//! route that leads back to us defers with 4.4.6 rather than looping. RFC 5321 §5.1 rules:
//! MX records by preference, equal preferences shuffled (a MUST, to spread load), the domain
//! itself as an implicit MX when there is no MX record, and when we are one of the MX hosts,
//! only hosts strictly better than our own preference are used. Names are matched here; the
//! runner also checks every address it connects to with [`is_our_address`], because an MX
//! under another name can still point at us.
//!
//! All queries use absolute names (no search list) and ignore /etc/hosts, so what the queue
//! does depends on the DNS alone. IPv4 addresses of a host come before IPv6 ones: IPv4 mail
//! routing works nearly everywhere, while a host with a broken IPv6 route would otherwise spend
//! a connect timeout on every message.

/// Test support, shared with the integration tests; not part of the library.
#[cfg(test)]
#[path = "../../tests/common/fake_dns.rs"]
mod fake_dns;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData};
use hickory_resolver::TokioResolver;

/// Per-query timeout and attempts: a slow DNS server delays one queue run, not all of them.
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 2;
/// Negative answers are cached at most this long, so a domain fixed in the DNS is seen by the
/// next retry.
const NEGATIVE_MAX_TTL: Duration = Duration::from_secs(60);

/// One host to try, with the addresses to try on it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxTarget {
    /// The MX host name (lower case, no final dot), or the address literal as written.
    pub host: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// Why a domain has no targets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MxError {
    /// RFC 7505 null MX: the domain says it accepts no mail. Permanent, 5.1.10.
    #[error("{0} does not accept mail (null MX)")]
    NullMx(String),
    /// NXDOMAIN, or a name that cannot be a domain. Permanent, 5.1.2.
    #[error("domain {0} does not exist")]
    NoSuchDomain(String),
    /// The DNS says definitively that neither the MX hosts nor (without MX) the domain have an
    /// A or AAAA record. Permanent, 5.1.2: retrying cannot help until someone edits the zone,
    /// and the sender learns of the problem now rather than after days of retries. Any lookup
    /// that failed temporarily turns this into `Temporary` instead.
    #[error("no mail server address found for {0}")]
    NoAddress(String),
    /// The best route for the domain is us. Temporary, 4.4.6.
    #[error("mail for {0} loops back to myself")]
    Loop(String),
    /// SERVFAIL, timeout, network trouble. Temporary, 4.4.3.
    #[error("DNS lookup failed: {0}")]
    Temporary(String),
}

impl MxError {
    /// Whether the recipient should bounce now (5xx) rather than stay queued.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            MxError::NullMx(_) | MxError::NoSuchDomain(_) | MxError::NoAddress(_)
        )
    }

    /// The enhanced status code (RFC 3463, RFC 7505) for the bounce or the log.
    pub fn status(&self) -> &'static str {
        match self {
            MxError::NullMx(_) => "5.1.10",
            MxError::NoSuchDomain(_) | MxError::NoAddress(_) => "5.1.2",
            MxError::Loop(_) => "4.4.6",
            MxError::Temporary(_) => "4.4.3",
        }
    }
}

/// A DNS resolver for MX routing. Cheap to clone; lookups are cached within their TTLs.
#[derive(Clone)]
pub struct MxResolver {
    resolver: TokioResolver,
}

impl std::fmt::Debug for MxResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MxResolver")
    }
}

impl MxResolver {
    /// From `dns.servers` when non-empty, else the system configuration. A missing or unreadable
    /// /etc/resolv.conf is an `Err` (the caller decides whether it is fatal: it is not when smart
    /// hosts are set).
    pub fn new(servers: &[SocketAddr]) -> Result<MxResolver, String> {
        MxResolver::with_timeout(servers, TIMEOUT, ATTEMPTS)
    }

    pub(crate) fn with_timeout(
        servers: &[SocketAddr],
        timeout: Duration,
        attempts: usize,
    ) -> Result<MxResolver, String> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system DNS configuration: {e}"))?
        } else {
            let mut config = ResolverConfig::from_name_servers(Vec::new());
            for server in servers {
                let mut ns = NameServerConfig::udp_and_tcp(server.ip());
                for connection in &mut ns.connections {
                    connection.port = server.port();
                }
                config.add_name_server(ns);
            }
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = attempts;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.negative_max_ttl = Some(NEGATIVE_MAX_TTL);
        let resolver = builder
            .build()
            .map_err(|e| format!("cannot set up the DNS resolver: {e}"))?;
        Ok(MxResolver { resolver })
    }

    /// Targets in the order to try. See the module comment for the rules; `our_names` are our
    /// own host names (the `hostname` setting and the local domains).
    pub async fn resolve(
        &self,
        domain: &str,
        our_names: &[String],
    ) -> Result<Vec<MxTarget>, MxError> {
        let ours: Vec<String> = our_names.iter().map(|n| normalize(n)).collect();
        let domain = domain.trim();
        if let Some(ip) = address_literal(domain) {
            let ip = ip.ok_or_else(|| MxError::NoSuchDomain(domain.to_string()))?;
            if ours.contains(&ip.to_string()) {
                return Err(MxError::Loop(domain.to_string()));
            }
            return Ok(vec![MxTarget {
                host: domain.to_string(),
                preference: 0,
                addrs: vec![ip],
            }]);
        }
        let domain = normalize(domain);
        let mx = self.mx_hosts(&domain, &ours).await?;
        let found = self.addresses_of(&mx).await?;
        targets(&domain, mx, found)
    }

    /// The MX hosts of `domain` in the order to try: the null MX and the implicit MX applied,
    /// ourselves and every host no better than us left out, equal preferences shuffled.
    async fn mx_hosts(&self, domain: &str, ours: &[String]) -> Result<Vec<(u16, String)>, MxError> {
        let name =
            absolute_name(domain).ok_or_else(|| MxError::NoSuchDomain(domain.to_string()))?;
        let mut mx = match self.resolver.mx_lookup(name).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, normalize(&mx.exchange.to_ascii()))),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Err(MxError::NoSuchDomain(domain.to_string())),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(MxError::Temporary(format!("MX lookup for {domain}: {e}"))),
        };

        // RFC 7505: "." is no host. Alone it means "no mail"; mixed with real MX records (which
        // the RFC forbids publishing) the real ones are used.
        let had_null = mx.iter().any(|(_, host): &(u16, String)| host.is_empty());
        mx.retain(|(_, host)| !host.is_empty());
        if mx.is_empty() && had_null {
            return Err(MxError::NullMx(domain.to_string()));
        }
        if mx.is_empty() {
            // RFC 5321 §5.1: the domain itself is an implicit MX of preference 0.
            mx.push((0, domain.to_string()));
        }
        drop_self_and_worse(&mut mx, ours).map_err(|()| MxError::Loop(domain.to_string()))?;
        // A fresh seed from the OS for each lookup; should the OS have none, the order is merely
        // fixed, which still delivers.
        order(&mut mx, getrandom::u64().unwrap_or(0));
        Ok(mx)
    }

    /// Every MX host's addresses, looked up at once; in `mx`'s order, `None` for a lookup lost.
    async fn addresses_of(&self, mx: &[(u16, String)]) -> Result<Vec<Found>, MxError> {
        let mut lookups = tokio::task::JoinSet::new();
        for (i, (_, host)) in mx.iter().enumerate() {
            let resolver = self.resolver.clone();
            let host = host.clone();
            lookups.spawn(async move { (i, addresses(&resolver, &host).await) });
        }
        let mut found: Vec<Found> = vec![None; mx.len()];
        while let Some(joined) = lookups.join_next().await {
            match joined {
                Ok((i, result)) => {
                    if let Some(slot) = found.get_mut(i) {
                        *slot = Some(result);
                    }
                }
                Err(e) => return Err(MxError::Temporary(format!("address lookup: {e}"))),
            }
        }
        Ok(found)
    }
}

/// One MX host's address lookup: its addresses, why it failed, or `None` when it was lost.
type Found = Option<Result<Vec<IpAddr>, String>>;

/// The hosts that have addresses, in order; with none, the first failure (try again later) or,
/// when every lookup said there are no addresses, `NoAddress`.
fn targets(
    domain: &str,
    mx: Vec<(u16, String)>,
    found: Vec<Found>,
) -> Result<Vec<MxTarget>, MxError> {
    let mut targets = Vec::new();
    let mut failure = None;
    for ((preference, host), result) in mx.into_iter().zip(found) {
        match result {
            Some(Ok(addrs)) if !addrs.is_empty() => targets.push(MxTarget {
                host,
                preference,
                addrs,
            }),
            Some(Ok(_)) => tracing::debug!(domain, host, "MX host has no address; skipped"),
            Some(Err(e)) => {
                tracing::debug!(domain, host, error = %e, "address lookup failed");
                failure.get_or_insert(e);
            }
            None => {
                failure.get_or_insert_with(|| format!("address lookup for {host} lost"));
            }
        }
    }
    match (targets.is_empty(), failure) {
        (false, _) => Ok(targets),
        (true, Some(e)) => Err(MxError::Temporary(e)),
        (true, None) => Err(MxError::NoAddress(domain.to_string())),
    }
}

/// A and then AAAA addresses of `host`; an empty list when the DNS says there are none, `Err`
/// only when a lookup failed without a definite answer.
async fn addresses(resolver: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, String> {
    let Some(name) = absolute_name(host) else {
        return Ok(Vec::new());
    };
    let (v4, v6) = tokio::join!(
        resolver.ipv4_lookup(name.clone()),
        resolver.ipv6_lookup(name)
    );
    let mut addrs = Vec::new();
    let mut failure = None;
    for result in [v4, v6] {
        match result {
            Ok(lookup) => addrs.extend(lookup.answers().iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            })),
            Err(e) if negative(&e) => {}
            Err(e) => failure = Some(format!("address lookup for {host}: {e}")),
        }
    }
    match failure {
        // One family failing while the other answered is good enough to try.
        Some(e) if addrs.is_empty() => Err(e),
        _ => Ok(addrs),
    }
}

/// NXDOMAIN or NODATA: a definite "no such record".
fn negative(e: &NetError) -> bool {
    e.is_nx_domain() || e.is_no_records_found()
}

/// `name.` as an absolute DNS name, so no search domain is ever appended.
fn absolute_name(name: &str) -> Option<Name> {
    if name.is_empty() || name.starts_with('.') || name.contains("..") {
        return None;
    }
    Name::from_ascii(format!("{name}.")).ok()
}

/// A host or domain name for comparison: lower case, without brackets, `IPv6:` or a final dot;
/// IP addresses in their canonical text form.
fn normalize(name: &str) -> String {
    let n = name.trim();
    let n = n
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .map(|s| {
            s.get(..5)
                .filter(|p| p.eq_ignore_ascii_case("ipv6:"))
                .map_or(s, |_| &s[5..])
        })
        .unwrap_or(n);
    let n = n.strip_suffix('.').unwrap_or(n);
    match n.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => n.to_ascii_lowercase(),
    }
}

/// For `[…]` domains: `Some(Some(ip))` for a valid address literal (RFC 5321 §4.1.3), `Some(None)`
/// for a malformed one, `None` for an ordinary domain.
fn address_literal(domain: &str) -> Option<Option<IpAddr>> {
    let inner = domain.strip_prefix('[')?.strip_suffix(']')?;
    let ip = match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => inner[5..]
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(IpAddr::V6),
        _ => inner.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4),
    };
    Some(ip)
}

/// RFC 5321 §5.1: if one of the hosts is us, only hosts with a preference strictly better
/// (numerically lower) than our best one may be used. `Err` when none is left.
fn drop_self_and_worse(mx: &mut Vec<(u16, String)>, ours: &[String]) -> Result<(), ()> {
    let our_best = mx
        .iter()
        .filter(|(_, host)| ours.contains(host))
        .map(|(pref, _)| *pref)
        .min();
    if let Some(limit) = our_best {
        mx.retain(|(pref, _)| *pref < limit);
        if mx.is_empty() {
            return Err(());
        }
    }
    Ok(())
}

/// Sorts by preference, shuffling hosts of equal preference (RFC 5321 §5.1 requires it) by a
/// key derived from `seed`; duplicates of one host are dropped.
fn order(mx: &mut Vec<(u16, String)>, seed: u64) {
    let key = |host: &str| {
        let mut h = DefaultHasher::new();
        (seed, host).hash(&mut h);
        h.finish()
    };
    let mut keyed: Vec<(u16, u64, (u16, String))> = mx
        .drain(..)
        .map(|entry| (entry.0, key(&entry.1), entry))
        .collect();
    keyed.sort_by_key(|k| (k.0, k.1));
    for (_, _, entry) in keyed {
        if !mx.iter().any(|(_, host)| *host == entry.1) {
            mx.push(entry);
        }
    }
}

/// Whether connecting to `ip` would reach this server. Loopback and unspecified addresses always
/// count, and so does every address in `listening`; when we listen on every address (`listening`
/// empty, or containing 0.0.0.0 or ::) any address of a local interface counts too. The runner
/// uses this when the target port is our own SMTP port.
pub fn is_our_address(ip: IpAddr, listening: &[IpAddr]) -> bool {
    let ip = unmap(ip);
    if ip.is_loopback() || ip.is_unspecified() {
        return true;
    }
    if listening.iter().any(|l| unmap(*l) == ip) {
        return true;
    }
    let wildcard = listening.is_empty() || listening.iter().any(|l| l.is_unspecified());
    // Binding succeeds only for an address assigned to this machine (EADDRNOTAVAIL otherwise):
    // a portable interface check without walking the interface list.
    wildcard && UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests;
