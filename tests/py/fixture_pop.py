"""The JES 1.6.1 fixture mailbox read over POP3: JES's UIDL, and stored dot-stuffing undone once."""
from jestest import check, pop3

p = pop3("trackstudio@127.0.0.1", "secret")
resp, uidls, _ = p.uidl()
check(uidls == [b"1 6501300281251615158"], f"UIDL is JES's ({uidls!r})")
resp, lines, _ = p.retr(1)
check(b".A line that starts with a dot" in lines, "RETR gives '.A line ...' unstuffed once")
check(b"..A line that starts with a dot" not in lines, "no double dot reaches the client")
check(lines[0] == b"X-DeliveredTo: trackstudio@127.0.0.1", "first line X-DeliveredTo kept")
resp, listing, _ = p.list()
size = int(listing[0].split()[1])
check(size == sum(len(l) + 2 for l in lines), f"LIST size {size} equals the unstuffed octets")
resp, top, _ = p.top(1, 1)
check(top[-1] == b"First line.", f"TOP 1 1 ends with the first body line ({top[-1]!r})")
p.quit()
