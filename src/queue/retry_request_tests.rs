//! Tests of retry requests.

use super::*;

fn store() -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let q = Spool::new(dir.path().join("smtp"));
    (dir, q)
}

#[test]
fn retry_requests_round_trip() {
    let (_d, q) = store();
    assert_eq!(retry_dir_stamp(&q), None);
    assert!(take_retry_requests(&q).unwrap().is_empty());
    request_retry(&q, Some("42")).unwrap();
    let stamp = retry_dir_stamp(&q);
    assert!(stamp.is_some());
    request_retry(&q, Some("42")).unwrap();
    request_retry(&q, Some("7")).unwrap();
    request_retry(&q, None).unwrap();
    assert!(request_retry(&q, Some("../../etc")).is_err());
    let junk = q.dir().join(".retry/not-an-id");
    std::fs::write(&junk, b"").unwrap();
    assert_eq!(
        take_retry_requests(&q).unwrap(),
        vec![
            RetryRequest::All,
            RetryRequest::One("42".into()),
            RetryRequest::One("7".into())
        ]
    );
    assert!(!junk.exists());
    assert!(take_retry_requests(&q).unwrap().is_empty());
    // The queue itself ignores the directory.
    assert!(q.list_ids().unwrap().is_empty());
}
