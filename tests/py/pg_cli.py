"""Real clients for tests/pg_cli.rs (jes queue / capture on PostgreSQL).

send FROM TO SUBJECT      smtplib to JES_SMTP_PORT; prints JSON {"refused": [...]}
fetch USER PASSWORD [dele] poplib from JES_POP3_PORT; prints JSON: one object per message with
                          its uid, subject and whole text; with `dele`, deletes them before QUIT
"""
import json
import sys

from jestest import message, pop3, smtp


def send(sender, to, subject):
    s = smtp()
    body = b"\r\n".join(message(to, subject=subject, sender=sender, msgid=f"<{subject}@example.org>"))
    refused = s.sendmail(sender, [to], body)
    s.quit()
    print(json.dumps({"refused": list(refused)}))


def fetch(user, password, dele):
    p = pop3(user, password)
    out = []
    for line in p.uidl()[1]:
        num, uid = line.decode().split()
        lines = p.retr(int(num))[1]
        text = b"\r\n".join(lines).decode(errors="replace")
        subject = next((l.decode(errors="replace")[9:] for l in lines if l.startswith(b"Subject: ")), "")
        out.append({"uid": uid, "subject": subject, "text": text})
        if dele:
            p.dele(int(num))
    p.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        fetch(sys.argv[2], sys.argv[3], len(sys.argv) > 4 and sys.argv[4] == "dele")
