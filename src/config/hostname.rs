//! The server's own name when `hostname` is not set: the machine's fully qualified name where the
//! resolver knows one (as Postfix's `myhostname`), else the first local domain.

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
    let name = machine.as_deref().unwrap_or(first_domain);
    bracket_if_ip(name)
}

fn gethostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for `len` bytes; gethostname NUL-terminates on success when the
    // name fits, and we stop at the first NUL or the buffer's end.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_string();
    (!name.is_empty() && name != "(none)").then_some(name)
}

/// `getaddrinfo(AI_CANONNAME)`: normally answered from /etc/hosts; used only if it gives a dotted name.
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

/// The machine's short host name, as `gethostname` gives it (for naming a lock's holder).
pub fn machine_name() -> Option<String> {
    gethostname()
}
