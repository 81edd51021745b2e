"""Real clients against jes servers sharing one PostgreSQL (tests/postgres.rs).

send TO SUBJECT           smtplib to JES_SMTP_PORT; prints the final reply code
fetch USER PASSWORD [dele] poplib from JES_POP3_PORT; prints JSON: uidl, list sizes, retr bytes,
                          subjects; with `dele`, deletes every message before QUIT
"""
import json
import sys

from jestest import message, pop3, smtp


def send(to, subject):
    s = smtp()
    body = b"\r\n".join(message(to, subject=subject, msgid=f"<{subject}@example.org>"))
    refused = s.sendmail("reporter@example.org", [to], body)
    s.quit()
    print(json.dumps({"refused": list(refused)}))


def fetch(user, password, dele):
    p = pop3(user, password)
    out = []
    uidls = [l.decode().split() for l in p.uidl()[1]]
    sizes = {n: int(sz) for n, sz in (l.decode().split() for l in p.list()[1])}
    for num, uid in uidls:
        resp, lines, octets = p.retr(int(num))
        data = b"\r\n".join(lines) + b"\r\n"
        subject = next((l.decode(errors="replace")[9:] for l in lines if l.startswith(b"Subject: ")), "")
        out.append({"num": int(num), "uid": uid, "list": sizes[num], "retr": len(data), "subject": subject})
        if dele:
            p.dele(int(num))
    p.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3])
    else:
        fetch(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "dele")
