"""The POP3 view of a mailbox, for comparing two servers (tests/pg_migrate.rs).

pop_view.py USER PASSWORD: prints JSON: STAT, and per message its number, UIDL, LIST size, the
octets RETR gave (lines joined with CRLF, as the size counts them) and their SHA-256.
"""
import hashlib
import json
import sys

from jestest import pop3

p = pop3(sys.argv[1], sys.argv[2])
count, total = p.stat()
uids = dict(l.decode().split() for l in p.uidl()[1])
sizes = dict(l.decode().split() for l in p.list()[1])
out = []
for num in sorted(uids, key=int):
    resp, lines, octets = p.retr(int(num))
    data = b"\r\n".join(lines) + b"\r\n"
    out.append({"num": int(num), "uid": uids[num], "list": int(sizes[num]), "retr": len(data),
                "sha256": hashlib.sha256(data).hexdigest()})
p.quit()
print(json.dumps({"stat": [count, total], "messages": out}))
