#!/usr/bin/env python3
"""Runs jes and its peers (Postfix, Dovecot) side by side under the same loads and prints a table.

Called by `bench/run`, which installs the peers and builds jes first. Each workload starts a fresh
instance of each server in its own temporary directory on 127.0.0.1 high ports, drives it with the
same load (Postfix's `smtp-source`, `smtp-sink` as the smart host, a small POP3 client below), and
measures from outside the server:

  - msg/s: messages over wall time, from the first byte of the load to the last message delivered
    (for Postfix, accepted and delivered are both shown: its 250 means queued, jes's means delivered);
  - latency p50/p99: of a probe client that sends one message at a time during the load (SMTP), or
    of each RETR (POP3);
  - CPU: user+sys of the server's whole process tree over the load (/proc, children included);
  - peak memory: the largest sum of PSS (RSS with shared pages divided among their users) over
    the process tree, sampled every 50 ms; for the connections workload, jes's own VmRSS/VmHWM;
  - fsyncs per message: fsync+fdatasync calls counted by the kernel's syscall tracepoints through
    `perf stat` (inherited by every child process, negligible overhead), only over the load.

Usage: bench.py [WORKLOAD...]   (inject inject100k relay pop3 conns queue history database; default all)
Environment: JES_BIN (the release binary), BENCH_OUT (where to write the markdown table too),
INJECT_MSGS (20000), INJECT100K_MSGS (2000), RELAY_MSGS (20000), POP3_MSGS (10000),
CONNS (10000), QUEUE_DEFERRED (100000), QUEUE_MSGS (5000), HISTORY_EVENTS (1000000),
HISTORY_PAIRS (3), DB_MSGS (5000), DB_PAIRS (3), DB_ONLY (which database pairs: a comma list of
inject, relay, two; default all), DB_STATS (1: PostgreSQL counts its statements, and the relay
pair notes each statement's calls per relayed message and the WAL flushes per message).

The database workload (issue 15) starts a PostgreSQL of Debian's binaries and runs alternating
pairs: inject to a mailbox and relay to smtp-sink with the file store, then the database store;
one server on a database, then two servers on one database with the load split between them.

The history workload fills a delivery history with HISTORY_EVENTS events (the example
`history_bench`, built by bench/run) and times a recipient and a Message-ID query in process and
through `jes trace`; then it alternates inject runs with history off (history.days=0) and on.
"""
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
JES = os.environ.get("JES_BIN", "/work/target-bench/release/jes")
SENDER = "sender@example.org"
ROWS = []  # (workload, server, metrics dict)
NOTES = []
PHASES = []
DB_RATIOS = []  # (what, [pairwise ratios]) of the database workload


def env_int(name, default):
    return int(os.environ.get(name, default))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def perf_tracepoints_work():
    try:
        out = subprocess.run(
            ["perf", "stat", "-x,", "-e", "syscalls:sys_enter_fsync", "true"],
            capture_output=True, text=True, timeout=20)
        return out.returncode == 0 and "not supported" not in out.stderr and "<not" not in out.stderr
    except (OSError, subprocess.TimeoutExpired):
        return False


PERF = perf_tracepoints_work()
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- process tree measurements

def children_map():
    kids = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(pid))
    return kids


def tree(root):
    kids = children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_cpu(pid, with_children=True):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    ut, st, cut, cst = (int(x) for x in fields[11:15])
    return (ut + st + ((cut + cst) if with_children else 0)) / CLK


def proc_status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Server:
    """A server process tree started under `perf stat` (fsync counting), with RSS sampling."""

    def __init__(self, name, cmd, port, stop_cmd=None, cwd=None):
        self.name = name
        self.stop_cmd = stop_cmd
        self.tmp = tempfile.mkdtemp(prefix="jes-bench-perf-")
        self.perf_out = os.path.join(self.tmp, "perf.csv")
        if PERF:
            cmd = ["perf", "stat", "-x,", "-I", "100", "-o", self.perf_out, "-e",
                   "syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync", "--"] + cmd
        self.t_start = time.time()
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.tmp, "stderr"), "w"),
                                     start_new_session=True)
        wait_port(port)
        self.peak_rss = 0
        self._sampling = False

    def pids(self):
        # the perf process itself is not the server
        return [p for p in tree(self.proc.pid) if p != self.proc.pid or not PERF]

    def cpu(self):
        # live processes (with their reaped children); perf's own CPU is excluded
        return sum(proc_cpu(p) for p in self.pids())

    def rss_kb(self):
        # PSS, not RSS: Postfix and Dovecot run many processes sharing their libraries, and a sum
        # of RSS would count the shared pages once per process
        return sum(proc_pss(p) for p in self.pids())

    def begin(self):
        self.cpu0 = self.cpu()
        self.t0 = time.time()
        self.peak_rss = self.rss_kb()
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        while self._sampling:
            self.peak_rss = max(self.peak_rss, self.rss_kb())
            time.sleep(0.05)

    def end(self):
        self._sampling = False
        self._sampler.join()
        self.t1 = time.time()
        return self.cpu() - self.cpu0

    def stop(self):
        if self.stop_cmd:
            subprocess.run(self.stop_cmd, capture_output=True)
        else:
            for p in self.pids():
                if p != self.proc.pid:
                    try:
                        os.kill(p, signal.SIGTERM)
                    except OSError:
                        pass
            if not PERF:
                self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def fsyncs(self):
        """fsync+fdatasync calls counted from `begin` to the stop."""
        if not PERF:
            return None
        total = 0
        offset = self.t0 - self.t_start
        try:
            with open(self.perf_out) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) < 3 or line.startswith("#"):
                        continue
                    try:
                        ts, count = float(parts[0]), parts[1]
                    except ValueError:
                        continue
                    if ts > offset and count.isdigit():
                        total += int(count)
        except OSError:
            return None
        return total


# ---------------------------------------------------------------- instances

def jes_instance(extra="", users="user.bench@localhost=secret\n"):
    root = tempfile.mkdtemp(prefix="jes-bench-jes-")
    etc = os.path.join(root, "etc")
    os.makedirs(etc)
    smtp, pop3 = free_port(), free_port()
    with open(os.path.join(etc, "mail.conf"), "w") as f:
        f.write(f"listen.address=127.0.0.1\nsmtpport={smtp}\npop3port={pop3}\n"
                f"domains=localhost\nrelay.ipaddresses=127.0.0.1\nhostname=jes.bench.test\n"
                f"smtp.messagesize=0\n{extra}\n")
    with open(os.path.join(etc, "user.conf"), "w") as f:
        f.write(users)
    with open(os.path.join(etc, "log.conf"), "w") as f:
        f.write("log4j.rootCategory=info, R\n")
    return root, etc, smtp, pop3


def start_jes(etc, port):
    return Server("jes", [JES, "serve", etc, "--quiet"], port)


def postfix_instance(relayhost=""):
    base = tempfile.mkdtemp(prefix="jes-bench-postfix-")
    os.chmod(base, 0o755)  # Postfix's unprivileged daemons must reach their directories
    conf, queue, data, vmail = (os.path.join(base, d) for d in ("conf", "queue", "data", "vmail"))
    for d in (conf, queue, data, vmail):
        os.makedirs(d)
    shutil.chown(data, "postfix")
    shutil.chown(vmail, "nobody")
    port = free_port()
    with open("/etc/postfix/master.cf") as f:
        master = re.sub(r"^smtp(\s+)inet", f"127.0.0.1:{port}\\1inet", f.read(), flags=re.M)
    with open(os.path.join(conf, "master.cf"), "w") as f:
        f.write(master)
    import pwd
    nobody = pwd.getpwnam("nobody")
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write(f"""compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
myhostname = peer.bench.test
mydomain = bench.test
myorigin = $myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 127.0.0.0/8
relayhost = {relayhost}
alias_maps =
alias_database =
local_recipient_maps =
biff = no
virtual_mailbox_domains = localhost
virtual_mailbox_base = {vmail}
virtual_mailbox_maps = texthash:{conf}/vmailbox
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
maillog_file_prefixes = {base}
maillog_file = {base}/maillog
smtpd_client_connection_count_limit = 0
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtp_tls_security_level = none
""")
    with open(os.path.join(conf, "vmailbox"), "w") as f:
        f.write("bench@localhost bench/Maildir/\n")
    subprocess.run(["postconf", "-c", conf, "-F", "*/*/chroot = n"], check=True)
    subprocess.run(["postfix", "-c", conf, "check"], check=True)
    return base, conf, port, os.path.join(vmail, "bench/Maildir")


def start_postfix(conf, port):
    return Server("postfix", ["postfix", "-c", conf, "start-fg"], port,
                  stop_cmd=["postfix", "-c", conf, "stop"])


def dovecot_instance():
    base = tempfile.mkdtemp(prefix="jes-bench-dovecot-")
    os.chmod(base, 0o755)
    port = free_port()
    home = os.path.join(base, "home/bench")
    os.makedirs(home)
    with open(os.path.join(base, "passwd"), "w") as f:
        f.write("bench:{PLAIN}secret\n")
    conf = os.path.join(base, "dovecot.conf")
    with open(conf, "w") as f:
        f.write(f"""protocols = pop3
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={base}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""")
    return base, conf, port, os.path.join(home, "Maildir")


# ---------------------------------------------------------------- load generators

def smtp_source(port, count, size, rcpt, sessions=20):
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(count), "-l", str(size),
           "-f", SENDER, "-t", rcpt, f"127.0.0.1:{port}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0 or out.stderr.strip():
        NOTES.append(f"smtp-source on port {port}: rc={out.returncode} {out.stderr.strip()[:300]}")


class Probe(threading.Thread):
    """One SMTP client sending one message at a time, timing MAIL..250-after-DATA."""

    def __init__(self, port, rcpt, size):
        super().__init__(daemon=True)
        self.port, self.rcpt = port, rcpt
        body = ("x" * 76 + "\r\n") * max(1, size // 78)
        self.msg = (f"From: <{SENDER}>\r\nTo: <{rcpt}>\r\nSubject: probe\r\n\r\n{body}").encode()
        self.times = []
        self.running = True

    def run(self):
        import smtplib
        try:
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
            s.ehlo("probe.bench.test")
            while self.running:
                t = time.perf_counter()
                s.sendmail(SENDER, [self.rcpt], self.msg)
                self.times.append(time.perf_counter() - t)
            s.quit()
        except Exception as e:  # noqa: BLE001 - reported, not fatal
            NOTES.append(f"probe on port {self.port}: {e}")

    def stop(self):
        self.running = False
        self.join(60)


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def count_files(d, prefix=""):
    try:
        return sum(1 for e in os.scandir(d) if e.name.startswith(prefix))
    except OSError:
        return 0


def wait_count(fn, want, timeout):
    deadline = time.time() + timeout
    n = fn()
    while n < want and time.time() < deadline:
        time.sleep(0.05)
        n = fn()
    return n


def record(workload, server, n, srv, cpu, elapsed, extra=None, lat=None):
    fs = srv.fsyncs()
    m = {
        "msgs": n,
        "rate": n / elapsed if elapsed > 0 else 0,
        "p50": lat[0] if lat else None,
        "p99": lat[1] if lat else None,
        "cpu": cpu,
        "cpu_per_msg_ms": cpu / n * 1000 if n else None,
        "rss_mb": srv.peak_rss / 1024,
        "fsync_per_msg": (fs / n) if (fs is not None and n) else None,
    }
    if extra:
        m.update(extra)
    ROWS.append((workload, server, m))
    print(f"  {workload} {server}: {fmt_row(m)}", flush=True)


def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)


def fmt_row(m):
    return (f"{m['msgs']} msgs, {m['rate']:.0f} msg/s, p50 {fmt(m['p50'], '.1f')} ms, "
            f"p99 {fmt(m['p99'], '.1f')} ms, CPU {m['cpu']:.2f} s, RSS {m['rss_mb']:.1f} MB, "
            f"fsync/msg {fmt(m['fsync_per_msg'], '.2f')}" + (f" ({m['note']})" if m.get("note") else ""))


# ---------------------------------------------------------------- workloads

def wait_for_log(etc, text, timeout):
    """Waits until jes's log (beside etc/, in log/jes.log) contains `text`; returns the time."""
    log = os.path.join(os.path.dirname(os.path.abspath(etc)), "log", "jes.log")
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(log, errors="replace") as f:
                if text in f.read():
                    return time.time()
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: jes did not log {text!r} within {timeout} s ({log})")


def inject_run(workload, count, size, jes_extra="", prepare_jes=None, clean_before_next=False,
               after_jes=None):
    """smtp-source to a local account; returns the jes row's rate."""
    rcpt = "bench@localhost"
    # jes
    root, etc, smtp, _ = jes_instance(jes_extra)
    if prepare_jes:
        prepare_jes(etc)
    t_launch = time.time()
    srv = start_jes(etc, smtp)
    startup = time.time() - t_launch
    extra = {"startup_s": startup}
    if prepare_jes:
        # The load starts once jes has read its queue at start (the log says how many messages
        # wait): what is compared is acceptance while 100,000 messages *wait*; the one-time
        # reading of their heads at start is reported on its own.
        extra["queue_read_s"] = wait_for_log(etc, "messages waiting in", 300) - t_launch
    mbox = os.path.join(etc, "users", rcpt)
    run_smtp_load(workload, "jes", srv, smtp, count, size, rcpt,
                  lambda: count_files(mbox, "pop"), extra=extra)
    srv.stop()
    if after_jes:
        after_jes(etc)
    if clean_before_next:
        # Runs compared with each other: the removal must not overlap the next run's load.
        subprocess.run(["rm", "-rf", root])
        subprocess.run(["sync"])
    else:
        # 100,000 queue files take minutes to unlink on a slow disk: removed in the background
        subprocess.Popen(["rm", "-rf", root], start_new_session=True)


def run_smtp_load(workload, name, srv, port, count, size, rcpt, delivered, extra=None):
    probe = Probe(port, rcpt, size)
    srv.begin()
    probe.start()
    smtp_source(port, count, size, rcpt)
    t_acc = time.time()
    probe.stop()
    want = count + len(probe.times)
    got = wait_count(delivered, want, timeout=300)
    cpu = srv.end()
    elapsed = srv.t1 - srv.t0
    lat = (pct(probe.times, 50) * 1000, pct(probe.times, 99) * 1000) if probe.times else None
    ex = dict(extra or {})
    ex["accepted_rate"] = want / (t_acc - srv.t0)
    if got < want:
        ex["note"] = f"only {got} of {want} delivered within 300 s"
    record(workload, name, got, srv, cpu, elapsed, ex, lat)


def inject_postfix(workload, count, size):
    base, conf, port, maildir = postfix_instance()
    srv = start_postfix(conf, port)
    run_smtp_load(workload, "postfix", srv, port, count, size, "bench@localhost",
                  lambda: count_files(os.path.join(maildir, "new")))
    srv.stop()
    shutil.rmtree(base, ignore_errors=True)


def w_inject():
    n = env_int("INJECT_MSGS", 20000)
    inject_run("inject 2KB", n, 2048)
    inject_postfix("inject 2KB", n, 2048)


def w_inject100k():
    n = env_int("INJECT100K_MSGS", 2000)
    if n < 20000:
        NOTES.append(f"inject 100KB uses {n} messages (not 20,000) to keep the run short")
    inject_run("inject 100KB", n, 102400)
    inject_postfix("inject 100KB", n, 102400)


class Sink:
    """smtp-sink as the smart host, counting the messages it received ('.' answered)."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["smtp-sink", "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.count = 0
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def _read(self):
        # -c prints "sess=N quit=N mesg=N" after each message, separated by \r
        tail = b""
        while True:
            chunk = self.proc.stdout.read1(4096)
            if not chunk:
                return
            tail = (tail + chunk)[-200:]
            found = re.findall(rb"mesg=(\d+)", tail)
            if found:
                self.count = int(found[-1])

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()


def relay_available():
    root, etc, smtp, _ = jes_instance("defaultsmtpservers=127.0.0.1:9\n")
    srv = start_jes(etc, smtp)
    try:
        import smtplib
        s = smtplib.SMTP("127.0.0.1", smtp, timeout=10)
        s.sendmail(SENDER, ["x@remote.test"], b"Subject: t\r\n\r\nt\r\n")
        s.quit()
        time.sleep(1.5)
        with open(os.path.join(root, "log", "jes.log"), errors="replace") as f:
            log = f.read()
        # a server with a queue runner tries the smart host (and fails: port 9 is closed)
        return re.search(r"deliver|attempt|connect", log.split('outcome="accepted"', 1)[-1], re.I) is not None
    except Exception:  # noqa: BLE001
        return False
    finally:
        srv.stop()
        shutil.rmtree(root, ignore_errors=True)


def w_relay():
    n = env_int("RELAY_MSGS", 20000)
    if not relay_available():
        NOTES.append("relay: this jes has no outbound delivery (queue runner) yet: workload pending")
        print("  relay: jes has no outbound delivery yet; skipped", flush=True)
        return
    rcpt = "bench@remote.test"
    sink = Sink()
    root, etc, smtp, _ = jes_instance(f"defaultsmtpservers=127.0.0.1:{sink.port}\nsmtpdelivery.tls=off\n")
    srv = start_jes(etc, smtp)
    base0 = sink.count
    run_smtp_load("relay 2KB", "jes", srv, smtp, n, 2048, rcpt, lambda: sink.count - base0)
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)
    base, conf, port, _ = postfix_instance(relayhost=f"[127.0.0.1]:{sink.port}")
    srv = start_postfix(conf, port)
    base0 = sink.count
    run_smtp_load("relay 2KB", "postfix", srv, port, n, 2048, rcpt, lambda: sink.count - base0)
    srv.stop()
    shutil.rmtree(base, ignore_errors=True)
    sink.stop()


def make_messages(n, size=2048):
    body_line = "The quick brown fox jumps over the lazy dog, again and again and again."
    lines_needed = max(1, size // (len(body_line) + 2))
    for i in range(n):
        head = (f"X-DeliveredTo: bench@localhost\r\nReturn-Path: <{SENDER}>\r\n"
                f"Received: from bench by jes.bench.test; Wed, 25 Nov 2026 12:00:00 +0000\r\n"
                f"From: <{SENDER}>\r\nTo: <bench@localhost>\r\nSubject: message {i}\r\n"
                f"Message-ID: <{i}@bench.test>\r\n\r\n")
        yield head.encode() + ((body_line + "\r\n") * lines_needed).encode()


def pop3_client(port, user, password, expect):
    """LIST, RETR and DELE every message, QUIT; returns (count, RETR latencies)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    f = s.makefile("rb")

    def line():
        ln = f.readline()
        if not ln:
            raise RuntimeError("connection closed")
        return ln

    def cmd(c):
        s.sendall(c.encode() + b"\r\n")
        r = line()
        if not r.startswith(b"+OK"):
            raise RuntimeError(f"{c.split()[0]}: {r!r}")
        return r

    def multiline():
        out = []
        while True:
            ln = line()
            if ln == b".\r\n":
                return out
            out.append(ln)

    phases = {}
    t0 = time.perf_counter()
    line()
    cmd(f"USER {user}")
    cmd(f"PASS {password}")
    cmd("LIST")
    listing = multiline()
    if len(listing) != expect:
        raise RuntimeError(f"LIST shows {len(listing)} messages, expected {expect}")
    phases["login+LIST"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    times = []
    for entry in listing:
        num = entry.split()[0].decode()
        t = time.perf_counter()
        cmd(f"RETR {num}")
        body = multiline()
        times.append(time.perf_counter() - t)
        if not body:
            raise RuntimeError("empty message")
        cmd(f"DELE {num}")
    phases["RETR+DELE"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cmd("QUIT")
    phases["QUIT"] = time.perf_counter() - t0
    s.close()
    PHASES.append(phases)
    return len(listing), times


def w_pop3():
    n = env_int("POP3_MSGS", 10000)
    msgs = list(make_messages(n))
    # jes: mailbox files as jes writes them (wire form, size in the name)
    root, etc, smtp, pop3 = jes_instance()
    mbox = os.path.join(etc, "users", "bench@localhost")
    os.makedirs(mbox)
    t = int(time.time() * 1000) - n
    for i, m in enumerate(msgs):
        p = os.path.join(mbox, f"pop{t + i}{i % 1000000:06d},S={len(m)}.jmsg")
        with open(p, "wb") as f:
            f.write(m)
        os.utime(p, ns=((t + i) * 1_000_000, (t + i) * 1_000_000))
    srv = start_jes(etc, smtp)
    srv.begin()
    got, times = pop3_client(pop3, "bench@localhost", "secret", n)
    cpu = srv.end()
    left = count_files(mbox, "pop")
    NOTES.append("POP3 jes phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in PHASES[-1].items()))
    record("POP3 10k", "jes", got, srv, cpu, srv.t1 - srv.t0,
           {"note": f"{left} left after QUIT"} if left else None,
           (pct(times, 50) * 1000, pct(times, 99) * 1000))
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)
    # Dovecot: the same messages in a maildir (LF line ends, as a maildir stores them)
    base, conf, port, maildir = dovecot_instance()
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d))
    for i, m in enumerate(msgs):
        data = m.replace(b"\r\n", b"\n")
        with open(os.path.join(maildir, "cur", f"{t + i}.M{i}P1.bench,S={len(data)},W={len(m)}:2,"), "wb") as f:
            f.write(data)
    subprocess.run(["chown", "-R", "nobody:nogroup", os.path.dirname(maildir)], check=True)
    srv = Server("dovecot", ["dovecot", "-F", "-c", conf], port, stop_cmd=["dovecot", "-c", conf, "stop"])
    srv.begin()
    got, times = pop3_client(port, "bench", "secret", n)
    cpu = srv.end()
    left = count_files(os.path.join(maildir, "cur"))
    NOTES.append("POP3 dovecot phases: " + ", ".join(f"{k} {v:.2f} s" for k, v in PHASES[-1].items()))
    record("POP3 10k", "dovecot", got, srv, cpu, srv.t1 - srv.t0,
           {"note": f"{left} left after QUIT"} if left else None,
           (pct(times, 50) * 1000, pct(times, 99) * 1000))
    srv.stop()
    shutil.rmtree(base, ignore_errors=True)


def w_conns():
    n = env_int("CONNS", 10000)
    root, etc, smtp, _ = jes_instance(f"smtp.maxconnections={n + 100}\nsmtp.maxconnectionsperip={n + 100}\n")
    srv = start_jes(etc, smtp)
    time.sleep(1)
    pid = srv.pids()[-1]
    idle = proc_status(pid, "VmRSS") / 1024
    holder = subprocess.Popen([sys.executable, os.path.join(HERE, "hold_conns.py"), str(smtp), str(n)],
                              stdout=subprocess.PIPE, text=True)
    status = holder.stdout.readline().strip()
    held = int(status.split()[1]) if status.startswith("held") else 0
    time.sleep(1)
    rss = proc_status(pid, "VmRSS") / 1024
    hwm = proc_status(pid, "VmHWM") / 1024
    holder.terminate()
    holder.wait()
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)
    m = {"msgs": held, "rate": 0, "p50": None, "p99": None, "cpu": 0, "rss_mb": rss,
         "fsync_per_msg": None, "idle_rss_mb": idle, "hwm_mb": hwm, "status": status}
    ROWS.append(("conns", "jes", m))
    print(f"  conns jes: idle RSS {idle:.1f} MB; {status}; RSS {rss:.1f} MB (peak {hwm:.1f} MB)", flush=True)
    if held < n:
        NOTES.append(f"connections: only {held} of {n} idle connections could be held ({status})")


def write_queue(etc, n):
    q = os.path.join(etc, "smtp")
    os.makedirs(q, exist_ok=True)
    now = int(time.time() * 1000)
    nxt = now + 3600_000
    body = ("Subject: deferred\r\n\r\n" + ("y" * 76 + "\r\n") * 26).encode()
    for i in range(n):
        head = (f"jes-queue 1\r\nFrom: <{SENDER}>\r\nReceived: {now} (bench)\r\nAttempts: 1\r\n"
                f"Next-Attempt: {nxt} (in one hour)\r\nTo: <boss{i}@remote.test> pending 451 4.3.0 deferred\r\n\r\n")
        with open(os.path.join(q, f"smtp{now}{i:06d}.ser"), "wb") as f:
            f.write(head.encode() + body)


def w_queue():
    n = env_int("QUEUE_MSGS", 10000)
    deferred = env_int("QUEUE_DEFERRED", 100000)
    # the smart host is a closed port; nothing deferred becomes due during the run anyway
    extra = "defaultsmtpservers=127.0.0.1:9\n"
    # alternate empty / deferred twice: this machine's disk is shared and its speed drifts
    t = time.time()
    qdir = tempfile.mkdtemp(prefix="jes-bench-queue-")
    write_queue(qdir, deferred)
    NOTES.append(f"queue: writing {deferred} deferred queue files took {time.time() - t:.0f} s (not measured)")

    def fill(etc):
        # hard links: fast, and jes replaces queue files by rename, never in place
        subprocess.run(["cp", "-al", os.path.join(qdir, "smtp"), os.path.join(etc, "smtp")], check=True)
        subprocess.run(["sync"])

    for _ in range(env_int("QUEUE_PAIRS", 3)):
        inject_run("queue: empty", n, 2048, extra, clean_before_next=True)
        inject_run(f"queue: {deferred // 1000}k deferred", n, 2048, extra, fill, clean_before_next=True)
    subprocess.Popen(["rm", "-rf", qdir], start_new_session=True)


HISTORY = []  # the query measurements of the history workload


def w_history():
    events = env_int("HISTORY_EVENTS", 1000000)
    example = os.path.join(os.path.dirname(JES), "examples", "history_bench")
    root, etc, _, _ = jes_instance()
    t = time.time()
    out = subprocess.run([example, etc, str(events)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"history_bench failed: {out.stderr.strip()[:300]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  history: {r} (fill and queries took {time.time() - t:.0f} s)", flush=True)

    def trace_ms(query):
        times = []
        for _ in range(11):
            t0 = time.perf_counter()
            p = subprocess.run([JES, "trace", query, "--json", "--dir", etc], capture_output=True)
            times.append((time.perf_counter() - t0) * 1000)
            if p.returncode != 0:
                raise RuntimeError(f"jes trace {query} exited {p.returncode}: {p.stderr[:200]!r}")
        return statistics.median(times)

    r["trace_recipient_ms"] = trace_ms("user197@corp47.example")
    r["trace_message_id_ms"] = trace_ms("<task-7919@tracker.example>")
    HISTORY.append(r)
    shutil.rmtree(root, ignore_errors=True)

    n = env_int("INJECT_MSGS", 20000)

    def stored(etc):
        p = subprocess.run([JES, "trace", "--since", "1d", "--json", "--dir", etc], capture_output=True)
        lines = p.stdout.count(b"\n")
        NOTES.append(f"history on: {lines} events stored for the run's messages "
                     f"(accepted + delivered-locally per message; fewer means dropped)")

    for _ in range(env_int("HISTORY_PAIRS", 3)):
        inject_run("history: off", n, 2048, "history.days=0\n", clean_before_next=True)
        inject_run("history: on", n, 2048, "", clean_before_next=True, after_jes=stored)


# ---------------------------------------------------------------- the database store (issue 15)

class Pg:
    """A PostgreSQL cluster of Debian's binaries in a temporary folder on a free port, run as the
    `postgres` user when we are root (PostgreSQL refuses root), with its default durability
    (fsync and synchronous_commit on: the file store fsyncs too). Local and TCP logins are
    trusted: the bench measures the store, not the password exchange."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        self.bin = os.path.dirname(bins[-1])
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = tempfile.mkdtemp(prefix="jes-bench-pg-")
        if self.as_user:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.run("initdb", "-D", self.data, "-U", "jes", "-E", "UTF8", "--auth=trust")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        self.stats = os.environ.get("DB_STATS") == "1"
        if self.stats:
            opts += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
        self.run("pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start")
        self.n = 0

    def run(self, prog, *args):
        subprocess.run(self.as_user + [os.path.join(self.bin, prog), *args], check=True,
                       capture_output=True, cwd="/")

    def psql(self, db, sql):
        out = subprocess.run(self.as_user + [os.path.join(self.bin, "psql"), "-X", "-q", "-A", "-t", "-U", "jes",
                                             "-h", self.dir, "-p", str(self.port), "-d", db, "-c", sql],
                             capture_output=True, text=True, cwd="/")
        return out.stdout.strip()

    def new_db(self):
        """A fresh database for one run (nothing left from the run before); its store.url."""
        self.n += 1
        name = f"jes{self.n}"
        self.psql("postgres", f"CREATE DATABASE {name}")
        return name, f"store.url=postgresql://jes@127.0.0.1:{self.port}/{name}?sslmode=disable\n"

    @staticmethod
    def add_account(etc):
        """The bench's account, in the database `etc`'s mail.conf names (beside store.url,
        user.conf is ignored); the second server on a database finds it there already."""
        subprocess.run([JES, "user", "add", "bench@localhost", "--dir", etc], input="secret\n",
                       text=True, capture_output=True)

    def cpu(self):
        """CPU seconds (user+sys) of the PostgreSQL server: the postmaster, its children now,
        and those it has reaped."""
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                master = int(f.readline())
        except (OSError, ValueError):
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(pid) == master:
                total += sum(int(x) for x in fields[11:15])
            elif int(fields[1]) == master:
                total += int(fields[11]) + int(fields[12])
        return total / ticks

    def reset_stats(self, db):
        """With DB_STATS: counts from zero in `db` (statements and WAL of the whole cluster)."""
        if self.stats:
            self.psql(db, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            self.psql(db, "SELECT pg_stat_statements_reset(), pg_stat_reset_shared('wal')")
            self.cpu0 = self.cpu()

    def note_stats(self, db, label, n):
        """With DB_STATS: each statement's calls per message since `reset_stats`, the busiest
        first, and the WAL records and flushes per message."""
        if not self.stats:
            return
        rows = self.psql(db, "SELECT calls, round(total_exec_time::numeric, 0), "
                             "regexp_replace(left(query, 90), '\\s+', ' ', 'g') FROM pg_stat_statements "
                             "WHERE query NOT LIKE '%pg_stat%' ORDER BY calls DESC LIMIT 25")
        lines = []
        for row in rows.splitlines():
            calls, ms, query = row.split("|", 2)
            lines.append(f"{int(calls) / n:.2f}/msg {ms} ms: {query}")
        wal = self.psql(db, "SELECT wal_records, wal_write, wal_sync FROM pg_stat_wal").split("|")
        if len(wal) == 3:
            lines.append(f"WAL per message: {int(wal[0]) / n:.1f} records, {int(wal[1]) / n:.2f} writes, "
                         f"{int(wal[2]) / n:.2f} flushes")
        lines.append(f"PostgreSQL CPU per message: {(self.cpu() - self.cpu0) * 1000 / n:.2f} ms")
        NOTES.append(f"{label}: PostgreSQL statements\n    " + "\n    ".join(lines))

    def count(self, db, table):
        try:
            return int(self.psql(db, f"SELECT COUNT(*) FROM {table}") or 0)
        except ValueError:
            return 0

    def stop(self):
        subprocess.run(self.as_user + [os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"],
                       capture_output=True, cwd="/")
        shutil.rmtree(self.dir, ignore_errors=True)


def median_of(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def db_inject(pg, label, n, servers=1, probe=False):
    """smtp-source to a local account on `servers` jes servers sharing one fresh database (the
    load split evenly, all at once); returns the rate accepted = delivered. With `probe` (one
    server), measured exactly as `file_inject` is, latency probe included; the one-against-two
    comparison runs both without it."""
    db, conf = pg.new_db()
    rcpt = "bench@localhost"
    instances = [jes_instance(conf) for _ in range(servers)]
    for inst in instances:
        Pg.add_account(inst[1])
    srvs = []
    for _, etc, smtp, _ in instances:
        srvs.append(start_jes(etc, smtp))
        # the first server makes the schema; the next ones start on it
    if servers == 1 and probe:
        # As file_inject measures: with the probe client, through run_smtp_load.
        run_smtp_load(label, "jes", srvs[0], instances[0][2], n, 2048, rcpt,
                      lambda: pg.count(db, "jes_mail"))
        srvs[0].stop()
        shutil.rmtree(instances[0][0], ignore_errors=True)
        return ROWS[-1][2]["rate"]
    for srv in srvs:
        srv.begin()
    threads = [threading.Thread(target=smtp_source, args=(smtp, n // servers, 2048, rcpt))
               for (_, _, smtp, _) in instances]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = wait_count(lambda: pg.count(db, "jes_mail"), n // servers * servers, timeout=300)
    cpu = sum(srv.end() for srv in srvs)
    elapsed = max(srv.t1 for srv in srvs) - min(srv.t0 for srv in srvs)
    ex = {"note": f"{servers} servers"} if servers > 1 else {}
    record(label, "jes", got, srvs[0], cpu, elapsed, ex)
    for srv in srvs:
        srv.stop()
    for root, _, _, _ in instances:
        shutil.rmtree(root, ignore_errors=True)
    return got / elapsed if elapsed > 0 else 0


def file_inject(label, n):
    root, etc, smtp, _ = jes_instance()
    srv = start_jes(etc, smtp)
    mbox = os.path.join(etc, "users", "bench@localhost")
    run_smtp_load(label, "jes", srv, smtp, n, 2048, "bench@localhost", lambda: count_files(mbox, "pop"))
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["sync"])
    return ROWS[-1][2]["rate"]


def relay_run(label, n, sink, conf="", before=None, after=None):
    """Relays `n` messages through jes to smtp-sink. `before` runs once jes has started (its
    schema made), `after` with the number of messages relayed, before jes stops."""
    root, etc, smtp, _ = jes_instance(f"defaultsmtpservers=127.0.0.1:{sink.port}\nsmtpdelivery.tls=off\n{conf}")
    srv = start_jes(etc, smtp)
    if before:
        before()
    base0 = sink.count
    run_smtp_load(label, "jes", srv, smtp, n, 2048, "bench@remote.test", lambda: sink.count - base0)
    if after:
        after(sink.count - base0)
    srv.stop()
    shutil.rmtree(root, ignore_errors=True)
    return ROWS[-1][2]["rate"]


def w_database():
    """Issue 15: the database store against the file store (inject to a mailbox, relay to
    smtp-sink), and two servers on one database against one, as alternating pairs."""
    n = env_int("DB_MSGS", 5000)
    pairs = env_int("DB_PAIRS", 3)
    pg = Pg()
    sink = Sink()
    try:
        ratios = {"inject": [], "relay": [], "two": []}
        only = os.environ.get("DB_ONLY", "inject,relay,two").split(",")
        for _ in range(pairs):
            if "inject" in only:
                f = file_inject("db: inject files", n)
                d = db_inject(pg, "db: inject database", n, probe=True)
                ratios["inject"].append(d / f if f else 0)
            if "relay" in only:
                f = relay_run("db: relay files", n, sink)
                db, conf = pg.new_db()
                d = relay_run("db: relay database", n, sink, conf,
                              before=lambda: pg.reset_stats(db),
                              after=lambda count: pg.note_stats(db, "db: relay database", count))
                ratios["relay"].append(d / f if f else 0)
            if "two" in only:
                one = db_inject(pg, "db: one server", n)
                two = db_inject(pg, "db: two servers", n, servers=2)
                ratios["two"].append(two / one if one else 0)
        for key, what in (("inject", "database/files, inject"), ("relay", "database/files, relay"),
                          ("two", "two servers/one, inject (database)")):
            if ratios[key]:
                DB_RATIOS.append((what, ratios[key]))
    finally:
        sink.stop()
        pg.stop()


WORKLOADS = {"inject": w_inject, "inject100k": w_inject100k, "relay": w_relay, "pop3": w_pop3,
             "conns": w_conns, "queue": w_queue, "history": w_history, "database": w_database}


def table():
    out = ["| workload | server | msgs | msg/s | p50 ms | p99 ms | CPU s | CPU ms/msg | peak PSS MB | fsync/msg | jes/peer |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    jes_rate = {}
    for w, s, m in ROWS:
        if w == "conns":
            continue
        if s == "jes" and not w.startswith(("queue", "history")):
            jes_rate[w] = m["rate"]
    for w, s, m in ROWS:
        if w == "conns":
            out.append(f"| connections | jes | {m['msgs']} held | | | | | | idle {m['idle_rss_mb']:.1f} / "
                       f"held {m['rss_mb']:.1f} (peak {m['hwm_mb']:.1f}) | | |")
            continue
        rate = f"{m['rate']:.0f}"
        if s == "postfix":
            rate += f" (accepted {m['accepted_rate']:.0f})"
        ratio = ""
        if s != "jes" and w in jes_rate and m["rate"]:
            ratio = f"**{jes_rate[w] / m['rate']:.2f}x**"
        name = s + (f" (start {m['startup_s']:.1f} s)" if "startup_s" in m and w.startswith("queue") else "")
        if "queue_read_s" in m:
            name = f"{s} (start {m['startup_s']:.1f} s, queue read {m['queue_read_s']:.1f} s)"
        out.append(f"| {w} | {name} | {m['msgs']} | {rate} | {fmt(m['p50'], '.1f')} | {fmt(m['p99'], '.1f')} | "
                   f"{m['cpu']:.2f} | {fmt(m['cpu_per_msg_ms'], '.2f')} | {m['rss_mb']:.1f} | "
                   f"{fmt(m['fsync_per_msg'], '.2f')} | {ratio} |")
    # queue: deferred vs empty (sums over the alternating runs)
    empty = [m for w, s, m in ROWS if w == "queue: empty"]
    full = [m for w, s, m in ROWS if w.startswith("queue:") and w != "queue: empty"]
    if empty and full:
        r_empty = sum(m["msgs"] for m in empty) / sum(m["msgs"] / m["rate"] for m in empty)
        r_full = sum(m["msgs"] for m in full) / sum(m["msgs"] / m["rate"] for m in full)
        out.append(f"| queue | jes deferred/empty | | {r_full:.0f} / {r_empty:.0f} | | | | | | | "
                   f"**{r_full / r_empty:.2f}x** |")
        # Each deferred run against the empty run just before it: the disk drifts, so the
        # median of these pairwise ratios says more than one ratio of sums.
        pairs = sorted(f["rate"] / e["rate"] for e, f in zip(empty, full))
        median = pairs[len(pairs) // 2] if len(pairs) % 2 else sum(pairs[len(pairs) // 2 - 1:len(pairs) // 2 + 1]) / 2
        out.append(f"| queue | pairwise deferred/empty | | {', '.join(f'{p:.2f}' for p in pairs)} | | | | | | | "
                   f"median **{median:.2f}x** |")
    off = [m for w, s, m in ROWS if w == "history: off"]
    on = [m for w, s, m in ROWS if w == "history: on"]
    if off and on:
        pairs = sorted(b["rate"] / a["rate"] for a, b in zip(off, on))
        median = pairs[len(pairs) // 2] if len(pairs) % 2 else sum(pairs[len(pairs) // 2 - 1:len(pairs) // 2 + 1]) / 2
        out.append(f"| history | pairwise on/off | | {', '.join(f'{p:.2f}' for p in pairs)} | | | | | | | "
                   f"median **{median:.2f}x** |")
    for what, pairs in DB_RATIOS:
        out.append(f"| database | pairwise {what} | | {', '.join(f'{p:.2f}' for p in pairs)} | | | | | | | "
                   f"median **{median_of(pairs):.2f}x** |")
    for r in HISTORY:
        out.append(f"| history query ({r['events']:,} events, {r['db_mb']} MB) | jes | | recipient "
                   f"{r['recipient_ms_median']:.2f} ms (max {r['recipient_ms_max']:.2f}), Message-ID "
                   f"{r['message_id_ms_median']:.2f} ms (max {r['message_id_ms_max']:.2f}); `jes trace` "
                   f"{r['trace_recipient_ms']:.0f} / {r['trace_message_id_ms']:.0f} ms | | | | | | | |")
    return "\n".join(out)


def main():
    selected = sys.argv[1:] or list(WORKLOADS)
    for w in selected:
        if w not in WORKLOADS:
            sys.exit(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if not PERF:
        NOTES.append("perf cannot count syscall tracepoints here: fsyncs per message not measured")
    started = time.time()
    for w in selected:
        print(f"== {w}", flush=True)
        try:
            WORKLOADS[w]()
        except Exception as e:  # noqa: BLE001 - one broken workload must not hide the others
            NOTES.append(f"{w}: failed: {e}")
            print(f"  {w} failed: {e}", flush=True)
    text = table() + "\n\n" + "\n".join(f"- {n}" for n in NOTES) + \
        f"\n\n(run took {time.time() - started:.0f} s; msg/s for jes is accepted = delivered; " \
        "latency is a probe client sending one message at a time during the load, or per RETR)\n"
    print()
    print(text)
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
