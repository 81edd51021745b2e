//! Direct delivery without a smart host: MX lookup against a local fake DNS server, MX targets on
//! a test-only port (`smtpdelivery.mxport`), never the internet.

mod common;
#[path = "common/fake_dns.rs"]
mod fake_dns;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{Server, Upstream, DEFAULT_USERS};
use fake_dns::{Entry, FakeDns};

const BODY: &str = "Subject: direct\r\nDate: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <d1@localhost>\r\n\r\nhello\r\n";

fn direct_server(dns: &FakeDns, mx_port: u16) -> Server {
    Server::start(
        &format!(
            "dns.servers={}\nsmtpdelivery.mxport={mx_port}\nsmtpdelivery.interval=1",
            dns.addr()
        ),
        DEFAULT_USERS,
    )
}

#[test]
fn delivers_to_the_best_mx_and_falls_back_to_the_next() {
    let up = Upstream::start(&[]);
    let dns = FakeDns::start(vec![
        // The preferred MX points at an address where nothing listens on the MX port.
        Entry::mx("remote.test", 5, "dead.remote.test"),
        Entry::a("dead.remote.test", Ipv4Addr::new(127, 0, 0, 9)),
        Entry::mx("remote.test", 10, "mx.remote.test"),
        Entry::a("mx.remote.test", Ipv4Addr::LOCALHOST),
    ])
    .unwrap();
    let server = direct_server(&dns, up.port);
    assert!(server
        .send("tracker@localhost", &["boss@remote.test"], BODY)
        .starts_with("250"));
    let got = up.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["boss@remote.test"]));
    let queries = dns.queries();
    assert!(
        queries
            .iter()
            .any(|(name, _)| name.trim_end_matches('.') == "remote.test"),
        "{queries:?}"
    );
}

#[test]
fn no_mx_falls_back_to_the_address_record() {
    let up = Upstream::start(&[]);
    let dns = FakeDns::start(vec![Entry::a("plain.test", Ipv4Addr::LOCALHOST)]).unwrap();
    let server = direct_server(&dns, up.port);
    assert!(server
        .send("tracker@localhost", &["x@plain.test"], BODY)
        .starts_with("250"));
    up.wait_for(1, Duration::from_secs(20));
}

#[test]
fn null_mx_and_unknown_domains_bounce_to_a_local_sender() {
    let dns = FakeDns::start(vec![Entry::mx("nomail.test", 0, ".")]).unwrap();
    let server = direct_server(&dns, common::free_port());
    // The sender is a local account, so the bounce lands in its mailbox.
    assert!(server
        .send(
            "analyst@localhost",
            &["a@nomail.test", "b@nxdomain.test"],
            BODY
        )
        .starts_with("250"));
    server.wait_until(
        "a bounce in the sender's mailbox",
        Duration::from_secs(20),
        || server.mailbox_files("analyst@localhost").len() == 1,
    );
    let bounce = std::fs::read_to_string(&server.mailbox_files("analyst@localhost")[0]).unwrap();
    assert!(
        bounce.contains("Return-Path: <>"),
        "a bounce has the null return path: {bounce}"
    );
    assert!(
        bounce.contains("Final-Recipient: rfc822; a@nomail.test"),
        "{bounce}"
    );
    assert!(
        bounce.contains("Final-Recipient: rfc822; b@nxdomain.test"),
        "{bounce}"
    );
    assert!(bounce.contains("5.1.10"), "null MX named: {bounce}");
    server.wait_until("queue empty", Duration::from_secs(10), || {
        server.queue_files().is_empty()
    });
}

#[test]
fn an_mx_that_is_ourselves_is_never_used() {
    let dns = FakeDns::start(vec![Entry::mx("loop.test", 10, "jes.test")]).unwrap();
    let server = direct_server(&dns, common::free_port());
    assert!(server
        .send("tracker@localhost", &["x@loop.test"], BODY)
        .starts_with("250"));
    server.wait_until("a deferred attempt", Duration::from_secs(15), || {
        server
            .queue_files()
            .first()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .is_some_and(|t| t.contains("Attempts: 1") && t.contains("4.4.6"))
    });
}
