"""Browser test of the web console: Selenium drives Debian's headless Chromium against a live jes.

Run by tests/e2e_console.rs, which starts `jes serve` with http.port set, an admin account and a
smart host that refuses connections (so relayed mail stays queued). Environment:

  JES_HTTP_PORT, JES_SMTP_PORT    the console and SMTP ports
  JES_ADMIN, JES_ADMIN_PASSWORD   the console account
  JES_LOCAL_RCPT, JES_LOCAL_PASSWORD   a local account to send mail to, and its POP3 password
  JES_SCREENSHOTS                 if set, a folder to save screenshots of the main pages into

Every step checks what a person would see and fails loudly (with the page's text and the browser
log) on a missing element.
"""
import os
import sys
import tempfile
import time
import traceback
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jestest import check, pop3, smtp  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BASE = "http://127.0.0.1:%s" % os.environ["JES_HTTP_PORT"]
ADMIN = os.environ.get("JES_ADMIN", "admin@localhost")
PASSWORD = os.environ["JES_ADMIN_PASSWORD"]
LOCAL = os.environ.get("JES_LOCAL_RCPT", "trackstudio@127.0.0.1")
LOCAL_PASSWORD = os.environ.get("JES_LOCAL_PASSWORD", "secret")
REMOTE = "boss@remote.test"
SHOTS = os.environ.get("JES_SCREENSHOTS")
CHROMIUM = os.environ.get("JES_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("JES_CHROMEDRIVER", "/usr/bin/chromedriver")

SUBJECT = "Task #4711 <b>changed</b> & done"
TEXT = "Status: open -> done\n<script>alert('text part')</script>\nThe printer is fixed.\n"
HTML = (
    "<!doctype html><html><body>"
    "<h1 id=\"hello\">Hello from the HTML part</h1>"
    "<p>Status changed to <b>done</b>.</p>"
    "<script>document.title='PWNED';"
    "document.body.setAttribute('data-pwned','1');"
    "try{parent.document.title='PWNED'}catch(e){}"
    "try{parent.postMessage('pwned','*')}catch(e){}</script>"
    "</body></html>"
)
ATTACHMENT = b"task,status\n4711,done\n"

WAIT = 20


def make_driver():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: run scripts/install-test-deps")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
        "--lang=en-US",
        "--no-first-run",
        "--disable-extensions",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver path is given explicitly, so Selenium Manager never tries to download one.
    service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(tempfile.gettempdir(), "jes-chromedriver.log"))
    return webdriver.Chrome(service=service, options=opts)


class Console:
    def __init__(self, driver):
        self.d = driver
        self.browser_log = []

    # -- waiting and finding, failing loudly -----------------------------------------------

    def wait(self, cond, what, timeout=WAIT):
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1,
                                 ignored_exceptions=(WebDriverException,)).until(lambda d: cond())
        except TimeoutException:
            raise AssertionError(f"timed out after {timeout} s waiting for: {what}") from None

    def find(self, css, what=None, timeout=WAIT, visible=True):
        def probe():
            els = self.d.find_elements(By.CSS_SELECTOR, css)
            for el in els:
                if not visible or el.is_displayed():
                    return el
            return None
        el = self.wait(probe, what or f"element {css}", timeout)
        return el

    def text_of(self, css):
        return self.find(css).text

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def go(self, hash_):
        self.d.get(BASE + "/" + hash_)

    def shot(self, name):
        if not SHOTS:
            return
        os.makedirs(SHOTS, exist_ok=True)
        # no passing confirmation over the page, and let fonts and the chart settle
        self.js("for (const t of document.querySelectorAll('.toast')) t.classList.remove('show')")
        time.sleep(0.3)
        path = os.path.join(SHOTS, name + ".png")
        self.d.save_screenshot(path)
        print("screenshot:", path)

    def heading(self, text, timeout=WAIT):
        return self.wait(lambda: any(h.text == text for h in self.d.find_elements(By.CSS_SELECTOR, "main h1")),
                         f"page heading {text!r}", timeout)

    def toast(self, contains):
        return self.wait(lambda: contains in (self.d.find_element(By.ID, "status").text or ""),
                         f"a confirmation containing {contains!r}")

    def no_horizontal_scroll(self, page):
        sw, cw = self.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        check(sw <= cw, f"{page}: no horizontal scroll at 375 px (scrollWidth {sw}, width {cw})")

    def logs(self):
        try:
            self.browser_log.extend(self.d.get_log("browser"))
        except WebDriverException:
            pass
        return self.browser_log


def send_local_mail():
    msg = EmailMessage()
    msg["From"] = "Tracker <tracker@example.org>"
    msg["To"] = LOCAL
    msg["Subject"] = SUBJECT
    msg["Date"] = "Sun, 29 Nov 2026 12:00:00 +0000"
    msg["Message-ID"] = "<console-e2e-1@example.org>"
    msg.set_content(TEXT)
    msg.add_alternative(HTML, subtype="html")
    msg.add_attachment(ATTACHMENT, maintype="text", subtype="csv", filename="tasks.csv")
    with smtp() as s:
        s.send_message(msg, from_addr="tracker@example.org", to_addrs=[LOCAL])
    print("sent the local message")


def send_relayed_mail():
    msg = EmailMessage()
    msg["From"] = "tracker@localhost"
    msg["To"] = REMOTE
    msg["Subject"] = "Nightly report"
    msg.set_content("Relayed through a smart host that is down.\n")
    with smtp() as s:
        s.send_message(msg, from_addr="tracker@localhost", to_addrs=[REMOTE])
    print("sent the relayed message")


def run(c):
    d = c.d

    # -- login page, keyboard ----------------------------------------------------------------
    c.go("#/")
    user = c.find("#login-user", "the login form's account field")
    c.find("label[for=login-user]", "a label for the account field")
    c.find("label[for=login-password]", "a label for the password field")
    check(c.js("return document.documentElement.lang") == "en", "the page declares its language")
    c.shot("login")

    check(c.js("return document.activeElement.id") == "login-user", "the account field has the focus at first")
    # Shift+Tab walks back to the skip link, the page's first stop
    for _ in range(5):
        ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        if c.js("return document.activeElement.id") == "skip-link":
            break
    check(c.js("return document.activeElement.id") == "skip-link", "the skip link is the first stop of the Tab order")
    top = c.js("return document.activeElement.getBoundingClientRect().top")
    check(top >= 0, "the focused skip link is visible on the screen")
    reached = False
    for _ in range(10):
        ActionChains(d).send_keys(Keys.TAB).perform()
        if c.js("return document.activeElement.id") == "login-submit":
            reached = True
            break
    check(reached, "Tab reaches the login button")
    style = c.js(
        "const el = document.activeElement, cs = getComputedStyle(el);"
        "return [el.matches(':focus-visible'), cs.outlineStyle, parseFloat(cs.outlineWidth)]"
    )
    check(style[0] and style[1] != "none" and style[2] >= 2,
          f"the keyboard focus on the login button is visible (focus-visible, outline {style[1]} {style[2]}px)")

    # a wrong password is refused with a message
    user.click()
    user.send_keys(ADMIN)
    pw = c.find("#login-password")
    pw.send_keys("not-the-password")
    pw.send_keys(Keys.ENTER)
    c.wait(lambda: d.find_element(By.ID, "login-error").text.strip() != "", "an error for a wrong password")
    check(c.find("#mainnav", visible=False).get_attribute("hidden") is not None, "no navigation before login")

    # log in with the keyboard: type, Tab to the button, Enter
    pw = c.find("#login-password")
    pw.clear()
    pw.send_keys(PASSWORD)
    ActionChains(d).send_keys(Keys.TAB).perform()
    check(c.js("return document.activeElement.id") == "login-submit", "Tab from the password goes to the button")
    ActionChains(d).send_keys(Keys.ENTER).perform()
    c.heading("Dashboard")
    check(c.find("#account-user").text == ADMIN, "the logged-in account is shown")
    c.find("#mainnav a[href='#/queue']", "the Queue link in the navigation")
    c.find("#skip-link", visible=False)

    # -- dashboard: live counters ------------------------------------------------------------
    accepted = c.wait(lambda: (lambda t: t if t.replace(",", "").isdigit() else None)(c.text_of("#stat-accepted")),
                      "the accepted counter to show a number")
    before = int(accepted.replace(",", ""))
    c.find(".chart svg[role=img]", "the chart (an SVG with role img)")
    desc = c.js("const d = document.querySelector('.chart svg desc'); return d ? d.textContent : ''")
    check("accepted" in desc and "delivered" in desc, f"the chart has a text description ({desc!r})")
    legend = [li.text for li in d.find_elements(By.CSS_SELECTOR, ".legend li")]
    check(legend == ["Accepted", "Delivered", "Bounced"], f"the chart has a legend {legend}")
    c.find(".chart-table details summary", "the chart's table alternative")
    check(c.find("#announcer", visible=False).get_attribute("aria-live") == "polite", "an aria-live region for updates")

    send_local_mail()
    send_relayed_mail()
    c.wait(lambda: int(c.text_of("#stat-accepted").replace(",", "") or 0) >= before + 2,
           "the dashboard's accepted counter to go up by itself (polling)", timeout=30)
    check(True, "the accepted counter updated without a reload")
    c.wait(lambda: c.text_of("#stat-queue") not in ("0", "—"), "the queue depth counter to show the relayed message",
           timeout=30)
    c.wait(lambda: d.find_elements(By.CSS_SELECTOR, "#events tbody tr"), "recent events listed", timeout=30)
    c.wait(lambda: d.find_elements(By.CSS_SELECTOR, ".chart svg circle"), "a point drawn in the chart", timeout=30)
    c.shot("dashboard")

    # -- mailboxes ---------------------------------------------------------------------------
    c.find("#mainnav a[href='#/mailboxes']").click()
    c.heading("Mailboxes")
    check("#/mailboxes" in d.current_url, "the URL says #/mailboxes")
    def box_row():
        for tr in d.find_elements(By.CSS_SELECTOR, "#mailbox-list tbody tr"):
            links = tr.find_elements(By.CSS_SELECTOR, "a")
            if links and links[0].text == LOCAL:
                return tr
        return None

    c.wait(box_row, f"the mailbox {LOCAL} in the list")
    c.wait(lambda: int(box_row().find_element(By.CSS_SELECTOR, "td").text.replace(",", "")) >= 1,
           f"{LOCAL} shows its message", timeout=10)
    c.shot("mailboxes")
    box_row().find_element(By.CSS_SELECTOR, "a").click()
    c.heading(LOCAL)
    subj = c.wait(lambda: next((a for a in d.find_elements(By.CSS_SELECTOR, "#message-list a.subject-link") if a.text == SUBJECT), None),
                  "the new message in the mailbox's list")
    check(subj.find_elements(By.TAG_NAME, "b") == [], "the subject's <b> is shown as text, not markup")
    subj.click()

    # -- one message -------------------------------------------------------------------------
    c.heading(SUBJECT)
    msg_url = d.current_url
    check("#/mailboxes/" in msg_url and msg_url.count("/") >= 5, f"the message has its own URL ({msg_url})")
    h1 = c.find("main h1")
    check(h1.find_elements(By.TAG_NAME, "b") == [], "the heading shows the subject's markup as text")
    text = c.text_of("#mail-text")
    check("The printer is fixed." in text and "<script>alert('text part')</script>" in text,
          "the text part is shown, markup in it as text")
    check("tracker@example.org" in c.text_of("#msg-from"), "the sender is shown")

    frame = c.find("iframe#mail-html", "the HTML part's iframe")
    sandbox = frame.get_attribute("sandbox")
    check(sandbox is not None, "the HTML iframe has a sandbox attribute")
    tokens = set(sandbox.split())
    check("allow-scripts" not in tokens and "allow-same-origin" not in tokens,
          f"the sandbox allows neither scripts nor same origin ({sandbox!r})")
    check(frame.get_attribute("src").endswith("/html"), "the iframe loads the message's /html")
    d.switch_to.frame(frame)
    try:
        c.wait(lambda: "Hello from the HTML part" in d.find_element(By.TAG_NAME, "body").text,
               "the HTML part rendered inside the iframe")
        check(d.find_element(By.TAG_NAME, "body").get_attribute("data-pwned") is None,
              "the <script> in the HTML part did not run")
        check(d.title != "PWNED", "the HTML part's script did not change its title")
    finally:
        d.switch_to.default_content()
    time.sleep(0.5)
    check(d.title != "PWNED" and "PWNED" not in d.title, "the console's title is untouched")

    att = c.find("#attachments a", "an attachment link")
    check(att.text == "tasks.csv", f"the attachment is listed by name ({att.text!r})")
    got = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'})"
        ".then(r => r.text().then(t => done([r.status, t]))).catch(e => done([0, String(e)]));",
        att.get_attribute("href"))
    check(got[0] == 200 and got[1] == ATTACHMENT.decode(), f"the attachment link downloads the file ({got[0]})")

    dl = c.find("#download-eml", "the Download .eml link")
    check(dl.get_attribute("download") is not None and dl.get_attribute("download").endswith(".eml"),
          "Download .eml is a download link")
    check(dl.get_attribute("href").endswith("/raw"), "Download .eml points at /raw")

    c.find("#view-source", "the View source button").click()
    raw = c.find("#raw-source", "the message source").text
    check("Subject:" in raw and "multipart/" in raw and "tasks.csv" in raw, "the source view shows the raw message")
    check(c.find("#view-source").get_attribute("aria-expanded") == "true", "View source says it is expanded")
    c.find("#view-source").click()
    c.wait(lambda: not d.find_element(By.ID, "source-box").is_displayed(), "the source to hide again")
    c.find("#all-headers summary", "the All headers disclosure")
    c.js("window.scrollTo(0, 0)")
    c.shot("message")

    # Back goes to the mailbox's list
    d.back()
    c.heading(LOCAL)
    check(True, "Back returns to the mailbox")
    d.forward()
    c.heading(SUBJECT)

    # -- delivery history: the message's timeline, then a search ----------------------------
    c.find("#message-history", "the Delivery history link on the message page").click()
    c.heading("Message history")
    check("#/history/" in d.current_url, f"the timeline has its own URL ({d.current_url})")

    def timeline_events(box="#history-timeline"):
        return [li.get_attribute("data-event")
                for li in d.find_elements(By.CSS_SELECTOR, f"{box} li.timeline-event")]

    c.wait(lambda: timeline_events()[:2] == ["accepted", "delivered-locally"],
           "the local message's timeline: accepted, then delivered locally", timeout=30)
    tl = c.text_of("#history-timeline")
    check(SUBJECT in tl and LOCAL in tl, "the timeline names the subject (as text) and the recipient")
    check("250 2.0.0" in tl, "the timeline shows the reply")
    c.find("#mainnav a[href='#/history']").click()
    c.heading("History")
    q = c.find("#history-q", "the history search field")
    q.clear()
    q.send_keys(LOCAL)
    q.send_keys(Keys.ENTER)
    c.wait(lambda: "#/history?q=" in d.current_url, "the search to go into the URL")

    def result():
        for a in d.find_elements(By.CSS_SELECTOR, "#history-list article.history-item h2 a"):
            if a.text == SUBJECT:
                return a
        return None

    c.wait(result, "the local message in the search results")
    check(c.find("#history-q").get_attribute("value") == LOCAL, "the search field keeps the query")
    c.shot("history")
    result().click()
    c.heading("Message history")
    c.wait(lambda: "delivered-locally" in timeline_events(), "the timeline opened from the search")
    d.back()
    c.heading("History")
    c.wait(result, "Back returns to the search results")

    # -- queue -------------------------------------------------------------------------------
    c.find("#mainnav a[href='#/queue']").click()
    c.heading("Queue")

    def card():
        for el in d.find_elements(By.CSS_SELECTOR, "#queue-list article.queue-item"):
            if REMOTE in el.text:
                return el
        return None

    item = c.wait(card, f"the relayed message to {REMOTE} in the queue", timeout=30)
    qid = item.get_attribute("data-queue-id")
    check(bool(qid), f"the queued message has an id ({qid})")
    c.wait(lambda: card().find_element(By.CSS_SELECTOR, ".attempts").text not in ("0", ""),
           "the first delivery attempt to be counted", timeout=30)
    attempts0 = card().find_element(By.CSS_SELECTOR, ".attempts").text
    next0 = card().find_element(By.CSS_SELECTOR, ".next-attempt").text
    check("pending" in card().text, "the recipient is shown as pending")
    check(card().find_elements(By.CSS_SELECTOR, ".recipient-error, .last-error"), "the last error is shown")
    print(f"before retry: attempts {attempts0}, next try {next0!r}")
    c.shot("queue")

    # Retry: a confirmation shows and the attempt count goes up (the smart host is down)
    card().find_element(By.CSS_SELECTOR, "button[data-action=retry]").click()
    c.toast("Retry requested")
    c.wait(lambda: card() is not None and card().find_element(By.CSS_SELECTOR, ".attempts").text != attempts0,
           "the attempts to change after Retry", timeout=30)
    print(f"after retry: attempts {card().find_element(By.CSS_SELECTOR, '.attempts').text}")
    check(True, "Retry made jes try again (attempts changed)")

    # Queued message detail page
    card().find_element(By.CSS_SELECTOR, "h2 a").click()
    c.heading("Queued message")
    c.wait(lambda: "Subject: Nightly report" in d.find_element(By.CSS_SELECTOR, "pre.source").text,
           "the queued message's headers")
    d.back()
    c.heading("Queue")
    # The queued message's history: accepted, then deferred with the cause.
    c.wait(card, "the queued message")
    card().find_element(By.CSS_SELECTOR, "a.history-link").click()
    c.heading("Message history")
    c.wait(lambda: "deferred" in timeline_events(), "the relayed message's deferred attempt", timeout=30)
    check(REMOTE in c.text_of("#history-timeline"), "the timeline names the remote recipient")
    d.back()
    c.heading("Queue")

    # -- narrow screen (375 px) ------------------------------------------------------------
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": 375, "height": 812, "deviceScaleFactor": 1, "mobile": True})
    try:
        check(c.js("return window.innerWidth") == 375, "the viewport is 375 px wide")
        c.go("#/")
        c.heading("Dashboard")
        c.find(".chart svg")
        c.no_horizontal_scroll("dashboard")
        c.shot("narrow-dashboard")
        c.go("#/queue")
        c.heading("Queue")
        c.wait(card, "the queue at 375 px")
        c.no_horizontal_scroll("queue")
        c.shot("narrow-queue")
        c.go("#/mailboxes")
        c.heading("Mailboxes")
        c.find("#mailbox-list a")
        c.no_horizontal_scroll("mailboxes")
        d.get(msg_url)
        c.heading(SUBJECT)
        c.find("iframe#mail-html")
        c.no_horizontal_scroll("message")
        c.shot("narrow-message")
        nav = c.find("#mainnav a[href='#/queue']")
        check(nav.is_displayed(), "the navigation stays reachable at 375 px")
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # -- delete the queued message: asks whether to bounce, confirms -------------------------
    c.go("#/queue")
    c.heading("Queue")
    c.wait(card, "the queued message")
    card().find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    dialog = c.find("#confirm-dialog", "the delete confirmation dialog")
    radios = dialog.find_elements(By.CSS_SELECTOR, "input[type=radio][name=confirm-choice]")
    check(sorted(r.get_attribute("value") for r in radios) == ["false", "true"],
          "the dialog asks whether to bounce")
    c.find("#confirm-cancel").click()
    c.wait(lambda: not d.find_element(By.ID, "confirm-dialog").is_displayed(), "the dialog to close on Cancel")
    check(card() is not None, "Cancel keeps the message")
    card().find_element(By.CSS_SELECTOR, "button[data-action=delete]").click()
    dialog = c.find("#confirm-dialog")
    dialog.find_element(By.CSS_SELECTOR, "input[name=confirm-choice][value=false]").click()
    c.find("#confirm-ok").click()
    c.toast("Deleted")
    c.wait(lambda: card() is None, "the deleted message to disappear from the queue")
    check(True, "Delete removed the message from the queue")

    # -- delete the local message with confirmation ------------------------------------------
    d.get(msg_url)
    c.heading(SUBJECT)
    # while a POP3 client has the mailbox open, the console says so and keeps the message
    pop = pop3(LOCAL, LOCAL_PASSWORD)
    try:
        c.find("#message-delete").click()
        c.find("#confirm-dialog")
        check(not c.d.find_elements(By.CSS_SELECTOR, "#confirm-dialog input[type=radio]"),
              "a mail message's delete asks only to confirm")
        c.find("#confirm-ok").click()
        c.wait(lambda: "POP3" in d.find_element(By.ID, "alert").text,
               "an error saying a POP3 client has the mailbox open")
        check(True, "deleting while POP3 has the mailbox open is refused with a message")
        c.heading(SUBJECT)
    finally:
        pop.quit()
    c.find("#message-delete").click()
    c.find("#confirm-dialog")
    c.find("#confirm-ok").click()
    c.heading(LOCAL)
    c.wait(lambda: not any(a.text == SUBJECT for a in d.find_elements(By.CSS_SELECTOR, "#message-list a")),
           "the deleted message to leave the mailbox list")
    check(True, "the message was deleted from the mailbox")

    # -- logout ------------------------------------------------------------------------------
    c.find("#logout").click()
    c.find("#login-user", "the login form after logout")
    status = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/session', {credentials: 'same-origin'}).then(r => done(r.status)).catch(() => done(0));")
    check(status == 401, f"the session has ended on the server ({status})")

    # -- no CSP violations or script errors in the console itself ----------------------------
    problems = [
        e for e in c.logs()
        if e.get("level") == "SEVERE"
        and "/html" not in e.get("message", "")
        and "sandboxed" not in e.get("message", "")
        and "Failed to load resource" not in e.get("message", "")
    ]
    check(not problems, f"no script errors or CSP violations in the console ({problems})")



def drive(run, done, script_timeout=None):
    """Runs `run(console)` in a fresh browser; on a failure prints the page and the browser's log
    and saves a screenshot before re-raising; prints `done` when every check passed. Used by this
    script's main and the other e2e scripts."""
    d = make_driver()
    if script_timeout:
        d.set_script_timeout(script_timeout)
    c = Console(d)
    try:
        run(c)
    except BaseException:
        traceback.print_exc()
        try:
            print("URL:", d.current_url, file=sys.stderr)
            print("page text:\n", d.find_element(By.TAG_NAME, "body").text[:3000], file=sys.stderr)
            for e in c.logs():
                print("browser:", e, file=sys.stderr)
            fail = os.path.join(tempfile.gettempdir(), "jes-console-failure.png")
            d.save_screenshot(fail)
            print("failure screenshot:", fail, file=sys.stderr)
        except WebDriverException:
            pass
        raise
    finally:
        d.quit()
    print(done)


def main():
    drive(run, "console e2e: all checks passed", script_timeout=15)


if __name__ == "__main__":
    main()
