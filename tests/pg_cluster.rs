//! Several servers on one database seen as one (issue 15, item 3): the cluster's gauges on every
//! server's `/metrics`, counted from the database, under names of their own; console logins
//! shared; the servers' table (`node.name`, up, stopped, lost) on every console. A real
//! PostgreSQL (`common/postgres.rs`), real jes servers, curl for the console.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::time::Duration;

use common::{free_port, Server, DEFAULT_USERS};
use pg::Postgres;

/// A server on database `jes` of `pg` with its console on a port of its own; mail for other
/// domains goes to a smart host that refuses connections, so it stays queued.
fn server(pg: &Postgres) -> (Server, u16) {
    named(pg, "")
}

/// As `server`, with `extra` mail.conf lines (a `node.name`).
fn named(pg: &Postgres, extra: &str) -> (Server, u16) {
    let http = free_port();
    let server = pg.server_on(
        &pg.url("jes"),
        &format!(
            "smtpdelivery.interval=1\ndefaultsmtpservers=127.0.0.1:9\nhttp.port={http}\n\
             http.admins=analyst@localhost\n{extra}"
        ),
        Some(DEFAULT_USERS),
    );
    (server.launch(), http)
}

fn metrics(port: u16) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The value of the series `name` (no labels), if shown.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
}

#[test]
fn every_server_shows_the_whole_queue_under_cluster_names() {
    let Some(pg) = Postgres::start("every_server_shows_the_whole_queue_under_cluster_names") else {
        return;
    };
    let (a, http_a) = server(&pg);
    let (b, http_b) = server(&pg);
    for (n, s) in [(0, &a), (1, &a), (2, &a), (3, &b)] {
        let r = s.send(
            "app@localhost",
            &["someone@remote.test"],
            &format!("Subject: stuck {n}\r\n\r\nbody\r\n"),
        );
        assert!(r.starts_with("250"), "{r}");
    }
    assert_eq!(
        pg.psql("jes", "SELECT COUNT(*) FROM jes_queue WHERE NOT failed"),
        "4"
    );
    // Both servers count the whole queue (three messages came in through A, one through B).
    for (server, port) in [(&a, http_a), (&b, http_b)] {
        server.wait_until(
            "jes_cluster_queue_depth 4 on /metrics",
            Duration::from_secs(15),
            || gauge(&metrics(port), "jes_cluster_queue_depth") == Some(4.0),
        );
        let text = metrics(port);
        assert!(
            gauge(&text, "jes_cluster_queue_oldest_age_seconds").is_some(),
            "{text}"
        );
        // The per-server names would stay at zero: not shown at all.
        assert_eq!(gauge(&text, "jes_queue_depth"), None, "{text}");
        assert_eq!(gauge(&text, "jes_queue_oldest_age_seconds"), None, "{text}");
    }
    // The gauge follows the queue: two messages gone, and both servers say 2.
    pg.psql(
        "jes",
        "DELETE FROM jes_queue WHERE id IN (SELECT id FROM jes_queue ORDER BY received_ms LIMIT 2)",
    );
    for (server, port) in [(&a, http_a), (&b, http_b)] {
        server.wait_until(
            "jes_cluster_queue_depth 2 after two messages left",
            Duration::from_secs(15),
            || gauge(&metrics(port), "jes_cluster_queue_depth") == Some(2.0),
        );
    }
    let age = gauge(&metrics(http_a), "jes_cluster_queue_oldest_age_seconds").unwrap();
    assert!(age >= 1.0, "the oldest message's age: {age}");
}

#[test]
fn a_console_login_holds_on_every_server_and_a_logout_ends_it_on_all() {
    let Some(pg) =
        Postgres::start("a_console_login_holds_on_every_server_and_a_logout_ends_it_on_all")
    else {
        return;
    };
    let (a, http_a) = server(&pg);
    let (_b, http_b) = server(&pg);
    let (jar, csrf, login) = common::console_login(&a, http_a);
    assert_eq!(login["user"], "analyst@localhost", "{login}");
    assert!(!csrf.is_empty(), "{login}");
    // The same cookie on the other server (a load balancer switching): still logged in.
    let (code, body) = common::console_api(http_b, &jar, &[], "GET", "/api/session", None);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("analyst@localhost"), "{body}");
    // The database keeps a hash of the token, not the token.
    let cookie = std::fs::read_to_string(&jar).unwrap();
    let token = cookie
        .lines()
        .find(|l| l.contains("jes_session"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_string();
    assert_eq!(
        pg.psql("jes", "SELECT COUNT(*) FROM jes_console_sessions"),
        "1"
    );
    assert_eq!(
        pg.psql(
            "jes",
            &format!("SELECT COUNT(*) FROM jes_console_sessions WHERE login = 'analyst@localhost' AND encode(token_hash, 'hex') = encode(sha256('{token}'::bytea), 'hex')")
        ),
        "1"
    );
    assert!(!pg
        .psql("jes", "SELECT token_hash::text FROM jes_console_sessions")
        .contains(&token));
    // A logout on B ends the session on A too.
    let (code, body) = common::console_api(
        http_b,
        &jar,
        &[&format!("X-CSRF-Token: {csrf}")],
        "POST",
        "/api/logout",
        None,
    );
    assert_eq!(code, 204, "{body}");
    // The old cookie, sent again to A, no longer logs in.
    let (code, _) = common::console_api(
        http_a,
        "/nonexistent-jar",
        &[&format!("Cookie: jes_session={token}")],
        "GET",
        "/api/session",
        None,
    );
    assert_eq!(code, 401);
    assert_eq!(
        pg.psql("jes", "SELECT COUNT(*) FROM jes_console_sessions"),
        "0"
    );
}

/// `/api/cluster` of the console on `port`, logged in with `jar`.
fn cluster(port: u16, jar: &str) -> serde_json::Value {
    let (code, body) = common::console_api(port, jar, &[], "GET", "/api/cluster", None);
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The server named `name` in a `/api/cluster` answer.
fn member<'a>(c: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    c["servers"].as_array()?.iter().find(|m| m["name"] == name)
}

#[test]
fn every_console_lists_the_servers_by_node_name_up_stopped_or_lost() {
    let Some(pg) =
        Postgres::start("every_console_lists_the_servers_by_node_name_up_stopped_or_lost")
    else {
        return;
    };
    // One `hostname` for all, as servers behind one MX name have: node.name tells them apart.
    let (a, http_a) = named(&pg, "hostname=mx.example.test\nnode.name=mx-a\n");
    let (mut b, http_b) = named(&pg, "hostname=mx.example.test\nnode.name=mx-b\n");
    let (mut c, _) = named(&pg, "hostname=mx.example.test\nnode.name=mx-c\n");
    let (jar, _, login) = common::console_login(&a, http_a);
    assert_eq!(login["node"], "mx-a", "{login}");
    a.wait_until(
        "three servers up on A's console",
        Duration::from_secs(15),
        || cluster(http_a, &jar)["up"] == 3,
    );
    let view = cluster(http_a, &jar);
    assert_eq!(view["node"], "mx-a");
    assert_eq!(view["shared"], true);
    for name in ["mx-a", "mx-b", "mx-c"] {
        let m = member(&view, name).unwrap_or_else(|| panic!("{name} missing: {view}"));
        assert_eq!(m["state"], "up", "{view}");
        assert_eq!(m["hostname"], "mx.example.test", "{view}");
    }
    // The same table on B's console (the login is shared too), and B's own name on its stats.
    let b_view = cluster(http_b, &jar);
    assert_eq!(b_view["node"], "mx-b");
    assert_eq!(b_view["up"], 3, "{b_view}");
    let (code, stats) = common::console_api(http_b, &jar, &[], "GET", "/api/stats", None);
    assert_eq!(code, 200, "{stats}");
    assert!(stats.contains(r#""node":"mx-b""#), "{stats}");
    for port in [http_a, http_b] {
        a.wait_until("jes_cluster_servers_up 3", Duration::from_secs(15), || {
            gauge(&metrics(port), "jes_cluster_servers_up") == Some(3.0)
        });
    }

    // Mail through B moves B's counter in the table, and A's stays where it was.
    let r = b.send(
        "app@localhost",
        &["someone@remote.test"],
        "Subject: through b\r\n\r\nbody\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    a.wait_until(
        "B's accepted 1 on A's console",
        Duration::from_secs(15),
        || member(&cluster(http_a, &jar), "mx-b").is_some_and(|m| m["totals"]["accepted"] == 1),
    );
    let view = cluster(http_a, &jar);
    assert_eq!(
        member(&view, "mx-a").unwrap()["totals"]["accepted"],
        0,
        "{view}"
    );
    // A's dashboard lists B's events too: the recent events come from the shared history.
    a.wait_until(
        "B's event on A's dashboard",
        Duration::from_secs(15),
        || {
            let (code, body) = common::console_api(http_a, &jar, &[], "GET", "/api/events", None);
            assert_eq!(code, 200, "{body}");
            let events: serde_json::Value = serde_json::from_str(&body).unwrap();
            events.as_array().unwrap().iter().any(|e| {
                e["kind"] == "accepted"
                    && e["recipient"] == "someone@remote.test"
                    && e["node"] == "mx-b"
            })
        },
    );
    // The history names the server that took it, in its table and in the API's answer.
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT server FROM jes_history WHERE event = 'accepted'"
        ),
        "mx-b"
    );
    let (code, body) = common::console_api(
        http_a,
        &jar,
        &[],
        "GET",
        "/api/history?q=%40remote.test",
        None,
    );
    assert_eq!(code, 200, "{body}");
    let history: serde_json::Value = serde_json::from_str(&body).unwrap();
    let accepted: Vec<&serde_json::Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "accepted")
        .map(|e| &e["node"])
        .collect();
    assert_eq!(accepted, [&serde_json::json!("mx-b")], "{history:#}");

    // B stops cleanly: "stopped" at once. C is killed: "lost" once its row is 15 s old.
    b.signal("TERM");
    assert!(b.wait_exit(Duration::from_secs(15)), "{}", b.log());
    c.kill9();
    a.wait_until("B stopped on A's console", Duration::from_secs(10), || {
        member(&cluster(http_a, &jar), "mx-b").is_some_and(|m| m["state"] == "stopped")
    });
    assert_eq!(
        member(&cluster(http_a, &jar), "mx-c").unwrap()["state"],
        "up"
    );
    a.wait_until("C lost on A's console", Duration::from_secs(25), || {
        member(&cluster(http_a, &jar), "mx-c").is_some_and(|m| m["state"] == "lost")
    });
    let view = cluster(http_a, &jar);
    assert_eq!(view["up"], 1, "{view}");
    a.wait_until("jes_cluster_servers_up 1", Duration::from_secs(10), || {
        gauge(&metrics(http_a), "jes_cluster_servers_up") == Some(1.0)
    });

    // A server killed and restarted at once (systemd's Restart=) is not taken for a second one
    // under its name, though its last row is fresh and names the dead process.
    let (mut e, _) = named(&pg, "node.name=mx-e\n");
    a.wait_until("E up on A's console", Duration::from_secs(15), || {
        member(&cluster(http_a, &jar), "mx-e").is_some_and(|m| m["state"] == "up")
    });
    e.kill9();
    e.spawn();
    std::thread::sleep(Duration::from_secs(12));
    assert!(!e.log().contains("is also used by another"), "{}", e.log());
    assert_eq!(
        member(&cluster(http_a, &jar), "mx-e").unwrap()["state"],
        "up"
    );

    // A second server given A's name: the log says so (the console would show them as one).
    let (d, _) = named(&pg, "node.name=mx-a\n");
    d.wait_until("the duplicate name logged", Duration::from_secs(15), || {
        d.log()
            .contains(r#"node.name "mx-a" is also used by another running server"#)
            || a.log()
                .contains(r#"node.name "mx-a" is also used by another running server"#)
    });
}

/// A poller that QUITs on one server and logs in at once on the other (a load balancer picking
/// the other one) must find its mailbox free: the session's row goes before the `+OK` to QUIT,
/// not in a task after it, which gave `[IN-USE]` now and then.
#[test]
fn a_login_on_another_server_right_after_quit_is_not_in_use() {
    let Some(pg) = Postgres::start("a_login_on_another_server_right_after_quit_is_not_in_use")
    else {
        return;
    };
    let (a, _) = server(&pg);
    let (b, _) = server(&pg);
    let r = a.send(
        "app@localhost",
        &["trackstudio@127.0.0.1"],
        "Subject: one\r\n\r\nbody\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    for i in 0..60 {
        let (from, to) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let mut c = from.connect(from.pop3_port);
        assert!(c.cmd("USER trackstudio@127.0.0.1").starts_with("+OK"));
        let r = c.cmd("PASS secret");
        assert!(r.starts_with("+OK"), "login {i}: {r}");
        assert!(c.cmd("STAT").starts_with("+OK 1 "));
        // The next session is ready to send its password the moment the +OK arrives.
        let mut d = to.connect(to.pop3_port);
        assert!(d.cmd("USER trackstudio@127.0.0.1").starts_with("+OK"));
        assert!(c.cmd("QUIT").starts_with("+OK"));
        let r = d.cmd("PASS secret");
        assert!(
            r.starts_with("+OK"),
            "login {i} on the other server right after QUIT: {r}"
        );
        assert!(d.cmd("QUIT").starts_with("+OK"));
    }
}

/// The same in a real browser (Debian's headless Chromium through Selenium,
/// `tests/py/e2e_cluster.py`): the title bar's node name, the dashboard's Servers card, and the
/// server named in the recent events and the history for a message that came in through B.
#[test]
fn the_servers_card_in_a_browser() {
    let Some(pg) = Postgres::start("the_servers_card_in_a_browser") else {
        return;
    };
    let (a, http_a) = named(&pg, "node.name=mx-a\n");
    let (b, _) = named(&pg, "node.name=mx-b\n");
    let r = b.send(
        "app@localhost",
        &["through-b@remote.test"],
        "Subject: through b\r\n\r\nbody\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let mut env = vec![
        ("JES_HTTP_PORT", http_a.to_string()),
        ("JES_ADMIN", "analyst@localhost".to_string()),
        ("JES_ADMIN_PASSWORD", "password".to_string()),
    ];
    if let Some(dir) = std::env::var_os("JES_SCREENSHOTS").filter(|d| !d.is_empty()) {
        env.push(("JES_SCREENSHOTS", dir.to_string_lossy().into_owned()));
    }
    let out = a.python_env_ok("e2e_cluster.py", &[], &env);
    assert!(
        out.contains("cluster e2e: all checks passed"),
        "the browser test did not finish:\n{out}"
    );
}

/// Two servers that share the queue both schedule a deferred message for its next attempt; the
/// one that takes it second (at once, or after finding it busy and looking again 5 s later) must
/// see that the first one tried it meanwhile and leave it until the new time, or every retry of
/// a stuck message is two attempts. `jes queue retry --all` makes it due on both at once.
#[test]
fn a_retry_with_two_servers_is_one_attempt_not_two() {
    let Some(pg) = Postgres::start("a_retry_with_two_servers_is_one_attempt_not_two") else {
        return;
    };
    let (a, _) = server(&pg);
    let (_b, _) = server(&pg);
    let r = a.send(
        "app@localhost",
        &["someone@remote.test"],
        "Subject: stuck\r\n\r\nbody\r\n",
    );
    assert!(r.starts_with("250"), "{r}");
    let attempts = || -> u32 {
        pg.psql("jes", "SELECT attempts FROM jes_queue")
            .parse()
            .unwrap_or(0)
    };
    a.wait_until("the first attempt", Duration::from_secs(15), || {
        attempts() == 1
    });
    // B's scan (every second) finds it, free and due within its horizon, and schedules it.
    std::thread::sleep(Duration::from_secs(3));
    for round in 1..=3 {
        let (ok, out) = a.jes(&["queue", "retry", "--all"]);
        assert!(ok, "{out}");
        a.wait_until("the retry's attempt", Duration::from_secs(10), || {
            attempts() > round
        });
        // Past the 5 s after which a server that found it busy looks again.
        std::thread::sleep(Duration::from_secs(7));
        assert_eq!(
            attempts(),
            1 + round,
            "after retry {round}: one attempt per retry\n{}",
            pg.psql(
                "jes",
                "SELECT event || ' ' || server FROM jes_history ORDER BY seq"
            )
        );
    }
}

/// The servers' table while the database is away: the heartbeat's failure is logged once (not
/// every 5 s), `jes_cluster_servers_up` falls to 0 (this server cannot vouch for anyone), both
/// come back with the database, and a server asked to stop while the database answers nothing
/// stops within seconds instead of waiting on its last heartbeat.
#[test]
fn with_the_database_away_the_heartbeat_says_so_once_and_the_server_still_stops() {
    // Durable: the database is stopped as by a crash, and must come back with its tables.
    let Some(pg) = Postgres::start_opts(
        "with_the_database_away_the_heartbeat_says_so_once_and_the_server_still_stops",
        pg::Options {
            durable: true,
            ..pg::Options::default()
        },
    ) else {
        return;
    };
    let (mut a, http) = named(&pg, "node.name=mx-a\n");
    let failing = "servers' table: cannot write this server's row";
    let again = "servers' table: written again";
    a.wait_until("jes_cluster_servers_up 1", Duration::from_secs(15), || {
        gauge(&metrics(http), "jes_cluster_servers_up") == Some(1.0)
    });

    pg.stop();
    a.wait_until("jes_cluster_servers_up 0", Duration::from_secs(15), || {
        gauge(&metrics(http), "jes_cluster_servers_up") == Some(0.0)
    });
    // Three more heartbeats fail: still one line.
    std::thread::sleep(Duration::from_secs(16));
    assert_eq!(a.log().matches(failing).count(), 1, "{}", a.log());

    pg.start_again();
    a.wait_until(
        "the heartbeat written again",
        Duration::from_secs(20),
        || a.log().contains(again),
    );
    a.wait_until(
        "jes_cluster_servers_up 1 again",
        Duration::from_secs(15),
        || gauge(&metrics(http), "jes_cluster_servers_up") == Some(1.0),
    );
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT stopped_ms IS NULL AND seen_ms > 0 FROM jes_nodes WHERE name = 'mx-a'"
        ),
        "t"
    );

    // A database that takes connections and answers nothing: the last heartbeat and the
    // giving back of kept messages wait 3 s each at most, so the server still stops.
    pg.freeze(true);
    std::thread::sleep(Duration::from_secs(6));
    let asked = std::time::Instant::now();
    a.signal("TERM");
    // (wait_exit panics after 20 s; the database is thawed by its Drop then)
    let exited_cleanly = a.wait_exit(Duration::from_secs(20));
    pg.freeze(false);
    assert!(exited_cleanly, "exit status not 0\n{}", a.log());
    println!(
        "stopped {:?} after TERM with the database silent",
        asked.elapsed()
    );
}
