//! `jes migrate DIR --from URL` (issue 15 item 2) against a real PostgreSQL: a folder holding
//! the JES 1.6.1 fixture's files (its mailbox file, JES 1.0 queue file and user.conf with
//! SHA-1 passwords and a forward) next to mail, history and an argon2id account a jes server
//! wrote, copied into a database (`--to`) and back into a new folder (`--from`). Python's
//! poplib sees the same STAT/UIDL/LIST/RETR on a server on the new folder as on one on the
//! original, with the original passwords; `jes queue list` and `jes trace` say the same. Also:
//! the refusals (a folder with mail, with accounts, with a server on it; `--to` with `--from`),
//! a missing folder made a jes folder, a database row the file store cannot show the same way
//! failing the check, and a database of another schema version refused, unmigrated.

mod common;
#[path = "common/postgres.rs"]
mod pg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{repo_path, Server, DEFAULT_USERS};
use pg::Postgres;

const TS: &str = "trackstudio@127.0.0.1";
const ANALYST: &str = "analyst@localhost";
const THIRD: &str = "third@localhost";

/// `jes migrate ETC --to|--from URL --password-file PW`: (success, stdout + stderr).
fn migrate(pg: &Postgres, etc: &Path, way: &str, db: &str) -> (bool, String) {
    let pw = pg.password_file(etc.parent().unwrap());
    common::jes_run(&[
        "migrate",
        etc.to_str().unwrap(),
        way,
        &pg.url(db),
        "--password-file",
        pw.to_str().unwrap(),
    ])
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A folder filled by a jes server (four messages, history, a third account with an argon2id
/// password), then given the JES 1.6.1 fixture's user.conf (SHA-1 passwords, a forward),
/// mailbox file and JES 1.0 queue file, and a failed entry. Its queue is relayed to a port
/// nobody listens on.
fn original_folder() -> Server {
    let dead = format!("defaultsmtpservers=127.0.0.1:{}\n", common::free_port());
    let mut folder = Server::prepare(&dead, DEFAULT_USERS);
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
    let (ok, out) = folder_user_add(&folder.etc, THIRD, "third-pw");
    assert!(ok, "{out}");
    let jes_file = folder.mailbox(TS).join("pop6501300281251615158.jmsg");
    std::fs::copy(
        fixture.join("users/trackstudio@127.0.0.1/pop6501300281251615158.jmsg"),
        &jes_file,
    )
    .unwrap();
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
    std::fs::create_dir_all(folder.etc.join("failed")).unwrap();
    std::fs::write(
        folder.etc.join("failed/smtp1795605697556001.ser"),
        "jes-queue 1\r\nFrom: <app@localhost>\r\nReceived: 1795605697556\r\nAttempts: 2\r\n\
         Next-Attempt: 4102444800000\r\nDelay-Warned: yes\r\nRet: HDRS\r\nEnvid: env+2Bone\r\n\
         To: <a@remote.test> failed 554 5.0.0 no\r\nNotify: SUCCESS,FAILURE\r\n\
         Orcpt: rfc822;a@remote.test\r\n\r\nSubject: later\r\n\r\n..a dot line\r\nbody\r\n",
    )
    .unwrap();
    folder
}

/// `jes user add ADDRESS --dir ETC` with `password` on stdin.
fn folder_user_add(etc: &Path, address: &str, password: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new(common::jes_bin())
        .args(["user", "add", address, "--dir"])
        .arg(etc)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

// The POP3 view of a mailbox (Python's poplib).
use common::pop_view as view;

/// `jes queue list` of two folders, taken until their ages agree (they tick with the clock).
fn queue_lists(a: &Server, b: &Server) -> (String, String) {
    let mut last = (String::new(), String::new());
    for _ in 0..5 {
        let (ok_a, out_a) = a.jes(&["queue", "list"]);
        let (ok_b, out_b) = b.jes(&["queue", "list"]);
        assert!(ok_a && ok_b, "{out_a}\n{out_b}");
        if out_a == out_b {
            return (out_a, out_b);
        }
        last = (out_a, out_b);
    }
    last
}

#[test]
fn a_database_written_back_gives_the_same_pop3_view_queue_and_history() {
    let Some(pg) =
        Postgres::start("a_database_written_back_gives_the_same_pop3_view_queue_and_history")
    else {
        return;
    };
    let mut original = original_folder();
    let (ok, out) = migrate(&pg, &original.etc, "--to", "jes");
    assert!(ok, "{out}");

    // Back into a new folder that has only its mail.conf (and an empty user.conf).
    let dead = format!("defaultsmtpservers=127.0.0.1:{}\n", common::free_port());
    let mut back = Server::prepare(&dead, "");
    let (ok, out) = migrate(&pg, &back.etc, "--from", "jes");
    println!("{out}");
    assert!(ok, "{out}");
    let messages = original.mailbox_files(TS).len() + original.mailbox_files(ANALYST).len();
    assert_eq!(messages, 6, "5 written by jes, 1 by JES");
    assert!(
        out.contains(&format!(
            "mailboxes: 2 mailbox(es), {messages} message(s), "
        )),
        "{out}"
    );
    assert!(
        out.contains("queue: 2 message(s) written (1 waiting, 1 kept as failed)"),
        "{out}"
    );
    assert!(
        out.contains("accounts: 3 account(s) and 1 user property (forwards, webhooks) written into user.conf"),
        "{out}"
    );
    let events = pg.psql("jes", "SELECT COUNT(*) FROM jes_history");
    assert!(events.parse::<u64>().unwrap() > 0);
    assert!(
        out.contains(&format!("history: {events} event(s) written")),
        "{out}"
    );
    assert!(
        out.contains("checked: the folder reads back as the database"),
        "{out}"
    );
    assert!(!out.contains(pg::PASSWORD), "{out}");
    assert!(!back.etc.join(".jes-migrate-from").exists());
    // The stored password forms verbatim: JES's SHA-1 digits and jes's argon2id hash.
    let user_conf = std::fs::read_to_string(back.etc.join("user.conf")).unwrap();
    let original_conf = std::fs::read_to_string(original.etc.join("user.conf")).unwrap();
    for line in original_conf.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            user_conf.lines().any(|l| l == line),
            "{line} in {user_conf}"
        );
    }
    assert!(user_conf.contains("=$argon2id$"), "{user_conf}");
    assert!(
        user_conf.starts_with("# Written by jes migrate --from"),
        "{user_conf}"
    );
    // The failed entry is kept as failed, in failed/.
    assert!(back.etc.join("failed/smtp1795605697556001.ser").exists());

    // The queue as `jes queue list` shows it, before any server attempts it.
    let (a, b) = queue_lists(&original, &back);
    assert_eq!(a, b);
    assert!(a.contains("10134488207579172220"), "{a}");

    // The history as `jes trace` shows it.
    let (ok_a, trace_a) = original.jes(&["trace", "--since", "1d", "--json"]);
    let (ok_b, trace_b) = back.jes(&["trace", "--since", "1d", "--json"]);
    assert!(ok_a && ok_b, "{trace_a}\n{trace_b}");
    assert_eq!(trace_a, trace_b);
    assert_eq!(
        trace_a.lines().count().to_string(),
        events,
        "one line per event"
    );

    // The POP3 view on each folder, with the original passwords.
    back.spawn();
    let on_back = [
        view(&back, TS, "secret"),
        view(&back, ANALYST, "password"),
        view(&back, THIRD, "third-pw"),
    ];
    back.signal("TERM");
    assert!(back.wait_exit(Duration::from_secs(15)));
    original.spawn();
    let on_original = [
        view(&original, TS, "secret"),
        view(&original, ANALYST, "password"),
        view(&original, THIRD, "third-pw"),
    ];
    assert_eq!(on_back, on_original);
    common::assert_fixture_mailboxes(&on_back[0], &on_back[1]);
}

#[test]
fn migrate_from_refuses_a_folder_with_mail_accounts_or_a_server_and_reports_a_mismatch() {
    let Some(pg) = Postgres::start(
        "migrate_from_refuses_a_folder_with_mail_accounts_or_a_server_and_reports_a_mismatch",
    ) else {
        return;
    };
    // A small database: the JES fixture's folder copied in.
    let source = Server::prepare("", "");
    let fixture = repo_path("tests/fixtures/jes-1.6.1/etc");
    std::fs::copy(fixture.join("user.conf"), source.etc.join("user.conf")).unwrap();
    std::fs::create_dir_all(source.mailbox(TS)).unwrap();
    std::fs::copy(
        fixture.join("users/trackstudio@127.0.0.1/pop6501300281251615158.jmsg"),
        source.mailbox(TS).join("pop6501300281251615158.jmsg"),
    )
    .unwrap();
    let (ok, out) = migrate(&pg, &source.etc, "--to", "jes");
    assert!(ok, "{out}");

    // --to with --from: refused, nothing done.
    let target = Server::prepare("", "");
    let (ok, out) = common::jes_run(&[
        "migrate",
        target.etc.to_str().unwrap(),
        "--to",
        &pg.url("jes"),
        "--from",
        &pg.url("jes"),
    ]);
    assert!(!ok, "{out}");
    assert!(out.contains("--from") && out.contains("--to"), "{out}");

    // A folder with mail: refused, naming it; nothing written.
    let with_mail = Server::prepare("", "");
    std::fs::create_dir_all(with_mail.mailbox(ANALYST)).unwrap();
    std::fs::write(
        with_mail.mailbox(ANALYST).join("pop1.jmsg"),
        "Subject: x\r\n\r\nkeep me\r\n",
    )
    .unwrap();
    let before = snapshot(&with_mail.etc);
    let (ok, out) = migrate(&pg, &with_mail.etc, "--from", "jes");
    assert!(!ok, "{out}");
    assert!(
        out.contains("refusing to write into") && out.contains("1 message(s) in 1 mailbox(es)"),
        "{out}"
    );
    assert!(out.contains("nothing was written"), "{out}");
    assert_eq!(snapshot(&with_mail.etc), before, "the folder changed");

    // A folder with accounts: refused, naming user.conf.
    let with_accounts = Server::prepare("", "user.keep@localhost=mine\n");
    let before = snapshot(&with_accounts.etc);
    let (ok, out) = migrate(&pg, &with_accounts.etc, "--from", "jes");
    assert!(!ok, "{out}");
    assert!(
        out.contains("1 account or user property entry in") && out.contains("user.conf"),
        "{out}"
    );
    assert_eq!(snapshot(&with_accounts.etc), before, "the folder changed");

    // A server on the folder: refused, naming it.
    let mut served = Server::prepare("", "");
    served.spawn();
    let (ok, out) = migrate(&pg, &served.etc, "--from", "jes");
    assert!(!ok, "{out}");
    assert!(
        out.contains("refusing to write into the folder while a server runs"),
        "{out}"
    );
    assert!(out.contains(&format!("pid {}", served.pid())), "{out}");
    assert!(served.mailbox_files(TS).is_empty());
    served.signal("TERM");
    assert!(served.wait_exit(Duration::from_secs(15)));

    // A folder that does not exist: made a jes folder (jes init's mail.conf, not its accounts),
    // then written.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir(fresh.path().join("new")).unwrap();
    let dir = fresh.path().join("new/etc");
    let (ok, out) = migrate(&pg, &dir, "--from", "jes");
    assert!(ok, "{out}");
    assert!(
        out.contains("had no mail.conf: wrote jes init's sample"),
        "{out}"
    );
    assert!(dir.join("mail.conf").exists());
    let user_conf = std::fs::read_to_string(dir.join("user.conf")).unwrap();
    assert!(!user_conf.contains("=secret"), "{user_conf}");
    assert!(
        user_conf.contains("user.trackstudio@127.0.0.1=101105122155035158077154104207245074042199207186230191133116"),
        "{user_conf}"
    );
    assert!(dir
        .join("users/trackstudio@127.0.0.1/pop6501300281251615158.jmsg")
        .exists());

    // A folder without mail.conf that is not empty is someone's: refused, nothing written.
    let odd = fresh.path().join("odd");
    std::fs::create_dir(&odd).unwrap();
    std::fs::write(odd.join("notes.txt"), "mine\n").unwrap();
    let (ok, out) = migrate(&pg, &odd, "--from", "jes");
    assert!(!ok, "{out}");
    assert!(out.contains("has no mail.conf and is not empty"), "{out}");
    assert_eq!(
        std::fs::read_dir(&odd).unwrap().count(),
        1,
        "only notes.txt: nothing written"
    );

    // A row whose UID the file store reads a size from (`,S=1`) that is not the message's: the
    // folder lists another size than the database, and the check says so, exiting non-zero.
    pg.psql(
        "jes",
        "UPDATE jes_mail SET uid = '6501300281251615158,S=1' WHERE uid = '6501300281251615158'",
    );
    let bent = Server::prepare("", "");
    let (ok, out) = migrate(&pg, &bent.etc, "--from", "jes");
    assert!(!ok, "{out}");
    assert!(
        out.contains("mismatch: mailbox trackstudio@127.0.0.1: the folder lists 1 message(s), the database 1; first difference: message 1: 6501300281251615158,S=1 (1 octets) in the folder"),
        "{out}"
    );
    assert!(out.contains("the check found 1 mismatch(es)"), "{out}");

    // A database whose schema is not this binary's: refused, never migrated, nothing written.
    pg.psql(
        "jes",
        "DELETE FROM jes_schema_history WHERE version = (SELECT MAX(version) FROM jes_schema_history)",
    );
    let versions = pg.psql("jes", "SELECT COUNT(*) FROM jes_schema_history");
    let older = Server::prepare("", "");
    let before = snapshot(&older.etc);
    let (ok, out) = migrate(&pg, &older.etc, "--from", "jes");
    assert!(!ok, "{out}");
    assert!(out.contains("older than this jes knows"), "{out}");
    assert_eq!(snapshot(&older.etc), before, "the folder changed");
    assert_eq!(
        pg.psql("jes", "SELECT COUNT(*) FROM jes_schema_history"),
        versions,
        "the source was migrated"
    );
}
