//! `jes queue` and `jes capture` on the PostgreSQL queue, the periodic sweep of unreferenced
//! message bodies, and capture mode on PostgreSQL (issues 14 and 17): a real PostgreSQL
//! (`common/postgres.rs`), real jes servers, Python's smtplib and poplib, curl for the console
//! and an aiosmtpd upstream.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::{Duration, Instant};

use common::{Server, Upstream, DEFAULT_USERS};
use pg::Postgres;

const USER: &str = "trackstudio@127.0.0.1";
const PASS: &str = "secret";

/// A server on database `jes` of `pg`, not started yet.
fn prepare(pg: &Postgres, extra: &str) -> Server {
    pg.server_on(
        &pg.url("jes"),
        &format!("smtpdelivery.interval=1\nstore.leaseseconds=5\n{extra}"),
        Some(DEFAULT_USERS),
    )
}

/// Two servers on one database, started one after the other (the first makes the schema).
fn two_servers(pg: &Postgres, extra_a: &str, extra_b: &str) -> (Server, Server) {
    let a = prepare(pg, extra_a).launch();
    let b = prepare(pg, extra_b).launch();
    (a, b)
}

fn send(server: &Server, from: &str, to: &str, subject: &str) {
    let out = server.python_ok("pg_cli.py", &["send", from, to, subject]);
    assert!(out.contains("\"refused\": []"), "{out}");
}

fn fetch(server: &Server, dele: bool) -> Vec<serde_json::Value> {
    let mut args = vec!["fetch", USER, PASS];
    if dele {
        args.push("dele");
    }
    let out = server.python_ok("pg_cli.py", &args);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `jes queue list --dir` of `server`'s folder: (id, tries, the whole row) per message.
fn queue_rows(server: &Server) -> Vec<(String, u32, String)> {
    let (ok, out) = server.jes(&["queue", "list"]);
    assert!(ok, "{out}");
    out.lines()
        // Rows start with an id (digits); the summary line ("3 messages, ...") with a count.
        .filter(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            first.len() > 8 && first.bytes().all(|b| b.is_ascii_digit())
        })
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[0].to_string(), cols[2].parse().unwrap(), l.to_string())
        })
        .collect()
}

fn tries(server: &Server, id: &str) -> Option<u32> {
    queue_rows(server)
        .into_iter()
        .find(|r| r.0 == id)
        .map(|r| r.1)
}

fn count(pg: &Postgres, table: &str) -> u64 {
    pg.psql("jes", &format!("SELECT COUNT(*) FROM {table}"))
        .parse()
        .unwrap()
}

/// A counter of `/metrics` on `port` (0 when absent).
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

#[test]
fn jes_queue_lists_shows_retries_and_deletes_the_database_queue() {
    let Some(pg) = Postgres::start("jes_queue_lists_shows_retries_and_deletes_the_database_queue")
    else {
        return;
    };
    // Nothing listens on the relay host's port: every attempt fails and waits a minute.
    let relay = format!("defaultsmtpservers=127.0.0.1:{}\n", common::free_port());
    // A runs; B is a second server's folder on the same database (its server need not run,
    // and a second runner would only share the attempts this test counts).
    let a = prepare(&pg, &relay).launch();
    let b = prepare(&pg, &relay);
    let (ok, out) = b.jes(&["queue", "list"]);
    assert!(ok, "{out}");
    let location = format!("database postgresql://jes@127.0.0.1:{}/jes", pg.port);
    assert!(
        out.contains(&format!("queue is empty ({location}")),
        "{out}"
    );

    // Three messages to A; B's folder lists them once each has had its first attempt.
    for subject in ["stuck-one", "stuck-two", "stuck-three"] {
        send(&a, USER, "boss@remote.test", subject);
    }
    a.wait_until("three messages tried once", Duration::from_secs(30), || {
        let rows = queue_rows(&b);
        rows.len() == 3 && rows.iter().all(|r| r.1 == 1)
    });
    let rows = queue_rows(&b);
    for (_, _, row) in &rows {
        assert!(
            row.contains("<trackstudio@127.0.0.1>") || row.contains(USER),
            "{row}"
        );
        assert!(row.contains("boss@remote.test (pending)"), "{row}");
    }
    assert_eq!(count(&pg, "jes_queue"), 3);
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let subject_of = |id: &str| {
        let (ok, shown) = b.jes(&["queue", "show", id]);
        assert!(ok, "{shown}");
        shown
            .lines()
            .find_map(|l| l.trim().strip_prefix("Subject: "))
            .unwrap()
            .to_string()
    };

    // show: where it is, the envelope, the attempt's error, the headers; never the password.
    let (ok, shown) = b.jes(&["queue", "show", &ids[0]]);
    assert!(ok, "{shown}");
    assert!(
        shown.contains(&format!("stored:        {location}")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("from:          <{USER}>")),
        "{shown}"
    );
    assert!(shown.contains("attempts:      1"), "{shown}");
    assert!(shown.contains("boss@remote.test  pending"), "{shown}");
    assert!(shown.contains("Subject: stuck-"), "{shown}");
    assert!(!shown.contains(pg::PASSWORD), "{shown}");

    // retry one: a running server tries it again within seconds (the back-off is a minute); the
    // others stay as they were.
    let asked = Instant::now();
    let (ok, out) = b.jes(&["queue", "retry", &ids[0]]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("{}: due now", ids[0])), "{out}");
    a.wait_until(
        "the retried message's second attempt",
        Duration::from_secs(15),
        || tries(&b, &ids[0]) == Some(2),
    );
    assert!(asked.elapsed() < Duration::from_secs(30));
    assert_eq!(tries(&b, &ids[1]), Some(1));
    assert_eq!(tries(&b, &ids[2]), Some(1));

    // retry --all: every one.
    let (ok, out) = b.jes(&["queue", "retry", "--all"]);
    assert!(ok, "{out}");
    assert_eq!(out.matches(": due now").count(), 3, "{out}");
    a.wait_until("every message tried again", Duration::from_secs(15), || {
        tries(&b, &ids[0]) == Some(3)
            && tries(&b, &ids[1]) == Some(2)
            && tries(&b, &ids[2]) == Some(2)
    });

    // delete without a bounce, then with one: the bounce reaches the sender's mailbox.
    let bounced_subject = subject_of(&ids[2]);
    let (ok, out) = b.jes(&["queue", "delete", &ids[1]]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("deleted {}", ids[1]));
    let (ok, out) = b.jes(&["queue", "delete", &ids[2], "--bounce"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "deleted {} (bounce to <{USER}> queued as ",
            ids[2]
        )),
        "{out}"
    );
    a.wait_until(
        "the bounce in the sender's mailbox",
        Duration::from_secs(15),
        || !fetch(&a, false).is_empty(),
    );
    let mail = fetch(&a, true);
    assert_eq!(
        mail.len(),
        1,
        "only the deletion with --bounce tells the sender: {mail:?}"
    );
    let text = mail[0]["text"].as_str().unwrap();
    assert!(text.contains("deleted by the administrator"), "{text}");
    assert!(
        text.contains("Final-Recipient: rfc822; boss@remote.test"),
        "{text}"
    );
    assert!(
        text.contains(&format!("Subject: {bounced_subject}")),
        "{text}"
    );
    let left: Vec<String> = queue_rows(&b).into_iter().map(|r| r.0).collect();
    assert_eq!(left, [ids[0].clone()]);

    // Errors: a deleted message is not in the queue (exit 1), naming the database.
    for args in [
        vec!["queue", "show", ids[1].as_str()],
        vec!["queue", "retry", ids[1].as_str()],
        vec!["queue", "delete", ids[1].as_str()],
    ] {
        let (ok, out) = b.jes(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains(&format!(
                "{}: not in the queue of the database postgresql://jes@127.0.0.1",
                ids[1]
            )),
            "{out}"
        );
    }
    let (ok, out) = b.jes(&["queue", "delete", "--all"]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("deleted {}", ids[0]));
    assert_eq!(count(&pg, "jes_queue"), 0);
}

#[test]
fn jes_queue_and_capture_name_a_database_they_cannot_reach_masked() {
    // Nothing listens on port 1: the tools say which database, never the password.
    let server = Server::prepare(
        "store.url=postgresql://jes:hidden@127.0.0.1:1/jes?sslmode=disable\n",
        DEFAULT_USERS,
    );
    for args in [
        vec!["queue", "list"],
        vec!["queue", "retry", "--all"],
        vec!["capture", "list"],
        vec!["capture", "release", "--all"],
    ] {
        let (ok, out) = server.jes(&args);
        assert!(!ok, "{args:?}: {out}");
        assert!(
            out.contains("is in the database postgresql://jes:****@127.0.0.1:1/jes"),
            "{out}"
        );
        assert!(out.contains("cannot be used"), "{out}");
        assert!(!out.contains("hidden"), "{out}");
        assert!(!out.contains("queue is empty"), "{out}");
    }
}

#[test]
fn bodies_nothing_refers_to_are_swept_by_every_server() {
    let Some(pg) = Postgres::start("bodies_nothing_refers_to_are_swept_by_every_server") else {
        return;
    };
    let (http_a, http_b) = (common::free_port(), common::free_port());
    let (a, b) = two_servers(
        &pg,
        &format!("store.sweepseconds=1\nhttp.port={http_a}\n"),
        &format!("store.sweepseconds=1\nhttp.port={http_b}\n"),
    );
    let swept =
        || metric(http_a, "jes_bodies_swept_total") + metric(http_b, "jes_bodies_swept_total");
    assert_eq!(count(&pg, "jes_bodies"), 0);
    let before = swept();

    // A delivered message's body stays while its copy is in the mailbox, through several sweeps.
    send(&a, "app@example.org", USER, "kept-while-referenced");
    a.wait_until(
        "the message in the mailbox",
        Duration::from_secs(10),
        || count(&pg, "jes_mail") == 1,
    );
    assert_eq!(count(&pg, "jes_bodies"), 1);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(count(&pg, "jes_bodies"), 1, "a referenced body was swept");
    assert_eq!(swept(), before);

    // POP3 deletes it on B: the body goes with its last reference.
    assert_eq!(fetch(&b, true).len(), 1);
    a.wait_until("the body removed", Duration::from_secs(5), || {
        count(&pg, "jes_bodies") == 0
    });

    // What a server killed between its commit and that removal leaves: bodies nobody refers to,
    // more than one sweep batch of them. Every one goes, counted once across the two servers.
    pg.psql(
        "jes",
        "INSERT INTO jes_bodies (digest, data) SELECT sha256(('orphan ' || g)::bytea), \
         ('orphan ' || g)::bytea FROM generate_series(1, 1203) g",
    );
    send(&a, "app@example.org", USER, "referenced-during-the-sweep");
    a.wait_until("the orphans swept", Duration::from_secs(15), || {
        count(&pg, "jes_bodies") == 1
    });
    assert_eq!(count(&pg, "jes_mail"), 1);
    b.wait_until("the counters caught up", Duration::from_secs(5), || {
        swept() >= before + 1203
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(swept(), before + 1203);
    assert_eq!(
        fetch(&a, false)[0]["subject"],
        "referenced-during-the-sweep"
    );
}

/// Many transactions store and reference the same body while two sweepers run flat out: none
/// fails, and no committed reference ever points at a missing body.
#[test]
fn a_sweep_never_removes_a_body_a_concurrent_transaction_references() {
    let Some(pg) =
        Postgres::start("a_sweep_never_removes_a_body_a_concurrent_transaction_references")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let settings = jes::pg::Settings {
        url: pg.url("jes"),
        password_file: Some(pg.password_file(dir.path())),
        max_connections: 6,
        lease: Duration::from_secs(60),
        sweep: Duration::from_secs(1),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = jes::pg::Database::open(&settings).unwrap();
        db.ensure_schema().await.unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut sweepers = Vec::new();
        for _ in 0..2 {
            let (db, stop) = (db.clone(), stop.clone());
            sweepers.push(tokio::spawn(async move {
                let mut removed = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut c = db.client().await.unwrap();
                    removed += jes::pg::bodies::sweep(&mut c, 2)
                        .await
                        .unwrap_or_else(|e| panic!("a sweep failed: {e:?}"));
                }
                removed
            }));
        }
        let body = b"the same bytes every time\r\n".to_vec();
        for i in 0..400 {
            let mut c = db.client().await.unwrap();
            let tx = c.transaction().await.unwrap();
            let key = jes::pg::bodies::store(&tx, &body).await.unwrap();
            let id = format!("{i}");
            tx.execute(
                "INSERT INTO jes_queue (id, sender, digest, received_ms, next_attempt_ms) \
                 VALUES ($1, '', $2, 0, 0)",
                &[&id, &key],
            )
            .await
            .unwrap_or_else(|e| panic!("reference {i}: {e}"));
            tx.commit()
                .await
                .unwrap_or_else(|e| panic!("commit {i}: {e}"));
            let present: i64 = c
                .query_one(
                    "SELECT COUNT(*) FROM jes_queue q JOIN jes_bodies b USING (digest) WHERE q.id = $1",
                    &[&id],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(present, 1, "reference {i} lost its body");
            // Dropping the reference leaves the body to the sweepers.
            c.execute("DELETE FROM jes_queue WHERE id = $1", &[&id])
                .await
                .unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut removed = 0;
        for s in sweepers {
            removed += s.await.unwrap();
        }
        // The sweepers did remove the body between references (not a vacuous pass); the last
        // one's leftover goes with a final sweep.
        assert!(removed >= 1, "the sweepers never removed the body");
        let mut c = db.client().await.unwrap();
        jes::pg::bodies::sweep(&mut c, 500).await.unwrap();
        let left: i64 = c
            .query_one("SELECT COUNT(*) FROM jes_bodies", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0);
    });
}

fn captured(server: &Server) -> Vec<(String, String)> {
    let (ok, out) = server.jes(&["capture", "list"]);
    assert!(ok, "{out}");
    out.lines()
        .filter(|l| l.contains("  -> "))
        .map(|l| {
            let id = l.split_whitespace().next().unwrap().to_string();
            let subject = l.split_whitespace().last().unwrap().to_string();
            (id, subject)
        })
        .collect()
}

#[test]
fn capture_holds_mail_in_the_database_and_releases_it_from_console_and_command_line() {
    let Some(pg) = Postgres::start(
        "capture_holds_mail_in_the_database_and_releases_it_from_console_and_command_line",
    ) else {
        return;
    };
    let up = Upstream::start(&[]);
    let http = common::free_port();
    let extra = format!(
        "defaultsmtpservers=127.0.0.1:{}\ncapture=true\nhttp.admins=analyst@localhost\n",
        up.port
    );
    let (a, b) = two_servers(&pg, &format!("{extra}http.port={http}\n"), &extra);

    for subject in ["held-one", "held-two", "held-three"] {
        send(&a, USER, "boss@remote.test", subject);
    }
    b.wait_until(
        "three held in jes capture list",
        Duration::from_secs(20),
        || captured(&b).len() == 3,
    );
    let held = captured(&b);
    let id_of = |subject: &str| held.iter().find(|h| h.1 == subject).unwrap().0.clone();
    let (_, list) = b.jes(&["queue", "list"]);
    assert_eq!(list.matches("boss@remote.test (held)").count(), 3, "{list}");
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT COUNT(*) FROM jes_queue_recipients WHERE state = 'held'"
        ),
        "3"
    );
    let (ok, shown) = b.jes(&["capture", "show", &id_of("held-two")]);
    assert!(ok && shown.contains("boss@remote.test (held)"), "{shown}");
    assert!(shown.contains("Subject: held-two"), "{shown}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(up.received().is_empty(), "held mail reached the upstream");

    // Released through the console's API (of A) ...
    let (jar, csrf, _) = common::console_login(&a, http);
    let (code, body) = common::console_api(
        http,
        &jar,
        &[&format!("X-CSRF-Token: {csrf}")],
        "POST",
        &format!("/api/captured/{}/release", id_of("held-one")),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let got = up.wait_for(1, Duration::from_secs(15));
    assert!(
        got[0]["data"]
            .as_str()
            .unwrap()
            .contains("Subject: held-one"),
        "{got:?}"
    );

    // ... and with jes capture release from B's folder; a running server sends it at once.
    let (ok, out) = b.jes(&["capture", "release", &id_of("held-two")]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "released {}: boss@remote.test -> boss@remote.test",
            id_of("held-two")
        )),
        "{out}"
    );
    let got = up.wait_for(2, Duration::from_secs(15));
    assert!(
        got[1]["data"]
            .as_str()
            .unwrap()
            .contains("Subject: held-two"),
        "{got:?}"
    );
    for g in &got {
        assert_eq!(g["rcpt_tos"][0], "boss@remote.test");
    }

    // The third is deleted; nobody is told.
    let (ok, out) = b.jes(&["capture", "delete", &id_of("held-three")]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), format!("deleted {}", id_of("held-three")));
    a.wait_until("the queue empty", Duration::from_secs(15), || {
        count(&pg, "jes_queue") == 0
    });
    assert!(captured(&b).is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(up.received().len(), 2);
    assert!(
        fetch(&a, false).is_empty(),
        "the sender was told of a capture deletion"
    );
}
