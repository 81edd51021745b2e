//! Tests of the mailbox store against JES 1.6.1's own files and jes's writes.

use super::*;
use crate::store::pop3_size;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub(crate) fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jes-1.6.1/etc")
}

const FIXTURE_BOX: &str = "trackstudio@127.0.0.1";
const FIXTURE_FILE: &str = "pop6501300281251615158.jmsg";

fn fixture_copy() -> (tempfile::TempDir, FileMailboxes) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("users").join(FIXTURE_BOX);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        fixture_root()
            .join("users")
            .join(FIXTURE_BOX)
            .join(FIXTURE_FILE),
        dir.join(FIXTURE_FILE),
    )
    .unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    (tmp, store)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    let t = base - Duration::from_secs(secs_ago);
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn fixture_mailbox_lists_uid_and_unstuffed_size() {
    let (_tmp, store) = fixture_copy();
    let original = std::fs::read(
        fixture_root()
            .join("users")
            .join(FIXTURE_BOX)
            .join(FIXTURE_FILE),
    )
    .unwrap();
    assert!(original.windows(10).any(|w| w == b"\r\n..A line"));
    let mb = store.open("TrackStudio@127.0.0.1").unwrap();
    assert_eq!(mb.messages.len(), 1);
    assert_eq!(mb.messages[0].uid, "6501300281251615158");
    assert_eq!(mb.messages[0].size, original.len() as u64 - 1);
    assert_eq!(mb.read(0).unwrap(), original);
    assert!(mb.read(1).is_err());
}

#[test]
fn jes_file_sizes_are_cached_until_the_file_changes() {
    let (tmp, store) = fixture_copy();
    let path = tmp
        .path()
        .join("users")
        .join(FIXTURE_BOX)
        .join(FIXTURE_FILE);
    let size = store.open(FIXTURE_BOX).unwrap().messages[0].size;
    // Same length and mtime, different content: the cached size is used, the file is not read.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let pos = bytes.windows(3).position(|w| w == b"..A").unwrap();
    bytes[pos] = b'x';
    std::fs::write(&path, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(store.open(FIXTURE_BOX).unwrap().messages[0].size, size);
    // A different mtime invalidates the entry.
    set_mtime(&path, 5);
    assert_eq!(store.open(FIXTURE_BOX).unwrap().messages[0].size, size + 1);
}

#[test]
fn deliver_writes_headers_and_size_in_name() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let msg = b"Subject: hi\r\n\r\n..dot line\r\nend\r\n";
    let boxes = vec!["a@x.test".to_string(), "B@x.test".to_string()];
    let uids = store.deliver(&boxes, "sender@y.test", msg).unwrap();
    assert_eq!(uids.len(), 2);
    // One message, one id: both copies carry it (UIDLs are per mailbox).
    assert_eq!(uids[0], uids[1]);
    for (mb, uid) in ["a@x.test", "b@x.test"].iter().zip(&uids) {
        let dir = tmp.path().join("users").join(mb);
        assert_eq!(names_in(&dir), vec![format!("pop{uid}.jmsg")]);
        let bytes = std::fs::read(dir.join(format!("pop{uid}.jmsg"))).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        let mut lines = text.split("\r\n");
        assert!(lines
            .next()
            .unwrap()
            .eq_ignore_ascii_case(&format!("X-DeliveredTo: {mb}")));
        assert_eq!(lines.next().unwrap(), "Return-Path: <sender@y.test>");
        assert!(bytes.ends_with(msg));
        let named: u64 = uid.rsplit_once(",S=").unwrap().1.parse().unwrap();
        assert_eq!(named, pop3_size(&bytes));
        assert_eq!(named, bytes.len() as u64 - 1);
        let opened = store.open(mb).unwrap();
        assert_eq!(opened.messages[0].uid, *uid);
        assert_eq!(opened.messages[0].size, named);
    }
}

#[test]
fn null_sender_and_bracketed_sender() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let boxes = vec!["a@x.test".to_string()];
    store.deliver(&boxes, "", b"x\r\n").unwrap();
    store.deliver(&boxes, "<>", b"y\r\n").unwrap();
    store.deliver(&boxes, "<s@y.test>", b"z\r\n").unwrap();
    let mb = store.open("a@x.test").unwrap();
    let second_lines: Vec<String> = (0..3)
        .map(|i| {
            let t = String::from_utf8(mb.read(i).unwrap()).unwrap();
            t.split("\r\n").nth(1).unwrap().to_string()
        })
        .collect();
    let mut sorted = second_lines.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![
            "Return-Path: <>",
            "Return-Path: <>",
            "Return-Path: <s@y.test>"
        ]
    );
}

#[test]
fn unsafe_names_are_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let boxes = vec!["ok@x.test".to_string(), "../evil@x.test".to_string()];
    assert!(matches!(
        store.deliver(&boxes, "s@y", b"x\r\n"),
        Err(DeliverError::Unsafe(_))
    ));
    assert!(!tmp.path().join("users").exists());
    assert!(matches!(store.open("a/b@c"), Err(OpenError::Unsafe(_))));
}

#[test]
fn missing_mailbox_is_created_empty_so_that_it_can_be_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let mb = store.open("nobody@x.test").unwrap();
    assert!(mb.messages.is_empty());
    assert!(tmp.path().join("users/nobody@x.test").is_dir());
    assert!(matches!(store.open("nobody@x.test"), Err(OpenError::InUse)));
}

#[test]
fn listing_is_oldest_first_and_skips_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("users/a@x.test");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, age) in [
        ("pop3.jmsg", 10),
        ("pop1.jmsg", 30),
        ("pop2.jmsg", 20),
        ("pop0b.jmsg", 10),
    ] {
        std::fs::write(dir.join(name), b"X-DeliveredTo: a@x.test\r\n\r\nbody\r\n").unwrap();
        set_mtime(&dir.join(name), age);
    }
    std::fs::write(dir.join(".tmp-1-1"), b"half").unwrap();
    std::fs::write(dir.join("notes.txt"), b"x").unwrap();
    std::fs::write(dir.join("pop.jmsg"), b"x").unwrap();
    std::fs::create_dir(dir.join("pop9.jmsg")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", dir.join("pop8.jmsg")).unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let mb = store.open("a@x.test").unwrap();
    let uids: Vec<&str> = mb.messages.iter().map(|m| m.uid.as_str()).collect();
    assert_eq!(uids, vec!["1", "2", "0b", "3"]);
}

#[test]
fn second_open_is_in_use_until_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let first = store.open("a@x.test").unwrap();
    assert!(matches!(store.open("A@X.test"), Err(OpenError::InUse)));
    let other = store.open("b@x.test").unwrap();
    drop(first);
    let again = store.open("a@x.test").unwrap();
    drop((other, again));
}

#[test]
fn delete_then_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(tmp.path().join("users"));
    let boxes = vec!["a@x.test".to_string()];
    let mut uids = Vec::new();
    for i in 0..3 {
        uids.extend(
            store
                .deliver(&boxes, "s@y", format!("m{i}\r\n").as_bytes())
                .unwrap(),
        );
    }
    let mb = store.open("a@x.test").unwrap();
    let listed: Vec<String> = mb.messages.iter().map(|m| m.uid.clone()).collect();
    assert_eq!(listed, uids, "delivery order is listing order");
    // Deleting a file that is already gone is fine.
    std::fs::remove_file(message_path(&mb.dir, &mb.messages[2].uid)).unwrap();
    mb.delete(&[0, 2]).unwrap();
    assert!(mb.delete(&[7]).is_err());
    drop(mb);
    let mb = store.open("a@x.test").unwrap();
    assert_eq!(mb.messages.len(), 1);
    assert_eq!(mb.messages[0].uid, uids[1]);
    assert!(mb.read(0).unwrap().ends_with(b"m1\r\n"));
}

#[test]
fn a_failed_write_leaves_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("users");
    let store = FileMailboxes::new(users.clone());
    let boxes = vec!["a@x.test".to_string(), "b@x.test".to_string()];
    let mut calls = 0;
    let result = store.deliver_with("1", &boxes, "s@y", b"x\r\n", |f, bytes| {
        calls += 1;
        if calls == 2 {
            Err(io::Error::from_raw_os_error(28))
        } else {
            f.write_all(bytes)
        }
    });
    assert!(matches!(result, Err(DeliverError::Full(_))), "{result:?}");
    assert!(names_in(&users.join("a@x.test")).is_empty());
    assert!(names_in(&users.join("b@x.test")).is_empty());

    let result = store.deliver_with("1", &boxes, "s@y", b"x\r\n", |_, _| {
        Err(io::Error::from_raw_os_error(5))
    });
    assert!(matches!(result, Err(DeliverError::Io(_))), "{result:?}");
    assert!(names_in(&users.join("a@x.test")).is_empty());
    let quota = store.deliver_with("1", &boxes, "s@y", b"x\r\n", |_, _| {
        Err(io::Error::from_raw_os_error(122))
    });
    assert!(matches!(quota, Err(DeliverError::Full(_))));
}

#[test]
fn concurrent_deliveries_get_distinct_names() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileMailboxes::new(tmp.path().join("users")));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let boxes = vec!["a@x.test".to_string()];
                (0..25)
                    .flat_map(|i| {
                        let body = format!("t{t} m{i}\r\n");
                        store.deliver(&boxes, "s@y", body.as_bytes()).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<String> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200);
    let names = names_in(&tmp.path().join("users/a@x.test"));
    assert_eq!(names.len(), 200);
    assert!(names.iter().all(|n| n.starts_with("pop")));
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<FileMailboxes>();
    check::<FileMailbox>();
}

#[test]
fn start_up_removes_temporary_files_a_crash_left_and_keeps_mail() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileMailboxes::new(dir.path().join("users"));
    let uids = store
        .deliver(
            &["a@x".to_string()],
            "s@y",
            b"Subject: kept\r\n\r\nbody\r\n",
        )
        .unwrap();
    let mailbox = dir.path().join("users/a@x");
    std::fs::write(
        mailbox.join(format!("{}999-1", crate::durable::TEMP_PREFIX)),
        b"half a mess",
    )
    .unwrap();
    std::fs::write(mailbox.join(".keep-me"), b"not ours").unwrap();
    assert_eq!(store.remove_stale_temp_files().unwrap(), 1);
    assert_eq!(
        names_in(&mailbox),
        vec![".keep-me".to_string(), format!("pop{}.jmsg", uids[0])]
    );
    assert_eq!(store.remove_stale_temp_files().unwrap(), 0);
    let empty = FileMailboxes::new(dir.path().join("nowhere"));
    assert_eq!(empty.remove_stale_temp_files().unwrap(), 0);
}
