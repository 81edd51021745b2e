"""SMTPUTF8 (RFC 6531) from Python's smtplib and POP3 UTF8 (RFC 6856) from poplib, against a
live jes whose user.conf has the account `Иван@пример.рф` (upper case, U-label domain) and whose
`domains` names `пример.рф`.

Mail to every spelling of the account (A-label domain, other case, NFD) lands in its one folder;
without SMTPUTF8 a UTF-8 address gets 553 5.6.7; the account logs in over POP3 after UTF8 and
reads the message with its UTF-8 header intact.
"""
import os
import unicodedata

from jestest import ETC, HOST, POP3_PORT, check, smtp
import poplib

ACCOUNT = "иван@пример.рф"
FOLDER = "иван@xn--e1afmkfd.xn--p1ai"
PASSWORD = "пароль"
SUBJECT = "Задача №7: принтер горит"


def message(to):
    return (
        f"From: Репортёр <reporter@example.org>\r\nTo: {to}\r\nSubject: {SUBJECT}\r\n"
        "Date: Wed, 25 Nov 2026 12:00:00 +0000\r\nMessage-ID: <u1@example.org>\r\n\r\n"
        "Тело письма.\r\n"
    ).encode("utf-8")


def raw(s, line):
    s.send(line.encode("utf-8") + b"\r\n")
    code, text = s.getreply()
    return code, text.decode("utf-8", "replace")


def main():
    s = smtp()
    s.ehlo("utf8.test")
    check(s.has_extn("smtputf8"), "EHLO advertises SMTPUTF8")

    # Without SMTPUTF8, a UTF-8 address is refused with 553 5.6.7.
    code, text = raw(s, f"MAIL FROM:<{ACCOUNT}>")
    check(code == 553 and text.startswith("5.6.7"), f"UTF-8 sender without SMTPUTF8: {code} {text}")
    code, _ = raw(s, "MAIL FROM:<reporter@example.org>")
    check(code == 250, "ASCII sender")
    code, text = raw(s, f"RCPT TO:<{ACCOUNT}>")
    check(code == 553 and text.startswith("5.6.7"), f"UTF-8 recipient without SMTPUTF8: {code} {text}")
    raw(s, "RSET")

    spellings = [
        ACCOUNT,
        "ИВАН@xn--e1afmkfd.xn--p1ai",
        unicodedata.normalize("NFD", "Иван@ПРИМЕР.РФ"),
    ]
    for to in spellings:
        s.sendmail("репортёр@example.org", [to], message(to), mail_options=["SMTPUTF8"])
        print("ok: delivered to", ascii(to))
    s.quit()

    users = os.path.join(ETC, "users")
    check(sorted(os.listdir(users)) == [FOLDER], f"one folder {FOLDER}: {os.listdir(users)}")
    check(len([f for f in os.listdir(os.path.join(users, FOLDER)) if f.endswith(".jmsg")]) == 3,
          "three messages in it")

    p = poplib.POP3(HOST, POP3_PORT, timeout=30)
    check("UTF8" in p.capa(), "CAPA advertises UTF8")
    check(p.utf8().startswith(b"+OK"), "UTF8 accepted")
    p.user(unicodedata.normalize("NFD", "ИВАН@пример.рф"))
    p.pass_(PASSWORD)
    count, _ = p.stat()
    check(count == 3, "three messages over POP3")
    lines = p.retr(1)[1]
    check(f"Subject: {SUBJECT}".encode("utf-8") in lines, "the UTF-8 Subject reads back")
    check(any(l.startswith(b"Return-Path: <\xd1\x80") for l in lines), "Return-Path has the UTF-8 sender")
    check(any(b" with UTF8SMTP id " in l for l in lines), "Received: says UTF8SMTP")
    p.quit()


main()
