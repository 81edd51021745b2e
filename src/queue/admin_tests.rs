//! Tests of the spool's administrative operations.

use super::*;
use crate::queue::QueueRecipient;
use crate::queue::RecipientState;

/// A queued message with one pending and one delivered recipient and a header a terminal must not
/// see raw; shared with the `jes queue` tests.
pub(crate) fn msg(id: &str, sender: &str) -> QueuedMessage {
    QueuedMessage {
        id: id.into(),
        sender: sender.into(),
        recipients: vec![
            QueueRecipient {
                address: "boss@remote.test".into(),
                state: RecipientState::Pending,
                last_error: Some("451 4.3.0 try later".into()),
                dsn: Default::default(),
            },
            QueueRecipient {
                address: "done@remote.test".into(),
                state: RecipientState::Delivered,
                last_error: None,
                dsn: Default::default(),
            },
        ],
        received_ms: 1_000_000,
        next_attempt_ms: 1_000_000 + 3_600_000,
        attempts: 2,
        delay_warned: false,
        dsn: Default::default(),
        message: b"Subject: hi\x1b[2J\r\n\r\nbody\r\n".to_vec(),
    }
}

#[test]
fn deletion_bounce_only_for_pending_and_real_senders() {
    let now = chrono::Utc::now();
    let dsn = deletion_bounce(&msg("1", "app@x.test"), "mx.test", now).unwrap();
    let text = String::from_utf8(dsn).unwrap();
    assert!(text.contains("Final-Recipient: rfc822; boss@remote.test"));
    assert!(!text.contains("done@remote.test"));
    assert!(text.contains("Status: 5.0.0"));
    assert!(text.contains("deleted by the administrator"));
    assert!(text.contains("@mx.test>"));
    assert!(deletion_bounce(&msg("1", ""), "mx.test", now).is_none());
    assert!(deletion_bounce(&msg("1", "unknown@example.com"), "mx.test", now).is_none());
    let mut all_done = msg("1", "app@x.test");
    all_done.recipients[0].state = RecipientState::Failed;
    assert!(deletion_bounce(&all_done, "mx.test", now).is_none());
}
