//! A tiny authoritative DNS server for tests, answering from a fixed table over UDP.
//!
//! Why it exists: MX routing must be tested without ever touching the internet or the machine's
//! resolver, and both the unit tests of `delivery::mx` and the integration tests in `tests/`
//! (which point the *binary* at it with `dns.servers=127.0.0.1:PORT`) need the same thing. It is
//! test support only: the library includes this file under `cfg(test)` and the integration tests
//! with `#[path]`, so a release build ships no DNS server. It runs on a plain std thread, not
//! tokio, so a test needs no runtime to start it. Messages are read and written with
//! hickory-proto (the resolver's own wire code, already a dependency); the table lookup is the
//! only logic here. A name absent from the table is NXDOMAIN; a name present but without records
//! of the asked type is an empty NOERROR answer ("NODATA"), as a real zone would give. Malformed
//! datagrams are dropped, never answered or panicked on.
//!
//! hickory-server was not used: its catalogue serves zones, but `ServFail` and `Silent` entries
//! need a request handler of our own anyway, and it wants a tokio runtime in every test.

// Each test crate that includes this file uses a different part of it.
#![allow(dead_code)]

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, AAAA, MX};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

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
        let Some(request) = buf.get(..n).and_then(|b| Message::from_vec(b).ok()) else {
            continue;
        };
        let Some(reply) = respond(entries, &request, queries) else {
            continue;
        };
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

/// The question's name as the table and `queries` use it: lower case, no final dot.
fn plain(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The reply, or `None` to stay silent (not a standard query with one question, or `Silent`).
fn respond(
    entries: &[Entry],
    request: &Message,
    queries: &Mutex<Vec<(String, u16)>>,
) -> Option<Message> {
    let header = &request.metadata;
    if header.message_type != MessageType::Query
        || header.op_code != OpCode::Query
        || request.queries.len() != 1
    {
        return None;
    }
    let question = request.queries.first()?;
    let name = plain(question.name());
    let qtype = question.query_type();
    if let Ok(mut q) = queries.lock() {
        q.push((name.clone(), u16::from(qtype)));
    }
    let rows: Vec<&Entry> = entries
        .iter()
        .filter(|e| same_name(e.name(), &name))
        .collect();
    if rows.iter().any(|e| matches!(e, Entry::Silent(_))) {
        return None;
    }
    let mut reply = Message::response(header.id, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = header.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_query(question.clone());
    if rows.is_empty() {
        reply.metadata.response_code = ResponseCode::NXDomain;
    } else if rows.iter().any(|e| matches!(e, Entry::ServFail(_))) {
        reply.metadata.response_code = ResponseCode::ServFail;
    } else {
        for row in rows {
            let rdata = match (row, qtype) {
                (Entry::Mx(_, pref, exchange), RecordType::MX) => {
                    let exchange = if exchange.trim_end_matches('.').is_empty() {
                        Name::root()
                    } else {
                        Name::from_ascii(exchange).ok()?
                    };
                    RData::MX(MX::new(*pref, exchange))
                }
                (Entry::A(_, ip), RecordType::A) => RData::A(A::from(*ip)),
                (Entry::Aaaa(_, ip), RecordType::AAAA) => RData::AAAA(AAAA::from(*ip)),
                _ => continue,
            };
            reply.add_answer(Record::from_rdata(question.name().clone(), 60, rdata));
        }
    }
    Some(reply)
}
