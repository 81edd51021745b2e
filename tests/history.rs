//! The delivery history against a real `jes serve`: a local message read and deleted over POP3, one
//! relayed through an upstream SMTP server that answers with its queue id, one deferred then
//! delivered, one bounced, one refused at RCPT. Each must show in `jes trace` (plain and `--json`)
//! and `/api/history` with its cause; the history must survive a restart, `--forget` must remove an
//! address, `history.days` must prune, and `history.days=0` must write nothing.

mod common;
#[path = "common/http.rs"]
mod http_client;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{free_port, jes_bin, Server, Upstream, DEFAULT_USERS};
use http_client::{http, wait_http, Client};
use serde_json::Value;

const ADMIN: &str = "trackstudio@127.0.0.1";

/// `jes trace ARGS --dir ETC`: (exit code, stdout, stderr).
fn trace(server: &Server, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(jes_bin())
        .arg("trace")
        .args(args)
        .arg("--dir")
        .arg(&server.etc)
        .output()
        .expect("run jes trace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `jes trace QUERY` once it shows `want` (the writer commits about once a second).
fn trace_until(server: &Server, query: &str, want: &str) -> String {
    let mut last = String::new();
    server.wait_until(
        &format!("jes trace {query} shows {want:?}"),
        Duration::from_secs(30),
        || {
            let (code, out, err) = trace(server, &[query]);
            last = format!("exit {code}\n{out}{err}");
            code == 0 && out.contains(want)
        },
    );
    last
}

/// `jes trace QUERY --json` as objects.
fn trace_json(server: &Server, query: &str) -> Vec<Value> {
    let (code, out, err) = trace(server, &[query, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn api(client: &Client, query: &str) -> Vec<Value> {
    client
        .get(&format!("/api/history?{query}"))
        .expect(200)
        .json()["events"]
        .as_array()
        .cloned()
        .expect("events")
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn every_outcome_has_a_timeline_that_survives_a_restart() {
    let up = Upstream::start(&["--queue-ids", "--reject", "bad@remote.test=550"]);
    up.set_mode("defer");
    let http_port = free_port();
    let mut server = Server::start(
        &format!(
            "http.port={http_port}\nhttp.admins={ADMIN}\nsmtpdelivery.interval=1\n\
             defaultsmtpservers=127.0.0.1:{}",
            up.port
        ),
        DEFAULT_USERS,
    );
    wait_http(http_port);
    let client = Client::login(http_port, ADMIN, "secret");

    // Deferred while the upstream says 451, delivered once it takes mail again.
    let reply = server.send(
        "app@127.0.0.1",
        &["later@remote.test"],
        "Subject: Task 3 later\r\nMessage-ID: <task-3@tracker>\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    trace_until(&server, "later@remote.test", "deferred at 127.0.0.1");
    up.set_mode("");
    let (ok, text) = server.jes(&["queue", "retry", "--all"]);
    assert!(ok, "{text}");
    // Relayed, the upstream answering with its queue id; bounced by the upstream; local; refused.
    let reply = server.send(
        "app@127.0.0.1",
        &["boss@remote.test"],
        "Subject: Task 2 relayed\r\nMessage-ID: <task-2@tracker>\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let reply = server.send(
        "analyst@localhost",
        &["bad@remote.test"],
        "Subject: Task 4 bounces\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let reply = server.send(
        "app@127.0.0.1",
        &[ADMIN],
        "Subject: =?UTF-8?B?0JfQsNC00LDRh9CwIDE=?= local\r\nMessage-ID: <task-1@tracker>\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250 2.0.0 OK queued as "), "{reply}");
    let local_id = reply
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut c = server.connect(server.smtp_port);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<app@127.0.0.1>").starts_with("250"));
    assert!(c
        .cmd("RCPT TO:<trackstudoi@127.0.0.1>")
        .starts_with("550 5.1.1"));
    let _ = c.cmd("QUIT");
    // A POP3 client reads the local message and deletes it.
    let mut p = server.connect(server.pop3_port);
    assert!(p.cmd(&format!("USER {ADMIN}")).starts_with("+OK"));
    assert!(p.cmd("PASS secret").starts_with("+OK"));
    assert!(p.cmd("RETR 1").starts_with("+OK"));
    while p.line() != ".\r\n" {}
    assert!(p.cmd("DELE 1").starts_with("+OK"));
    assert!(p.cmd("QUIT").starts_with("+OK"));

    let received = up.wait_for(2, Duration::from_secs(30));
    let queue_id = |rcpt: &str| {
        received
            .iter()
            .find(|t| t["rcpt_tos"][0] == rcpt)
            .and_then(|t| t["queue_id"].as_str())
            .unwrap_or_else(|| panic!("upstream got {rcpt}: {received:?}"))
            .to_string()
    };
    let boss_qid = queue_id("boss@remote.test");
    let later_qid = queue_id("later@remote.test");

    // Plain timelines, in words, with the cause.
    let t = trace_until(
        &server,
        "later@remote.test",
        &format!(
            "relayed to 127.0.0.1 without TLS (attempt 2): 250 2.0.0 Ok: queued as {later_qid}"
        ),
    );
    assert!(
        t.contains("deferred at 127.0.0.1 without TLS (attempt 1): 451 4.3.0 upstream says try again later"),
        "{t}"
    );
    assert!(
        t.contains("<task-3@tracker>") && t.contains("\"Task 3 later\""),
        "{t}"
    );
    trace_until(
        &server,
        "<task-2@tracker>",
        &format!("<boss@remote.test> relayed to 127.0.0.1 without TLS (attempt 1): 250 2.0.0 Ok: queued as {boss_qid}"),
    );
    trace_until(
        &server,
        "bad@remote.test",
        "bounced by 127.0.0.1 without TLS (attempt 1): 550 5.1.1 <bad@remote.test>: rejected by upstream",
    );
    trace_until(
        &server,
        "trackstudoi@127.0.0.1",
        "refused: 550 5.1.1 <trackstudoi@127.0.0.1>",
    );
    let t = trace_until(&server, ADMIN, "deleted by a POP3 client");
    for want in [
        format!("message {local_id} <task-1@tracker>"),
        "\"Задача 1 local\"".to_string(),
        "delivered into the local mailbox".to_string(),
        "read by a POP3 client".to_string(),
    ] {
        assert!(t.contains(&want), "{want} in\n{t}");
    }
    // A piece of the subject, any case, finds the message; so do its id and a domain.
    assert!(trace_until(&server, "задача", "<task-1@tracker>").contains(&local_id));
    trace_until(&server, &local_id, "<task-1@tracker>");
    let (code, out, _) = trace(&server, &["@remote.test"]);
    assert_eq!(code, 0);
    for r in ["later@", "boss@", "bad@"] {
        assert!(out.contains(r), "{r} in\n{out}");
    }

    // --json: the documented fields, one object per event, oldest first.
    let later = trace_json(&server, "later@remote.test");
    assert_eq!(kinds(&later), ["accepted", "deferred", "delivered"]);
    let fields = [
        "time",
        "id",
        "message_id",
        "event",
        "sender",
        "recipient",
        "subject",
        "size",
        "attempt",
        "remote_host",
        "remote_ip",
        "tls",
        "reply",
        "status",
        "node",
    ];
    for e in &later {
        let mut keys: Vec<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = fields.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
        assert_eq!(e["message_id"], "<task-3@tracker>");
        assert_eq!(e["sender"], "app@127.0.0.1");
        // history.db has one server: it names none.
        assert_eq!(e["node"], Value::Null, "{e}");
    }
    assert_eq!(later[1]["status"], "4.3.0");
    assert_eq!(later[2]["remote_ip"], "127.0.0.1");
    assert_eq!(later[2]["attempt"], 2);
    assert_eq!(later[2]["tls"], Value::Null);
    let refused = trace_json(&server, "trackstudoi@127.0.0.1");
    assert_eq!(kinds(&refused), ["refused"]);
    assert_eq!(refused[0]["id"], "");
    assert_eq!(refused[0]["status"], "5.1.1");
    let local = trace_json(&server, &local_id);
    assert_eq!(
        kinds(&local),
        [
            "accepted",
            "delivered-locally",
            "pop3-retrieved",
            "pop3-deleted"
        ]
    );

    // The API: the same objects, newest message first, limit counts events.
    let from_api = api(&client, "q=later%40remote.test");
    assert_eq!(from_api, later);
    let domain = api(&client, "q=%40remote.test");
    for r in ["later@", "boss@", "bad@"] {
        assert!(domain
            .iter()
            .any(|e| e["recipient"].as_str().unwrap().starts_with(r)));
    }
    // Newest message first: each message's last event is no later than the one before's.
    let all = api(&client, "since=1h&limit=1000");
    let mut newest: Vec<(String, String)> = Vec::new();
    for (i, e) in all.iter().enumerate() {
        let id = e["id"].as_str().unwrap();
        let key = if id.is_empty() {
            format!("#{i}")
        } else {
            id.to_string()
        };
        let time = e["time"].as_str().unwrap().to_string();
        match newest.last_mut() {
            Some((k, t)) if *k == key => *t = time.max(t.clone()),
            _ => newest.push((key, time)),
        }
    }
    assert!(newest.len() >= 6, "{all:#?}");
    assert!(
        newest.windows(2).all(|w| w[0].1 >= w[1].1),
        "newest message first: {newest:?}"
    );
    assert_eq!(api(&client, "since=1h&limit=3").len(), 3);
    assert_eq!(
        api(&client, "q=task+2+relayed")[1]["reply"],
        format!("250 2.0.0 Ok: queued as {boss_qid}")
    );
    client.get("/api/history?limit=1001").expect(400);
    client.get("/api/history?since=1w").expect(400);

    // The bounce to the local sender (its own message) is in before the restart.
    trace_until(
        &server,
        "analyst@localhost",
        "delivered into the local mailbox",
    );
    // A restart keeps every event; jes trace on a stopped server creates no file.
    let before = trace_json(&server, "--since=1d");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(15)));
    let files = names(&server.etc);
    let (code, out, _) = trace(&server, &["--since", "1d", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), before.len());
    assert_eq!(names(&server.etc), files, "jes trace made no file");
    server.spawn();
    wait_http(http_port);
    assert_eq!(trace_json(&server, "--since=1d"), before);

    // --forget removes an address's events, and only those.
    let out = Command::new(jes_bin())
        .args(["trace", "--forget", "LATER@remote.test", "--dir"])
        .arg(&server.etc)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 3 events"));
    let (code, _, err) = trace(&server, &["later@remote.test"]);
    assert_eq!((code, err.trim()), (1, "jes: no matching events"));
    assert_eq!(
        kinds(&trace_json(&server, "boss@remote.test")),
        ["accepted", "delivered"]
    );
    // The writer kept up with everything above: nothing was dropped.
    let metrics = http(http_port, "GET", "/metrics", &[], b"")
        .expect(200)
        .text();
    assert!(
        metrics.lines().any(|l| l == "jes_history_dropped_total 0"),
        "{metrics}"
    );
}

#[test]
fn old_events_are_pruned_and_days_zero_keeps_nothing() {
    // Events 40 and 10 days old, written through the library before the server starts: the
    // default history.days=30 removes the first at start and keeps the second.
    let mut server = Server::prepare("", DEFAULT_USERS);
    let path = jes::history::db_path(&server.etc);
    let mut store = jes::history::SqliteHistory::create(&path).unwrap();
    let record = |rcpt: &str, days: u64| jes::history::Record {
        time_ms: now_ms() - days * 86_400_000,
        id: format!("17000000000000000{days}"),
        message_id: None,
        event: "delivered".into(),
        sender: "app@127.0.0.1".into(),
        recipient: rcpt.into(),
        subject: Some("old".into()),
        size: 10,
        attempt: 1,
        remote_host: None,
        remote_ip: None,
        tls: None,
        reply: "250 ok".into(),
        status: None,
        server: None,
    };
    use jes::history::HistoryStore;
    store
        .append(&[
            record("old@remote.test", 40),
            record("recent@remote.test", 10),
        ])
        .unwrap();
    drop(store);
    assert_eq!(trace(&server, &["old@remote.test"]).0, 0);
    server.spawn();
    server.wait_until(
        "the 40-day-old event is pruned",
        Duration::from_secs(20),
        || trace(&server, &["old@remote.test"]).0 == 1,
    );
    assert_eq!(trace(&server, &["recent@remote.test"]).0, 0);
    let mode = std::fs::metadata(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);

    // history.days=0: no file, nothing recorded, and jes trace says why.
    let off = Server::start("history.days=0", DEFAULT_USERS);
    let reply = off.send("app@127.0.0.1", &[ADMIN], "Subject: s\r\n\r\nx\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!jes::history::db_path(&off.etc).exists());
    let (code, _, err) = trace(&off, &["--since", "1h"]);
    assert_eq!(code, 1);
    assert!(err.contains("history is off (history.days=0"), "{err}");
    // And a bad query is an error, exit 2.
    assert_eq!(trace(&off, &["--since", "yesterday"]).0, 2);

    // history.subjects=false: the events are kept, their subjects are not.
    let quiet = Server::start("history.subjects=false", DEFAULT_USERS);
    let reply = quiet.send(
        "app@127.0.0.1",
        &[ADMIN],
        "Subject: private matter\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    trace_until(&quiet, ADMIN, "delivered into the local mailbox");
    let events = trace_json(&quiet, ADMIN);
    assert_eq!(kinds(&events), ["accepted", "delivered-locally"]);
    assert!(events.iter().all(|e| e["subject"].is_null()), "{events:?}");
    assert_eq!(trace(&quiet, &["private"]).0, 1);
}
