//! Tests of queue-file locks (across saves and removes) and of retry requests.

use super::*;
use std::sync::mpsc;
use std::thread;

fn store() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let q = Spool::new(dir.path().join("smtp"));
    (dir, q)
}

fn enqueue(q: &Spool) -> String {
    q.enqueue(
        "a@b.test",
        &["c@d.test".to_string()],
        b"Subject: s\r\n\r\nbody\r\n",
    )
    .unwrap()
}

fn kind(e: &QueueError) -> Option<io::ErrorKind> {
    match e {
        QueueError::Io { source, .. } => Some(source.kind()),
        _ => None,
    }
}

#[test]
fn second_lock_waits_and_times_out() {
    let (_d, q) = store();
    let id = enqueue(&q);
    let held = lock(&q, &id).unwrap();
    assert!(try_lock(&q, &id).unwrap().is_none());
    let e = lock_timeout(&q, &id, Duration::from_millis(50)).unwrap_err();
    assert_eq!(kind(&e), Some(io::ErrorKind::WouldBlock));
    assert!(e.to_string().contains(&format!("smtp{id}.ser")), "{e}");
    drop(held);
    assert!(try_lock(&q, &id).unwrap().is_some());
}

#[test]
fn missing_file_is_not_found() {
    let (_d, q) = store();
    let e = lock(&q, "123").unwrap_err();
    assert_eq!(kind(&e), Some(io::ErrorKind::NotFound));
    assert!(lock(&q, "../x").is_err());
}

#[test]
fn save_keeps_the_lock_on_the_new_file() {
    let (_d, q) = store();
    let id = enqueue(&q);
    let mut l = lock(&q, &id).unwrap();
    let mut m = l.load(&q).unwrap();
    m.attempts = 7;
    l.save(&q, &m).unwrap();
    // Still ours, though the path is a new inode now.
    assert!(try_lock(&q, &id).unwrap().is_none());
    m.attempts = 8;
    l.save(&q, &m).unwrap();
    assert!(try_lock(&q, &id).unwrap().is_none());
    drop(l);
    let l2 = try_lock(&q, &id).unwrap().unwrap();
    assert_eq!(l2.load(&q).unwrap().attempts, 8);
    // No temporary file left behind.
    let names: Vec<_> = std::fs::read_dir(q.dir()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

#[test]
fn save_refuses_another_id() {
    let (_d, q) = store();
    let id = enqueue(&q);
    let other = enqueue(&q);
    let mut l = lock(&q, &id).unwrap();
    let m = q.load(&other).unwrap();
    assert!(l.save(&q, &m).is_err());
}

#[test]
fn waiter_follows_a_save_and_sees_the_new_content() {
    let (_d, q) = store();
    let id = enqueue(&q);
    let mut l = lock(&q, &id).unwrap();
    let (tx, rx) = mpsc::channel();
    let dir = q.dir().to_path_buf();
    let id2 = id.clone();
    let waiter = thread::spawn(move || {
        let q = Spool::new(dir);
        tx.send(()).unwrap();
        let l = lock(&q, &id2).unwrap();
        l.load(&q).unwrap().attempts
    });
    rx.recv().unwrap();
    thread::sleep(Duration::from_millis(50));
    let mut m = l.load(&q).unwrap();
    m.attempts = 3;
    l.save(&q, &m).unwrap();
    thread::sleep(Duration::from_millis(50));
    m.attempts = 4;
    l.save(&q, &m).unwrap();
    drop(l);
    assert_eq!(waiter.join().unwrap(), 4);
}

#[test]
fn waiter_on_a_removed_file_gets_not_found() {
    let (_d, q) = store();
    let id = enqueue(&q);
    let l = lock(&q, &id).unwrap();
    let dir = q.dir().to_path_buf();
    let id2 = id.clone();
    let waiter = thread::spawn(move || {
        let q = Spool::new(dir);
        lock(&q, &id2).map(|_| ()).map_err(|e| kind(&e))
    });
    thread::sleep(Duration::from_millis(50));
    l.remove(&q).unwrap();
    assert_eq!(waiter.join().unwrap(), Err(Some(io::ErrorKind::NotFound)));
}
