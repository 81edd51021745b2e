//! Tests of `jes queue` on a temporary configuration directory.

use super::*;
use crate::cli::queue_store::store_of;
use crate::queue::admin::tests::msg;
use crate::queue::{take_retry_requests, RetryRequest};

fn run<F: FnOnce(&mut Vec<u8>) -> Result<(), String>>(f: F) -> (Result<(), String>, String) {
    let mut out = Vec::new();
    let r = f(&mut out);
    (r, String::from_utf8(out).unwrap())
}

#[test]
fn ages() {
    assert_eq!(format_age(45_000), "45s");
    assert_eq!(format_age(12 * 60_000 + 5_000), "12m");
    assert_eq!(format_age((3 * 3600 + 12 * 60) * 1000), "3h12m");
    assert_eq!(format_age((2 * 86_400 + 4 * 3600) * 1000), "2d4h");
}

#[test]
fn table_is_aligned_and_escaped() {
    let mut a = msg("1", "app@x.test");
    a.recipients[0].last_error = Some("550 bad\x1b]0;title\x07".into());
    let b = msg("22", "");
    let text = render_list(&[a, b], 1_000_000 + 3 * 3600 * 1000 + 12 * 60 * 1000);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("ID  AGE    TRIES  NEXT ATTEMPT"),
        "{text}"
    );
    assert!(lines[1].starts_with("1   3h12m  2      due "), "{text}");
    assert!(lines[2].contains("<>"));
    assert!(lines[1].contains("boss@remote.test (pending), done@remote.test (delivered)"));
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    let col = lines[0].find("FROM").unwrap();
    assert_eq!(&lines[1][col..col + 10], "app@x.test");
    assert_eq!(lines[3], "2 messages, 2 recipients pending");
}

#[test]
fn list_show_retry_delete() {
    let dir = tempfile::tempdir().unwrap();
    let (r, out) = run(|o| list(dir.path(), o));
    assert!(r.is_ok());
    assert!(out.starts_with("queue is empty"), "{out}");

    let store = store_of(dir.path());
    let id = store
        .enqueue(
            "app@x.test",
            &["boss@remote.test".to_string()],
            b"Subject: s\r\n\r\nb\r\n",
        )
        .unwrap();
    let mut m = store.load(&id).unwrap();
    m.next_attempt_ms = now_ms() + 3_600_000;
    store.save(&m).unwrap();

    let (r, out) = run(|o| list(dir.path(), o));
    assert!(r.is_ok());
    assert!(out.contains(&id) && out.contains("app@x.test"), "{out}");
    assert!(!out.contains(" due "), "{out}");

    let (r, out) = run(|o| show(dir.path(), &id, o));
    assert!(r.is_ok());
    assert!(out.contains("(jes-queue 1 format)"), "{out}");
    assert!(out.contains("  Subject: s\n"), "{out}");

    let (r, _) = run(|o| retry(dir.path(), &Target::One(id.clone()), o));
    assert!(r.is_ok());
    assert!(store.load(&id).unwrap().next_attempt_ms <= now_ms());
    assert_eq!(
        take_retry_requests(&store).unwrap(),
        vec![RetryRequest::One(id.clone())]
    );

    let (r, _) = run(|o| retry(dir.path(), &Target::All, o));
    assert!(r.is_ok());
    assert_eq!(
        take_retry_requests(&store).unwrap(),
        vec![RetryRequest::All]
    );

    // Busy: a held lock makes the tool wait, then fail naming the file (not tested for 10 s here).
    let (r, out) = run(|o| delete(dir.path(), &Target::One(id.clone()), true, o));
    assert!(r.is_ok(), "{r:?}");
    assert!(out.contains("bounce to <app@x.test> queued"), "{out}");
    let ids = store.list_ids().unwrap();
    assert_eq!(ids.len(), 1);
    assert_ne!(ids[0], id);
    let dsn = store.load(&ids[0]).unwrap();
    assert_eq!(dsn.sender, "");
    assert_eq!(dsn.recipients[0].address, "app@x.test");

    // The bounce itself has a null sender: deleting it with --bounce sends nothing.
    let (r, out) = run(|o| delete(dir.path(), &Target::All, true, o));
    assert!(r.is_ok());
    assert!(out.contains("no bounce: null sender <>"), "{out}");
    assert!(store.list_ids().unwrap().is_empty());

    let (r, _) = run(|o| delete(dir.path(), &Target::One(id.clone()), false, o));
    let e = r.unwrap_err();
    assert!(
        e.contains(&format!("smtp{id}.ser")) && e.contains("not in the queue"),
        "{e}"
    );
    let (r, _) = run(|o| show(dir.path(), "../etc", o));
    assert!(r.is_err());
}

#[test]
fn unreadable_file_is_named_and_others_still_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_of(dir.path());
    store
        .enqueue("a@b.test", &["c@d.test".to_string()], b"S: x\r\n\r\n")
        .unwrap();
    std::fs::write(store.path_of("99"), b"garbage\r\n").unwrap();
    let (r, out) = run(|o| list(dir.path(), o));
    assert!(r.is_err());
    assert!(out.contains("a@b.test"), "{out}");
    assert!(out.contains("smtp99.ser:1:"), "{out}");
}

#[test]
fn the_tools_find_the_spool_where_the_server_keeps_it() {
    let etc = tempfile::tempdir().unwrap();
    let dir = etc.path();
    assert_eq!(store_of(dir).dir(), dir.join("smtp"));
    std::fs::write(dir.join("mail.conf"), "domains=d.test\nstore.dir=data\n").unwrap();
    assert_eq!(store_of(dir).dir(), dir.join("data/smtp"));
}
