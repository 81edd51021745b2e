#!/usr/bin/env python3
"""Opens N idle SMTP connections to 127.0.0.1:PORT, reads each greeting, prints "held N" and holds
them until killed. Used by bench.py to measure the server's memory with many idle sessions.
Connections come from several loopback source addresses so that ephemeral ports do not run out."""
import resource
import selectors
import socket
import sys
import time

port, n = int(sys.argv[1]), int(sys.argv[2])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
sel = selectors.DefaultSelector()
socks, greeted, errors = [], 0, {}
for i in range(n):
    s = socket.socket()
    try:
        s.bind((f"127.0.0.{2 + i % 50}", 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    except OSError as e:
        errors[str(e)] = errors.get(str(e), 0) + 1
        s.close()
    # read greetings as they come so the accept backlog drains
    for key, _ in sel.select(timeout=0):
        try:
            data = key.fileobj.recv(512)
            greeted += data.startswith(b"220")
        except OSError:
            pass
        sel.unregister(key.fileobj)
deadline = time.time() + 60
while greeted < len(socks) and time.time() < deadline and sel.get_map():
    for key, _ in sel.select(timeout=1):
        try:
            data = key.fileobj.recv(512)
            greeted += data.startswith(b"220")
        except OSError:
            pass
        sel.unregister(key.fileobj)
err = "; ".join(f"{k}: {v}" for k, v in errors.items())
print(f"held {greeted} greeted of {n} opened" + (f" (errors: {err})" if err else ""), flush=True)
while True:
    time.sleep(3600)
