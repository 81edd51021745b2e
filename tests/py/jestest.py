"""Shared helpers for the Python clients the integration tests run against a live jes."""
import os
import poplib
import smtplib

SMTP_PORT = int(os.environ.get("JES_SMTP_PORT", "2525"))
POP3_PORT = int(os.environ.get("JES_POP3_PORT", "1100"))
ETC = os.environ.get("JES_ETC", ".")
HOST = "127.0.0.1"


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print("ok:", what)


def smtp(source="127.0.0.1"):
    return smtplib.SMTP(HOST, SMTP_PORT, timeout=30, source_address=(source, 0))


def pop3(user, password):
    p = poplib.POP3(HOST, POP3_PORT, timeout=30)
    p.user(user)
    p.pass_(password)
    return p


def test_body_lines():
    """The lines the acceptance test sends: dots at line start, a long line and 8-bit bytes."""
    return [
        b"First line.",
        b".",
        b"..",
        b".x",
        b"x" * 999,
        "8-bit: Grüße, déjà vu, ☃".encode("utf-8"),
        b"Last line.",
    ]


def message(to, subject="Printer on fire", body=None, sender="reporter@example.org", msgid="<t1@example.org>"):
    headers = [
        f"From: Reporter <{sender}>".encode(),
        f"To: {to}".encode(),
        f"Subject: {subject}".encode(),
        b"Date: Wed, 25 Nov 2026 12:00:00 +0000",
        f"Message-ID: {msgid}".encode(),
    ]
    lines = headers + [b""] + (body if body is not None else test_body_lines())
    return lines
