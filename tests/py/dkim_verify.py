"""Verifies every DKIM-Signature of a message with dkimpy, an independent verifier.

Usage: dkim_verify.py MESSAGE_FILE NAME=TXT_VALUE [NAME=TXT_VALUE ...]

NAME is the record's DNS name (SELECTOR._domainkey.DOMAIN); its value is what `jes dkim keygen`
printed for a web form. No DNS is asked: the records given are the only ones. Prints one line per
signature, "ok SELECTOR ALGORITHM" or "FAIL SELECTOR ALGORITHM", in the message's order.
"""
import re
import sys

import dkim

message = open(sys.argv[1], "rb").read()
records = {}
for arg in sys.argv[2:]:
    name, value = arg.split("=", 1)
    records[name.lower().rstrip(".") + "."] = value.encode()


def dns(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.lower().rstrip(".") + ".", b"")


d = dkim.DKIM(message)
count = len([h for h in d.headers if h[0].lower() == b"dkim-signature"])
if count == 0:
    print("no signature")
for i in range(count):
    sig = [h for h in d.headers if h[0].lower() == b"dkim-signature"][i][1].decode()
    selector = re.search(r"\bs=([^;\s]+)", sig).group(1)
    algorithm = re.search(r"\ba=([^;\s]+)", sig).group(1)
    try:
        ok = d.verify(idx=i, dnsfunc=dns)
    except dkim.DKIMException as e:
        print("why:", e, file=sys.stderr)
        ok = False
    print(("ok" if ok else "FAIL"), selector, algorithm)
