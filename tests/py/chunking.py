"""CHUNKING (RFC 3030) and BINARYMIME from Python's smtplib against a live jes.

The same message goes once through DATA (smtplib's sendmail) and then through BDAT cut at random
boundaries (empty chunks and `BDAT 0 LAST` included); every copy read back over POP3 must be the
DATA copy, line for line. Then a BINARYMIME message with bare LF, CR and NUL, read from the
mailbox file (POP3 is a line protocol), and BDAT refusals that leave the session usable.
"""
import glob
import os
import random

from jestest import ETC, check, message, pop3, smtp

ACCOUNT = "trackstudio@127.0.0.1"
PASSWORD = "secret"
SENDER = "reporter@example.org"


def reply(s):
    code, text = s.getreply()
    return code, text.decode()


def send_bdat(s, content, cuts, zero_last):
    """Sends `content` in chunks cut at `cuts`; returns the last reply."""
    bounds = sorted(set([0, len(content)] + cuts))
    pieces = [content[a:b] for a, b in zip(bounds, bounds[1:])]
    result = None
    for i, piece in enumerate(pieces):
        last = i == len(pieces) - 1 and not zero_last
        s.send(b"BDAT %d%s\r\n" % (len(piece), b" LAST" if last else b"") + piece)
        result = reply(s)
        if not last:
            check(result[0] == 250, f"chunk {i} of {len(pieces)} taken: {result}")
    if zero_last or not pieces:
        s.send(b"BDAT 0 LAST\r\n")
        result = reply(s)
    return result


def own_lines(lines):
    """The message's own lines: from its first header on (our Received: differs per copy)."""
    start = next(i for i, l in enumerate(lines) if l.startswith(b"From: Reporter"))
    return lines[start:]


def main():
    lines = message(ACCOUNT)
    content = b"\r\n".join(lines) + b"\r\n"
    s = smtp()
    s.ehlo("chunking.test")
    check(s.has_extn("chunking"), "EHLO advertises CHUNKING")
    check(s.has_extn("binarymime"), "EHLO advertises BINARYMIME")
    s.sendmail(SENDER, [ACCOUNT], content, mail_options=["BODY=8BITMIME"])

    rng = random.Random(int(os.environ.get("CHUNKING_SEED", "3030")))
    variants = 20
    for v in range(variants):
        cuts = [rng.randrange(len(content) + 1) for _ in range(rng.randrange(6))]
        code, _ = s.mail(SENDER, ["BODY=8BITMIME"])
        check(code == 250, "MAIL")
        code, _ = s.rcpt(ACCOUNT)
        check(code == 250, "RCPT")
        code, text = send_bdat(s, content, cuts, zero_last=rng.random() < 0.3)
        check(code == 250 and "queued" in text, f"BDAT variant {v} stored: {code} {text}")

    p = pop3(ACCOUNT, PASSWORD)
    count, _ = p.stat()
    check(count == variants + 1, f"{variants + 1} messages in the mailbox")
    by_data = own_lines(p.retr(1)[1])
    check(by_data == lines, "DATA copy reads back as sent")
    for n in range(2, count + 1):
        check(own_lines(p.retr(n)[1]) == by_data, f"BDAT copy {n - 1} equals the DATA copy")
        p.dele(n)
    p.dele(1)
    p.quit()

    # BINARYMIME: bare LF, bare CR and NUL are content, kept as they are (a dot after the bare
    # LF stored stuffed, as the mailbox's wire form wants).
    binary = b"From: Reporter <r@example.org>\r\nSubject: bin\r\n\r\n\x00\x01\n.\r\x02\xff"
    code, _ = s.mail(SENDER, ["BODY=BINARYMIME"])
    check(code == 250, "MAIL BODY=BINARYMIME")
    s.rcpt(ACCOUNT)
    s.putcmd("DATA")
    code, _ = reply(s)
    check(code == 503, "DATA refused after BODY=BINARYMIME")
    code, text = send_bdat(s, binary, [len(binary) // 2], zero_last=False)
    check(code == 250, f"binary message stored: {code} {text}")
    files = glob.glob(os.path.join(ETC, "users", ACCOUNT, "pop*.jmsg"))
    check(len(files) == 1, "one mailbox file")
    with open(files[0], "rb") as f:
        stored = f.read()
    check(stored.endswith(binary.replace(b"\n.", b"\n..")), "binary content stored as sent")

    # A refused BDAT is read to its end: the session goes on in step.
    s.send(b"BDAT 12\r\nNOOP\r\nQUIT\r\n")
    code, _ = reply(s)
    check(code == 503, "BDAT without MAIL: 503")
    code, _ = s.noop()
    check(code == 250, "the session is still in step")
    s.quit()


main()
