//! Unit tests of the DSN parameters (RFC 3461): `DSN` in EHLO, `RET=` and `ENVID=` on MAIL,
//! `NOTIFY=` and `ORCPT=` on RCPT, refused with 501 when malformed or repeated (555 for a
//! parameter nobody knows), and handed over with the message.

use super::tests::{ehloed, Driver};
use crate::dsn::{MessageDsn, Notify, RecipientDsn, Ret};

fn reply_to(d: &mut Driver, line: &str) -> String {
    d.feed(format!("{line}\r\n").as_bytes());
    d.last()
}

#[test]
fn ehlo_offers_dsn() {
    let d = ehloed();
    assert!(d.last().contains("250 DSN\r\n"), "{}", d.last());
}

#[test]
fn mail_parameters() {
    for (params, code) in [
        ("RET=FULL", "250 2.1.0"),
        ("ret=hdrs ENVID=QQ314159", "250 2.1.0"),
        ("ENVID=a+2Bb+3Dc", "250 2.1.0"),
        ("RET=", "501 5.5.4"),
        ("RET", "501 5.5.4"),
        ("RET=BODY", "501 5.5.4"),
        ("RET=FULL RET=HDRS", "501 5.5.4 Duplicate RET"),
        ("ENVID=x ENVID=y", "501 5.5.4 Duplicate ENVID"),
        ("ENVID=a+2", "501 5.5.4 Syntax error in ENVID"),
        ("ENVID=a+0Db", "501 5.5.4 Syntax error in ENVID"),
        ("ENVID", "501 5.5.4"),
        ("NOTIFY=NEVER", "555 5.5.4"),
    ] {
        let mut d = ehloed();
        let r = reply_to(&mut d, &format!("MAIL FROM:<a@b.test> {params}"));
        assert!(r.starts_with(code), "{params}: {r}");
    }
    let mut d = ehloed();
    let envid = format!("ENVID={}", "x".repeat(101));
    let r = reply_to(&mut d, &format!("MAIL FROM:<a@b.test> {envid}"));
    assert!(
        r.starts_with("501 5.5.4"),
        "an ENVID over 100 characters: {r}"
    );
}

#[test]
fn rcpt_parameters() {
    for (params, code) in [
        ("NOTIFY=NEVER", "250 2.1.5"),
        ("NOTIFY=success,FAILURE,delay", "250 2.1.5"),
        ("ORCPT=rfc822;c+2Bx@d.test NOTIFY=DELAY", "250 2.1.5"),
        ("NOTIFY=NEVER,SUCCESS", "501 5.5.4 Syntax error in NOTIFY"),
        ("NOTIFY=SUCCESS,SUCCESS", "501 5.5.4"),
        ("NOTIFY=ALWAYS", "501 5.5.4"),
        ("NOTIFY", "501 5.5.4"),
        ("NOTIFY=DELAY NOTIFY=DELAY", "501 5.5.4 Duplicate NOTIFY"),
        ("ORCPT=c@d.test", "501 5.5.4 Syntax error in ORCPT"),
        ("ORCPT=rfc822;", "501 5.5.4"),
        ("ORCPT=rfc822;a+zz", "501 5.5.4"),
        ("ORCPT=rfc822;a ORCPT=rfc822;b", "501 5.5.4 Duplicate ORCPT"),
        ("RET=FULL", "555 5.5.4 Unsupported parameter RET"),
    ] {
        let mut d = ehloed();
        assert!(reply_to(&mut d, "MAIL FROM:<a@b.test>").starts_with("250"));
        let r = reply_to(&mut d, &format!("RCPT TO:<c@d.test> {params}"));
        assert!(r.starts_with(code), "{params}: {r}");
    }
}

#[test]
fn parameters_travel_with_the_message() {
    let mut d = ehloed();
    d.feed(b"MAIL FROM:<a@b.test> RET=HDRS ENVID=QQ+2B1\r\n");
    d.feed(b"RCPT TO:<c@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d.test\r\n");
    d.feed(b"RCPT TO:<plain@d.test>\r\n");
    d.feed(b"RCPT TO:<never@d.test> NOTIFY=NEVER\r\n");
    d.feed(b"DATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n");
    let stores = d.stores();
    assert_eq!(stores.len(), 1, "{:?}", d.replies());
    let dsn = &stores[0].dsn;
    assert_eq!(
        dsn.message,
        MessageDsn {
            ret: Some(Ret::Hdrs),
            envid: Some("QQ+2B1".into()),
        }
    );
    let c = dsn.recipient("c@d.test");
    assert_eq!(
        c,
        RecipientDsn {
            notify: Notify::parse("SUCCESS,FAILURE"),
            orcpt: Some("rfc822;c@d.test".into()),
        }
    );
    assert_eq!(dsn.recipient("plain@d.test"), RecipientDsn::default());
    assert_eq!(dsn.recipient("never@d.test").notify, Some(Notify::NEVER));
    assert_eq!(dsn.recipients.len(), 2, "only recipients with parameters");

    // The next transaction starts without them.
    d.feed(b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\nx\r\n.\r\n");
    assert_eq!(d.stores()[1].dsn, crate::dsn::Dsn::default());
}
