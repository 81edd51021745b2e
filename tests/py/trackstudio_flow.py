"""The TrackStudio receive flow: SMTP to trackstudio@127.0.0.1, then POP3 poll, RETR, DELE, QUIT."""
from jestest import check, smtp, pop3, message

TO = "trackstudio@127.0.0.1"
lines = message(TO)
raw = b"\r\n".join(lines) + b"\r\n"

s = smtp()
code, _ = s.ehlo("tracker.example.org")
check(code == 250, "EHLO answered 250")
check(s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes"), "EHLO advertises PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES")
check(s.has_extn("size"), "EHLO advertises SIZE")
refused = s.sendmail("reporter@example.org", [TO], raw)
check(refused == {}, "message accepted")
s.quit()

p = pop3(TO, "secret")
count, size = p.stat()
check(count == 1, f"STAT shows one message (got {count})")
resp, listing, _ = p.list()
num, octets = listing[0].split()
resp, uidls, _ = p.uidl()
uid = uidls[0].split()[1]
check(len(uid) > 0, f"UIDL gives {uid!r}")
resp, got, retr_octets = p.retr(1)
check(got[0] == b"X-DeliveredTo: " + TO.encode(), f"first line is X-DeliveredTo: {got[0]!r}")
check(got[1] == b"Return-Path: <reporter@example.org>", f"second line is Return-Path: {got[1]!r}")
check(got[2].startswith(b"Received: from tracker.example.org"), f"third line is our Received: {got[2]!r}")
i = 3
while got[i].startswith((b"\t", b" ")):
    i += 1
check(got[i:] == lines, "RETR returns exactly the bytes that were sent after the three added lines")
computed = sum(len(l) + 2 for l in got)
check(int(octets) == computed, f"LIST size {octets.decode()} equals the octets RETR sent before stuffing ({computed})")
check(size == computed, "STAT size equals the message size")
p.dele(1)
count, _ = p.stat()
check(count == 0, "STAT leaves out the deleted message")
p.quit()

p = pop3(TO, "secret")
count, _ = p.stat()
check(count == 0, "after QUIT the mailbox is empty")
p.quit()
