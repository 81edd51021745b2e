//! The client's TLS policies against the scripted server with a self-signed certificate:
//! opportunistic encryption that goes on (and says so) when the certificate does not verify,
//! strict policies that defer instead, and the bytes smuggled in ahead of the handshake.

use std::io::Write as _;

use super::fake::*;
use super::*;
use crate::config::mail::DeliveryTls;

const GREETING: &str = "220 mx.test ESMTP ready\r\n";
const EHLO_TLS: &str = "250-mx.test hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n";
const EHLO_AFTER: &str = "250-mx.test hello again\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n";
const MESSAGE: &str = "Subject: secret\r\n\r\n..dot\r\n";

/// STARTTLS, a second EHLO, then one pipelined delivery.
fn starttls_script(starttls_reply: &'static str) -> Vec<Step> {
    vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_TLS),
        Recv(1),
        Send(starttls_reply),
        StartTls,
        Recv(1),
        Send(EHLO_AFTER),
        Recv(3),
        Send("250 ok\r\n250 ok\r\n354 go\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ]
}

async fn deliver(conn: &mut Connection) -> Vec<RecipientOutcome> {
    let to = vec!["a@example.org".to_string()];
    let outgoing = Outgoing {
        sender: "app@jes.test",
        recipients: &to,
        message: MESSAGE.as_bytes(),
        dsn: &crate::dsn::Dsn::default(),
    };
    conn.send(outgoing).await.unwrap()
}

fn delivered(outcomes: &[RecipientOutcome]) -> bool {
    matches!(outcomes, [RecipientOutcome::Delivered(r)] if r.code == 250)
}

const AFTER_TLS: &str = "<TLS>\r\nEHLO jes.test\r\nMAIL FROM:<app@jes.test>\r\n\
    RCPT TO:<a@example.org>\r\nDATA\r\nSubject: secret\r\n\r\n..dot\r\n.\r\nQUIT\r\n";

#[tokio::test]
async fn opportunistic_delivers_over_unverified_tls_and_warns() {
    let (_pem, acceptor) = self_signed();
    let (addr, server) = serve(
        vec![starttls_script("220 2.0.0 go ahead\r\n")],
        Some(acceptor),
    )
    .await;
    // System roots only: the self-signed certificate cannot verify.
    let verifying = verifying_config(None).unwrap();
    let logs = Logs::capture();
    let settings = settings(DeliveryTls::Opportunistic, verifying);
    let mut conn = Connection::open(&target(addr), &settings).await.unwrap();
    assert!(
        matches!(conn.tls_state(), TlsState::Unverified(_)),
        "{:?}",
        conn.tls_state()
    );
    assert!(
        conn.extensions().offers_auth("PLAIN"),
        "the second EHLO counts"
    );
    assert!(!conn.extensions().starttls);
    assert!(delivered(&deliver(&mut conn).await));
    conn.quit().await;
    let text = logs.text();
    assert!(
        text.contains("WARN") && text.contains("localhost: certificate not verified"),
        "{text}"
    );
    let transcript = server.await.unwrap().remove(0);
    assert_eq!(
        transcript,
        format!("EHLO jes.test\r\nSTARTTLS\r\n{AFTER_TLS}")
    );
}

#[tokio::test]
async fn verify_refuses_a_certificate_that_does_not_verify() {
    let (_pem, acceptor) = self_signed();
    let (addr, _server) = serve(vec![starttls_script("220 go ahead\r\n")], Some(acceptor)).await;
    let settings = settings(DeliveryTls::Verify, verifying_config(None).unwrap());
    let e = Connection::open(&target(addr), &settings)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, AttemptError::Tls(_)), "{e:?}");
}

fn ca_file(pem: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pem.as_bytes()).unwrap();
    file
}

#[tokio::test]
async fn verify_delivers_with_the_certificate_as_ca() {
    let (pem, acceptor) = self_signed();
    let (addr, server) = serve(vec![starttls_script("220 go ahead\r\n")], Some(acceptor)).await;
    let ca = ca_file(&pem);
    let settings = settings(
        DeliveryTls::Verify,
        verifying_config(Some(ca.path())).unwrap(),
    );
    let mut conn = Connection::open(&target(addr), &settings).await.unwrap();
    assert_eq!(conn.tls_state(), &TlsState::Verified);
    assert!(delivered(&deliver(&mut conn).await));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(transcript.ends_with(AFTER_TLS), "{transcript}");
}

#[tokio::test]
async fn the_host_name_must_match_the_certificate() {
    let (pem, acceptor) = self_signed();
    let (addr, _server) = serve(vec![starttls_script("220 go ahead\r\n")], Some(acceptor)).await;
    let ca = ca_file(&pem);
    let settings = settings(
        DeliveryTls::Required,
        verifying_config(Some(ca.path())).unwrap(),
    );
    let mut t = target(addr);
    t.host = "mx.elsewhere.test".to_string();
    let e = Connection::open(&t, &settings).await.err().unwrap();
    assert!(matches!(e, AttemptError::Tls(_)), "{e:?}");
}

/// What `openssl req -x509 -subj /CN=localhost -addext subjectAltName=DNS:localhost` makes
/// since OpenSSL 3: a self-signed certificate marked `CA:TRUE`, valid from now on.
fn openssl_style(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
}

/// Connects to a server presenting `presented` with `cafile` trusted, under `policy`.
async fn open_with_ca(
    presented: tokio_rustls::TlsAcceptor,
    cafile: &str,
    policy: DeliveryTls,
    host: &str,
) -> Result<Connection, AttemptError> {
    let (addr, _server) = serve(vec![starttls_script("220 go ahead\r\n")], Some(presented)).await;
    let ca = ca_file(cafile);
    let settings = settings(policy, verifying_config(Some(ca.path())).unwrap());
    let mut t = target(addr);
    t.host = host.to_string();
    Connection::open(&t, &settings).await
}

#[tokio::test]
async fn a_ca_certificate_pinned_in_the_ca_file_verifies() {
    for policy in [
        DeliveryTls::Verify,
        DeliveryTls::Required,
        DeliveryTls::Opportunistic,
    ] {
        let (pem, acceptor) = self_signed_with(openssl_style("localhost"));
        let (addr, server) = serve(vec![starttls_script("220 go ahead\r\n")], Some(acceptor)).await;
        let ca = ca_file(&pem);
        let settings = settings(policy, verifying_config(Some(ca.path())).unwrap());
        let mut conn = Connection::open(&target(addr), &settings).await.unwrap();
        assert_eq!(conn.tls_state(), &TlsState::Verified, "{policy:?}");
        assert!(delivered(&deliver(&mut conn).await));
        conn.quit().await;
        assert!(server.await.unwrap()[0].ends_with(AFTER_TLS));
    }
}

#[tokio::test]
async fn a_pinned_certificate_is_still_checked_for_dates_and_name() {
    let mut expired = openssl_style("localhost");
    expired.not_before = rcgen::date_time_ymd(2025, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2025, 2, 1);
    let mut future = openssl_style("localhost");
    future.not_before = rcgen::date_time_ymd(2090, 1, 1);
    future.not_after = rcgen::date_time_ymd(2091, 1, 1);
    for (params, host, why) in [
        (expired, "localhost", "certificate expired"),
        (future, "localhost", "certificate not valid yet"),
        (
            openssl_style("localhost"),
            "mx.elsewhere.test",
            "not valid for name",
        ),
    ] {
        let (pem, acceptor) = self_signed_with(params);
        for policy in [DeliveryTls::Verify, DeliveryTls::Required] {
            let e = open_with_ca(acceptor.clone(), &pem, policy, host)
                .await
                .err()
                .unwrap();
            assert!(
                matches!(&e, AttemptError::Tls(m) if m.contains(why)),
                "{e:?}"
            );
        }
    }
}

#[tokio::test]
async fn only_the_pinned_certificate_itself_is_trusted() {
    // Same name, same kind, another key: the pin is the certificate's bytes, not its name.
    let (pinned, _) = self_signed_with(openssl_style("localhost"));
    let (_, impostor) = self_signed_with(openssl_style("localhost"));
    let e = open_with_ca(impostor, &pinned, DeliveryTls::Required, "localhost")
        .await
        .err()
        .unwrap();
    assert!(matches!(e, AttemptError::Tls(_)), "{e:?}");
}

#[tokio::test]
async fn opportunistic_still_goes_on_with_an_expired_pinned_certificate() {
    let mut expired = openssl_style("localhost");
    expired.not_after = rcgen::date_time_ymd(2025, 2, 1);
    expired.not_before = rcgen::date_time_ymd(2025, 1, 1);
    let (pem, acceptor) = self_signed_with(expired);
    let mut conn = open_with_ca(acceptor, &pem, DeliveryTls::Opportunistic, "localhost")
        .await
        .unwrap();
    assert!(
        matches!(conn.tls_state(), TlsState::Unverified(why) if why.contains("certificate expired")),
        "{:?}",
        conn.tls_state()
    );
    assert!(delivered(&deliver(&mut conn).await));
    conn.quit().await;
}

#[tokio::test]
async fn bytes_ahead_of_the_handshake_are_discarded() {
    let (pem, acceptor) = self_signed();
    // A reply injected right behind the STARTTLS reply, in the same segment: if the client took
    // it for the reply to its second EHLO, the dialogue would run one reply out of step.
    let script = starttls_script("220 go ahead\r\n250-mx.test injected\r\n250 AUTH LOGIN\r\n");
    let (addr, server) = serve(vec![script], Some(acceptor)).await;
    let ca = ca_file(&pem);
    let settings = settings(
        DeliveryTls::Verify,
        verifying_config(Some(ca.path())).unwrap(),
    );
    let mut conn = Connection::open(&target(addr), &settings).await.unwrap();
    assert_eq!(conn.extensions().auth, ["PLAIN"]);
    assert!(delivered(&deliver(&mut conn).await));
    conn.quit().await;
    let transcript = server.await.unwrap().remove(0);
    assert!(transcript.ends_with(AFTER_TLS), "{transcript}");
}

#[tokio::test]
async fn required_without_starttls_defers() {
    let script = vec![
        Send(GREETING),
        Recv(1),
        Send("250-mx.test\r\n250 PIPELINING\r\n"),
    ];
    let (addr, _server) = serve(vec![script], None).await;
    let settings = settings(DeliveryTls::Required, insecure_config());
    let e = Connection::open(&target(addr), &settings)
        .await
        .err()
        .unwrap();
    assert!(matches!(e, AttemptError::Tls(_)), "{e:?}");
}

#[tokio::test]
async fn off_never_starts_tls() {
    let script = vec![Send(GREETING), Recv(1), Send(EHLO_TLS)];
    let (addr, server) = serve(vec![script], None).await;
    let settings = settings(DeliveryTls::Off, insecure_config());
    let conn = Connection::open(&target(addr), &settings).await.unwrap();
    assert_eq!(conn.tls_state(), &TlsState::None);
    conn.quit().await;
    assert_eq!(server.await.unwrap()[0], "EHLO jes.test\r\nQUIT\r\n");
}

#[tokio::test]
async fn opportunistic_falls_back_to_clear_text_when_the_handshake_fails() {
    // First connection: STARTTLS accepted, then the server talks nonsense instead of TLS.
    let broken = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_TLS),
        Recv(1),
        Send("220 go ahead\r\n"),
        Send("this is not TLS at all, sorry\r\n\r\n\r\n"),
        Close,
    ];
    let clear = vec![
        Send(GREETING),
        Recv(1),
        Send(EHLO_TLS),
        Recv(3),
        Send("250 ok\r\n250 ok\r\n354 go\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, server) = serve(vec![broken, clear], None).await;
    let logs = Logs::capture();
    let settings = settings(DeliveryTls::Opportunistic, insecure_config());
    let mut conn = Connection::open(&target(addr), &settings).await.unwrap();
    assert_eq!(conn.tls_state(), &TlsState::None);
    assert!(delivered(&deliver(&mut conn).await));
    conn.quit().await;
    assert!(
        logs.text().contains("connecting again without TLS"),
        "{}",
        logs.text()
    );
    let transcripts = server.await.unwrap();
    assert!(
        transcripts[1].starts_with("EHLO jes.test\r\nMAIL FROM"),
        "{}",
        transcripts[1]
    );
}

#[tokio::test]
async fn implicit_tls_with_verification() {
    let (pem, acceptor) = self_signed();
    let script = vec![
        StartTls,
        Send(GREETING),
        Recv(1),
        Send(EHLO_AFTER),
        Recv(3),
        Send("250 ok\r\n250 ok\r\n354 go\r\n"),
        RecvData,
        Send("250 2.0.0 queued\r\n"),
    ];
    let (addr, server) = serve(vec![script], Some(acceptor)).await;
    let ca = ca_file(&pem);
    let settings = settings(
        DeliveryTls::Verify,
        verifying_config(Some(ca.path())).unwrap(),
    );
    let mut t = target(addr);
    t.implicit_tls = true;
    let mut conn = Connection::open(&t, &settings).await.unwrap();
    assert_eq!(conn.tls_state(), &TlsState::Verified);
    assert!(delivered(&deliver(&mut conn).await));
    conn.quit().await;
    assert!(server.await.unwrap()[0].ends_with(AFTER_TLS));
}

#[tokio::test]
async fn implicit_tls_under_verify_refuses_a_bad_certificate() {
    let (_pem, acceptor) = self_signed();
    let (addr, _server) = serve(vec![vec![StartTls]], Some(acceptor)).await;
    let settings = settings(DeliveryTls::Verify, verifying_config(None).unwrap());
    let mut t = target(addr);
    t.implicit_tls = true;
    let e = Connection::open(&t, &settings).await.err().unwrap();
    assert!(matches!(e, AttemptError::Tls(_)), "{e:?}");
}

#[test]
fn an_unreadable_ca_file_is_an_error() {
    let e = verifying_config(Some(std::path::Path::new("/nonexistent/ca.pem"))).unwrap_err();
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    let empty = ca_file("no certificates here\n");
    assert!(verifying_config(Some(empty.path())).is_err());
}
