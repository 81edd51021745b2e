//! The client against the scripted server, for the extensions that change how a message goes:
//! CHUNKING (BDAT) and BINARYMIME.

use super::fake::*;
use super::*;
use crate::config::mail::DeliveryTls;

const GREETING: &str = "220 mx.test ESMTP ready\r\n";
const EHLO_CHUNKING: &str =
    "250-mx.test hello\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n";
const EHLO_BINARY: &str = "250-mx.test hello\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250 8BITMIME\r\n";

fn plain() -> ClientSettings {
    settings(DeliveryTls::Off, insecure_config())
}

fn to(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn send(
    conn: &mut Connection,
    recipients: &[String],
    message: &[u8],
) -> Result<Vec<RecipientOutcome>, AttemptError> {
    conn.send(Outgoing {
        sender: "app@jes.test",
        recipients,
        message,
        dsn: &crate::dsn::Dsn::default(),
    })
    .await
}

#[tokio::test]
async fn chunking_sends_the_unstuffed_content_in_bdat() {
    // Wire form as stored: dot-stuffed, no final CRLF.
    let stored = b"Subject: hi\r\n\r\n..hidden\r\n..\r\nlast";
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_CHUNKING),
        Recv(3),
        Send("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n"),
        RecvChunk,
        Send("250 2.0.0 queued as 77\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    assert!(conn.extensions().chunking && !conn.extensions().binary_mime);
    let outcomes = send(&mut conn, &to(&["a@x.test", "nobody@x.test"]), stored)
        .await
        .unwrap();
    assert!(matches!(&outcomes[0], RecipientOutcome::Delivered(r) if r.text.ends_with("77")));
    assert!(matches!(&outcomes[1], RecipientOutcome::Failed(r) if r.code == 550));
    conn.quit().await;
    let content = "Subject: hi\r\n\r\n.hidden\r\n.\r\nlast";
    assert_eq!(
        server.await.unwrap().remove(0),
        format!(
            "EHLO jes.test\r\nMAIL FROM:<app@jes.test>\r\nRCPT TO:<a@x.test>\r\n\
             RCPT TO:<nobody@x.test>\r\nBDAT {} LAST\r\n{content}QUIT\r\n",
            content.len()
        )
    );
}

#[tokio::test]
async fn big_messages_go_in_several_chunks_and_a_refused_chunk_decides() {
    let big = vec![b'x'; BDAT_TEST_CHUNK + 10];
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_BINARY),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        RecvChunk,
        Send("250 2.0.0 chunk ok\r\n"),
        RecvChunk,
        Send("250 2.0.0 queued\r\n"),
        // The second message: its first chunk is refused, so no second chunk, then RSET.
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        RecvChunk,
        Send("552 5.3.4 too big\r\n"),
        Recv(1),
        Send("250 reset\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let one = to(&["a@x.test"]);
    let outcomes = send(&mut conn, &one, &big).await.unwrap();
    assert!(
        matches!(&outcomes[..], [RecipientOutcome::Delivered(r)] if r.text.ends_with("queued"))
    );
    let outcomes = send(&mut conn, &one, &big).await.unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Failed(r)] if r.code == 552));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(transcript.contains(&format!("BDAT {BDAT_TEST_CHUNK}\r\n")));
    assert!(transcript.contains("BDAT 10 LAST\r\n"));
    assert!(
        transcript.ends_with("RSET\r\nQUIT\r\n"),
        "{}",
        &transcript[transcript.len() - 40..]
    );
}

/// `session::BDAT_CHUNK`, as the transcript shows it.
const BDAT_TEST_CHUNK: usize = 1024 * 1024;

#[tokio::test]
async fn binary_content_goes_only_as_binarymime() {
    let binary = b"Content-Type: application/octet-stream\r\n\r\n\x00\x01\n..\r\x02";
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_BINARY),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        RecvChunk,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let outcomes = send(&mut conn, &to(&["a@x.test"]), binary).await.unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Delivered(_)]));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(transcript.starts_with("EHLO jes.test\r\nMAIL FROM:<app@jes.test> BODY=BINARYMIME\r\n"));
    assert!(transcript.contains("BDAT 48 LAST\r\nContent-Type: application/octet-stream\r\n\r\n\u{0}\u{1}\n.\r\u{2}QUIT"), "{transcript:?}");

    // A server without BINARYMIME (or without CHUNKING): nothing is sent; every recipient fails
    // with 5.6.3 and bounces, since the content cannot go unchanged.
    for ehlo in [EHLO_CHUNKING, "250-mx.test\r\n250 BINARYMIME\r\n"] {
        let script = vec![Send(GREETING), Recv(1), Send(ehlo)];
        let (addr, server) = serve(vec![script], None).await;
        let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
        let outcomes = send(&mut conn, &to(&["a@x.test", "b@x.test"]), binary)
            .await
            .unwrap();
        assert_eq!(outcomes.len(), 2);
        for o in outcomes {
            assert!(
                matches!(&o, RecipientOutcome::Failed(r) if r.code == 554 && r.text.starts_with("5.6.3")),
                "{o:?}"
            );
        }
        conn.quit().await;
        assert_eq!(server.await.unwrap().remove(0), "EHLO jes.test\r\nQUIT\r\n");
    }
}

const EHLO_UTF8: &str = "250-mx.test hello\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
const EHLO_ASCII: &str = "250-mx.test hello\r\n250 8BITMIME\r\n";
/// A message as jes queues it after `MAIL FROM:<...> SMTPUTF8`: our Received: line says so.
const ASKED: &str = "Received: from c ([192.0.2.1])\r\n\tby jes.test (jes) with UTF8SMTP id S1-1\r\n\
                     \tfor <x@y>; now\r\nSubject: \u{43f}\u{440}\u{438}\u{432}\u{435}\u{442}\r\n\r\nhi\r\n";

#[tokio::test]
async fn smtputf8_goes_to_a_server_that_offers_it() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_UTF8),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("354 go\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    assert!(conn.extensions().smtputf8);
    let outcomes = send(&mut conn, &to(&["иван@пример.рф"]), ASKED.as_bytes())
        .await
        .unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Delivered(_)]));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(
        transcript.starts_with(
            "EHLO jes.test\r\nMAIL FROM:<app@jes.test> BODY=8BITMIME SMTPUTF8\r\n\
             RCPT TO:<иван@пример.рф>\r\nDATA\r\n"
        ),
        "{transcript}"
    );
}

#[tokio::test]
async fn without_smtputf8_ascii_forms_go_and_the_rest_fails_with_5_6_7() {
    // An ASCII message: the IDN recipient goes as A-labels, the UTF-8 local part cannot go.
    let plain_message = "Subject: caf\u{e9}\r\n\r\nhi\r\n";
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_ASCII),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("354 go\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let outcomes = send(
        &mut conn,
        &to(&["иван@x.test", "a@пример.рф"]),
        plain_message.as_bytes(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&outcomes[0], RecipientOutcome::Failed(r) if r.code == 553 && r.text.starts_with("5.6.7")),
        "{outcomes:?}"
    );
    assert!(matches!(&outcomes[1], RecipientOutcome::Delivered(_)));
    // A message that asked for SMTPUTF8 and has UTF-8 in its header cannot go at all.
    let outcomes = send(&mut conn, &to(&["a@x.test"]), ASKED.as_bytes())
        .await
        .unwrap();
    assert!(
        matches!(&outcomes[..], [RecipientOutcome::Failed(r)] if r.text.starts_with("5.6.7")),
        "{outcomes:?}"
    );
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert_eq!(
        transcript,
        format!(
            "EHLO jes.test\r\nMAIL FROM:<app@jes.test> BODY=8BITMIME\r\n\
             RCPT TO:<a@xn--e1afmkfd.xn--p1ai>\r\nDATA\r\n{plain_message}.\r\nQUIT\r\n"
        )
    );
}
