"""DSN (RFC 3461) from Python's smtplib against a live jes that relays everything not local to
an aiosmtpd upstream (which does not offer DSN) rejecting bad@remote.test with 550.

Usage: dsn.py UPSTREAM_LOG

The sender analyst@localhost is a local account, so every report jes sends it lands in its
mailbox, where this script reads them (keyed by their Original-Envelope-Id):
- NOTIFY=SUCCESS to a local account gives a `delivered` report, with the ORCPT given;
- NOTIFY=SUCCESS relayed to the upstream without DSN gives a `relayed` report, and the upstream
  is given no DSN parameter (it does not offer DSN);
- NOTIFY=NEVER on a recipient that fails gives no bounce; no NOTIFY, no success report;
- RET=HDRS returns the header section only, RET=FULL the whole message;
- ENVID and ORCPT appear in every report.
Malformed values get 501, an unknown parameter 555.
"""
import email
import email.policy
import glob
import json
import os
import sys
import time

from jestest import ETC, check, smtp

SENDER = "analyst@localhost"
LOCAL = "trackstudio@127.0.0.1"
REMOTE = "boss@remote.test"
FAILS = "bad@remote.test"
BODY_MARK = "the body of a DSN test message"


def message(envid, to):
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: dsn {envid}\r\n"
        f"Message-ID: <{envid}@dsn.test>\r\n\r\n{BODY_MARK}\r\n.line with a dot\r\n"
    ).encode()


def send(s, envid, to, mail=(), rcpt=()):
    refused = s.sendmail(SENDER, [to], message(envid, to), mail_options=[f"ENVID={envid}", *mail], rcpt_options=list(rcpt))
    check(refused == {}, f"{envid}: accepted ({' '.join(mail)} / {' '.join(rcpt)})")


def unstuff(raw):
    return b"\r\n".join(l[1:] if l.startswith(b".") else l for l in raw.split(b"\r\n"))


def reports():
    """The reports in the sender's mailbox, by Original-Envelope-Id (a list each)."""
    found = {}
    for path in glob.glob(os.path.join(ETC, "users", SENDER, "*.jmsg")):
        with open(path, "rb") as f:
            msg = email.message_from_bytes(unstuff(f.read()), policy=email.policy.compat32)
        if msg.get_content_type() != "multipart/report":
            continue
        status = msg.get_payload()[1]
        groups = status.get_payload()  # message/delivery-status: one Message per field group
        envid = groups[0].get("Original-Envelope-Id")
        found.setdefault(envid, []).append(msg)
    return found


def queue_empty():
    return not glob.glob(os.path.join(ETC, "smtp", "*.ser"))


def wait_for(envids, within=60):
    deadline = time.time() + within
    while True:
        got = reports()
        if all(e in got for e in envids) and queue_empty():
            return got
        if time.time() > deadline:
            raise AssertionError(f"reports {sorted(k for k in got if k)} (queue empty: {queue_empty()}), want {envids}")
        time.sleep(0.2)


def fields(report, i):
    """Field group i of the delivery-status part (0: per message, then one per recipient)."""
    return report.get_payload()[1].get_payload()[i]


def main():
    upstream_log = sys.argv[1]
    s = smtp()
    s.ehlo("dsn.test")
    for ext in ("dsn", "smtputf8", "chunking"):
        check(s.has_extn(ext), f"EHLO advertises {ext.upper()}")

    # Protocol errors.
    code, text = s.docmd(f"MAIL FROM:<{SENDER}> RET=BOGUS")
    check(code == 501 and text.startswith(b"5.5.4"), f"RET=BOGUS: {code} {text!r}")
    code, text = s.docmd(f"MAIL FROM:<{SENDER}> ENVID=a+2")
    check(code == 501, f"ENVID with a broken xtext escape: {code} {text!r}")
    code, _ = s.docmd(f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=x")
    check(code == 250, "RET=HDRS ENVID=x accepted")
    code, text = s.docmd(f"RCPT TO:<{LOCAL}> NOTIFY=NEVER,SUCCESS")
    check(code == 501 and text.startswith(b"5.5.4"), f"NOTIFY=NEVER,SUCCESS: {code} {text!r}")
    code, text = s.docmd(f"RCPT TO:<{LOCAL}> ORCPT=no-type")
    check(code == 501, f"ORCPT without a type: {code} {text!r}")
    code, text = s.docmd(f"RCPT TO:<{LOCAL}> FOO=BAR")
    check(code == 555, f"unknown RCPT parameter: {code} {text!r}")
    s.rset()

    send(s, "local-ok", LOCAL, rcpt=["NOTIFY=SUCCESS", "ORCPT=rfc822;Tracker+2Bx@127.0.0.1"])
    send(s, "relay-ok", REMOTE, rcpt=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{REMOTE}"])
    send(s, "no-notify", REMOTE)
    send(s, "never", FAILS, mail=["RET=FULL"], rcpt=["NOTIFY=NEVER"])
    send(s, "hdrs", FAILS, mail=["RET=HDRS"], rcpt=[f"ORCPT=rfc822;{FAILS}"])
    send(s, "full", FAILS, mail=["RET=FULL"])
    s.quit()

    got = wait_for(["local-ok", "relay-ok", "hdrs", "full"])

    (delivered,) = got["local-ok"]
    check(delivered["Subject"] == "Successful Mail Delivery Report", f"local-ok: {delivered['Subject']}")
    g = fields(delivered, 1)
    check(g["Action"] == "delivered" and g["Status"] == "2.0.0", f"local-ok: Action {g['Action']}, Status {g['Status']}")
    check(g["Final-Recipient"] == f"rfc822; {LOCAL}", f"local-ok: Final-Recipient {g['Final-Recipient']}")
    check(g["Original-Recipient"] == "rfc822;Tracker+x@127.0.0.1", f"local-ok: Original-Recipient {g['Original-Recipient']}")

    (relayed,) = got["relay-ok"]
    g = fields(relayed, 1)
    check(g["Action"] == "relayed" and g["Status"] == "2.0.0", f"relay-ok: Action {g['Action']}")
    check(g["Original-Recipient"] == f"rfc822;{REMOTE}", f"relay-ok: Original-Recipient {g['Original-Recipient']}")
    check(g["Remote-MTA"] == "dns; 127.0.0.1", f"relay-ok: Remote-MTA {g['Remote-MTA']}")

    (hdrs,) = got["hdrs"]
    g = fields(hdrs, 1)
    check(g["Action"] == "failed" and g["Status"] == "5.1.1", f"hdrs: Action {g['Action']}, Status {g['Status']}")
    check(g["Original-Recipient"] == f"rfc822;{FAILS}", f"hdrs: Original-Recipient {g['Original-Recipient']}")
    returned = hdrs.get_payload()[2]
    check(returned.get_content_type() == "text/rfc822-headers", f"RET=HDRS returns {returned.get_content_type()}")
    text = returned.get_payload()
    check("Subject: dsn hdrs" in text and BODY_MARK not in text, "RET=HDRS: the headers, not the body")

    (full,) = got["full"]
    returned = full.get_payload()[2]
    check(returned.get_content_type() == "message/rfc822", f"RET=FULL returns {returned.get_content_type()}")
    inner = returned.get_payload()[0]
    check(inner["Subject"] == "dsn full" and BODY_MARK in inner.get_payload(), "RET=FULL: the whole message")
    check("\n.line with a dot" in inner.get_payload(), "RET=FULL: the body un-stuffed")
    check(fields(full, 1).get("Original-Recipient") is None, "no ORCPT given, no Original-Recipient")

    # Every report names its ENVID; nothing for NOTIFY=NEVER, no success report unasked.
    check("never" not in got, f"NOTIFY=NEVER: no bounce ({sorted(k for k in got if k)})")
    kept = glob.glob(os.path.join(ETC, "failed", "*"))
    check(not kept, f"NOTIFY=NEVER: nothing kept as undeliverable ({kept})")
    check("no-notify" not in got, "no NOTIFY: no success report")
    check(None not in got, "every report has an Original-Envelope-Id")
    check(sum(len(v) for v in got.values()) == 4, f"four reports: {sorted(got)}")

    # The upstream does not offer DSN: it was given no DSN parameter.
    with open(upstream_log) as f:
        entries = [json.loads(l) for l in f if l.strip()]
    to_remote = [e for e in entries if e["rcpt_tos"] == [REMOTE]]
    check(len(to_remote) == 2, f"two messages relayed to {REMOTE}: {len(to_remote)}")
    for e in to_remote:
        options = " ".join(e["mail_options"] + e["rcpt_options"])
        check(not any(k in options for k in ("RET=", "ENVID=", "NOTIFY=", "ORCPT=")), f"upstream got no DSN parameter: {options!r}")
    print("ok: DSN acceptance")


main()
