"""Browser test of the console's Captured page (capture mode, issue 17), run by
tests/e2e_console.rs against a jes with capture=true and a smart host that refuses connections.

Same environment as e2e_console.py. Checks: the banner on every page while capture is on, the
list of held mail, the message view (text, sandboxed HTML, attachment, held recipients),
release to another address, and delete with confirmation.
"""
import os
import sys
from email.message import EmailMessage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_console import ADMIN, PASSWORD, drive  # noqa: E402
from jestest import check, smtp  # noqa: E402

from selenium.webdriver.common.by import By  # noqa: E402


def send(subject, text, html=None, attach=None):
    msg = EmailMessage()
    msg["From"] = "tracker@localhost"
    msg["To"] = "boss@remote.test"
    msg["Subject"] = subject
    msg.set_content(text)
    if html:
        msg.add_alternative(html, subtype="html")
    if attach:
        msg.add_attachment(attach, maintype="text", subtype="csv", filename="tasks.csv")
    with smtp() as s:
        s.send_message(msg, from_addr="tracker@localhost", to_addrs=["boss@remote.test"])


def banner_shown(c):
    return c.find("#capture-banner", "the capture banner").is_displayed()


def run(c):
    d = c.d
    send("Captured one", "Text of the captured one.\n",
         "<html><body><h1 id='cap'>HTML of the captured one</h1></body></html>", b"a,b\n1,2\n")
    send("Captured two", "Text of the second.\n")

    c.go("#/")
    c.find("#login-user").send_keys(ADMIN)
    c.find("#login-password").send_keys(PASSWORD)
    c.find("#login-submit").click()
    c.heading("Dashboard")
    check(banner_shown(c), "the capture banner shows on the dashboard")
    c.go("#/queue")
    c.heading("Queue")
    check(banner_shown(c), "the capture banner shows on the queue page")

    # The Captured page lists both, with whom they are held for.
    c.find('a[data-nav="captured"]').click()
    c.heading("Captured mail")
    c.wait(lambda: len(d.find_elements(By.CSS_SELECTOR, "#captured-list tbody tr")) == 2,
           "two captured messages listed")
    check("boss@remote.test" in c.text_of("#captured-list"), "held recipient shown in the list")
    check(banner_shown(c), "the capture banner shows on the Captured page")

    # The message view: text, sandboxed HTML, attachment, held recipients.
    [link] = [a for a in d.find_elements(By.CSS_SELECTOR, "#captured-list a.subject-link") if a.text == "Captured one"]
    link.click()
    c.heading("Captured one")
    check("Text of the captured one." in c.text_of("#mail-text"), "text part shown")
    frame = c.find("#mail-html")
    check(frame.get_attribute("sandbox") == "", "HTML part in a sandboxed frame")
    d.switch_to.frame(frame)
    c.wait(lambda: "HTML of the captured one" in d.find_element(By.TAG_NAME, "body").text, "HTML part rendered")
    d.switch_to.default_content()
    check("tasks.csv" in c.text_of("#attachments"), "attachment listed")
    att = c.find("#attachments a.attachment")
    check(att.get_attribute("href").endswith("/attachments/0") and att.get_attribute("download") == "tasks.csv",
          "attachment offered as a download, as in the mailbox view")
    check(c.find("#download-eml").get_attribute("href").endswith("/raw"), "the .eml download is offered")
    check(c.text_of("#captured-held") == "boss@remote.test", "held recipient shown")

    # Release to another address: it leaves the Captured page (and waits in the queue, the
    # smart host being down).
    c.find("#release-to").send_keys("qa@remote.test")
    c.find("#release-to-submit").click()
    c.toast("Released: sent to qa@remote.test")
    c.heading("Captured mail")
    c.wait(lambda: len(d.find_elements(By.CSS_SELECTOR, "#captured-list tbody tr")) == 1,
           "one captured message left")
    c.go("#/queue")
    c.heading("Queue")
    c.wait(lambda: "qa@remote.test" in c.text_of("main"), "the released message is queued for qa@remote.test")

    # Delete the other one, with a confirmation.
    c.go("#/captured")
    c.heading("Captured mail")
    c.find("#captured-list a.subject-link").click()
    c.heading("Captured two")
    c.find("#captured-delete").click()
    c.find("#confirm-ok").click()
    c.toast("Deleted")
    c.heading("Captured mail")
    c.wait(lambda: "No mail is held." in c.text_of("#captured-list"), "no captured mail left")


def main():
    drive(run, "captured e2e: all checks passed", script_timeout=15)


if __name__ == "__main__":
    main()
