//! Every outcome event kind against a real `jes serve`: each must show up exactly once per
//! recipient in the three places it is reported — a log line with its cause, its Prometheus
//! counter, and the console's `/api/events` — and nowhere twice. Each test has its own server, so
//! counters start at zero and can be compared exactly.

mod common;
#[path = "common/http.rs"]
mod http_client;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{free_port, Server, Upstream, DEFAULT_USERS};
use http_client::{http, wait_http, Client};
use serde_json::Value;

const ADMIN: &str = "trackstudio@127.0.0.1";
const ADMIN_PASSWORD: &str = "secret";

/// A server with the console on (admin trackstudio@127.0.0.1) and `extra` in mail.conf.
fn start(extra: &str) -> (Server, Client) {
    let http_port = free_port();
    let server = Server::start(
        &format!("http.port={http_port}\nhttp.admins={ADMIN}\nsmtpdelivery.interval=1\n{extra}"),
        DEFAULT_USERS,
    );
    wait_http(http_port);
    let client = Client::login(http_port, ADMIN, ADMIN_PASSWORD);
    (server, client)
}

/// The value of one series in `/metrics` (`name` with its labels as Prometheus prints them).
fn metric(client: &Client, series: &str) -> f64 {
    let text = http(client.port, "GET", "/metrics", &[], b"")
        .expect(200)
        .text();
    text.lines()
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or_else(|| panic!("no series {series} in /metrics:\n{text}"))
}

/// The console's events of `kind`.
fn events(client: &Client, kind: &str) -> Vec<Value> {
    client
        .get("/api/events")
        .expect(200)
        .json()
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// The log lines reporting outcome `kind`.
fn log_lines(server: &Server, kind: &str) -> Vec<String> {
    let needle = format!("outcome=\"{kind}\"");
    server
        .log()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

/// Waits until `n` events of `kind` are listed, then checks the log and the counter agree.
fn expect_reported(
    server: &Server,
    client: &Client,
    kind: &str,
    recipients: &[&str],
    series: Option<&str>,
) -> Vec<Value> {
    server.wait_until(
        &format!("{} {kind} events", recipients.len()),
        Duration::from_secs(20),
        || events(client, kind).len() >= recipients.len(),
    );
    // Anything reported twice would show up by now.
    std::thread::sleep(Duration::from_millis(300));
    let listed = events(client, kind);
    assert_eq!(listed.len(), recipients.len(), "{kind} events: {listed:#?}");
    for r in recipients {
        assert!(
            listed.iter().any(|e| e["recipient"] == *r),
            "{kind} event for {r}: {listed:#?}"
        );
    }
    let lines = log_lines(server, kind);
    assert_eq!(
        lines.len(),
        recipients.len(),
        "one {kind} log line per recipient:\n{}",
        server.log()
    );
    if let Some(series) = series {
        assert_eq!(
            metric(client, series),
            recipients.len() as f64,
            "{series} after {kind}"
        );
    }
    listed
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[test]
fn local_delivery_is_accepted_and_delivered_locally_once_per_recipient() {
    let (server, client) = start("");
    let reply = server.send(
        "app@127.0.0.1",
        &["trackstudio@127.0.0.1", "analyst@localhost"],
        "Subject: =?UTF-8?B?0JfQsNC00LDRh9CwIDEyMw==?=\r\nMessage-ID: <task-123@tracker>\r\n\r\nbody\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    let id = reply
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let rcpts = ["trackstudio@127.0.0.1", "analyst@localhost"];
    expect_reported(&server, &client, "accepted", &rcpts, None);
    // Two accepted recipients, one message; nothing refused.
    assert_eq!(metric(&client, "jes_messages_accepted_total"), 1.0);
    assert_eq!(metric(&client, "jes_recipients_refused_total"), 0.0);
    let delivered = expect_reported(
        &server,
        &client,
        "delivered-locally",
        &rcpts,
        Some("jes_recipients_delivered_total"),
    );
    for e in &delivered {
        assert_eq!(e["queue_id"], id.as_str(), "one id: {e}");
        assert_eq!(e["message_id"], "<task-123@tracker>");
        assert_eq!(e["subject"], "Задача 123", "decoded subject: {e}");
        assert_eq!(e["sender"], "app@127.0.0.1");
        assert_eq!(e["status"], "2.0.0");
    }
    // The mailbox file carries the same id.
    let files = server.mailbox_files("trackstudio@127.0.0.1");
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains(&format!("pop{id},S="))),
        "{files:?}"
    );
    let line = &log_lines(&server, "delivered-locally")[0];
    assert!(line.contains(&format!("id={id}")), "{line}");
}

#[test]
fn a_refused_recipient_is_reported_with_our_reply() {
    let (server, client) = start("");
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<app@127.0.0.1>").starts_with("250"));
    let r = c.cmd("RCPT TO:<nobody@localhost>");
    assert!(r.starts_with("550 5.1.1"), "{r}");
    let _ = c.cmd("QUIT");
    let refused = expect_reported(
        &server,
        &client,
        "refused",
        &["nobody@localhost"],
        Some("jes_recipients_refused_total"),
    );
    assert_eq!(refused[0]["status"], "5.1.1");
    assert!(
        refused[0]["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("550 5.1.1")),
        "{refused:?}"
    );
    let line = &log_lines(&server, "refused")[0];
    assert!(line.contains("status=5.1.1"), "cause in the log: {line}");
    assert_eq!(metric(&client, "jes_messages_accepted_total"), 0.0);
}

#[test]
fn relayed_mail_is_delivered_with_the_upstream_reply_and_latency() {
    let up = Upstream::start(&[]);
    let (server, client) = start(&format!("defaultsmtpservers=127.0.0.1:{}", up.port));
    let reply = server.send(
        "app@127.0.0.1",
        &["boss@remote.test"],
        "Subject: r\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    up.wait_for(1, Duration::from_secs(15));
    let delivered = expect_reported(
        &server,
        &client,
        "delivered",
        &["boss@remote.test"],
        Some("jes_recipients_delivered_total"),
    );
    let e = &delivered[0];
    assert_eq!(e["remote_host"], "127.0.0.1");
    assert_eq!(e["remote_ip"], "127.0.0.1");
    assert_eq!(e["attempt"], 1);
    assert!(
        e["reply"].as_str().is_some_and(|r| r.starts_with("250")),
        "the upstream's reply: {e}"
    );
    assert_eq!(metric(&client, "jes_delivery_latency_seconds_count"), 1.0);
    let line = &log_lines(&server, "delivered")[0];
    assert!(line.contains("host=127.0.0.1"), "{line}");
}

#[test]
fn an_upstream_5xx_bounces_at_once_and_the_bounce_is_delivered_locally() {
    let up = Upstream::start(&["--reject", "bad@remote.test=550"]);
    let (server, client) = start(&format!("defaultsmtpservers=127.0.0.1:{}", up.port));
    let reply = server.send(
        "analyst@localhost",
        &["bad@remote.test"],
        "Subject: r\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let bounced = expect_reported(
        &server,
        &client,
        "bounced",
        &["bad@remote.test"],
        Some("jes_recipients_bounced_total"),
    );
    assert_eq!(bounced[0]["status"], "5.1.1", "{bounced:?}");
    let line = &log_lines(&server, "bounced")[0];
    assert!(line.contains("WARN"), "a bounce is a warning: {line}");
    assert!(line.contains("rejected by upstream"), "its cause: {line}");
    // The DSN reaches the local sender, as its own message with its own event.
    expect_reported(
        &server,
        &client,
        "delivered-locally",
        &["analyst@localhost"],
        Some("jes_recipients_delivered_total"),
    );
}

#[test]
fn a_deferred_recipient_then_expired_after_the_last_attempt() {
    let up = Upstream::start(&[]);
    up.set_mode("defer");
    let (server, client) = start(&format!(
        "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.threshold=1",
        up.port
    ));
    let reply = server.send(
        "analyst@localhost",
        &["later@remote.test"],
        "Subject: r\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let deferred = expect_reported(
        &server,
        &client,
        "deferred",
        &["later@remote.test"],
        Some("jes_recipients_deferred_total"),
    );
    assert!(
        deferred[0]["reply"]
            .as_str()
            .is_some_and(|r| r.starts_with("451")),
        "{deferred:?}"
    );
    // threshold=1: that attempt was the last one.
    let expired = expect_reported(
        &server,
        &client,
        "expired",
        &["later@remote.test"],
        Some("jes_recipients_bounced_total"),
    );
    assert_eq!(expired[0]["attempt"], 1);
    assert!(
        events(&client, "bounced").is_empty(),
        "expired, not bounced"
    );
}

#[test]
fn a_delay_notice_is_reported_once() {
    let up = Upstream::start(&[]);
    up.set_mode("defer");
    let http_port = free_port();
    let mut server = Server::prepare(
        &format!(
            "http.port={http_port}\nhttp.admins={ADMIN}\nsmtpdelivery.interval=1\n\
             defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.delaywarning=4",
            up.port
        ),
        DEFAULT_USERS,
    );
    let received = now_ms() - 5 * 3600 * 1000;
    let smtp = server.etc.join("smtp");
    std::fs::create_dir_all(&smtp).unwrap();
    std::fs::write(
        smtp.join("smtp1795000000000000001.ser"),
        format!(
            "jes-queue 1\r\nFrom: <analyst@localhost>\r\nReceived: {received}\r\nAttempts: 2\r\n\
             Next-Attempt: {received}\r\nTo: <boss@remote.test> pending 421 4.4.2 timeout\r\n\r\n\
             Subject: stuck\r\n\r\nbody\r\n"
        ),
    )
    .unwrap();
    server.spawn();
    wait_http(http_port);
    let client = Client::login(http_port, ADMIN, ADMIN_PASSWORD);
    let notice = expect_reported(
        &server,
        &client,
        "delay-notice",
        &["boss@remote.test"],
        Some("jes_delay_notices_total"),
    );
    assert_eq!(notice[0]["queue_id"], "1795000000000000001");
    assert_eq!(notice[0]["subject"], "stuck");
}

#[test]
fn pop3_retrieve_and_delete_and_an_admin_delete_are_reported() {
    let (server, client) = start("");
    for subject in ["one", "two"] {
        let reply = server.send(
            "app@127.0.0.1",
            &["trackstudio@127.0.0.1"],
            &format!("Subject: {subject}\r\n\r\nx\r\n"),
        );
        assert!(reply.starts_with("250"), "{reply}");
    }
    // The console deletes one message.
    let listed = client
        .get("/api/mailboxes/trackstudio@127.0.0.1/messages")
        .expect(200)
        .json();
    let first = listed[0]["id"].as_str().unwrap_or_default().to_string();
    client
        .send(
            "DELETE",
            &format!("/api/mailboxes/trackstudio@127.0.0.1/messages/{first}"),
        )
        .expect(204);
    let deleted = expect_reported(
        &server,
        &client,
        "deleted-admin",
        &["trackstudio@127.0.0.1"],
        Some("jes_messages_deleted_total{by=\"admin\"}"),
    );
    assert!(
        deleted[0]["reply"]
            .as_str()
            .is_some_and(|r| r.contains(ADMIN)),
        "who deleted it: {deleted:?}"
    );
    // A POP3 client reads the other (RETR; TOP does not count) and deletes it.
    let mut c = server.connect(server.pop3_port);
    assert!(c.cmd("USER trackstudio@127.0.0.1").starts_with("+OK"));
    assert!(c.cmd("PASS secret").starts_with("+OK"));
    for command in ["TOP 1 0", "RETR 1"] {
        assert!(c.cmd(command).starts_with("+OK"), "{command}");
        while c.line() != ".\r\n" {}
    }
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let retrieved = expect_reported(
        &server,
        &client,
        "pop3-retrieved",
        &["trackstudio@127.0.0.1"],
        Some("jes_messages_retrieved_total"),
    );
    assert_eq!(retrieved[0]["sender"], "app@127.0.0.1");
    expect_reported(
        &server,
        &client,
        "pop3-deleted",
        &["trackstudio@127.0.0.1"],
        Some("jes_messages_deleted_total{by=\"pop3\"}"),
    );
    assert_eq!(
        metric(&client, "jes_messages_deleted_total{by=\"admin\"}"),
        1.0
    );
}
