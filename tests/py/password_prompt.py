"""Types a password into `jes user add` on a pseudo-terminal, as a person would.

Usage: password_prompt.py JES ETC ADDRESS PASSWORD. Waits for the prompt, then until the terminal
no longer echoes (checked on the terminal's own settings, so there is no race with the prompt),
types the password and Enter, and prints everything the terminal showed, then `ECHO-WAS-OFF`.
"""
import os
import pty
import select
import sys
import termios
import time

jes, etc, address, password = sys.argv[1:5]
pid, fd = pty.fork()
if pid == 0:
    os.execv(jes, [jes, "user", "add", address, "--dir", etc])

shown = b""


def read_some(timeout):
    global shown
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return True
    try:
        chunk = os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal
        return False
    if not chunk:
        return False
    shown += chunk
    return True


deadline = time.time() + 20
while b"password for" not in shown and time.time() < deadline:
    if not read_some(0.1):
        break
echo_off = False
while time.time() < deadline:
    if not termios.tcgetattr(fd)[3] & termios.ECHO:
        echo_off = True
        break
    read_some(0.05)
os.write(fd, password.encode() + b"\r")
while time.time() < deadline and read_some(0.2):
    pass
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode(errors="replace"))
print("\nECHO-WAS-OFF" if echo_off else "\nECHO-STAYED-ON")
print("EXIT", os.waitstatus_to_exitcode(status))
