//! Inbound webhooks (issue 18) against a real `jes serve` and an independent receiver
//! (tests/py/webhook.py: Python's http.server), which checks every signature twice without jes's
//! code: by hand with hmac/hashlib, and with the `standardwebhooks` package from PyPI. Messages are
//! sent with Python's smtplib and read with poplib (a raw POP3 session holds the mailbox); the
//! history is read with `jes trace`, the counters from `/metrics`. `webhook.retrybase=1` makes the retry schedule's unit one second.

mod common;
#[path = "common/http.rs"]
mod http_client;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, jes_bin, python3, repo_path, Server};
use http_client::{http, wait_http};
use serde_json::Value;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The receiver: a Python HTTP server that answers 503 to its first `fail` calls, then 200.
struct Receiver {
    port: u16,
    log: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start(fail: u32) -> Receiver {
        Receiver::start_with(fail, &[])
    }

    fn start_with(fail: u32, extra: &[&std::ffi::OsStr]) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.jsonl");
        let port = free_port();
        let mut child = Command::new(python3())
            .arg(repo_path("tests/py/webhook.py"))
            .args(["receive", &port.to_string()])
            .arg(&log)
            .args([SECRET, "--fail", &fail.to_string(), "--schema"])
            .arg(repo_path("docs/webhook.schema.json"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tests/py/webhook.py");
        let mut first = String::new();
        if let Some(out) = child.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut first);
        }
        assert_eq!(first.trim(), "ready", "receiver did not start");
        Receiver {
            port,
            log,
            child,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn calls(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end + 1],
            None => "",
        };
        complete
            .lines()
            .map(|l| serde_json::from_str(l).expect("receiver line is JSON"))
            .collect()
    }

    fn wait_for(&self, server: &Server, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} calls, expected {n}\nlog:\n{}",
                calls.len(),
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every signature verifies, by hand and (when installed) with the `standardwebhooks` package,
/// and every body matches docs/webhook.schema.json.
fn assert_signed_and_valid(calls: &[Value]) {
    for c in calls {
        assert_eq!(c["verified"], true, "hand-made HMAC check: {c}");
        match &c["verified_lib"] {
            Value::Bool(ok) => assert!(ok, "standardwebhooks.verify refused: {c}"),
            _ => println!(
                "SKIPPED standardwebhooks check: the package is not in tests/.venv (scripts/install-test-deps installs it); the hand-made check ran"
            ),
        }
        assert_eq!(c["schema_errors"], serde_json::json!([]), "schema: {c}");
    }
}

fn users(url: &str, options: &str) -> String {
    format!(
        "user.bob@localhost=secret\nuser.ann@localhost=secret\n\
         userprop.bob@localhost.webhook={url}\n{options}"
    )
}

fn metric(port: u16, line_start: &str) -> u64 {
    let resp = http(port, "GET", "/metrics", &[], b"");
    let text = String::from_utf8_lossy(&resp.body).to_string();
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics:\n{text}"))
}

fn calls_metric(port: u16, result: &str) -> u64 {
    metric(
        port,
        &format!("jes_webhook_calls_total{{result=\"{result}\"}} "),
    )
}

/// `jes trace QUERY --json` (one event per line), once it holds `times` events of kind `kind`
/// (the history commits about once a second).
fn trace_until(server: &Server, query: &str, kind: &str, times: usize) -> String {
    let mut last = String::new();
    let want = format!("\"event\":\"{kind}\"");
    server.wait_until(
        &format!("jes trace {query} shows {kind} {times} times"),
        Duration::from_secs(30),
        || {
            let out = Command::new(jes_bin())
                .args(["trace", query, "--json", "--dir"])
                .arg(&server.etc)
                .output()
                .expect("run jes trace");
            last = String::from_utf8_lossy(&out.stdout).to_string();
            last.matches(&want).count() == times
        },
    );
    last
}

fn send_mime(server: &Server, to: &str, subject: &str) {
    server.python_ok(
        "webhook.py",
        &[
            "send",
            &server.smtp_port.to_string(),
            "tracker@127.0.0.1",
            to,
            subject,
        ],
    );
}

/// The UIDL of each message in a mailbox, from its file names (`pop<UIDL>.jmsg`).
fn uidls(server: &Server, addr: &str) -> Vec<String> {
    server
        .mailbox_files(addr)
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name["pop".len()..name.len() - ".jmsg".len()].to_string()
        })
        .collect()
}

fn spool_files(server: &Server) -> Vec<PathBuf> {
    common::list_matching(&server.etc.join("webhooks"), "", ".json")
}

/// Message `n` of bob's mailbox as Python's poplib receives it.
fn pop3_retr(server: &Server, n: usize) -> Vec<u8> {
    use base64::Engine;
    let out = server.python_ok(
        "webhook.py",
        &[
            "retr",
            &server.pop3_port.to_string(),
            "bob@localhost",
            "secret",
            &n.to_string(),
        ],
    );
    base64::engine::general_purpose::STANDARD
        .decode(out.trim())
        .expect("base64 from webhook.py retr")
}

#[test]
fn each_message_reaches_the_receiver_signed_and_stays_in_the_mailbox() {
    let rx = Receiver::start(0);
    let http_port = free_port();
    let server = Server::start(
        &format!("http.port={http_port}\nwebhook.secret={SECRET}\nwebhook.retrybase=1"),
        &users(&rx.url(), "userprop.bob@localhost.webhook.raw=true\n"),
    );
    wait_http(http_port);
    assert_eq!(calls_metric(http_port, "success"), 0);
    send_mime(&server, "bob@localhost", "Task 1");
    send_mime(&server, "bob@localhost", "Task 2");
    // A mailbox without a webhook: no call.
    send_mime(&server, "ann@localhost", "Task 3");
    let calls = rx.wait_for(&server, 2, Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let calls_after = rx.calls();
    assert_eq!(
        calls_after.len(),
        2,
        "one call per message: {calls_after:?}"
    );
    assert_signed_and_valid(&calls);

    let mut ids: Vec<String> = calls
        .iter()
        .map(|c| c["headers"]["webhook-id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let mut on_disk = uidls(&server, "bob@localhost");
    on_disk.sort();
    assert_eq!(
        ids, on_disk,
        "webhook-id is each message's UIDL; both stay in the mailbox"
    );

    for c in &calls {
        let h = &c["headers"];
        assert_eq!(h["content-type"], "application/json");
        assert!(h["user-agent"].as_str().unwrap().starts_with("jes/"), "{h}");
        assert_eq!(c["path"], "/hook");
        let d = &c["body"]["data"];
        assert_eq!(c["body"]["type"], "message.received");
        assert_eq!(d["uidl"], h["webhook-id"]);
        assert_eq!(d["envelope"]["sender"], "tracker@127.0.0.1");
        assert_eq!(d["envelope"]["recipient"], "bob@localhost");
        let subject = d["subject"].as_str().unwrap();
        assert!(subject == "Task 1" || subject == "Task 2", "{subject}");
        assert_eq!(
            d["text"].as_str().unwrap().trim(),
            format!("Plain text of {subject}")
        );
        assert_eq!(
            d["html"].as_str().unwrap().trim(),
            format!("<p>HTML of {subject}</p>")
        );
        let att = &d["attachments"][0];
        assert_eq!(att["name"], "report.pdf");
        assert_eq!(att["content_type"], "application/pdf");
        assert_eq!(att["size"], 1009);
        assert!(d["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "Message-ID"));
    }
    // raw=true: the message exactly as POP3 serves it.
    let first = calls
        .iter()
        .find(|c| c["body"]["data"]["subject"] == "Task 1")
        .unwrap();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(first["body"]["data"]["raw"].as_str().unwrap())
        .unwrap();
    let n = if ids[0] == first["headers"]["webhook-id"] {
        1
    } else {
        2
    };
    assert_eq!(
        String::from_utf8_lossy(&raw),
        String::from_utf8_lossy(&pop3_retr(&server, n))
    );

    assert_eq!(calls_metric(http_port, "success"), 2);
    assert_eq!(calls_metric(http_port, "failure"), 0);
    assert!(spool_files(&server).is_empty(), "nothing left pending");
    let trace = trace_until(&server, "bob@localhost", "webhook-sent", 2);
    assert!(trace.contains("HTTP 200 OK"), "{trace}");
}

#[test]
fn a_receiver_that_fails_three_times_gets_the_call_after_a_restart() {
    let rx = Receiver::start(3);
    let http_port = free_port();
    let mut server = Server::start(
        &format!("http.port={http_port}\nwebhook.retrybase=1"),
        &users(
            &rx.url(),
            &format!("userprop.bob@localhost.webhook.secret={SECRET}\n"),
        ),
    );
    wait_http(http_port);
    send_mime(&server, "bob@localhost", "Task 9");
    // Calls at 0 s and 1 s fail; stop jes after the first failure is counted.
    rx.wait_for(&server, 1, Duration::from_secs(20));
    server.wait_until("the failure counted", Duration::from_secs(10), || {
        calls_metric(http_port, "failure") >= 1
    });
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)), "jes stopped");
    let before = rx.calls().len();
    assert!(
        (1..=3).contains(&before),
        "{before} calls before the restart"
    );
    assert_eq!(spool_files(&server).len(), 1, "the pending call is on disk");

    server.spawn();
    wait_http(http_port);
    let calls = rx.wait_for(&server, 4, Duration::from_secs(40));
    assert_eq!(calls.len(), 4);
    assert_eq!(
        calls
            .iter()
            .map(|c| c["status"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![503, 503, 503, 200]
    );
    assert_signed_and_valid(&calls);
    let id = &calls[0]["headers"]["webhook-id"];
    assert!(
        calls.iter().all(|c| &c["headers"]["webhook-id"] == id),
        "same webhook-id across retries"
    );
    // Counted in this process: the failures after the restart, then the success.
    server.wait_until("the success counted", Duration::from_secs(10), || {
        calls_metric(http_port, "success") == 1
    });
    assert_eq!(calls_metric(http_port, "failure"), (3 - before) as u64);
    assert!(server
        .log()
        .contains("webhook calls pending from before the start"));
    server.wait_until("the spool emptied", Duration::from_secs(10), || {
        spool_files(&server).is_empty()
    });
    assert_eq!(
        uidls(&server, "bob@localhost").len(),
        1,
        "the message stays"
    );
    let trace = trace_until(&server, "bob@localhost", "webhook-sent", 1);
    assert_eq!(
        trace.matches("\"event\":\"webhook-failed\"").count(),
        3,
        "{trace}"
    );
    assert!(trace.contains("HTTP 503"), "{trace}");
}

#[test]
fn webhook_delete_removes_the_message_only_after_success_and_waits_for_pop3() {
    let rx = Receiver::start(1);
    let http_port = free_port();
    let server = Server::start(
        &format!("http.port={http_port}\nwebhook.secret={SECRET}\nwebhook.retrybase=2"),
        &users(&rx.url(), "userprop.bob@localhost.webhook.delete=true\n"),
    );
    wait_http(http_port);
    send_mime(&server, "bob@localhost", "Task 5");
    rx.wait_for(&server, 1, Duration::from_secs(20));
    assert_eq!(
        server.mailbox_files("bob@localhost").len(),
        1,
        "a failed call deletes nothing"
    );
    // A POP3 session holds the mailbox while the retry succeeds: the deletion waits for it.
    let mut pop = server.connect(server.pop3_port);
    assert!(pop.cmd("USER bob@localhost").starts_with("+OK"));
    assert!(pop.cmd("PASS secret").starts_with("+OK"));
    let calls = rx.wait_for(&server, 2, Duration::from_secs(20));
    assert_eq!(calls[1]["status"], 200);
    assert_signed_and_valid(&calls);
    server.wait_until("the success counted", Duration::from_secs(10), || {
        calls_metric(http_port, "success") == 1
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        server.mailbox_files("bob@localhost").len(),
        1,
        "not deleted under a POP3 session's lock"
    );
    assert_eq!(
        metric(http_port, "jes_messages_deleted_total{by=\"webhook\"} "),
        0
    );
    assert!(pop.cmd("QUIT").starts_with("+OK"));
    server.wait_until("the message deleted", Duration::from_secs(15), || {
        server.mailbox_files("bob@localhost").is_empty()
    });
    // The file goes first, the event after the spool forgets the call.
    server.wait_until("the deletion counted", Duration::from_secs(10), || {
        metric(http_port, "jes_messages_deleted_total{by=\"webhook\"} ") == 1
    });
    assert!(spool_files(&server).is_empty());
    let trace = trace_until(&server, "bob@localhost", "webhook-deleted", 1);
    assert!(
        trace.contains("webhook-failed") && trace.contains("webhook-sent"),
        "{trace}"
    );
}

/// https: verified against `smtpdelivery.cafile` (besides the system's roots); a receiver whose
/// certificate nobody vouches for gets no message, and the failure says why.
#[test]
fn https_is_verified_against_the_cafile() {
    let trusted_dir = tempfile::tempdir().unwrap();
    let (cert, key) = common::self_signed(trusted_dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (other_cert, other_key) = common::self_signed(other_dir.path());
    let tls = |c: &PathBuf, k: &PathBuf| {
        vec![
            std::ffi::OsString::from("--tls"),
            c.clone().into_os_string(),
            k.clone().into_os_string(),
        ]
    };
    let good_args = tls(&cert, &key);
    let bad_args = tls(&other_cert, &other_key);
    let good = Receiver::start_with(
        0,
        &good_args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(),
    );
    let bad = Receiver::start_with(
        0,
        &bad_args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>(),
    );
    let http_port = free_port();
    let server = Server::start(
        &format!(
            "http.port={http_port}\nwebhook.secret={SECRET}\nwebhook.retrybase=30\nsmtpdelivery.cafile={}",
            cert.display()
        ),
        &format!(
            "user.bob@localhost=secret\nuser.ann@localhost=secret\n\
             userprop.bob@localhost.webhook=https://localhost:{}/hook\n\
             userprop.ann@localhost.webhook=https://localhost:{}/hook\n",
            good.port, bad.port
        ),
    );
    wait_http(http_port);
    send_mime(&server, "bob@localhost", "Task 7");
    send_mime(&server, "ann@localhost", "Task 8");
    let calls = good.wait_for(&server, 1, Duration::from_secs(20));
    assert_signed_and_valid(&calls);
    server.wait_until(
        "the refused handshake counted",
        Duration::from_secs(20),
        || calls_metric(http_port, "failure") == 1,
    );
    assert_eq!(calls_metric(http_port, "success"), 1);
    assert!(
        bad.calls().is_empty(),
        "no request over an unverified connection"
    );
    let trace = trace_until(&server, "ann@localhost", "webhook-failed", 1);
    assert!(trace.to_lowercase().contains("certificate"), "{trace}");
    trace_until(&server, "bob@localhost", "webhook-sent", 1);
    let out = Command::new(jes_bin())
        .args(["trace", "bob@localhost", "--json", "--dir"])
        .arg(&server.etc)
        .output()
        .expect("run jes trace --json");
    let json = String::from_utf8_lossy(&out.stdout);
    let sent: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        .filter(|e| e["event"] == "webhook-sent")
        .collect();
    assert_eq!(sent.len(), 1, "{json}");
    assert!(
        sent[0]["tls"].as_str().unwrap_or("").starts_with("TLSv1."),
        "{json}"
    );
    assert_eq!(sent[0]["remote_host"], "localhost", "{json}");
}

/// A call that can no longer be made is given up: here the message was read and deleted over POP3
/// while the receiver kept failing. An ERROR line, a `webhook-expired` event and its counter; the
/// day-long schedule itself is unit-tested (`call::tests`), since a test cannot wait 1,440 units.
#[test]
fn a_call_whose_message_left_the_mailbox_is_given_up_with_an_error() {
    let rx = Receiver::start(1000);
    let http_port = free_port();
    let server = Server::start(
        &format!("http.port={http_port}\nwebhook.secret={SECRET}\nwebhook.retrybase=2"),
        &users(&rx.url(), ""),
    );
    wait_http(http_port);
    send_mime(&server, "bob@localhost", "Task 6");
    rx.wait_for(&server, 1, Duration::from_secs(20));
    let mut pop = server.connect(server.pop3_port);
    assert!(pop.cmd("USER bob@localhost").starts_with("+OK"));
    assert!(pop.cmd("PASS secret").starts_with("+OK"));
    assert!(pop.cmd("DELE 1").starts_with("+OK"));
    assert!(pop.cmd("QUIT").starts_with("+OK"));
    server.wait_until("the call given up", Duration::from_secs(20), || {
        metric(http_port, "jes_webhook_expired_total ") == 1
    });
    assert!(spool_files(&server).is_empty());
    let failed_calls = rx.calls().len() as u64;
    assert_eq!(calls_metric(http_port, "failure"), failed_calls);
    assert!(
        server
            .log()
            .lines()
            .any(|l| l.contains("ERROR") && l.contains("webhook-expired")),
        "{}",
        server.log()
    );
    let trace = trace_until(&server, "bob@localhost", "webhook-expired", 1);
    assert!(trace.contains("left the mailbox"), "{trace}");
}
