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

fn from(hostname: &str) -> BounceFrom {
    BounceFrom {
        hostname: hostname.into(),
        dkim: Vec::new(),
    }
}

#[test]
fn deletion_bounce_only_for_pending_and_real_senders() {
    let now = chrono::Utc::now();
    let from = from("mx.test");
    let dsn = deletion_bounce(&msg("1", "app@x.test"), &from, now).unwrap();
    let text = String::from_utf8(dsn).unwrap();
    assert!(text.contains("Final-Recipient: rfc822; boss@remote.test"));
    assert!(!text.contains("done@remote.test"));
    assert!(text.contains("Status: 5.0.0"));
    assert!(text.contains("deleted by the administrator"));
    assert!(text.contains("@mx.test>"));
    assert!(deletion_bounce(&msg("1", ""), &from, now).is_none());
    assert!(deletion_bounce(&msg("1", "unknown@example.com"), &from, now).is_none());
    let mut all_done = msg("1", "app@x.test");
    all_done.recipients[0].state = RecipientState::Failed;
    assert!(deletion_bounce(&all_done, &from, now).is_none());
}

/// An administrator's deletion bounce is jes's own report: signed with the hostname's DKIM key,
/// as an attempt's bounce is (and unsigned without one).
#[test]
fn deletion_bounce_is_dkim_signed_when_the_hostname_has_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let made = crate::dkim::keygen::generate(
        dir.path(),
        "mx.test",
        "s1",
        crate::dkim::keygen::Algorithm::Ed25519,
    )
    .unwrap();
    let key = crate::dkim::Key::read(&made.path).unwrap();
    let signed_from = BounceFrom {
        hostname: "mx.test".into(),
        dkim: vec![crate::dkim::DomainKey {
            domain: "mx.test".into(),
            selector: "s1".into(),
            path: made.path.clone(),
            key: Ok(std::sync::Arc::new(key)),
        }],
    };
    let now = chrono::Utc::now();
    let signed = deletion_bounce(&msg("1", "app@x.test"), &signed_from, now).unwrap();
    let signed = String::from_utf8(signed).unwrap();
    assert!(signed.contains("DKIM-Signature:"), "{signed}");
    assert!(
        signed.contains("d=mx.test") && signed.contains("s=s1"),
        "{signed}"
    );
    let plain = deletion_bounce(&msg("1", "app@x.test"), &from("mx.test"), now).unwrap();
    assert!(!String::from_utf8(plain)
        .unwrap()
        .contains("DKIM-Signature:"));
}
