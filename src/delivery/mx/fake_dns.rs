//! A tiny authoritative DNS server for tests, answering from a fixed table over UDP.
//!
//! Why it exists: MX routing must be tested without ever touching the internet or the machine's
//! resolver, and both the unit tests here and the integration tests in `tests/` (which point the
//! *binary* at it with `dns.servers=127.0.0.1:PORT`) need the same thing. It runs on a plain std
//! thread, not tokio, so a test needs no runtime to start it. Messages are encoded by hand: MX, A
//! and AAAA answers are a few bytes each, and hand encoding keeps this module free of any DNS
//! library's API churn. A name absent from the table is NXDOMAIN; a name present but without
//! records of the asked type is an empty NOERROR answer ("NODATA"), as a real zone would give.
//! Malformed datagrams are dropped, never answered or panicked on.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const TYPE_A: u16 = 1;
const TYPE_MX: u16 = 15;
const TYPE_AAAA: u16 = 28;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;

/// One row of the table. Names are matched case-insensitively, with or without a final dot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `name MX preference exchange`; an exchange of `"."` is a null MX (RFC 7505).
    Mx(String, u16, String),
    A(String, Ipv4Addr),
    Aaaa(String, Ipv6Addr),
    /// The name exists but has no MX, A or AAAA records.
    NoData(String),
    /// Every query about the name gets SERVFAIL.
    ServFail(String),
    /// Queries about the name are never answered (to test timeouts).
    Silent(String),
}

impl Entry {
    pub fn mx(name: &str, preference: u16, exchange: &str) -> Entry {
        Entry::Mx(name.into(), preference, exchange.into())
    }
    pub fn a(name: &str, ip: Ipv4Addr) -> Entry {
        Entry::A(name.into(), ip)
    }
    pub fn aaaa(name: &str, ip: Ipv6Addr) -> Entry {
        Entry::Aaaa(name.into(), ip)
    }

    fn name(&self) -> &str {
        match self {
            Entry::Mx(n, ..)
            | Entry::A(n, _)
            | Entry::Aaaa(n, _)
            | Entry::NoData(n)
            | Entry::ServFail(n)
            | Entry::Silent(n) => n,
        }
    }
}

/// A running server; it stops when dropped.
pub struct FakeDns {
    addr: SocketAddr,
    queries: Arc<Mutex<Vec<(String, u16)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeDns {
    /// Binds 127.0.0.1 on a free port and serves `entries` on a background thread.
    pub fn start(entries: Vec<Entry>) -> io::Result<FakeDns> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let addr = socket.local_addr()?;
        let queries = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queries.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("fake-dns".into())
            .spawn(move || serve(&socket, &entries, &q, &s))?;
        Ok(FakeDns {
            addr,
            queries,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every question received so far: (name lower-cased without the final dot, type: 1 A,
    /// 15 MX, 28 AAAA).
    pub fn queries(&self) -> Vec<(String, u16)> {
        self.queries.lock().map(|q| q.clone()).unwrap_or_default()
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked recv_from; the thread sees `stop` and ends.
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(&[0], self.addr);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a server that runs until the process exits (for tests that just need an address).
/// Panics if no UDP socket can be bound on 127.0.0.1.
pub fn start(entries: Vec<Entry>) -> (SocketAddr, JoinHandle<()>) {
    let socket = match UdpSocket::bind("127.0.0.1:0") {
        Ok(s) => s,
        Err(e) => panic!("fake DNS server: cannot bind 127.0.0.1: {e}"),
    };
    let addr = match socket.local_addr() {
        Ok(a) => a,
        Err(e) => panic!("fake DNS server: {e}"),
    };
    let queries = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = std::thread::spawn(move || serve(&socket, &entries, &queries, &stop));
    (addr, thread)
}

fn serve(
    socket: &UdpSocket,
    entries: &[Entry],
    queries: &Mutex<Vec<(String, u16)>>,
    stop: &AtomicBool,
) {
    let mut buf = [0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Some(query) = buf.get(..n).and_then(Query::parse) else {
            continue;
        };
        if let Ok(mut q) = queries.lock() {
            q.push((query.name.clone(), query.qtype));
        }
        if let Some(reply) = respond(entries, &query) {
            let _ = socket.send_to(&reply, peer);
        }
    }
}

/// The parts of a query the answer needs.
struct Query<'a> {
    id: [u8; 2],
    recursion_desired: bool,
    /// The question section exactly as received (echoed back).
    question: &'a [u8],
    name: String,
    qtype: u16,
}

impl<'a> Query<'a> {
    fn parse(msg: &'a [u8]) -> Option<Query<'a>> {
        let header = msg.get(..12)?;
        let is_response = header[2] & 0x80 != 0;
        let opcode = (header[2] >> 3) & 0x0f;
        let qdcount = u16::from_be_bytes([header[4], header[5]]);
        if is_response || opcode != 0 || qdcount != 1 {
            return None;
        }
        let mut pos = 12;
        let mut labels = Vec::new();
        loop {
            let len = usize::from(*msg.get(pos)?);
            pos += 1;
            if len == 0 {
                break;
            }
            if len > 63 {
                return None; // compression pointers do not occur in a query's only question
            }
            labels.push(String::from_utf8_lossy(msg.get(pos..pos + len)?).to_ascii_lowercase());
            pos += len;
        }
        let fixed = msg.get(pos..pos + 4)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        Some(Query {
            id: [header[0], header[1]],
            recursion_desired: header[2] & 0x01 != 0,
            question: msg.get(12..pos + 4)?,
            name: labels.join("."),
            qtype,
        })
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The reply datagram, or `None` to stay silent.
fn respond(entries: &[Entry], q: &Query) -> Option<Vec<u8>> {
    let rows: Vec<&Entry> = entries
        .iter()
        .filter(|e| same_name(e.name(), &q.name))
        .collect();
    if rows.iter().any(|e| matches!(e, Entry::Silent(_))) {
        return None;
    }
    let mut rcode = 0;
    let mut answers: Vec<(u16, Vec<u8>)> = Vec::new();
    if rows.is_empty() {
        rcode = RCODE_NXDOMAIN;
    } else if rows.iter().any(|e| matches!(e, Entry::ServFail(_))) {
        rcode = RCODE_SERVFAIL;
    } else {
        for row in rows {
            match (row, q.qtype) {
                (Entry::Mx(_, pref, exchange), TYPE_MX) => {
                    let mut rdata = pref.to_be_bytes().to_vec();
                    encode_name(exchange, &mut rdata)?;
                    answers.push((TYPE_MX, rdata));
                }
                (Entry::A(_, ip), TYPE_A) => answers.push((TYPE_A, ip.octets().to_vec())),
                (Entry::Aaaa(_, ip), TYPE_AAAA) => answers.push((TYPE_AAAA, ip.octets().to_vec())),
                _ => {}
            }
        }
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&q.id);
    // QR, AA, RD copied from the query; RA; the response code.
    out.push(0x84 | u8::from(q.recursion_desired));
    out.push(0x80 | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&u16::try_from(answers.len()).ok()?.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // no authority or additional records
    out.extend_from_slice(q.question);
    for (rtype, rdata) in answers {
        out.extend_from_slice(&[0xc0, 12]); // owner: pointer to the question's name
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // class IN
        out.extend_from_slice(&60u32.to_be_bytes()); // TTL
        out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    Some(out)
}

/// Appends `name` in wire format; `"."` or `""` is the root. `None` for an over-long label.
fn encode_name(name: &str, out: &mut Vec<u8>) -> Option<()> {
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let len = u8::try_from(label.len()).ok().filter(|&l| l <= 63)?;
        out.push(len);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A query for `name`/`qtype` with id 0x1234 and RD set.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        encode_name(name, &mut q).unwrap();
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    fn ask(server: &FakeDns, q: &[u8]) -> Option<Vec<u8>> {
        ask_at(server.addr(), q)
    }

    fn ask_at(addr: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.send_to(q, addr).unwrap();
        let mut buf = [0u8; 1024];
        s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    }

    #[test]
    fn answers_from_the_table() {
        let dns = FakeDns::start(vec![
            Entry::mx("Example.COM.", 10, "mx.example.com"),
            Entry::a("mx.example.com", Ipv4Addr::new(192, 0, 2, 1)),
            Entry::NoData("empty.example".into()),
            Entry::ServFail("broken.example".into()),
            Entry::Silent("slow.example".into()),
        ])
        .unwrap();

        let r = ask(&dns, &query("example.com", TYPE_MX)).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!((r[2] & 0x80, r[3] & 0x0f), (0x80, 0));
        assert_eq!(&r[6..8], &[0, 1]); // one answer
        assert!(r.ends_with(&[
            0, 10, 2, b'm', b'x', 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm',
            0
        ]));

        let r = ask(&dns, &query("MX.example.com", TYPE_A)).unwrap();
        assert!(r.ends_with(&[0, 4, 192, 0, 2, 1]));
        let r = ask(&dns, &query("mx.example.com", TYPE_AAAA)).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0)); // NODATA
        let r = ask(&dns, &query("empty.example", TYPE_MX)).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0));
        let r = ask(&dns, &query("nowhere.example", TYPE_MX)).unwrap();
        assert_eq!(r[3] & 0x0f, RCODE_NXDOMAIN);
        let r = ask(&dns, &query("broken.example", TYPE_A)).unwrap();
        assert_eq!(r[3] & 0x0f, RCODE_SERVFAIL);
        assert!(ask(&dns, &query("slow.example", TYPE_A)).is_none());
        // Garbage is ignored, and the server keeps going.
        assert!(ask(&dns, &[1, 2, 3]).is_none());
        assert!(ask(&dns, &query("example.com", TYPE_MX)).is_some());
        let seen = dns.queries();
        assert_eq!(seen[0], ("example.com".to_string(), TYPE_MX));
        assert_eq!(seen[1], ("mx.example.com".to_string(), TYPE_A));
    }

    #[test]
    fn null_mx_is_the_root_name() {
        let dns = FakeDns::start(vec![Entry::mx("none.example", 0, ".")]).unwrap();
        let r = ask(&dns, &query("none.example", TYPE_MX)).unwrap();
        assert!(r.ends_with(&[0, 3, 0, 0, 0]));
    }

    #[test]
    fn detached_server_for_integration_tests() {
        let (addr, _thread) = start(vec![Entry::a("h.example", Ipv4Addr::LOCALHOST)]);
        let r = ask_at(addr, &query("h.example", TYPE_A)).unwrap();
        assert!(r.ends_with(&[0, 4, 127, 0, 0, 1]));
    }
}
