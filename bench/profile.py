#!/usr/bin/env python3
"""Profiles jes under valgrind's callgrind for one workload and prints the top functions.

perf cannot read hardware counters on these virtual machines, so the profiles in BENCHMARKS.md come
from callgrind (instruction counts, inclusive of callees). Usage: bench/profile.py pop3|inject [N]
(run as root). It builds jes with `cargo build --profile profiling` (release code with line tables,
which the release profile strips) unless JES_BIN names a binary. The raw output is kept in
/tmp/jes-callgrind.out for callgrind_annotate or kcachegrind."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402

if "JES_BIN" not in os.environ:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(repo, "target"))
    subprocess.run(["cargo", "build", "--profile", "profiling", "--quiet"], cwd=repo, check=True)
    bench.JES = os.path.join(target, "profiling", "jes")

what = sys.argv[1] if len(sys.argv) > 1 else "pop3"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
out = "/tmp/jes-callgrind.out"
root, etc, smtp, pop3 = bench.jes_instance()
mbox = os.path.join(etc, "users", "bench@localhost")
if what == "pop3":
    os.makedirs(mbox)
    t = int(time.time() * 1000) - n
    for i, m in enumerate(bench.make_messages(n)):
        with open(os.path.join(mbox, f"pop{t + i}{i:06d},S={len(m)}.jmsg"), "wb") as f:
            f.write(m)
proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                         bench.JES, "serve", etc, "--quiet"], stderr=subprocess.DEVNULL)
bench.wait_port(smtp, 120)
bench.wait_port(pop3, 120)
if what == "pop3":
    bench.pop3_client(pop3, "bench@localhost", "secret", n)
else:
    bench.smtp_source(smtp, n, 2048, "bench@localhost")
proc.send_signal(signal.SIGTERM)
proc.wait()
ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True, text=True).stdout
print("\n".join(ann.splitlines()[:60]))
