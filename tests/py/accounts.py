"""Logins against a jes server whose accounts are in PostgreSQL (tests/pg_accounts.rs).

login USER PASSWORD   prints JSON {"pop3": bool, "smtp": bool}: whether poplib's USER/PASS and
                      smtplib's AUTH (whichever mechanism it picks) were accepted
"""
import json
import poplib
import smtplib
import sys

from jestest import pop3, smtp


def login(user, password):
    try:
        pop3(user, password).quit()
        pop = True
    except poplib.error_proto:
        pop = False
    s = smtp()
    try:
        s.login(user, password)
        ok = True
    except smtplib.SMTPAuthenticationError:
        ok = False
    s.quit()
    print(json.dumps({"pop3": pop, "smtp": ok}))


if __name__ == "__main__":
    login(sys.argv[2], sys.argv[3])
