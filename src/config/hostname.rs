//! Host names: what `hostname` and the `domains` entries may be, and the server's own name when
//! `hostname` is not set: the machine's fully qualified name where the resolver knows one (as
//! Postfix's `myhostname`), else the first local domain.
//!
//! A name goes into the SMTP greeting, EHLO, `Received:` lines, Message-IDs and the self-signed
//! certificate, so it must be plain ASCII in the LDH form of RFC 1123 (or an IP address): a
//! Latin-1 or UTF-8 name passed `jes check` and then stopped the start when the certificate was
//! made, or put raw 8-bit bytes into the greeting. A non-ASCII name is refused with its IDNA
//! (`xn--`) form in the message rather than converted: `user.NAME@DOMAIN` lines are matched
//! against the domains as written, and a silent conversion would stop them matching.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

/// An IP address as an address literal (`[127.0.0.1]`, `[IPv6:::1]`); anything else as is.
pub fn bracket_if_ip(name: &str) -> String {
    match name.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => format!("[{v4}]"),
        Ok(IpAddr::V6(v6)) => format!("[IPv6:{v6}]"),
        Err(_) => name.to_string(),
    }
}

/// The address inside an address literal (`[127.0.0.1]` -> `127.0.0.1`, `[IPv6:::1]` -> `::1`);
/// anything else as is.
pub fn unbracket(name: &str) -> &str {
    match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(inner) => match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => &inner[5..],
            _ => inner,
        },
        None => name,
    }
}

/// Checks a `hostname` or `domains` entry: an IPv4 or IPv6 address, bare or bracketed
/// (`[127.0.0.1]`, `[::1]`, `[IPv6:::1]`), or a name of letter-digit-hyphen labels of 1 to 63
/// characters, 253 in all, with an optional final dot. A single label (`localhost`) is a name.
/// The error says what is wrong, for a message that also names the file, line and key.
pub fn check_name(name: &str) -> Result<(), String> {
    let inner = unbracket(name);
    if inner.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if inner.len() != name.len() {
        return Err(format!("{name:?} is not an IP address in brackets"));
    }
    if !name.is_ascii() {
        return Err(match idna::domain_to_ascii(name) {
            Ok(ascii) if ascii != name && check_ldh(&ascii).is_ok() => format!(
                "{name:?} is not ASCII; write its IDNA form {ascii:?} (and use that form in user.conf addresses too)"
            ),
            _ => format!("{name:?} is not ASCII and has no valid IDNA (xn--) form"),
        });
    }
    check_ldh(name).map_err(|why| format!("{name:?} is not a host name: {why}"))
}

/// RFC 1123 letter-digit-hyphen labels (`name` is ASCII).
fn check_ldh(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > 253 {
        return Err(format!("{} characters, at most 253", name.len()));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("a label of {} characters, at most 63", label.len()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!("{c:?} is not a letter, digit, hyphen or dot"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("the label {label:?} starts or ends with a hyphen"));
        }
    }
    // `999.1.1.1` or `10.0.0` would pass as labels, but is a mistyped address (no top-level
    // domain is all digits).
    if name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("it looks like an IP address but is not one".into());
    }
    Ok(())
}

/// The machine's name, fully qualified when the resolver knows it (looked up once per process),
/// else `first_domain`; an IP address comes back bracketed.
pub fn default_hostname(first_domain: &str) -> String {
    static MACHINE: OnceLock<Option<String>> = OnceLock::new();
    let machine = MACHINE.get_or_init(|| {
        let short = gethostname()?;
        if short.contains('.') {
            return Some(short);
        }
        Some(canonical_name(&short).unwrap_or(short))
    });
    pick_hostname(machine.as_deref(), first_domain)
}

/// The machine's name if it is a valid host name (a machine may be called `my_box` or
/// `büro`, which cannot go into a greeting or a certificate), else `first_domain`, which
/// `mail.conf` checked; bracketed if an IP address.
fn pick_hostname(machine: Option<&str>, first_domain: &str) -> String {
    let name = machine
        .filter(|m| check_name(m).is_ok())
        .map(|m| m.strip_suffix('.').unwrap_or(m))
        .unwrap_or(first_domain);
    bracket_if_ip(name)
}

/// `uname`'s node name, which is what `gethostname` returns.
fn gethostname() -> Option<String> {
    let uname = rustix::system::uname();
    let name = uname.nodename().to_str().ok()?.trim().to_string();
    (!name.is_empty() && name != "(none)").then_some(name)
}

/// `getaddrinfo(AI_CANONNAME)`: normally answered from /etc/hosts; used only if it gives a dotted name.
/// Called through libc: it is the C library's resolver (nsswitch), which rustix does not wrap and
/// std does not expose with the canonical name.
fn canonical_name(short: &str) -> Option<String> {
    let c_name = std::ffi::CString::new(short).ok()?;
    // SAFETY: zeroed addrinfo is a valid "no hints" value; we set only plain integer fields.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_flags = libc::AI_CANONNAME;
    hints.ai_family = libc::AF_UNSPEC;
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: valid C string, hints and out-pointer; the result is freed below.
    let rc = unsafe { libc::getaddrinfo(c_name.as_ptr(), std::ptr::null(), &hints, &mut res) };
    if rc != 0 || res.is_null() {
        return None;
    }
    // SAFETY: res is a valid list from getaddrinfo; ai_canonname is NULL or a C string.
    let canon = unsafe {
        let p = (*res).ai_canonname;
        let s = if p.is_null() {
            None
        } else {
            std::ffi::CStr::from_ptr(p)
                .to_str()
                .ok()
                .map(str::to_string)
        };
        libc::freeaddrinfo(res);
        s
    };
    canon.filter(|c| c.contains('.') && c.parse::<Ipv4Addr>().is_err())
}

/// The machine's short host name, as `gethostname` gives it (for naming a lock's holder, and
/// `node.name`'s default).
pub fn machine_name() -> Option<String> {
    gethostname()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_that_are_accepted() {
        let long_label = "a".repeat(63);
        let long_name = format!("{0}.{0}.{0}.{1}", long_label, "b".repeat(61)); // 253
        assert_eq!(long_name.len(), 253);
        for ok in [
            "localhost",
            "127.0.0.1",
            "[127.0.0.1]",
            "::1",
            "[::1]",
            "[IPv6:::1]",
            "[ipv6:fd00::1]",
            "example.com",
            "example.com.",
            "Mail-1.Example.COM",
            "xn--hllo-bpa.example",
            "123.example",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_that_are_refused_say_why() {
        for (bad, why) in [
            ("h\u{e9}llo", "write its IDNA form \"xn--hllo-bpa\""),
            ("b\u{fc}ro.example", "\"xn--bro-hoa.example\""),
            ("my_host", "'_' is not a letter"),
            ("a..b", "empty label"),
            (".a", "empty label"),
            ("-a.b", "hyphen"),
            ("a-.b", "hyphen"),
            ("", "empty"),
            ("999.1.1.1", "looks like an IP address"),
            ("10.0.0", "looks like an IP address"),
            ("[localhost]", "not an IP address in brackets"),
            ("[300.1.1.1]", "not an IP address in brackets"),
            ("a b", "' ' is not"),
            ("\u{fffd}.example", "has no valid IDNA"),
        ] {
            let err = check_name(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let err = check_name(&"a".repeat(64)).unwrap_err();
        assert!(err.contains("64 characters, at most 63"), "{err}");
        let err = check_name(&format!("{}.{}", "a".repeat(63), "b.".repeat(100))).unwrap_err();
        assert!(err.contains("at most 253"), "{err}");
    }

    #[test]
    fn an_unusable_machine_name_falls_back_to_the_first_domain() {
        assert_eq!(
            pick_hostname(Some("box.example.com"), "localhost"),
            "box.example.com"
        );
        assert_eq!(
            pick_hostname(Some("box.example.com."), "localhost"),
            "box.example.com"
        );
        assert_eq!(pick_hostname(Some("my_box"), "localhost"), "localhost");
        assert_eq!(
            pick_hostname(Some("b\u{fc}ro"), "example.org"),
            "example.org"
        );
        assert_eq!(pick_hostname(None, "127.0.0.1"), "[127.0.0.1]");
        // Whatever this machine is called, the default is a name check_name accepts.
        let name = default_hostname("localhost");
        assert_eq!(check_name(&name), Ok(()), "{name}");
    }

    #[test]
    fn the_machine_name_is_the_kernels() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(machine_name().as_deref(), Some(kernel.trim()));
    }

    #[test]
    fn unbracket_gives_the_address() {
        assert_eq!(unbracket("[127.0.0.1]"), "127.0.0.1");
        assert_eq!(unbracket("[IPv6:::1]"), "::1");
        assert_eq!(unbracket("[::1]"), "::1");
        assert_eq!(unbracket("mail.example"), "mail.example");
    }
}
