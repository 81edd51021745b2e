//! Tests of the queue against JES 1.6.1's own `.ser` file and jes's format.

use super::*;
use std::path::Path;

const FIXTURE_ID: &str = "10134488207579172220";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jes-1.6.1/etc/smtp")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn sample() -> QueuedMessage {
    QueuedMessage {
        id: "1795605697556000001".into(),
        sender: "trackstudio@localhost".into(),
        recipients: vec![
            QueueRecipient {
                address: "boss@remote.test".into(),
                state: RecipientState::Pending,
                last_error: None,
                dsn: Default::default(),
            },
            QueueRecipient {
                address: "x@y.test".into(),
                state: RecipientState::Failed,
                last_error: Some("550 5.1.1 no such user".into()),
                dsn: Default::default(),
            },
            QueueRecipient {
                address: "a@b.test".into(),
                state: RecipientState::Delivered,
                last_error: Some("250 2.0.0 OK".into()),
                dsn: Default::default(),
            },
            QueueRecipient {
                address: "c@d.test".into(),
                state: RecipientState::Pending,
                last_error: Some("421 4.3.0 try again later > pending".into()),
                dsn: Default::default(),
            },
        ],
        received_ms: 1795605697556,
        next_attempt_ms: 1795605758567,
        attempts: 3,
        delay_warned: false,
        dsn: Default::default(),
        message: b"Subject: x\r\n\r\n..dot\r\nlast\r\n".to_vec(),
    }
}

#[test]
fn fixture_jes_file_parses() {
    let q = Spool::new(fixture_dir());
    assert_eq!(q.list_ids().unwrap(), vec![FIXTURE_ID.to_string()]);
    let m = q.load(FIXTURE_ID).unwrap();
    assert_eq!(m.id, FIXTURE_ID);
    assert_eq!(m.sender, "trackstudio@localhost");
    assert_eq!(m.recipients.len(), 1);
    assert_eq!(m.recipients[0].address, "boss@remote.test");
    assert_eq!(m.recipients[0].state, RecipientState::Pending);
    assert_eq!(m.recipients[0].last_error, None);
    assert_eq!(m.attempts, 1);
    assert_eq!(m.received_ms, 1795605697556);
    assert_eq!(m.next_attempt_ms, 1795605758567);
    assert!(m
        .message
        .starts_with(b"X-RecievedDate: Wed Nov 25 11:21:37 UTC 2026\r\n"));
    assert!(m.message.ends_with(b"Status: in progress\r\n"));
    // The fixture's queued message has no dot line; the bytes must be the file's, unchanged.
    let raw = std::fs::read(fixture_dir().join(format!("smtp{FIXTURE_ID}.ser"))).unwrap();
    assert!(raw.ends_with(&m.message));
}

#[test]
fn jes_file_keeps_dot_stuffing_and_null_sender() {
    let text = b"1.0\r\nunknown@example.com\r\na@x.test, b@y.test\r\n1\r\n2\r\n0\r\nS: x\r\n\r\n..A line\r\n";
    let m = parse("7", text).unwrap();
    assert_eq!(m.sender, "unknown@example.com");
    let addrs: Vec<&str> = m.recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addrs, vec!["a@x.test", "b@y.test"]);
    assert_eq!(m.message, b"S: x\r\n\r\n..A line\r\n");
}

#[test]
fn format_is_readable_and_round_trips() {
    let m = sample();
    let text = format(&m);
    let s = String::from_utf8(text.clone()).unwrap();
    assert!(s.starts_with(
        "jes-queue 1\r\n\
         From: <trackstudio@localhost>\r\n\
         Received: 1795605697556 (2026-11-25 11:21:37 UTC)\r\n\
         Attempts: 3\r\n\
         Next-Attempt: 1795605758567 (2026-11-25 11:22:38 UTC)\r\n\
         To: <boss@remote.test> pending\r\n\
         To: <x@y.test> failed 550 5.1.1 no such user\r\n\
         To: <a@b.test> delivered 250 2.0.0 OK\r\n"
    ));
    assert!(s.ends_with("\r\n\r\nSubject: x\r\n\r\n..dot\r\nlast\r\n"));
    assert_eq!(parse(&m.id, &text).unwrap(), m);

    let mut null = sample();
    null.sender.clear();
    null.message.clear();
    let text = format(&null);
    assert!(String::from_utf8_lossy(&text).contains("From: <>\r\n"));
    assert_eq!(parse(&null.id, &text).unwrap(), null);

    let mut warned = sample();
    warned.delay_warned = true;
    let text = format(&warned);
    assert!(String::from_utf8_lossy(&text).contains("\r\nDelay-Warned: yes\r\nTo: "));
    assert_eq!(parse(&warned.id, &text).unwrap(), warned);
}

#[test]
fn multi_line_errors_stay_on_one_line() {
    let mut m = sample();
    m.recipients[1].last_error = Some("550-first\r\n550 second".into());
    let back = parse(&m.id, &format(&m)).unwrap();
    assert_eq!(
        back.recipients[1].last_error.as_deref(),
        Some("550-first  550 second")
    );
    assert_eq!(back.recipients.len(), 4);
}

#[test]
fn bad_files_name_the_line() {
    let cases: [(&[u8], usize); 9] = [
        (b"jes-queue 1\r\nFrom: <a@b>\r\nDelay-Warned: maybe\r\n\r\n", 3),
        (b"2.0\r\n", 1),
        (b"1.0\r\ns@x\r\n", 3),
        (b"1.0\r\ns@x\r\nr@y\r\nsoon\r\n1\r\n0\r\n", 4),
        (b"1.0\r\ns@x\r\n , \r\n1\r\n1\r\n0\r\n", 3),
        (b"jes-queue 1\r\nFrom: <a@b>\r\nBogus: 1\r\n\r\n", 3),
        (b"jes-queue 1\r\nFrom: a@b\r\n\r\n", 2),
        (b"jes-queue 1\r\nFrom: <a@b>\r\nTo: <r@x> sent\r\n\r\n", 3),
        (
            b"jes-queue 1\r\nFrom: <a@b>\r\nReceived: 1\r\nAttempts: 0\r\nTo: <r@x> pending\r\n\r\n",
            6,
        ),
    ];
    for (text, line) in cases {
        let e = parse("1", text).unwrap_err();
        assert_eq!(e.line, line, "{:?}: {e:?}", String::from_utf8_lossy(text));
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("smtp5.ser"), b"1.0\r\n").unwrap();
    let q = Spool::new(tmp.path().to_path_buf());
    match q.load("5") {
        Err(QueueError::Format { path, line, .. }) => {
            assert_eq!(path, tmp.path().join("smtp5.ser"));
            assert_eq!(line, 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(q.load("../x"), Err(QueueError::Io { .. })));
    assert!(matches!(q.load("9"), Err(QueueError::Io { .. })));
}

#[test]
fn enqueue_load_save_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let q = Spool::new(tmp.path().join("smtp"));
    let rcpts = vec!["boss@remote.test".to_string(), "x@y.test".to_string()];
    let msg = b"Subject: hi\r\n\r\n..dot\r\n";
    let id = q.enqueue("<>", &rcpts, msg).unwrap();
    assert_eq!(names_in(q.dir()), vec![format!("smtp{id}.ser")]);
    let mut m = q.load(&id).unwrap();
    assert_eq!(m.id, id);
    assert_eq!(m.sender, "");
    assert_eq!(m.attempts, 0);
    assert_eq!(m.message, msg);
    assert_eq!(m.received_ms, m.next_attempt_ms);
    assert!(m
        .recipients
        .iter()
        .all(|r| r.state == RecipientState::Pending));

    m.attempts = 1;
    m.next_attempt_ms += 60_000;
    m.recipients[1].state = RecipientState::Failed;
    m.recipients[1].last_error = Some("550 5.1.1 no such user here".into());
    m.recipients[0].last_error = Some("421 4.3.0 try again later".into());
    q.save(&m).unwrap();
    assert_eq!(q.load(&id).unwrap(), m);
    assert_eq!(names_in(q.dir()), vec![format!("smtp{id}.ser")]);

    q.remove(&id).unwrap();
    q.remove(&id).unwrap();
    assert!(names_in(q.dir()).is_empty());
    assert!(q.list_ids().unwrap().is_empty());
}

#[test]
fn saving_a_jes_file_converts_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir().join(format!("smtp{FIXTURE_ID}.ser")),
        tmp.path().join(format!("smtp{FIXTURE_ID}.ser")),
    )
    .unwrap();
    let q = Spool::new(tmp.path().to_path_buf());
    let mut m = q.load(FIXTURE_ID).unwrap();
    m.attempts += 1;
    q.save(&m).unwrap();
    let raw = std::fs::read(q.path_of(FIXTURE_ID)).unwrap();
    assert!(raw.starts_with(b"jes-queue 1\r\n"));
    assert_eq!(q.load(FIXTURE_ID).unwrap(), m);
}

#[test]
fn list_skips_temp_and_unknown_files() {
    let tmp = tempfile::tempdir().unwrap();
    let q = Spool::new(tmp.path().to_path_buf());
    let id = q.enqueue("s@x", &["r@y".to_string()], b"m\r\n").unwrap();
    for name in [
        ".tmp-1-2",
        "smtp.ser",
        "smtpabc.ser",
        "smtp12.ser.bak",
        "notes",
    ] {
        std::fs::write(tmp.path().join(name), b"x").unwrap();
    }
    std::fs::write(tmp.path().join("smtp42.ser"), b"1.0\r\n").unwrap();
    let mut want = vec![id, "42".to_string()];
    want.sort();
    assert_eq!(q.list_ids().unwrap(), want);
    assert_eq!(q.remove_stale_temp_files().unwrap(), 1);
    assert!(!tmp.path().join(".tmp-1-2").exists());
}

#[test]
fn refuses_what_it_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    let q = Spool::new(tmp.path().to_path_buf());
    assert!(q.enqueue("s@x", &[], b"m\r\n").is_err());
    assert!(q
        .enqueue("s@x", &["a\r\nTo: <b@c>".to_string()], b"m\r\n")
        .is_err());
    assert!(q.enqueue("s\n@x", &["r@y".to_string()], b"m\r\n").is_err());
    let mut m = sample();
    m.id = "../etc".into();
    assert!(q.save(&m).is_err());
    assert!(names_in(tmp.path()).is_empty());
}

#[test]
fn full_disk_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let q = Spool::new(tmp.path().join("smtp"));
    let rcpts = vec!["r@y".to_string()];
    let r = q.enqueue_with(
        "1",
        "s@x",
        (&rcpts, &Default::default()),
        b"m\r\n",
        |f, b| {
            f.write_all(&b[..3])?;
            Err(io::Error::from_raw_os_error(28))
        },
    );
    assert!(matches!(r, Err(QueueError::Full(_))), "{r:?}");
    assert!(names_in(q.dir()).is_empty());
    let r = q.enqueue_with(
        "1",
        "s@x",
        (&rcpts, &Default::default()),
        b"m\r\n",
        |_, _| Err(io::Error::from_raw_os_error(5)),
    );
    assert!(matches!(r, Err(QueueError::Io { .. })), "{r:?}");
    assert!(names_in(q.dir()).is_empty());

    // A failed rewrite keeps the old file as it was.
    let id = q.enqueue("s@x", &rcpts, b"m\r\n").unwrap();
    let before = std::fs::read(q.path_of(&id)).unwrap();
    let mut m = q.load(&id).unwrap();
    m.attempts = 9;
    let r = q.save_with(&m, |_, _| Err(io::Error::from_raw_os_error(122)));
    assert!(matches!(r, Err(QueueError::Full(_))));
    assert_eq!(std::fs::read(q.path_of(&id)).unwrap(), before);
    assert_eq!(names_in(q.dir()), vec![format!("smtp{id}.ser")]);
}

#[test]
fn concurrent_enqueues_get_distinct_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let q = std::sync::Arc::new(Spool::new(tmp.path().to_path_buf()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let q = std::sync::Arc::clone(&q);
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| q.enqueue("s@x", &["r@y".to_string()], b"m\r\n").unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    assert_eq!(q.list_ids().unwrap(), ids);
}

/// The DSN parameters (RFC 3461) are kept in the queue file: on their own lines, read back as
/// written; a file without them (JES's, jes's before DSN) reads as a message that asked nothing.
#[test]
fn dsn_parameters_are_kept() {
    use crate::dsn::{Dsn, MessageDsn, Notify, RecipientDsn, Ret};
    let tmp = tempfile::tempdir().unwrap();
    let q = Spool::new(tmp.path().join("smtp"));
    let dsn = Dsn {
        message: MessageDsn {
            ret: Some(Ret::Full),
            envid: Some("QQ+2B1".into()),
        },
        recipients: vec![(
            "b@y.test".into(),
            RecipientDsn {
                notify: Notify::parse("SUCCESS,DELAY"),
                orcpt: Some("rfc822;b@y.test".into()),
            },
        )],
    };
    let rcpts = ["a@y.test".to_string(), "b@y.test".to_string()];
    let id = q.enqueue_dsn("1", "s@x", &rcpts, &dsn, b"m\r\n").unwrap();
    let text = String::from_utf8(std::fs::read(q.path_of(&id)).unwrap()).unwrap();
    assert!(text.contains("Ret: FULL\r\nEnvid: QQ+2B1\r\n"), "{text}");
    assert!(
        text.contains(
            "To: <a@y.test> pending\r\nTo: <b@y.test> pending\r\n\
             Notify: SUCCESS,DELAY\r\nOrcpt: rfc822;b@y.test\r\n\r\n"
        ),
        "{text}"
    );
    let m = q.load(&id).unwrap();
    assert_eq!(m.dsn, dsn.message);
    assert_eq!(m.recipients[0].dsn, RecipientDsn::default());
    assert_eq!(m.recipients[1].dsn, dsn.recipients[0].1);

    for (bad, why) in [
        (
            "Notify: SUCCESS\r\nTo: <a@y> pending\r\n",
            "Notify before any To",
        ),
        ("To: <a@y> pending\r\nNotify: SOMETIMES\r\n", "NOTIFY value"),
        ("To: <a@y> pending\r\nOrcpt: a@y\r\n", "type;xtext"),
        ("To: <a@y> pending\r\nRet: ALL\r\n", "FULL or HDRS"),
        ("To: <a@y> pending\r\nEnvid: a b\r\n", "ENVID"),
    ] {
        let file = format!(
            "jes-queue 1\r\nFrom: <s@x>\r\nReceived: 1\r\nAttempts: 0\r\nNext-Attempt: 1\r\n{bad}\r\nm\r\n"
        );
        let e = crate::queue::parse("7", file.as_bytes()).unwrap_err();
        assert!(e.reason.contains(why), "{bad:?}: {e:?}");
    }
}
