//! The client against the scripted server, in clear text: transactions, pipelining, the
//! outcome of each recipient, AUTH, and the ways a connection is refused before any mail.

use super::fake::*;
use super::*;
use crate::config::mail::DeliveryTls;

const GREETING: &str = "220 mx.test ESMTP ready\r\n";
const EHLO_PLAIN: &str = "250-mx.test hello\r\n250-SIZE 1000000\r\n250 ENHANCEDSTATUSCODES\r\n";
const EHLO_PIPELINING: &str = "250-mx.test hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n";

/// Dot-stuffed wire form; deliberately without the final CRLF.
const MESSAGE: &str = "Subject: hi\r\n\r\n..hidden dot line\r\n...\r\nlast line";

fn plain() -> ClientSettings {
    settings(DeliveryTls::Off, insecure_config())
}

fn rcpts(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ok(text: &str) -> RecipientOutcome {
    let (code, text) = text.split_once(' ').unwrap();
    RecipientOutcome::Delivered(Reply {
        code: code.parse().unwrap(),
        text: text.to_string(),
    })
}

async fn send(
    conn: &mut Connection,
    recipients: &[String],
    message: &str,
) -> Result<Vec<RecipientOutcome>, AttemptError> {
    conn.send(Outgoing {
        sender: "app@jes.test",
        recipients,
        message: message.as_bytes(),
        dsn: &crate::dsn::Dsn::default(),
    })
    .await
}

#[tokio::test]
async fn two_recipients_one_transaction_byte_exact() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PLAIN),
        Recv(1),
        Send("250 2.1.0 sender ok\r\n"),
        Recv(1),
        Send("250 2.1.5 ok\r\n"),
        Recv(1),
        Send("250 2.1.5 ok\r\n"),
        Recv(1),
        Send("354 go ahead\r\n"),
        RecvData,
        Send("250 2.0.0 queued as 1234\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    assert_eq!(conn.remote_greeting().text, "mx.test ESMTP ready");
    assert_eq!(conn.tls_state(), &TlsState::None);
    let to = rcpts(&["a@example.org", "b@example.org"]);
    let outcomes = send(&mut conn, &to, MESSAGE).await.unwrap();
    let done = ok("250 2.0.0 queued as 1234");
    assert_eq!(outcomes, vec![done.clone(), done]);
    assert!(conn.reset().await);
    conn.quit().await;

    let transcript = server.await.unwrap().remove(0);
    let expected = format!(
        "EHLO jes.test\r\nMAIL FROM:<app@jes.test> SIZE={}\r\nRCPT TO:<a@example.org>\r\n\
         RCPT TO:<b@example.org>\r\nDATA\r\n{MESSAGE}\r\n.\r\nRSET\r\nQUIT\r\n",
        MESSAGE.len()
    );
    assert_eq!(transcript, expected);
}

#[tokio::test]
async fn pipelined_with_one_recipient_refused() {
    // The server reads all four commands before it answers anything.
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PIPELINING),
        Recv(4),
        Send("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    assert!(conn.extensions().pipelining);
    let to = rcpts(&["a@example.org", "nobody@example.org"]);
    let message = "Subject: caf\u{e9}\r\n\r\nna\u{ef}ve\r\n";
    let outcomes = send(&mut conn, &to, message).await.unwrap();
    let failed = RecipientOutcome::Failed(Reply {
        code: 550,
        text: "5.1.1 no such user".to_string(),
    });
    assert_eq!(outcomes, vec![ok("250 2.0.0 queued"), failed]);
    conn.quit().await;

    let transcript = server.await.unwrap().remove(0);
    let expected = format!(
        "EHLO jes.test\r\nMAIL FROM:<app@jes.test> BODY=8BITMIME\r\nRCPT TO:<a@example.org>\r\n\
         RCPT TO:<nobody@example.org>\r\nDATA\r\n{message}.\r\nQUIT\r\n"
    );
    assert_eq!(transcript, expected);
}

#[tokio::test]
async fn pipelined_with_every_recipient_refused_skips_data() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PIPELINING),
        Recv(3),
        Send("250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n"),
        Recv(1),
        Send("250 2.0.0 reset\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let to = rcpts(&["nobody@example.org"]);
    let outcomes = send(&mut conn, &to, MESSAGE).await.unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Failed(r)] if r.code == 550));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(
        transcript.ends_with("DATA\r\nRSET\r\nQUIT\r\n"),
        "{transcript}"
    );
    assert!(!transcript.contains("Subject"));
}

#[tokio::test]
async fn rcpt_452_defers_that_recipient_only() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PLAIN),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("452 4.5.3 too many recipients\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("354 go\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, _server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let to = rcpts(&["a@example.org", "b@example.org"]);
    let outcomes = send(&mut conn, &to, MESSAGE).await.unwrap();
    let deferred = RecipientOutcome::Deferred(Reply {
        code: 452,
        text: "4.5.3 too many recipients".to_string(),
    });
    assert_eq!(outcomes, vec![deferred, ok("250 2.0.0 queued")]);
}

#[tokio::test]
async fn no_recipient_accepted_resets_without_data() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PLAIN),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(1),
        Send("550 5.1.1 unknown\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let outcomes = send(&mut conn, &rcpts(&["x@example.org"]), MESSAGE)
        .await
        .unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Failed(_)]));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(transcript.ends_with("RCPT TO:<x@example.org>\r\nRSET\r\nQUIT\r\n"));
}

#[tokio::test]
async fn final_451_defers_and_data_554_fails() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PIPELINING),
        Recv(3),
        Send("250 ok\r\n250 ok\r\n354 go\r\n"),
        RecvData,
        Send("451 4.3.0 try again later\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
        Recv(3),
        Send("250 ok\r\n250 ok\r\n554 5.7.1 no\r\n"),
        Recv(1),
        Send("250 ok\r\n"),
    ];
    let (addr, _server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let to = rcpts(&["a@example.org"]);
    let outcomes = send(&mut conn, &to, MESSAGE).await.unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Deferred(r)] if r.code == 451));
    assert!(conn.reset().await);
    let outcomes = send(&mut conn, &to, MESSAGE).await.unwrap();
    assert!(matches!(&outcomes[..], [RecipientOutcome::Failed(r)] if r.code == 554));
}

#[tokio::test]
async fn mail_from_refused_or_temporary() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PLAIN),
        Recv(1),
        Send("553 5.7.1 sender rejected\r\n"),
        Recv(1),
        Send("421 4.3.2 shutting down\r\n"),
    ];
    let (addr, _server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let to = rcpts(&["a@example.org"]);
    let e = send(&mut conn, &to, MESSAGE).await.unwrap_err();
    assert!(
        matches!(e, AttemptError::Refused { stage: "MAIL FROM", ref reply } if reply.code == 553)
    );
    let e = send(&mut conn, &to, MESSAGE).await.unwrap_err();
    assert!(
        matches!(
            e,
            AttemptError::Temporary {
                stage: "MAIL FROM",
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn connection_lost_after_the_dot_is_a_network_error() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PIPELINING),
        Recv(3),
        Send("250 ok\r\n250 ok\r\n354 go\r\n"),
        RecvData,
        Close,
    ];
    let (addr, _server) = serve(vec![script], None).await;
    let mut conn = Connection::open(&target(addr), &plain()).await.unwrap();
    let e = send(&mut conn, &rcpts(&["a@example.org"]), MESSAGE)
        .await
        .unwrap_err();
    assert!(matches!(e, AttemptError::Network(_)), "{e:?}");
    assert!(!conn.reset().await, "a broken connection is not reused");
}

#[tokio::test]
async fn greeting_refusals_and_loops() {
    let scripts = vec![
        vec![Send("554 5.3.2 go away\r\n")],
        vec![Send("421-busy\r\n421 4.3.2 try later\r\n")],
        vec![Send("220 JES.test ESMTP\r\n")],
        vec![
            Send(GREETING),
            Recv(1),
            Send("250-jes.test hi\r\n250 8BITMIME\r\n"),
        ],
    ];
    let (addr, _server) = serve(scripts, None).await;
    let t = target(addr);
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(
        matches!(e, AttemptError::Refused { stage: "greeting", ref reply } if reply.code == 554)
    );
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(
        matches!(e, AttemptError::Temporary { stage: "greeting", ref reply }
        if reply.text == "busy 4.3.2 try later")
    );
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(matches!(e, AttemptError::Loop(_)), "{e:?}");
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(matches!(e, AttemptError::Loop(_)), "EHLO naming us: {e:?}");
}

#[tokio::test]
async fn helo_when_ehlo_is_unknown() {
    let script = vec![
        Send("220 old.test SMTP\r\n"),
        Recv(1),
        Send("502 5.5.2 command not recognised\r\n"),
        Recv(1),
        Send("250 old.test\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let conn = Connection::open(&target(addr), &plain()).await.unwrap();
    assert!(!conn.extensions().esmtp);
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert_eq!(transcript, "EHLO jes.test\r\nHELO jes.test\r\nQUIT\r\n");
}

#[tokio::test]
async fn overlong_and_malformed_replies_are_network_errors() {
    let long: &'static str = Box::leak(format!("220 {}\r\n", "x".repeat(600)).into_boxed_str());
    let many: &'static str = Box::leak(("220-x\r\n".repeat(150) + "220 x\r\n").into_boxed_str());
    let scripts = vec![vec![Send(long)], vec![Send(many)], vec![Send("hello\r\n")]];
    let (addr, _server) = serve(scripts, None).await;
    for _ in 0..3 {
        let e = Connection::open(&target(addr), &plain())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, AttemptError::Network(_)), "{e:?}");
    }
}

#[tokio::test]
async fn auth_plain_refused_with_535() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send("250-mx.test\r\n250 AUTH LOGIN PLAIN\r\n"),
        Recv(1),
        Send("535 5.7.8 authentication failed\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut t = target(addr);
    t.credentials = Some(("tim".to_string(), "tanstaaftanstaaf".to_string()));
    t.smart_host = true;
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(matches!(e, AttemptError::Refused { stage: "AUTH", ref reply } if reply.code == 535));
    let transcript = server.await.unwrap().remove(0);
    assert!(transcript.contains("AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"));
}

#[tokio::test]
async fn auth_login_and_the_missing_auth() {
    let scripts = vec![
        vec![
            Send(GREETING),
            Recv(1),
            Send("250-mx.test\r\n250 AUTH=LOGIN\r\n"),
            Recv(1),
            Send("334 VXNlcm5hbWU6\r\n"),
            Recv(1),
            Send("334 UGFzc3dvcmQ6\r\n"),
            Recv(1),
            Send("235 2.7.0 ok\r\n"),
        ],
        vec![Send(GREETING), Recv(1), Send("250 mx.test\r\n")],
    ];
    let (addr, server) = serve(scripts, None).await;
    let mut t = target(addr);
    t.credentials = Some(("user".to_string(), "secret".to_string()));
    t.smart_host = true;
    let logs = Logs::capture();
    let conn = Connection::open(&t, &plain()).await.unwrap();
    assert!(logs.text().contains("without TLS"), "{}", logs.text());
    conn.quit().await;
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(matches!(e, AttemptError::Refused { stage: "AUTH", ref reply } if reply.code == 530));
    let transcripts = server.await.unwrap();
    assert_eq!(
        transcripts[0],
        "EHLO jes.test\r\nAUTH LOGIN\r\ndXNlcg==\r\nc2VjcmV0\r\nQUIT\r\n"
    );
}

#[tokio::test]
async fn credentials_without_tls_to_a_non_smart_host_are_kept() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send("250-mx.test\r\n250 AUTH PLAIN\r\n"),
    ];
    let (addr, server) = serve(vec![script], None).await;
    let mut t = target(addr);
    t.credentials = Some(("user".to_string(), "secret".to_string()));
    let e = Connection::open(&t, &plain()).await.err().unwrap();
    assert!(matches!(e, AttemptError::Tls(_)), "{e:?}");
    let transcript = server.await.unwrap().remove(0);
    assert!(!transcript.contains("AUTH"));
}

#[tokio::test]
async fn unsafe_addresses_never_reach_the_wire() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_PLAIN),
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
    let to = rcpts(&["evil@example.org>\r\nRCPT TO:<x@y", "a@example.org"]);
    let outcomes = send(&mut conn, &to, MESSAGE).await.unwrap();
    assert!(matches!(&outcomes[0], RecipientOutcome::Failed(r) if r.code == 501));
    assert_eq!(outcomes[1], ok("250 2.0.0 queued"));
    drop(conn);
    let transcript = server.await.unwrap().remove(0);
    assert!(!transcript.contains("evil"));
}

/// The queue runner spawns deliveries on the multi-threaded runtime: the futures must be Send.
#[allow(dead_code)]
fn futures_are_send(target: &Target, settings: &ClientSettings, conn: &mut Connection) {
    fn is_send<T: std::marker::Send>(_: &T) {}
    is_send(&Connection::open(target, settings));
    let outgoing = Outgoing {
        sender: "",
        recipients: &[],
        message: b"",
        dsn: &crate::dsn::Dsn::default(),
    };
    is_send(&conn.send(outgoing));
    is_send(&conn.reset());
}
