"""A webhook receiver and a MIME sender for tests/webhook.rs.

receive PORT LOGFILE SECRET [--fail N] [--schema PATH] [--tls CERT KEY]
    Listens on 127.0.0.1:PORT. The first N POSTs are answered 503, the rest 200 ("ok"). Each POST
    becomes one JSON line in LOGFILE: the answer given, the Standard Webhooks headers, the parsed
    body, and the signature checks, made twice and independently of jes: by hand with hmac and
    hashlib (`verified`), and by the `standardwebhooks` package when it is installed
    (`verified_lib`: true/false, or null when the package is missing). With --schema the body is
    also validated against that JSON schema (`schema_errors`). --tls: https with that certificate.
    Prints "ready" when listening.

send SMTP_PORT FROM TO SUBJECT
    Sends a multipart message (text, HTML, a PDF attachment) with smtplib.

retr POP3_PORT USER PASSWORD N
    Prints message N as poplib receives it (CRLF line ends), base64-encoded.
"""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify_by_hand(secret, headers, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = headers.get("webhook-id", "")
    ts = headers.get("webhook-timestamp", "")
    signed = f"{msg_id}.{ts}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    # The header may carry several space-separated signatures (key rotation).
    given = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
    return fresh and any(hmac.compare_digest(expected, g) for g in given)


def verify_by_library(secret, headers, body):
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError:
        return None
    try:
        Webhook(secret).verify(body, headers)
        return True
    except Exception:
        return False


def receive(port, logfile, secret, fail, schema_path, tls):
    validator = None
    if schema_path:
        import jsonschema_rs
        with open(schema_path) as f:
            validator = jsonschema_rs.validator_for(json.load(f))
    lock = threading.Lock()
    state = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                state["n"] += 1
                n = state["n"]
            status = 503 if n <= fail else 200
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            record = {
                "n": n,
                "status": status,
                "path": self.path,
                "headers": headers,
                "body": parsed,
                "verified": verify_by_hand(secret, headers, body),
                "verified_lib": verify_by_library(secret, headers, body),
                "schema_errors": None if validator is None or parsed is None
                else [e.message for e in validator.iter_errors(parsed)],
            }
            with lock:
                with open(logfile, "a") as f:
                    f.write(json.dumps(record) + "\n")
            reply = b"ok" if status == 200 else b"busy, try later"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


def send(port, sender, to, subject):
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = f"Tracker <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@tracker.test>"
    msg.set_content("Plain text of " + subject + "\n")
    msg.add_alternative("<p>HTML of " + subject + "</p>\n", subtype="html")
    msg.add_attachment(b"%PDF-1.4\n" + b"x" * 1000, maintype="application", subtype="pdf",
                       filename="report.pdf")
    with smtplib.SMTP("127.0.0.1", port) as s:
        s.send_message(msg)


def retr(port, user, password, n):
    import poplib

    p = poplib.POP3("127.0.0.1", port)
    p.user(user)
    p.pass_(password)
    _, lines, _ = p.retr(n)
    p.quit()
    print(base64.b64encode(b"".join(line + b"\r\n" for line in lines)).decode())


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "receive":
        args = sys.argv[2:]
        fail = 0
        schema = None
        if "--fail" in args:
            i = args.index("--fail")
            fail = int(args[i + 1])
            del args[i:i + 2]
        if "--schema" in args:
            i = args.index("--schema")
            schema = args[i + 1]
            del args[i:i + 2]
        tls = None
        if "--tls" in args:
            i = args.index("--tls")
            tls = (args[i + 1], args[i + 2])
            del args[i:i + 3]
        receive(int(args[0]), args[1], args[2], fail, schema, tls)
    elif cmd == "send":
        send(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    elif cmd == "retr":
        retr(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(f"unknown command {cmd}")
