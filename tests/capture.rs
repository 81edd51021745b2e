//! Capture mode (issue 17): with `capture=true` mail that would leave is held in the queue, seen
//! in `jes capture list`, `jes queue list` and the API, and released through a real upstream SMTP
//! server (aiosmtpd); allowed recipients and local mailboxes are not affected.

mod common;

use std::time::Duration;

use common::{Server, Upstream};

const USERS: &str = "user.trackstudio@127.0.0.1=secret\nuser.analyst@localhost=password\n\
userprop.analyst@localhost.forwardAddresses=analyst@localhost,boss@forward.test\n";

fn body(subject: &str) -> String {
    format!("From: tracker@localhost\r\nTo: boss@remote.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@localhost>\r\n\r\nText of {subject}.\r\n")
}

/// Logs in and returns (cookie jar path, csrf token); the console says capture is on.
fn login(server: &Server, port: u16) -> (String, String) {
    let (jar, csrf, v) = common::console_login(server, port);
    assert_eq!(v["capture"], true, "{v}");
    (jar, csrf)
}

fn api(
    port: u16,
    jar: &str,
    csrf: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let csrf = format!("X-CSRF-Token: {csrf}");
    common::console_api(port, jar, &[&csrf], method, path, body)
}

fn metric(port: u16, name: &str) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn captured_ids(server: &Server) -> Vec<String> {
    let (ok, out) = server.jes(&["capture", "list"]);
    assert!(ok, "{out}");
    out.lines()
        .filter(|l| l.contains("  -> "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect()
}

#[test]
fn capture_holds_outside_mail_and_releases_it_through_the_upstream() {
    let up = Upstream::start(&["--reject", "nobody@allowed.test=550"]);
    let http = common::free_port();
    let server = Server::start(
        &format!(
            "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1\ncapture=true\n\
             capture.allow=@allowed.test, ops@partner.test\nhttp.port={http}\nhttp.admins=analyst@localhost",
            up.port
        ),
        USERS,
    );
    // jes check says capture is on.
    let check = std::process::Command::new(common::jes_bin())
        .arg("check")
        .arg(&server.etc)
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(check.contains("capture:         ON"), "{check}");
    let held_before = metric(http, "jes_recipients_held_total");

    // A mixed message: the allowed recipients go out at once, the local copy is delivered, the
    // outside recipient is held.
    let r = server.send(
        "tracker@localhost",
        &[
            "boss@remote.test",
            "dev@allowed.test",
            "ops@partner.test",
            "trackstudio@127.0.0.1",
        ],
        &body("first"),
    );
    assert!(r.starts_with("250"), "{r}");
    let got = up.wait_for(1, Duration::from_secs(20));
    let mut rcpts: Vec<String> = got[0]["rcpt_tos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    rcpts.sort();
    assert_eq!(rcpts, ["dev@allowed.test", "ops@partner.test"]);
    server.wait_until("the local copy", Duration::from_secs(10), || {
        !server.mailbox_files("trackstudio@127.0.0.1").is_empty()
    });
    server.wait_until("held in jes capture list", Duration::from_secs(10), || {
        captured_ids(&server).len() == 1
    });
    let first = captured_ids(&server)[0].clone();
    let (_, queue_list) = server.jes(&["queue", "list"]);
    assert!(
        queue_list.contains("boss@remote.test (held)"),
        "{queue_list}"
    );
    let (ok, shown) = server.jes(&["capture", "show", &first]);
    assert!(
        ok && shown.contains("Text of first.") && shown.contains("boss@remote.test (held)"),
        "{shown}"
    );
    assert_eq!(metric(http, "jes_recipients_held_total"), held_before + 1);
    let first_file = server.etc.join(format!("smtp/smtp{first}.ser"));
    let held_at = std::fs::metadata(&first_file).unwrap().modified().unwrap();

    // A forward to an outside address and a bounce to an outside sender are held too.
    assert!(server
        .send(
            "tracker@localhost",
            &["analyst@localhost"],
            &body("forwarded")
        )
        .starts_with("250"));
    assert!(server
        .send(
            "someone@remote.test",
            &["nobody@allowed.test"],
            &body("bounced")
        )
        .starts_with("250"));
    server.wait_until("forward and bounce held", Duration::from_secs(20), || {
        captured_ids(&server).len() == 3
    });
    let (_, list) = server.jes(&["capture", "list"]);
    assert!(list.contains("-> boss@forward.test"), "{list}");
    assert!(list.contains("<>  -> someone@remote.test"), "{list}");
    assert_eq!(up.received().len(), 1, "nothing held reached the upstream");
    // Held mail is not taken again and again while other mail comes and goes (scans every 1 s).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        std::fs::metadata(&first_file).unwrap().modified().unwrap(),
        held_at
    );
    assert_eq!(metric(http, "jes_recipients_held_total"), held_before + 3);

    // The API shows them; the history has the held events.
    let (jar, csrf) = login(&server, http);
    let (code, text) = api(http, &jar, &csrf, "GET", "/api/captured", None);
    assert_eq!(code, 200, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert_eq!(listed[0]["id"], first.as_str());
    assert_eq!(listed[0]["held"][0], "boss@remote.test");
    let (code, text) = api(
        http,
        &jar,
        &csrf,
        "GET",
        &format!("/api/captured/{first}"),
        None,
    );
    assert_eq!(code, 200, "{text}");
    let detail: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(detail["subject"], "first");
    assert!(detail["text"].as_str().unwrap().contains("Text of first."));
    // The message as it would be sent, as the mailbox view offers it; no attachment 0 here.
    let (code, raw) = api(
        http,
        &jar,
        &csrf,
        "GET",
        &format!("/api/captured/{first}/raw"),
        None,
    );
    assert_eq!(code, 200, "{raw}");
    assert!(
        raw.contains("Subject: first") && raw.contains("Text of first."),
        "{raw}"
    );
    let (code, _) = api(
        http,
        &jar,
        &csrf,
        "GET",
        &format!("/api/captured/{first}/attachments/0"),
        None,
    );
    assert_eq!(code, 404);
    server.wait_until("held in the history", Duration::from_secs(10), || {
        server
            .jes(&["trace", "<first@localhost>"])
            .1
            .contains("held")
    });

    // Release from the command line: it goes out through the upstream while capture stays on.
    let released_before = metric(http, "jes_recipients_released_total");
    let (ok, out) = server.jes(&["capture", "release", &first]);
    assert!(ok, "{out}");
    let got = up.wait_for(2, Duration::from_secs(20));
    assert_eq!(got[1]["rcpt_tos"], serde_json::json!(["boss@remote.test"]));
    server.wait_until(
        "the CLI's release in the history",
        Duration::from_secs(10),
        || {
            server
                .jes(&["trace", "<first@localhost>"])
                .1
                .contains("released by jes capture")
        },
    );
    assert!(got[1]["data"].as_str().unwrap().contains("Text of first."));

    // Release through the API to another address: only the envelope changes.
    let forwarded = captured_ids(&server).into_iter().next().unwrap();
    let (code, text) = api(
        http,
        &jar,
        &csrf,
        "POST",
        &format!("/api/captured/{forwarded}/release"),
        Some(r#"{"to":"qa@remote.test"}"#),
    );
    assert_eq!(code, 200, "{text}");
    let got = up.wait_for(3, Duration::from_secs(20));
    assert_eq!(got[2]["rcpt_tos"], serde_json::json!(["qa@remote.test"]));
    assert!(got[2]["data"]
        .as_str()
        .unwrap()
        .contains("Text of forwarded."));
    assert_eq!(
        metric(http, "jes_recipients_released_total"),
        released_before + 1
    );
    server.wait_until("released in the history", Duration::from_secs(10), || {
        server
            .jes(&["trace", "<forwarded@localhost>"])
            .1
            .contains("released")
    });

    // And `release --to` from the command line, after a fresh one.
    assert!(server
        .send("tracker@localhost", &["x@remote.test"], &body("third"))
        .starts_with("250"));
    server.wait_until("third held", Duration::from_secs(20), || {
        captured_ids(&server).len() == 2
    });
    let third = captured_ids(&server).into_iter().last().unwrap();
    let (ok, out) = server.jes(&["capture", "release", &third, "--to", "review@remote.test"]);
    assert!(ok, "{out}");
    let got = up.wait_for(4, Duration::from_secs(20));
    assert_eq!(
        got[3]["rcpt_tos"],
        serde_json::json!(["review@remote.test"])
    );

    // Delete: the bounce goes, nobody is told, nothing reaches the upstream.
    let (code, text) = api(
        http,
        &jar,
        &csrf,
        "DELETE",
        &format!("/api/captured/{}", captured_ids(&server)[0]),
        None,
    );
    assert_eq!(code, 204, "{text}");
    assert!(captured_ids(&server).is_empty());
    assert!(server
        .send("tracker@localhost", &["y@remote.test"], &body("fourth"))
        .starts_with("250"));
    server.wait_until("fourth held", Duration::from_secs(20), || {
        captured_ids(&server).len() == 1
    });
    let (ok, out) = server.jes(&["capture", "delete", "--all"]);
    assert!(ok, "{out}");
    assert!(captured_ids(&server).is_empty());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(up.received().len(), 4);
    assert!(
        server.queue_files().is_empty(),
        "{:?}",
        server.queue_files()
    );
}
