"""Browser test of the console's view of several servers on one database (issue 15), run by
tests/pg_cluster.rs against two jes servers (node.name mx-a and mx-b) on one PostgreSQL.

Environment: JES_HTTP_PORT (mx-a's console), JES_ADMIN, JES_ADMIN_PASSWORD; JES_SCREENSHOTS as
e2e_console.py. Checks: the title bar names the server that answered, the dashboard's Servers
card lists both as up with this one marked, the counters' heading says they are this server's,
and the page logs no errors.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_console import ADMIN, PASSWORD, SHOTS, drive  # noqa: E402
from jestest import check  # noqa: E402

from selenium.webdriver.common.by import By  # noqa: E402


def run(c):
    d = c.d
    c.go("#/")
    c.find("#login-user").send_keys(ADMIN)
    c.find("#login-password").send_keys(PASSWORD)
    c.find("#login-submit").click()
    c.heading("Dashboard")
    check(c.text_of("#brand-node") == "mx-a", "the title bar names the server that answered")
    check("mx-a" in d.title, "the window title names the server")
    c.wait(lambda: "2 of 2 up" in c.text_of("#servers-title"), "the Servers card: 2 of 2 up")
    rows = d.find_elements(By.CSS_SELECTOR, "#servers tbody tr")
    check(len(rows) == 2, "two servers listed")
    names = [r.find_element(By.TAG_NAME, "strong").text for r in rows]
    check(names == ["mx-a", "mx-b"], f"the servers by name: {names}")
    check("(this one)" in rows[0].text and "(this one)" not in rows[1].text, "this server marked")
    check(all("Up" in r.text for r in rows), "both up")
    check("this server (mx-a)" in c.text_of("main").lower(), "the counters are said to be this server's")
    if SHOTS:
        d.save_screenshot(os.path.join(SHOTS, "console-cluster.png"))
    # The 401 of /api/session before the login is the console asking whether it is logged in.
    severe = [e for e in c.logs() if e.get("level") == "SEVERE"
              and "Failed to load resource" not in e.get("message", "")]
    check(not severe, f"no errors in the browser's log: {severe}")


def main():
    drive(run, "cluster e2e: all checks passed")


if __name__ == "__main__":
    main()
