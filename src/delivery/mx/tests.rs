//! MX routing against the fake DNS server: every query goes to 127.0.0.1, never the internet.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::fake_dns::{Entry, FakeDns};
use super::*;

const MX: u16 = 15;
const A: u16 = 1;
const AAAA: u16 = 28;

fn v4(s: &str) -> IpAddr {
    IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn a(name: &str, ip: &str) -> Entry {
    Entry::a(name, ip.parse().unwrap())
}

fn dns(entries: Vec<Entry>) -> (FakeDns, MxResolver) {
    let server = FakeDns::start(entries).unwrap();
    let resolver = MxResolver::with_timeout(&[server.addr()], Duration::from_secs(1), 1).unwrap();
    (server, resolver)
}

fn none() -> Vec<String> {
    Vec::new()
}

fn hosts(targets: &[MxTarget]) -> Vec<(&str, u16)> {
    targets
        .iter()
        .map(|t| (t.host.as_str(), t.preference))
        .collect()
}

#[tokio::test]
async fn mx_records_in_preference_order_with_their_addresses() {
    let (server, r) = dns(vec![
        Entry::mx("example.com", 20, "mx2.example.com"),
        Entry::mx("example.com", 10, "MX1.example.com."),
        Entry::mx("example.com", 30, "mx3.example.net"),
        a("mx1.example.com", "192.0.2.1"),
        a("mx1.example.com", "192.0.2.11"),
        Entry::aaaa("mx1.example.com", "2001:db8::1".parse().unwrap()),
        Entry::aaaa("mx2.example.com", "2001:db8::2".parse().unwrap()),
        a("mx3.example.net", "198.51.100.3"),
    ]);
    let t = r.resolve("Example.COM", &none()).await.unwrap();
    assert_eq!(
        hosts(&t),
        [
            ("mx1.example.com", 10),
            ("mx2.example.com", 20),
            ("mx3.example.net", 30)
        ]
    );
    // IPv4 before IPv6, each family in DNS order.
    assert_eq!(
        t[0].addrs,
        [v4("192.0.2.1"), v4("192.0.2.11"), v6("2001:db8::1")]
    );
    assert_eq!(t[1].addrs, [v6("2001:db8::2")]);
    assert_eq!(t[2].addrs, [v4("198.51.100.3")]);
    // Absolute names only: no search domain was ever appended.
    let q = server.queries();
    assert!(q.contains(&("example.com".into(), MX)), "{q:?}");
    assert!(q.contains(&("mx3.example.net".into(), A)), "{q:?}");
    assert!(q.contains(&("mx1.example.com".into(), AAAA)), "{q:?}");
    assert_eq!(q.len(), 7, "{q:?}");
}

#[tokio::test]
async fn hosts_without_address_are_skipped_and_a_failing_one_does_not_block_the_rest() {
    let (_server, r) = dns(vec![
        Entry::mx("example.com", 5, "ghost.example.com"),
        Entry::mx("example.com", 10, "broken.example.com"),
        Entry::mx("example.com", 20, "good.example.com"),
        Entry::NoData("ghost.example.com".into()),
        Entry::ServFail("broken.example.com".into()),
        a("good.example.com", "192.0.2.20"),
    ]);
    let t = r.resolve("example.com", &none()).await.unwrap();
    assert_eq!(hosts(&t), [("good.example.com", 20)]);
}

#[tokio::test]
async fn no_mx_falls_back_to_the_domain_itself() {
    let (_server, r) = dns(vec![
        a("plain.example", "192.0.2.7"),
        Entry::aaaa("plain.example", "2001:db8::7".parse().unwrap()),
    ]);
    let t = r.resolve("plain.example.", &none()).await.unwrap();
    assert_eq!(
        t,
        [MxTarget {
            host: "plain.example".into(),
            preference: 0,
            addrs: vec![v4("192.0.2.7"), v6("2001:db8::7")],
        }]
    );
}

#[tokio::test]
async fn null_mx_means_no_mail() {
    let (_server, r) = dns(vec![
        Entry::mx("nomail.example", 0, "."),
        a("nomail.example", "192.0.2.9"),
        // Forbidden by RFC 7505, but if published the real MX wins.
        Entry::mx("mixed.example", 0, "."),
        Entry::mx("mixed.example", 10, "mx.mixed.example"),
        a("mx.mixed.example", "192.0.2.10"),
    ]);
    let e = r.resolve("nomail.example", &none()).await.unwrap_err();
    assert_eq!(e, MxError::NullMx("nomail.example".into()));
    assert!(e.is_permanent());
    assert_eq!(e.status(), "5.1.10");
    let t = r.resolve("mixed.example", &none()).await.unwrap();
    assert_eq!(hosts(&t), [("mx.mixed.example", 10)]);
}

#[tokio::test]
async fn permanent_failures() {
    let (_server, r) = dns(vec![
        Entry::NoData("empty.example".into()),
        Entry::mx("dangling.example", 10, "gone.example"),
    ]);
    let e = r.resolve("nowhere.example", &none()).await.unwrap_err();
    assert_eq!(e, MxError::NoSuchDomain("nowhere.example".into()));
    assert_eq!((e.is_permanent(), e.status()), (true, "5.1.2"));
    // The domain exists but has neither MX nor address records.
    let e = r.resolve("empty.example", &none()).await.unwrap_err();
    assert_eq!(e, MxError::NoAddress("empty.example".into()));
    assert_eq!((e.is_permanent(), e.status()), (true, "5.1.2"));
    // The only MX host does not exist.
    let e = r.resolve("dangling.example", &none()).await.unwrap_err();
    assert_eq!(e, MxError::NoAddress("dangling.example".into()));
    // Names that cannot be domains never reach the DNS.
    for bad in ["", ".", "a..b", &"x".repeat(64)] {
        assert!(
            matches!(r.resolve(bad, &none()).await, Err(MxError::NoSuchDomain(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn dns_trouble_is_temporary() {
    let (_server, r) = dns(vec![
        Entry::ServFail("broken.example".into()),
        Entry::mx("halfbroken.example", 10, "mx.broken.example"),
        Entry::ServFail("mx.broken.example".into()),
        Entry::Silent("slow.example".into()),
    ]);
    for domain in ["broken.example", "halfbroken.example", "slow.example"] {
        let e = r.resolve(domain, &none()).await.unwrap_err();
        assert!(matches!(e, MxError::Temporary(_)), "{domain}: {e:?}");
        assert_eq!((e.is_permanent(), e.status()), (false, "4.4.3"));
    }
}

#[tokio::test]
async fn no_dns_server_at_all_is_temporary() {
    // A port nothing listens on: nothing answers, so the lookup times out.
    let nobody = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = nobody.local_addr().unwrap();
    drop(nobody);
    let r = MxResolver::with_timeout(&[addr], Duration::from_millis(200), 1).unwrap();
    let e = r.resolve("example.com", &none()).await.unwrap_err();
    assert!(matches!(e, MxError::Temporary(_)), "{e:?}");
}

#[tokio::test]
async fn our_own_mx_drops_itself_and_every_worse_one() {
    let (_server, r) = dns(vec![
        Entry::mx("example.com", 5, "primary.example.net"),
        Entry::mx("example.com", 10, "backup.example.com"),
        Entry::mx("example.com", 10, "peer.example.com"),
        Entry::mx("example.com", 20, "tertiary.example.com"),
        a("primary.example.net", "192.0.2.5"),
        a("backup.example.com", "192.0.2.10"),
        a("peer.example.com", "192.0.2.11"),
        a("tertiary.example.com", "192.0.2.20"),
        Entry::mx("ours.example", 10, "backup.example.com"),
        Entry::mx("ours.example", 20, "tertiary.example.com"),
        a("self.example", "192.0.2.10"),
    ]);
    let us = vec![
        "local.example".to_string(),
        "Backup.Example.COM.".to_string(),
    ];
    let t = r.resolve("example.com", &us).await.unwrap();
    assert_eq!(hosts(&t), [("primary.example.net", 5)]);
    // We are the best MX: nowhere to send it.
    let e = r.resolve("ours.example", &us).await.unwrap_err();
    assert_eq!(e, MxError::Loop("ours.example".into()));
    assert_eq!((e.is_permanent(), e.status()), (false, "4.4.6"));
    // The implicit MX is our own name.
    let us = vec!["self.example".to_string()];
    assert_eq!(
        r.resolve("self.example", &us).await.unwrap_err(),
        MxError::Loop("self.example".into())
    );
}

#[tokio::test]
async fn address_literals_skip_the_dns() {
    let (server, r) = dns(vec![]);
    let t = r.resolve("[192.0.2.1]", &none()).await.unwrap();
    assert_eq!(
        t,
        [MxTarget {
            host: "[192.0.2.1]".into(),
            preference: 0,
            addrs: vec![v4("192.0.2.1")]
        }]
    );
    let t = r.resolve("[IPv6:2001:DB8::1]", &none()).await.unwrap();
    assert_eq!(t[0].addrs, [v6("2001:db8::1")]);
    for bad in ["[300.1.1.1]", "[2001:db8::1]", "[IPv6:192.0.2.1x]", "[]"] {
        assert_eq!(
            r.resolve(bad, &none()).await.unwrap_err(),
            MxError::NoSuchDomain(bad.into())
        );
    }
    // A literal naming one of our own names (hostname=[127.0.0.1], or domains=::1).
    let us = vec!["[127.0.0.1]".to_string(), "::1".to_string()];
    for lit in ["[127.0.0.1]", "[IPv6:0::1]"] {
        assert_eq!(
            r.resolve(lit, &us).await.unwrap_err(),
            MxError::Loop(lit.into())
        );
    }
    assert!(server.queries().is_empty());
}

#[test]
fn equal_preferences_are_shuffled_but_preferences_stay_sorted() {
    let input: Vec<(u16, String)> = [(20, "c"), (10, "a"), (10, "b"), (10, "a"), (5, "z")]
        .iter()
        .map(|(p, h)| (*p, h.to_string()))
        .collect();
    let mut orders = std::collections::HashSet::new();
    for seed in 0..64 {
        let mut mx = input.clone();
        order(&mut mx, seed);
        assert_eq!(mx.len(), 4, "duplicate dropped: {mx:?}");
        assert_eq!(mx[0], (5, "z".into()));
        assert_eq!(mx[3], (20, "c".into()));
        orders.insert(mx[1].1.clone());
    }
    assert_eq!(
        orders.len(),
        2,
        "both hosts of preference 10 come first sometimes"
    );
}

#[test]
fn names_are_compared_normalized() {
    assert_eq!(normalize(" MX.Example.COM. "), "mx.example.com");
    assert_eq!(normalize("[IPv6:0:0::1]"), "::1");
    assert_eq!(normalize("[127.0.0.1]"), "127.0.0.1");
    assert_eq!(address_literal("example.com"), None);
    assert_eq!(address_literal("[ipv6:::1]"), Some(Some(v6("::1"))));
}

#[test]
fn our_addresses() {
    let specific = [v4("192.0.2.5")];
    for ip in [
        "127.0.0.1",
        "127.3.4.5",
        "0.0.0.0",
        "::1",
        "::",
        "::ffff:127.0.0.1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert!(is_our_address(ip, &[]), "{ip}");
        assert!(is_our_address(ip, &specific), "{ip}");
    }
    assert!(is_our_address(v4("192.0.2.5"), &specific));
    assert!(is_our_address(v6("::ffff:192.0.2.5"), &specific));
    // TEST-NET addresses are never assigned to this machine.
    assert!(!is_our_address(v4("192.0.2.99"), &[]));
    assert!(!is_our_address(v4("192.0.2.99"), &specific));
    assert!(!is_our_address(v6("2001:db8::99"), &[v6("::")]));
    // This machine's outbound address (if it has a route at all) is ours only when we listen
    // on every address.
    let local = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr());
    if let Ok(addr) = local {
        if !addr.ip().is_loopback() && !addr.ip().is_unspecified() {
            assert!(is_our_address(addr.ip(), &[]), "{addr}");
            assert!(is_our_address(addr.ip(), &[v4("0.0.0.0")]), "{addr}");
            assert!(!is_our_address(addr.ip(), &specific), "{addr}");
        }
    }
}

#[test]
fn system_resolver_can_be_built_without_a_runtime() {
    // Ok or Err depending on /etc/resolv.conf; it must not panic, and no query is sent.
    let _ = MxResolver::new(&[]);
    let r = MxResolver::new(&["127.0.0.1:53".parse().unwrap()]);
    assert!(r.is_ok(), "{r:?}");
}

/// A query for `name`/`qtype` with id 0x1234 and RD set, encoded by hand so that the fake
/// server's replies are checked against bytes, not against the library that wrote them.
fn raw_query(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(u8::try_from(label.len()).unwrap());
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn ask(server: &FakeDns, q: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    s.send_to(q, server.addr()).unwrap();
    let mut buf = [0u8; 1024];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

#[test]
fn fake_dns_answers_from_the_table() {
    const NXDOMAIN: u8 = 3;
    const SERVFAIL: u8 = 2;
    let dns = FakeDns::start(vec![
        Entry::mx("Example.COM.", 10, "mx.example.com"),
        Entry::a("mx.example.com", Ipv4Addr::new(192, 0, 2, 1)),
        Entry::NoData("empty.example".into()),
        Entry::ServFail("broken.example".into()),
        Entry::Silent("slow.example".into()),
    ])
    .unwrap();

    let r = ask(&dns, &raw_query("example.com", MX)).unwrap();
    assert_eq!(&r[..2], &[0x12, 0x34]);
    assert_eq!((r[2] & 0x80, r[2] & 0x01, r[3] & 0x0f), (0x80, 1, 0));
    assert_eq!(&r[6..8], &[0, 1]); // one answer
                                   // Preference 10, then mx.example.com (possibly compressed against the question's name).
    assert!(r.windows(5).any(|w| w == [0, 10, 2, b'm', b'x']), "{r:?}");

    let r = ask(&dns, &raw_query("MX.example.com", A)).unwrap();
    assert!(r.ends_with(&[0, 4, 192, 0, 2, 1]), "{r:?}");
    let r = ask(&dns, &raw_query("mx.example.com", AAAA)).unwrap();
    assert_eq!((r[3] & 0x0f, r[7]), (0, 0)); // NODATA
    let r = ask(&dns, &raw_query("empty.example", MX)).unwrap();
    assert_eq!((r[3] & 0x0f, r[7]), (0, 0));
    let r = ask(&dns, &raw_query("nowhere.example", MX)).unwrap();
    assert_eq!(r[3] & 0x0f, NXDOMAIN);
    let r = ask(&dns, &raw_query("broken.example", A)).unwrap();
    assert_eq!(r[3] & 0x0f, SERVFAIL);
    assert!(ask(&dns, &raw_query("slow.example", A)).is_none());
    // Garbage is ignored, and the server keeps going.
    assert!(ask(&dns, &[1, 2, 3]).is_none());
    assert!(ask(&dns, &raw_query("example.com", MX)).is_some());
    let seen = dns.queries();
    assert_eq!(seen[0], ("example.com".to_string(), MX));
    assert_eq!(seen[1], ("mx.example.com".to_string(), A));
}

#[test]
fn fake_dns_null_mx_is_the_root_name() {
    let dns = FakeDns::start(vec![Entry::mx("none.example", 0, ".")]).unwrap();
    let r = ask(&dns, &raw_query("none.example", MX)).unwrap();
    assert!(r.ends_with(&[0, 3, 0, 0, 0]), "{r:?}");
}
