"""Every refusal of the core: relay, unknown user, size, bad password, locked mailbox, bad parameters."""
import poplib
import smtplib
from jestest import check, smtp, pop3, HOST, POP3_PORT

# Relay from a client address that is not in relay.ipaddresses (127.0.0.2 is loopback on Linux).
s = smtp(source="127.0.0.2")
s.ehlo("attacker.example")
s.mail("spammer@example.org")
code, msg = s.rcpt("victim@remote.example")
check(code == 550 and msg.startswith(b"5.7.1"), f"relay from 127.0.0.2 refused with 550 5.7.1 ({code} {msg!r})")
code, msg = s.rcpt("trackstudio@127.0.0.1")
check(code == 250, "mail for a local account is still accepted from 127.0.0.2")
s.quit()

# Relay from 127.0.0.1 (in relay.ipaddresses) is accepted.
s = smtp()
s.ehlo("tracker.example")
s.mail("tracker@localhost")
code, msg = s.rcpt("boss@remote.example")
check(code == 250, f"relay from 127.0.0.1 accepted ({code} {msg!r})")
s.rset()

# Unknown local user.
s.mail("reporter@example.org")
code, msg = s.rcpt("nobody@127.0.0.1")
check(code == 550 and msg.startswith(b"5.1.1"), f"unknown local user refused with 550 5.1.1 ({code} {msg!r})")

# postmaster is always accepted.
code, msg = s.rcpt("postmaster@localhost")
check(code == 250, f"postmaster@localhost accepted ({code})")
s.rset()

# Unknown MAIL parameter.
code, msg = s.docmd("MAIL FROM:<a@example.org> FOO=BAR")
check(code == 555 and msg.startswith(b"5.5.4"), f"unknown MAIL parameter gets 555 5.5.4 ({code} {msg!r})")
s.rset()

# RCPT before MAIL.
code, msg = s.docmd("RCPT TO:<trackstudio@127.0.0.1>")
check(code == 503, f"RCPT before MAIL gets 503 ({code})")

# Command line over 512 octets, session survives.
code, msg = s.docmd("NOOP " + "x" * 600)
check(code == 500 and msg.startswith(b"5.5.2"), f"over-long command line gets 500 5.5.2 ({code} {msg!r})")
code, _ = s.noop()
check(code == 250, "session survives the long line")

# Declared SIZE over the limit (limit is 1 MB in this test's mail.conf).
code, msg = s.docmd("MAIL FROM:<a@example.org> SIZE=5000000")
check(code == 552, f"MAIL with SIZE over the limit gets 552 ({code} {msg!r})")
s.rset()

# Over-size data without SIZE: consumed to the end, 552, nothing stored, session usable.
big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1200
s.mail("a@example.org")  # no SIZE parameter: the server only finds out while reading
s.rcpt("trackstudio@127.0.0.1")
code, msg = s.data(big)
check(code == 552 and msg.startswith(b"5.3.4"), f"over-size message consumed to its end, then 552 5.3.4 ({code} {msg!r})")
code, _ = s.noop()
check(code == 250, "session usable after an over-size message")
s.quit()

# Bad password.
p = poplib.POP3(HOST, POP3_PORT, timeout=30)
p.user("trackstudio@127.0.0.1")
try:
    p.pass_("wrong")
    check(False, "bad password must be refused")
except poplib.error_proto as e:
    check(b"[AUTH]" in e.args[0], f"bad password refused with [AUTH] ({e.args[0]!r})")
p.quit()

# Unknown POP3 user.
p = poplib.POP3(HOST, POP3_PORT, timeout=30)
p.user("nobody@127.0.0.1")
try:
    p.pass_("x")
    check(False, "unknown user must be refused")
except poplib.error_proto as e:
    check(b"[AUTH]" in e.args[0], "unknown POP3 user refused with [AUTH]")

# Locked mailbox.
first = pop3("trackstudio@127.0.0.1", "secret")
p = poplib.POP3(HOST, POP3_PORT, timeout=30)
p.user("trackstudio@127.0.0.1")
try:
    p.pass_("secret")
    check(False, "second session on a mailbox must be refused")
except poplib.error_proto as e:
    check(b"[IN-USE]" in e.args[0], f"second session gets [IN-USE] ({e.args[0]!r})")
first.quit()
p = pop3("trackstudio@127.0.0.1", "secret")
check(p.stat()[0] >= 0, "after the first session quits, the mailbox opens again")
p.quit()
