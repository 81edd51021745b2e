"""TLS, AUTH, submission and clear-text policy against a live jes, with Python's smtplib/poplib.

Environment: JES_SMTP_PORT, JES_POP3_PORT, JES_SUBMISSION_PORT, JES_SMTPS_PORT, JES_POP3S_PORT.
Argument: which part to run (tls | auth | cleartext_never).
"""
import os
import poplib
import smtplib
import ssl
import sys

from jestest import check, HOST, SMTP_PORT, POP3_PORT

SUBMISSION = int(os.environ.get("JES_SUBMISSION_PORT", "0"))
SMTPS = int(os.environ.get("JES_SMTPS_PORT", "0"))
POP3S = int(os.environ.get("JES_POP3S_PORT", "0"))
USER, PASSWORD = "trackstudio@127.0.0.1", "secret"

# jes makes a self-signed certificate on first start: the client trusts it explicitly here.
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

MSG = b"From: trackstudio@127.0.0.1\r\nTo: analyst@localhost\r\nSubject: over TLS\r\n\r\nhello\r\n"


def tls():
    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=30)
    s.ehlo("client.test")
    check(s.has_extn("starttls"), "STARTTLS is offered on the SMTP port")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    check(not s.has_extn("starttls"), "STARTTLS is not offered again inside TLS")
    check(s.has_extn("auth"), "AUTH is offered inside TLS")
    s.sendmail("reporter@example.org", ["analyst@localhost"], MSG)
    s.quit()

    s = smtplib.SMTP_SSL(HOST, SMTPS, timeout=30, context=ctx)
    s.ehlo("client.test")
    code, _ = s.docmd("MAIL FROM:<trackstudio@127.0.0.1>")
    check(code == 530, f"implicit-TLS submission requires AUTH before MAIL ({code})")
    s.rset()
    s.login(USER, PASSWORD)
    s.sendmail(USER, ["analyst@localhost"], MSG)
    s.quit()

    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=30)
    s.starttls(context=ctx)
    s.login(USER, PASSWORD)
    s.sendmail(USER, ["analyst@localhost"], MSG)
    s.quit()

    p = poplib.POP3(HOST, POP3_PORT, timeout=30)
    caps = p.capa()
    check("STLS" in caps, f"STLS in CAPA ({caps})")
    p.stls(context=ctx)
    p.user("analyst@localhost")
    p.pass_("password")
    count, _ = p.stat()
    check(count == 3, f"all three messages arrived ({count})")
    p.quit()

    p = poplib.POP3_SSL(HOST, POP3S, timeout=30, context=ctx)
    p.user("analyst@localhost")
    p.pass_("password")
    resp, lines, _ = p.retr(1)
    check(b"Subject: over TLS" in lines, "POP3S RETR works")
    # RFC 3848: the Received line says how each message came (STARTTLS; TLS port and AUTH;
    # STARTTLS and AUTH), oldest first.
    kinds = []
    for n in (1, 2, 3):
        _, lines, _ = p.retr(n)
        by = next(l for l in lines if l.startswith(b"\tby "))
        kinds.append(by.split(b" with ")[1].split(b" ")[0].decode())
    check(kinds == ["ESMTPS", "ESMTPSA", "ESMTPSA"], f"Received says ESMTPS/ESMTPSA ({kinds})")
    p.quit()


def auth():
    s = smtplib.SMTP(HOST, SUBMISSION, timeout=30)
    s.ehlo("client.test")
    code, msg = s.docmd("MAIL FROM:<trackstudio@127.0.0.1>")
    check(code == 530 and msg.startswith(b"5.7.0"), f"submission without AUTH refused with 530 5.7.0 ({code} {msg!r})")
    try:
        s.login(USER, "wrong")
        check(False, "a wrong password must fail")
    except smtplib.SMTPAuthenticationError as e:
        check(e.smtp_code == 535, f"wrong password gets 535 ({e.smtp_code})")
    s.login(USER, PASSWORD)
    code, msg = s.docmd("MAIL FROM:<someone.else@example.org>")
    check(code == 553, f"submission sender must be the logged-in address ({code} {msg!r})")
    s.rset()
    s.sendmail(USER, ["boss@remote.example"], MSG)
    print("ok: an authenticated client may relay")
    s.quit()

    # An authenticated client from an address that may not relay by IP may still relay.
    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=30, source_address=("127.0.0.2", 0))
    s.ehlo("client.test")
    s.mail("x@example.org")
    code, _ = s.rcpt("boss@remote.example")
    check(code == 550, "without AUTH, 127.0.0.2 cannot relay")
    s.rset()
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.login(USER, PASSWORD)
    s.mail(USER)
    code, _ = s.rcpt("boss@remote.example")
    check(code == 250, "after AUTH, 127.0.0.2 may relay")
    s.quit()


def cleartext_never():
    p = poplib.POP3(HOST, POP3_PORT, timeout=30)
    caps = p.capa()
    check("USER" not in caps, f"USER is not offered in clear when allowClearText=never ({caps})")
    try:
        p.user(USER)
        p.pass_(PASSWORD)
        check(False, "clear-text login must be refused")
    except poplib.error_proto as e:
        check(True, f"clear-text USER/PASS refused ({e.args[0]!r})")
    p.stls(context=ctx)
    p.user(USER)
    p.pass_(PASSWORD)
    print("ok: the same login works after STLS")
    p.quit()

    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=30)
    s.ehlo("client.test")
    check(not s.has_extn("auth"), "AUTH is not offered in clear")
    code, msg = s.docmd("AUTH PLAIN AHRyYWNrc3R1ZGlvQDEyNy4wLjAuMQBzZWNyZXQ=")
    check(code == 538, f"AUTH in clear gets 538 ({code} {msg!r})")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.login(USER, PASSWORD)
    print("ok: SMTP AUTH works after STARTTLS")
    s.quit()


{"tls": tls, "auth": auth, "cleartext_never": cleartext_never}[sys.argv[1]]()
