//! `jes migrate DIR --to URL` (issue 14 item 6) against a real PostgreSQL: a folder holding the
//! JES 1.6.1 fixture's files (its mailbox file, its JES 1.0 queue file, its user.conf) next to
//! mail a jes server wrote, migrated; a jes server on the database then shows Python's poplib
//! the same UIDL/LIST/RETR as a server on the original folder, and relays the migrated queue
//! entry to an aiosmtpd upstream. Also: the refusals (a server on the folder, a database with
//! mail), the masked password, and a copy the database changes (a trigger) failing the check.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{repo_path, Server, Upstream, DEFAULT_USERS};
use pg::Postgres;

const TS: &str = "trackstudio@127.0.0.1";
const ANALYST: &str = "analyst@localhost";

/// `jes migrate ARGS`: (success, stdout + stderr).
fn migrate(args: &[&str]) -> (bool, String) {
    let mut all = vec!["migrate"];
    all.extend_from_slice(args);
    common::jes_run(&all)
}

/// `jes migrate ETC --to URL --password-file PW`.
fn migrate_into(pg: &Postgres, etc: &Path, db: &str) -> (bool, String) {
    let pw = pg.password_file(etc.parent().unwrap());
    migrate(&[
        etc.to_str().unwrap(),
        "--to",
        &pg.url(db),
        "--password-file",
        pw.to_str().unwrap(),
    ])
}

/// Every file under `dir` (but the lock file) with its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if p.file_name().unwrap() != "jes.lock" {
                let meta = std::fs::metadata(&p).unwrap();
                out.insert(
                    p.clone(),
                    (std::fs::read(&p).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// A jes-format queue entry with everything a queue file can say, due far in the future.
fn hand_made_entry(state_b: &str) -> String {
    format!(
        "jes-queue 1\r\nFrom: <app@localhost>\r\nReceived: 1795605697556\r\nAttempts: 2\r\n\
         Next-Attempt: 4102444800000\r\nDelay-Warned: yes\r\nRet: HDRS\r\nEnvid: env+2Bone\r\n\
         To: <a@remote.test> pending 421 4.3.0 try again later\r\nNotify: SUCCESS,FAILURE\r\n\
         Orcpt: rfc822;a@remote.test\r\nTo: <b@remote.test> {state_b} 550 5.1.1 no such user\r\n\r\n\
         Subject: later\r\n\r\n..a dot line\r\nbody\r\n"
    )
}

/// A folder with mail a jes server wrote (two mailboxes, one message for both, dot lines), then
/// the JES 1.6.1 fixture's user.conf, mailbox file (older than the rest) and JES 1.0 queue file,
/// a jes-format queue entry, a failed one, an empty mailbox folder and one no address names.
fn jes_folder(extra: &str) -> Server {
    let mut folder = Server::prepare(extra, DEFAULT_USERS);
    // Nothing may be relayed while the folder is being filled.
    let conf = folder.etc.join("mail.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        text.replace("defaultsmtpservers=", "#defaultsmtpservers="),
    )
    .unwrap();
    folder.spawn();
    for (i, to) in [&[TS][..], &[ANALYST], &[TS, ANALYST], &[TS]]
        .iter()
        .enumerate()
    {
        let body = format!("Subject: written by jes {i}\r\n\r\nline\r\n.dot line\r\n..two\r\n");
        let r = folder.send("app@localhost", to, &body);
        assert!(r.starts_with("250"), "{r}");
    }
    folder.signal("TERM");
    assert!(folder.wait_exit(Duration::from_secs(15)));
    std::fs::write(&conf, text).unwrap();

    let fixture = repo_path("tests/fixtures/jes-1.6.1/etc");
    std::fs::copy(fixture.join("user.conf"), folder.etc.join("user.conf")).unwrap();
    let jes_file = folder.mailbox(TS).join("pop6501300281251615158.jmsg");
    std::fs::copy(
        fixture.join("users/trackstudio@127.0.0.1/pop6501300281251615158.jmsg"),
        &jes_file,
    )
    .unwrap();
    // JES delivered it days before the rest: oldest first puts it first.
    let st = Command::new("touch")
        .args(["-d", "2026-11-25 11:21:37"])
        .arg(&jes_file)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::create_dir_all(folder.etc.join("smtp")).unwrap();
    std::fs::copy(
        fixture.join("smtp/smtp10134488207579172220.ser"),
        folder.etc.join("smtp/smtp10134488207579172220.ser"),
    )
    .unwrap();
    std::fs::write(
        folder.etc.join("smtp/smtp1795605697556000.ser"),
        hand_made_entry("failed"),
    )
    .unwrap();
    std::fs::create_dir_all(folder.etc.join("failed")).unwrap();
    std::fs::write(
        folder.etc.join("failed/smtp1795605697556001.ser"),
        hand_made_entry("failed").replace(" pending 421", " failed 554"),
    )
    .unwrap();
    std::fs::create_dir_all(folder.etc.join("users/empty@localhost")).unwrap();
    std::fs::create_dir_all(folder.etc.join("users/Upper@Localhost")).unwrap();
    folder
}

// The POP3 view of a mailbox (Python's poplib).
use common::pop_view as view;

#[test]
fn a_migrated_jes_folder_keeps_its_pop3_view_and_relays_its_queue() {
    let Some(pg) =
        Postgres::start("a_migrated_jes_folder_keeps_its_pop3_view_and_relays_its_queue")
    else {
        return;
    };
    let upstream = Upstream::start(&[]);
    let relay = format!(
        "defaultsmtpservers=127.0.0.1:{}\nsmtpdelivery.interval=1\n",
        upstream.port
    );
    let mut folder = jes_folder(&relay);
    let before = snapshot(&folder.etc);
    let messages = folder.mailbox_files(TS).len() + folder.mailbox_files(ANALYST).len();
    assert_eq!(messages, 6, "5 written by jes, 1 by JES");

    let (ok, out) = migrate_into(&pg, &folder.etc, "jes");
    assert!(ok, "{out}");
    println!("{out}");
    assert!(
        out.contains(&format!(
            "mailboxes: 3 mailbox(es), {messages} message(s), "
        )),
        "{out}"
    );
    assert!(
        out.contains("queue: 3 message(s) copied (2 waiting, 1 kept as failed)"),
        "{out}"
    );
    assert!(out.contains("accounts: 2 account(s) copied"), "{out}");
    // The history the folder's server wrote (history.db) is copied event for event.
    let events: String = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("history: ")?
                .strip_suffix(" event(s) copied")
        })
        .unwrap_or_else(|| panic!("no history line: {out}"))
        .to_string();
    assert!(events.parse::<u64>().unwrap() > 0, "{out}");
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_history"), events);
    assert!(
        out.contains("left out: ") && out.contains("Upper@Localhost"),
        "{out}"
    );
    assert!(
        out.contains("checked: the database reads back as the folder"),
        "{out}"
    );
    assert!(!out.contains(pg::PASSWORD), "{out}");
    assert_eq!(
        pg.psql("jes", "SELECT COUNT(*) FROM jes_mail"),
        messages.to_string()
    );
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT attempts, delay_warned, ret, envid FROM jes_queue WHERE id = '1795605697556000'"
        ),
        "2|t|HDRS|env+2Bone"
    );
    assert_eq!(
        pg.psql(
            "jes",
            "SELECT string_agg(address || ' ' || state || ' ' || coalesce(notify, '-') || ' ' || coalesce(orcpt, '-'), ', ' ORDER BY position) \
             FROM jes_queue_recipients WHERE message_id = '1795605697556000'"
        ),
        "a@remote.test pending SUCCESS,FAILURE rfc822;a@remote.test, b@remote.test failed - -"
    );
    // Bodies are stored once: the copies of the message for both mailboxes share one (their own
    // X-DeliveredTo lines apart), and so do the two hand-made queue entries: 5 + 2.
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_bodies"), "7");
    // The source is only read.
    assert_eq!(snapshot(&folder.etc), before, "the folder changed");

    // A server on the database relays the JES 1.0 queue entry (due since 2026-11-25).
    let mut db_server = Server::prepare(&relay, DEFAULT_USERS);
    let conf = db_server.etc.join("mail.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&pg.store_conf(&db_server.etc, "jes"));
    std::fs::write(&conf, text).unwrap();
    db_server.spawn();
    let got = upstream.wait_for(1, Duration::from_secs(20));
    assert_eq!(got[0]["rcpt_tos"], serde_json::json!(["boss@remote.test"]));
    assert!(got[0]["data"]
        .as_str()
        .unwrap()
        .contains("Subject: Task #2124 changed"));
    db_server.wait_until(
        "the relayed entry leaves the queue",
        Duration::from_secs(10),
        || pg.psql("jes", "SELECT COUNT(*) FROM jes_queue") == "2",
    );

    // The POP3 view: what poplib sees on the database is what it sees on the original folder.
    let on_db = [
        view(&db_server, TS, "secret"),
        view(&db_server, ANALYST, "password"),
    ];
    db_server.signal("TERM");
    assert!(db_server.wait_exit(Duration::from_secs(15)));
    folder.spawn();
    let on_folder = [
        view(&folder, TS, "secret"),
        view(&folder, ANALYST, "password"),
    ];
    assert_eq!(on_db, on_folder);
    common::assert_fixture_mailboxes(&on_db[0], &on_db[1]);
}

#[test]
fn migrate_refuses_a_served_folder_and_a_database_with_mail_and_a_copy_that_differs() {
    let Some(pg) = Postgres::start(
        "migrate_refuses_a_served_folder_and_a_database_with_mail_and_a_copy_that_differs",
    ) else {
        return;
    };
    // Its queue is relayed to a port nobody listens on while a server runs on it.
    let mut folder = jes_folder(&format!(
        "defaultsmtpservers=127.0.0.1:{}\n",
        common::free_port()
    ));

    // A server holds the folder: refused before anything is written to the database.
    folder.spawn();
    let (ok, out) = migrate_into(&pg, &folder.etc, "jes");
    assert!(!ok, "{out}");
    assert!(
        out.contains("refusing to migrate while a server runs"),
        "{out}"
    );
    assert!(out.contains(&format!("pid {}", folder.pid())), "{out}");
    assert_eq!(
        pg.psql("jes", "SELECT to_regclass('jes_mail') IS NULL"),
        "t"
    );
    folder.signal("TERM");
    assert!(folder.wait_exit(Duration::from_secs(15)));

    // The password in the URL itself: masked in every line, and the note says where it shows.
    let with_password = format!(
        "postgresql://jes:{}@127.0.0.1:{}/jes?sslmode=disable",
        pg::PASSWORD,
        pg.port
    );
    let (ok, out) = migrate(&[folder.etc.to_str().unwrap(), "--to", &with_password]);
    assert!(ok, "{out}");
    assert!(out.contains("holds a password"), "{out}");
    assert!(out.contains("jes:****@127.0.0.1"), "{out}");
    assert!(!out.contains(pg::PASSWORD), "{out}");

    // Once more into the same database: refused, naming it (masked), nothing added.
    let rows = pg.psql("jes", "SELECT COUNT(*) FROM jes_mail");
    // The server's attempt on the folder may have queued a delay notice besides the three.
    let queued = pg.psql("jes", "SELECT COUNT(*) FROM jes_queue");
    let (ok, out) = migrate(&[folder.etc.to_str().unwrap(), "--to", &with_password]);
    assert!(!ok, "{out}");
    assert!(
        out.contains("refusing to migrate into postgresql://jes:****@127.0.0.1"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "it already holds {rows} mailbox message(s) and {queued} queue entries"
        )),
        "{out}"
    );
    assert!(!out.contains(pg::PASSWORD), "{out}");
    assert_eq!(pg.psql("jes", "SELECT COUNT(*) FROM jes_mail"), rows);

    // Without --to: the folder's own store.url and store.passwordfile.
    pg.create_db("own");
    let conf = folder.etc.join("mail.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&pg.store_conf(&folder.etc, "own"));
    std::fs::write(&conf, text).unwrap();
    let (ok, out) = migrate(&[folder.etc.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("database: {} (schema version", pg.url("own"))),
        "{out}"
    );
    assert_eq!(pg.psql("own", "SELECT COUNT(*) FROM jes_mail"), rows);

    // A database that does not store what it is given (a trigger appends to every body): the
    // check reads it back, names the messages and exits non-zero.
    pg.create_db("bent");
    let empty = Server::prepare("", "");
    let (ok, out) = migrate_into(&pg, &empty.etc, "bent");
    assert!(
        ok,
        "an empty folder makes the schema and copies nothing: {out}"
    );
    assert!(
        out.contains("mailboxes: 0 mailbox(es), 0 message(s)"),
        "{out}"
    );
    pg.psql(
        "bent",
        "CREATE FUNCTION bend() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN NEW.data := NEW.data || '\\x58'::bytea; RETURN NEW; END $$; \
         CREATE TRIGGER bend BEFORE INSERT ON jes_bodies FOR EACH ROW EXECUTE FUNCTION bend()",
    );
    let (ok, out) = migrate_into(&pg, &folder.etc, "bent");
    assert!(!ok, "{out}");
    assert!(out.contains("mismatch: mailbox trackstudio@127.0.0.1, message 6501300281251615158: the folder's copy has SHA-256"), "{out}");
    assert!(out.contains("mismatch: queue entry 10134488207579172220: the database differs from the file in the message"), "{out}");
    assert!(out.contains("the check found"), "{out}");
}
