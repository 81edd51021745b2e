"""Browser test of the console's view of several servers on one database (issue 15), run by
tests/pg_cluster.rs against two jes servers (node.name mx-a and mx-b) on one PostgreSQL.

Environment: JES_HTTP_PORT (mx-a's console), JES_ADMIN, JES_ADMIN_PASSWORD; JES_SCREENSHOTS as
e2e_console.py. Before it runs, one message for a remote recipient went in through mx-b.
Checks: the title bar names the server that answered, the dashboard's Servers card lists both as
up with this one marked, the counters' heading says they are this server's, the recent events
name mx-b as the server that accepted that message, so does its history timeline, and the page
logs no errors.
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

    # The shared history's events, each with the server that reported it.
    # (textContent: the narrow layout hides the table's head and labels each cell instead)
    def accepted_row():
        heads = [th.get_attribute("textContent")
                 for th in d.find_elements(By.CSS_SELECTOR, "#events thead th")]
        if "Server" not in heads:
            return None
        for r in d.find_elements(By.CSS_SELECTOR, "#events tbody tr"):
            cells = [td.get_attribute("textContent") for td in r.find_elements(By.TAG_NAME, "td")]
            accepted = r.find_elements(By.CSS_SELECTOR, ".badge.k-accepted")
            if len(cells) == len(heads) and accepted and "through-b@remote.test" in cells:
                return cells[heads.index("Server")]
        return None

    c.wait(accepted_row, "the message accepted by mx-b in the recent events, with a Server column", timeout=30)
    check(accepted_row() == "mx-b", f"the recent events name the server that accepted it: {accepted_row()}")
    if SHOTS:
        d.save_screenshot(os.path.join(SHOTS, "console-cluster.png"))

    c.go("#/history?q=through-b%40remote.test")
    c.heading("History")

    def accepted_node():
        for li in d.find_elements(By.CSS_SELECTOR, "#history-list li.timeline-event"):
            if li.get_attribute("data-event") == "accepted":
                nodes = li.find_elements(By.CSS_SELECTOR, ".timeline-node")
                return nodes[0].text if nodes else ""
        return None

    c.wait(lambda: accepted_node() is not None, "the message's timeline in the history search", timeout=30)
    check(accepted_node() == "on mx-b", f"the timeline names the server that accepted it: {accepted_node()!r}")
    # The 401 of /api/session before the login is the console asking whether it is logged in.
    severe = [e for e in c.logs() if e.get("level") == "SEVERE"
              and "Failed to load resource" not in e.get("message", "")]
    check(not severe, f"no errors in the browser's log: {severe}")


def main():
    drive(run, "cluster e2e: all checks passed")


if __name__ == "__main__":
    main()
