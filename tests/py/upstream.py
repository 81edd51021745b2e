"""An independent upstream SMTP server (aiosmtpd) for relay tests.

Usage: upstream.py PORT LOGFILE [--auth USER:PASS] [--tls CERT KEY] [--reject ADDR=CODE ...]
       [--mode-file PATH] [--hostname NAME] [--queue-ids]

Every transaction is appended to LOGFILE as one JSON line: mail_from, rcpt_tos, mail_options,
rcpt_options, data (latin-1),
auth user, whether TLS was on, the client's port (one per connection). --mode-file: when the file
exists and holds "defer", every RCPT gets 451; "down" refuses at the greeting with 421. --queue-ids:
answer the data "250 2.0.0 Ok: queued as <ID>" as Postfix does (ID also logged, as queue_id).
Prints "ready" when listening.
"""
import argparse
import json
import logging
import os
import ssl
import sys
import time
import warnings

# A green test run should print nothing from this peer. aiosmtpd warns (a UserWarning and a log
# line) about the settings the tests choose on purpose (AUTH without TLS), and logs a deprecation
# when it fills in a session's login itself; and a client that refuses our certificate (jes under
# smtpdelivery.tls=verify, which some tests expect) makes it log the failed handshake with a
# traceback. None of that is a failure: the tests check what jes did. Anything else still prints.
warnings.filterwarnings("ignore", category=UserWarning, module=r"aiosmtpd")
EXPECTED = (
    "auth_required == True but auth_require_tls == False",
    "Session.login_data is deprecated",
)


class QuietExpected(logging.Filter):
    """Drops the expected log lines above, and a record whose exception is, or was caused by, a
    refused TLS handshake (aiosmtpd raises TLSSetupException from the ssl.SSLError)."""

    def filter(self, record):
        if record.getMessage().startswith(EXPECTED):
            return False
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, ssl.SSLError):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


for name in ("asyncio", "mail.log"):
    logging.getLogger(name).addFilter(QuietExpected())

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("logfile")
ap.add_argument("--auth")
ap.add_argument("--tls", nargs=2)
ap.add_argument("--reject", action="append", default=[])
ap.add_argument("--mode-file")
ap.add_argument("--hostname", default="upstream.test")
ap.add_argument("--queue-ids", action="store_true")
args = ap.parse_args()

rejects = {}
for r in args.reject:
    addr, code = r.split("=")
    rejects[addr.lower()] = int(code)


def mode():
    if args.mode_file and os.path.exists(args.mode_file):
        with open(args.mode_file) as f:
            return f.read().strip()
    return ""


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if mode() == "defer":
            return "451 4.3.0 upstream says try again later"
        code = rejects.get(address.lower())
        if code:
            return f"{code} {'5.1.1' if code >= 500 else '4.2.0'} <{address}>: rejected by upstream"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        entry = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            # The ESMTP parameters of MAIL and the RCPTs (the DSN tests check what was passed on).
            "mail_options": [str(o) for o in envelope.mail_options],
            "rcpt_options": [str(o) for o in envelope.rcpt_options],
            "data": envelope.original_content.decode("latin-1"),
            "auth": session.authenticated and (session.auth_data.login.decode() if session.auth_data else True),
            "tls": session.ssl is not None,
            # The client's port tells connections apart: a reused connection keeps it.
            "peer_port": session.peer[1],
            "time": time.time(),
        }
        reply = "250 2.0.0 OK queued upstream"
        if args.queue_ids:
            entry["queue_id"] = os.urandom(5).hex().upper()
            reply = f"250 2.0.0 Ok: queued as {entry['queue_id']}"
        with open(args.logfile, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return reply


def authenticator(server, session, envelope, mechanism, auth_data):
    if not args.auth:
        return AuthResult(success=False)
    user, password = args.auth.split(":", 1)
    if isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password:
        return AuthResult(success=True, auth_data=auth_data)
    return AuthResult(success=False, handled=False)


tls_context = None
if args.tls:
    tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_context.load_cert_chain(args.tls[0], args.tls[1])

kwargs = dict(
    hostname="127.0.0.1",
    port=args.port,
    server_hostname=args.hostname,
    auth_require_tls=False,
    authenticator=authenticator if args.auth else None,
    auth_required=bool(args.auth),
    tls_context=tls_context,
    require_starttls=False,
    decode_data=False,
)
controller = Controller(Handler(), **kwargs)
controller.start()
print("ready", flush=True)
try:
    while True:
        time.sleep(3600)
except KeyboardInterrupt:
    pass
finally:
    controller.stop()
