//! Unit tests of SMTPUTF8 (RFC 6531): UTF-8 addresses only in a transaction that asked for it,
//! compared in NFC, and the `Received:` type that tells delivery the message asked for it.

use super::tests::{ehloed, Driver};
use super::*;

fn replies_after(d: &Driver, n: usize) -> Vec<String> {
    d.replies().split_off(n)
}

#[test]
fn utf8_addresses_need_smtputf8() {
    let mut d = ehloed();
    assert!(d.last().contains("250-SMTPUTF8\r\n"));
    d.feed("MAIL FROM:<иван@пример.рф>\r\n".as_bytes());
    d.feed(b"MAIL FROM:<a@b.test>\r\n");
    d.feed("RCPT TO:<иван@пример.рф>\r\n".as_bytes());
    d.feed("RCPT TO:<a@пример.рф>\r\n".as_bytes());
    assert_eq!(
        replies_after(&d, 2),
        [
            "553 5.6.7 Non-ASCII address requires SMTPUTF8 in MAIL FROM\r\n",
            "250 2.1.0 OK\r\n",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8 in MAIL FROM\r\n",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8 in MAIL FROM\r\n",
        ]
    );
}

#[test]
fn smtputf8_transaction_takes_utf8_addresses_once_each() {
    let mut d = ehloed();
    d.feed("MAIL FROM:<иван@пример.рф> SMTPUTF8\r\n".as_bytes());
    // Composed and decomposed "é", any case, U-label and A-label: one recipient.
    d.feed("RCPT TO:<josé@пример.рф>\r\n".as_bytes());
    d.feed("RCPT TO:<JOSE\u{301}@xn--e1afmkfd.xn--p1ai>\r\n".as_bytes());
    d.feed("RCPT TO:<\"Иван Петров\"@пример.рф>\r\n".as_bytes());
    d.feed(b"DATA\r\nSubject: \xd0\xbf\xd1\x80\xd0\xb8\r\n\r\nhi\r\n.\r\n");
    let stores = d.stores();
    assert_eq!(stores.len(), 1, "{:?}", d.replies());
    assert_eq!(
        stores[0].recipients,
        ["josé@пример.рф", "\"Иван Петров\"@пример.рф"]
    );
    assert_eq!(stores[0].sender, "иван@пример.рф");
    let prefix = String::from_utf8(stores[0].header_prefix.clone()).unwrap();
    assert!(prefix.contains(" with UTF8SMTP id "), "{prefix}");
    let mut message = stores[0].header_prefix.clone();
    message.extend_from_slice(&stores[0].data);
    assert!(received_with_smtputf8(&message));
}

#[test]
fn received_type_tells_whether_smtputf8_was_asked() {
    let mut d = ehloed();
    d.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n");
    let mut message = d.stores()[0].header_prefix.clone();
    assert!(String::from_utf8_lossy(&message).contains(" with ESMTP id "));
    message.extend_from_slice(&d.stores()[0].data);
    assert!(!received_with_smtputf8(&message));
    // Only the first field counts: a later Received: from elsewhere says nothing about us.
    let later = b"Received: from x by y with ESMTP id 1\r\nReceived: from a by b with UTF8SMTPS id 2\r\n\r\n";
    assert!(!received_with_smtputf8(later));
    assert!(received_with_smtputf8(
        b"Received: from a (a [192.0.2.1])\r\n\tby b (jes) with UTF8SMTPSA id S1-1\r\n\tfor <x@y>; now\r\nSubject: x\r\n"
    ));
}

#[test]
fn unsafe_characters_are_never_an_address() {
    for bad in [
        "a\u{202e}b@x.test",
        "a\u{200b}@x.test",
        "a@x\u{200b}.test",
        "\"a\u{7}\"@x.test",
        "a@\u{2215}.test",
    ] {
        let mut d = ehloed();
        d.feed(format!("MAIL FROM:<{bad}> SMTPUTF8\r\n").as_bytes());
        assert!(d.last().starts_with("501 5.1.7"), "{bad:?}: {}", d.last());
    }
}
