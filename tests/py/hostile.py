"""Hostile clients against a live jes: STARTTLS injection, huge lines, random bytes, idle floods,
brute force, slow-loris. Argument: which part to run."""
import os
import poplib
import random
import resource
import smtplib
import socket
import ssl
import sys
import time

from jestest import check, HOST, SMTP_PORT, POP3_PORT

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


def connect(port, source="127.0.0.1", timeout=30):
    s = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0))
    return s


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return b"".join(lines)
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines)


def tracker_still_served():
    s = smtplib.SMTP(HOST, SMTP_PORT, timeout=30)
    s.sendmail("reporter@example.org", ["trackstudio@127.0.0.1"], b"Subject: still here\r\n\r\nok\r\n")
    s.quit()
    p = poplib.POP3(HOST, POP3_PORT, timeout=30)
    p.user("trackstudio@127.0.0.1")
    p.pass_("secret")
    p.quit()


def starttls_injection():
    s = connect(SMTP_PORT)
    f = s.makefile("rb")
    read_reply(f)
    s.sendall(b"EHLO evil.test\r\n")
    read_reply(f)
    s.sendall(b"STARTTLS\r\nRSET\r\n")
    first = read_reply(f)
    check(first.startswith(b"220"), f"STARTTLS answered 220 ({first!r})")
    # Nothing else may have been answered in clear.
    s.settimeout(1.0)
    try:
        extra = s.recv(100, socket.MSG_PEEK)
        check(extra == b"", f"no RSET reply in clear ({extra!r})")
    except socket.timeout:
        print("ok: no RSET reply in clear")
    s.settimeout(30)
    t = ctx.wrap_socket(s, server_hostname="localhost")
    t.settimeout(1.0)
    try:
        data = t.recv(100)
        check(data == b"", f"no RSET reply inside TLS ({data!r})")
    except socket.timeout:
        print("ok: no RSET reply inside TLS")
    t.settimeout(30)
    tf = t.makefile("rb")
    t.sendall(b"MAIL FROM:<a@example.org>\r\n")
    r = read_reply(tf)
    check(r.startswith(b"503"), f"the session forgot its EHLO after STARTTLS ({r!r})")
    t.sendall(b"EHLO good.test\r\n")
    r = read_reply(tf)
    check(r.startswith(b"250"), "EHLO again inside TLS works")
    t.close()

    p = connect(POP3_PORT)
    pf = p.makefile("rb")
    pf.readline()
    p.sendall(b"STLS\r\nUSER trackstudio@127.0.0.1\r\n")
    r = pf.readline()
    check(r.startswith(b"+OK"), f"STLS answered +OK ({r!r})")
    t = ctx.wrap_socket(p, server_hostname="localhost")
    t.settimeout(1.0)
    try:
        data = t.recv(100)
        check(data == b"", f"no USER reply inside TLS ({data!r})")
    except socket.timeout:
        print("ok: no USER reply inside TLS")
    t.close()


def garbage():
    s = connect(SMTP_PORT)
    f = s.makefile("rb")
    read_reply(f)
    s.sendall(b"EHLO " + b"A" * (1024 * 1024) + b"\r\n")
    r = read_reply(f)
    check(r.startswith(b"500 5.5.2"), f"a 1 MB command line gets 500 5.5.2 ({r[:40]!r})")
    s.sendall(b"NOOP\r\n")
    check(read_reply(f).startswith(b"250"), "the session survives the 1 MB line")
    s.close()
    rnd = random.Random(42)
    for port in (SMTP_PORT, POP3_PORT):
        s = connect(port)
        s.recv(1000)
        s.sendall(bytes(rnd.getrandbits(8) for _ in range(64 * 1024)))
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
        s.close()
    print("ok: 64 KB of random bytes sent to SMTP and POP3")
    tracker_still_served()
    print("ok: the server still serves")


def idle_flood():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    socks = []
    for i in range(1500):
        source = f"127.0.0.{2 + i // 50}"
        socks.append(connect(SMTP_PORT, source=source))
    # Read the greetings so we know every connection was taken in.
    greeted = 0
    for s in socks:
        s.settimeout(30)
        if s.recv(100).startswith(b"220"):
            greeted += 1
    check(greeted == 1500, f"1,500 idle connections from 30 addresses were all greeted ({greeted})")
    tracker_still_served()
    print("ok: a new client is served beside 1,500 idle connections")
    # One address may not take more than its share.
    extra = []
    refused = 0
    for _ in range(60):
        s = connect(SMTP_PORT, source="127.0.0.200")
        s.settimeout(30)
        if s.recv(100).startswith(b"421"):
            refused += 1
        extra.append(s)
    check(refused == 10, f"the per-address limit (50) refuses the rest with 421 ({refused} refused)")
    tracker_still_served()
    for s in socks + extra:
        s.close()


def brute_force():
    def login(source, password):
        s = connect(POP3_PORT, source=source, timeout=60)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER trackstudio@127.0.0.1\r\n")
        f.readline()
        started = time.monotonic()
        s.sendall(b"PASS " + password.encode() + b"\r\n")
        r = f.readline()
        took = time.monotonic() - started
        s.sendall(b"NOOP\r\n")
        after = f.readline()
        s.close()
        return r, took, after

    for i in range(3):
        r, took, after = login("127.0.0.2", "guess%d" % i)
        check(r.startswith(b"-ERR"), f"guess {i} refused")
    check(after.startswith(b"-ERR [AUTH] too many") or after == b"", f"the third failure closes the session ({after!r})")
    r, took, _ = login("127.0.0.2", "guess4")
    check(took >= 0.9, f"a further attempt from the failing address is slowed ({took:.2f}s)")
    r, took2, _ = login("127.0.0.2", "guess5")
    check(took2 >= 1.8, f"and slowed more each time ({took2:.2f}s)")
    # The tracker on 127.0.0.1 is not affected and its correct password works.
    r, _, _ = login("127.0.0.1", "secret")
    check(r.startswith(b"+OK"), f"127.0.0.1 still logs in ({r!r})")
    # Even the right password from the attacker's address waits, but is not locked out.
    r, took3, _ = login("127.0.0.2", "secret")
    check(r.startswith(b"+OK"), "the account is never locked")


def slowloris():
    s = connect(SMTP_PORT)
    f = s.makefile("rb")
    read_reply(f)
    started = time.monotonic()
    closed = False
    s.settimeout(1)
    while time.monotonic() - started < 20:
        try:
            s.sendall(b"N")
            data = s.recv(200)
            if data.startswith(b"421") or data == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    check(closed, "a client trickling bytes is cut off at the session time limit")


globals()[sys.argv[1]]()
