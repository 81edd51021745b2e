//! The delivery history in PostgreSQL (issue 14): two real jes servers on one real database
//! (`common/postgres.rs`), Python's smtplib and poplib as the clients, an aiosmtpd upstream that
//! answers with its queue id. One history for every server: `jes trace` and `/api/history` on B
//! show what A accepted and delivered and what B's POP3 client read; `--forget` removes it;
//! no `history.db` is made; searches use indexes; two servers prune at once without trouble.

mod common;
#[path = "common/http.rs"]
mod http_client;
#[path = "common/postgres.rs"]
mod pg;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, jes_bin, Server, Upstream, DEFAULT_USERS};
use http_client::{wait_http, Client};
use pg::Postgres;
use serde_json::Value;

const USER: &str = "trackstudio@127.0.0.1";
const PASS: &str = "secret";

/// A server on database `db` of `pg`, not started yet (as tests/postgres.rs makes them).
fn prepare(pg: &Postgres, db: &str, extra: &str) -> Server {
    pg.server_on(
        &pg.url(db),
        &format!("smtpdelivery.interval=1\nstore.leaseseconds=5\n{extra}"),
        Some(DEFAULT_USERS),
    )
}

/// Starts `a` and `b` at the same moment.
fn launch_both(a: Server, b: Server) -> (Server, Server) {
    std::thread::scope(|s| {
        let a = s.spawn(|| a.launch());
        let b = s.spawn(|| b.launch());
        (a.join().unwrap(), b.join().unwrap())
    })
}

/// `jes trace ARGS --dir ETC`: (exit code, stdout + stderr).
fn trace(server: &Server, args: &[&str]) -> (i32, String) {
    let out = Command::new(jes_bin())
        .arg("trace")
        .args(args)
        .arg("--dir")
        .arg(&server.etc)
        .output()
        .expect("run jes trace");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `jes trace QUERY --json` once it shows `n` events (the writers commit about once a second).
fn trace_json(server: &Server, query: &str, n: usize) -> Vec<Value> {
    let mut events = Vec::new();
    server.wait_until(
        &format!("jes trace {query} shows {n} events"),
        Duration::from_secs(30),
        || {
            let (code, out) = trace(server, &[query, "--json"]);
            events = match code {
                0 => out
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                    .collect(),
                _ => Vec::new(),
            };
            events.len() >= n
        },
    );
    events
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
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

/// Every file called `name` under `dir`.
fn find(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(find(&path, name));
        } else if path.file_name().is_some_and(|n| n == name) {
            found.push(path);
        }
    }
    found
}

#[test]
fn one_history_for_every_server_on_the_database() {
    let Some(pg) = Postgres::start("one_history_for_every_server_on_the_database") else {
        return;
    };
    let upstream = Upstream::start(&["--queue-ids"]);
    let relay = format!("defaultsmtpservers=127.0.0.1:{}\n", upstream.port);
    let http_port = free_port();
    let a = prepare(&pg, "jes", &format!("{relay}node.name=mx-a\n"));
    let b = prepare(
        &pg,
        "jes",
        &format!("{relay}node.name=mx-b\nhttp.port={http_port}\nhttp.admins={USER}\n"),
    );
    let (a, b) = launch_both(a, b);

    // Through A: one local message, one relayed; the local one read over POP3 on B.
    let sent = a.python_ok("cluster.py", &["send", USER, "history-local"]);
    assert!(sent.contains("\"refused\": []"), "{sent}");
    let sent = a.python_ok(
        "cluster.py",
        &["send", "boss@remote.test", "history-relayed"],
    );
    assert!(sent.contains("\"refused\": []"), "{sent}");
    let read = b.python_ok("cluster.py", &["fetch", USER, PASS]);
    assert!(read.contains("\"subject\": \"history-local\""), "{read}");

    // jes trace on B's folder: the whole timeline, A's events and B's, in order.
    let local = trace_json(&b, USER, 3);
    assert_eq!(
        kinds(&local),
        ["accepted", "delivered-locally", "pop3-retrieved"],
        "{local:#?}"
    );
    let times: Vec<&str> = local.iter().map(|e| e["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for e in &local {
        assert_eq!(e["message_id"], "<history-local@example.org>", "{e}");
        assert_eq!(e["subject"], "history-local", "{e}");
    }
    // Who reported what: A accepted and delivered, B's POP3 session read it.
    let servers = pg.psql(
        "jes",
        &format!("SELECT event || ' ' || server FROM jes_history WHERE recipient = '{USER}' ORDER BY seq"),
    );
    // (by node.name: the servers share `hostname`, and a process id says nothing after a restart)
    assert_eq!(
        servers,
        "accepted mx-a\ndelivered-locally mx-a\npop3-retrieved mx-b"
    );
    // ... and so do `jes trace --json` and the plain timeline.
    let nodes: Vec<&str> = local.iter().map(|e| e["node"].as_str().unwrap()).collect();
    assert_eq!(nodes, ["mx-a", "mx-a", "mx-b"], "{local:#?}");
    let (code, plain) = trace(&b, &[USER]);
    assert_eq!(code, 0, "{plain}");
    for words in [
        "<history-local@example.org>",
        "UTC (mx-a)  <trackstudio@127.0.0.1> delivered into the local mailbox",
        "UTC (mx-b)  <trackstudio@127.0.0.1> read by a POP3 client",
    ] {
        assert!(plain.contains(words), "{words} in\n{plain}");
    }

    // The relayed one, with the upstream's reply naming its queue id, whichever server sent it.
    let received = upstream.wait_for(1, Duration::from_secs(30));
    let qid = received[0]["queue_id"]
        .as_str()
        .expect("queue id")
        .to_string();
    let relayed = trace_json(&b, "boss@remote.test", 2);
    assert_eq!(kinds(&relayed), ["accepted", "delivered"], "{relayed:#?}");
    assert_eq!(
        relayed[1]["reply"],
        format!("250 2.0.0 Ok: queued as {qid}")
    );

    // The console's API on B: the same objects; a domain and a piece of a subject find them.
    wait_http(http_port);
    let client = Client::login(http_port, USER, PASS);
    assert_eq!(api(&client, "q=trackstudio%40127.0.0.1"), local);
    let domain = api(&client, "q=%40REMOTE.test");
    assert_eq!(domain, relayed);
    let words = api(&client, "q=HISTORY-REL");
    assert_eq!(words, relayed);
    assert_eq!(api(&client, "q=%3Chistory-local%40example.org%3E"), local);
    // Newest message first: the relayed message was sent after the local one, but the local
    // one's last event (the POP3 read) may be newer; either way the order follows the last event.
    let all = api(&client, "since=1h");
    assert_eq!(all.len(), local.len() + relayed.len(), "{all:#?}");
    let last = |events: &[Value]| events.last().unwrap()["time"].as_str().unwrap().to_string();
    let first_id = all[0]["id"].as_str().unwrap();
    let newest = if last(&local) > last(&relayed) {
        &local
    } else {
        &relayed
    };
    assert_eq!(first_id, newest[0]["id"].as_str().unwrap());
    assert_eq!(api(&client, "since=1h&limit=1").len(), 1);

    // With store.url no history.db is made, by either server or by jes trace.
    for server in [&a, &b] {
        let files = find(server.root.path(), "history.db");
        assert!(files.is_empty(), "{files:?}");
    }

    // --forget (from A's folder: the history is the same) removes the address's events, only
    // those, for every server.
    let (ok, out) = a.jes(&["trace", "--forget", "TrackStudio@127.0.0.1"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("removed {} events", local.len())),
        "{out}"
    );
    let (code, out) = trace(&b, &[USER]);
    assert_eq!(code, 1, "{out}");
    assert!(api(&client, "q=trackstudio%40127.0.0.1").is_empty());
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT COUNT(*) FROM jes_history WHERE lower(recipient) = 'trackstudio@127.0.0.1'"
        ),
        "0"
    );
    assert_eq!(trace_json(&a, "boss@remote.test", 2), relayed);
}

#[test]
fn searches_use_indexes_not_a_scan() {
    use jes::history::{PgHistory, Query};
    let Some(pg) = Postgres::start("searches_use_indexes_not_a_scan") else {
        return;
    };
    // A server makes the schema; then the table gets 200,000 events, 1,000 messages a domain.
    let mut a = prepare(&pg, "jes", "").launch();
    a.signal("TERM");
    assert!(a.wait_exit(Duration::from_secs(15)));
    pg.psql(
        "jes",
        "INSERT INTO jes_history (time_ms, id, message_id, event, sender, recipient, subject, \
         subject_folded, size, attempt, reply) \
         SELECT 1700000000000 + i, 'id' || (i / 2), '<m' || (i / 2) || '@tracker>', 'accepted', \
         'app@tracker.test', 'user' || i || '@d' || (i % 200) || '.test', 'Task ' || i, \
         'task ' || i, 100, 0, '250 ok' FROM generate_series(1, 200000) AS i; \
         ANALYZE jes_history",
    );
    let settings = jes::pg::Settings {
        url: pg.url("jes"),
        password_file: Some(pg.password_file(&a.etc)),
        max_connections: 2,
        lease: Duration::from_secs(60),
        sweep: Duration::from_secs(300),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = jes::pg::Database::open(&settings).unwrap();
    let history = PgHistory::new(db, runtime.handle().clone(), "test".into());
    let plans = |q: &str| runtime.block_on(history.plan(&Query::parse(q))).unwrap();
    for q in [
        "user77@d77.test",
        "@d42.test",
        "<m5@tracker>",
        "id123",
        "m5@tracker",
    ] {
        // The first condition is the search; for words ("id123") a second one, in the
        // subject, follows when no id matches.
        let plan = &plans(q)[0];
        assert!(!plan.contains("Seq Scan"), "{q} walks the table:\n{plan}");
        assert!(plan.contains("Index"), "{q}:\n{plan}");
        // Walking the time index is walking the table too.
        assert!(!plan.contains("jes_history_time"), "{q}:\n{plan}");
    }
    // A piece of the subject has no index to use: it reads the table, as it must.
    let words = plans("task 12");
    assert_eq!(words.len(), 2);
    assert!(words[1].contains("Seq Scan"), "{words:?}");
    // And the searches find what they should.
    use jes::history::HistoryStore;
    let h = history.clone();
    let found = std::thread::spawn(move || {
        let n = |q: &str| h.query(&Query::parse(q), 0, None).unwrap();
        (
            n("USER77@d77.test").len(),
            n("@d42.test").len(),
            n("<m5@tracker>").len(),
        )
    })
    .join()
    .unwrap();
    // Each message (id i/2) has two events: user77's (id38), each of the 1,000 in d42 (i and
    // i+200 share no id), m5's.
    assert_eq!(found, (2, 2000, 2));
}

#[test]
fn two_servers_prune_at_once() {
    let Some(pg) = Postgres::start("two_servers_prune_at_once") else {
        return;
    };
    let mut c = prepare(&pg, "jes", "").launch();
    c.signal("TERM");
    assert!(c.wait_exit(Duration::from_secs(15)));
    // 40,000 events 40 days old (several pruning chunks for each server) and 10 from today.
    pg.psql(
        "jes",
        "INSERT INTO jes_history (time_ms, id, event, sender, recipient, size, attempt, reply) \
         SELECT (extract(epoch from now()) * 1000)::bigint - CASE WHEN i <= 40000 \
         THEN 40::bigint * 86400000 ELSE 0 END, 'id' || i, 'accepted', 'a@x.test', 'b@y.test', 1, 0, \
         '250' FROM generate_series(1, 40010) AS i",
    );
    let (a, b) = launch_both(prepare(&pg, "jes", ""), prepare(&pg, "jes", ""));
    a.wait_until("the old events are gone", Duration::from_secs(60), || {
        pg.psql("jes", "SELECT COUNT(*) FROM jes_history") == "10"
    });
    for server in [&a, &b] {
        let log = server.log();
        assert!(!log.contains("cannot remove old events"), "{log}");
        assert!(!log.contains("deadlock"), "{log}");
    }
}

#[test]
fn while_the_database_is_away_the_history_waits_and_says_so_once() {
    let Some(pg) = Postgres::start("while_the_database_is_away_the_history_waits_and_says_so_once")
    else {
        return;
    };
    let http_port = free_port();
    let a = prepare(&pg, "jes", &format!("http.port={http_port}\n")).launch();
    wait_http(http_port);
    const TRIES: &str = "delivery history: cannot store events";
    const BACK: &str = "delivery history: the database is back";
    pg.stop();
    // Three mistyped local addresses, refused without the database (the accounts are files):
    // three `refused` events the writer cannot store yet.
    for n in 0..3 {
        let mut c = a.connect(a.smtp_port);
        assert!(c.cmd("EHLO client.test").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<app@127.0.0.1>").starts_with("250"));
        let r = c.cmd(&format!("RCPT TO:<nobody{n}@127.0.0.1>"));
        assert!(r.starts_with("550 5.1.1"), "{r}");
        let _ = c.cmd("QUIT");
    }
    a.wait_until(
        "the writer's first try fails",
        Duration::from_secs(10),
        || a.log().contains(TRIES),
    );
    // Tries again after 1, 2 and 4 s: still one warning in the log.
    std::thread::sleep(Duration::from_secs(8));
    let log = a.log();
    assert_eq!(log.matches(TRIES).count(), 1, "{log}");
    assert!(!log.contains(BACK), "{log}");
    pg.start_again();
    a.wait_until(
        "the writer says the database is back",
        Duration::from_secs(20),
        || a.log().contains(BACK),
    );
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT string_agg(recipient, ' ' ORDER BY recipient) FROM jes_history WHERE event = 'refused'"
        ),
        "nobody0@127.0.0.1 nobody1@127.0.0.1 nobody2@127.0.0.1"
    );
    // Nothing was dropped: three events are far below the bound.
    let metrics = http_client::http(http_port, "GET", "/metrics", &[], b"").text();
    assert!(
        metrics.lines().any(|l| l == "jes_history_dropped_total 0"),
        "{metrics}"
    );
    assert_eq!(a.log().matches(TRIES).count(), 1);
}
