//! Delivery status notification parameters (RFC 3461): what a client asked to be told about its
//! message, kept with the message from MAIL/RCPT to the last delivery attempt.
//!
//! Data and value syntax only, importing nothing of jes, so that the SMTP session (which parses
//! the parameters), the queue (which keeps them) and delivery (which passes them on or acts on
//! them) share one vocabulary without importing each other. `ENVID` and `ORCPT` are kept as the
//! client sent them, xtext and all (RFC 3461 §4): that is the form passed on to the next server
//! and written into queue files (printable ASCII without spaces, so a queue-file line cannot be
//! broken by it); only a report shows them decoded.

/// `RET=` of MAIL: what a failure report carries of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// The whole message.
    Full,
    /// Its header section only.
    Hdrs,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }

    pub fn parse(value: &str) -> Option<Ret> {
        if value.eq_ignore_ascii_case("FULL") {
            Some(Ret::Full)
        } else if value.eq_ignore_ascii_case("HDRS") {
            Some(Ret::Hdrs)
        } else {
            None
        }
    }
}

/// `NOTIFY=` of RCPT: which reports the sender wants. `NEVER` is all three false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

impl Notify {
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// `NEVER`, or the list of `SUCCESS`, `FAILURE`, `DELAY` (any case, each once). `NEVER` may
    /// not be combined with the others (RFC 3461 §4.1).
    pub fn parse(value: &str) -> Option<Notify> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Some(Notify::NEVER);
        }
        let mut n = Notify::NEVER;
        for word in value.split(',') {
            let flag = if word.eq_ignore_ascii_case("SUCCESS") {
                &mut n.success
            } else if word.eq_ignore_ascii_case("FAILURE") {
                &mut n.failure
            } else if word.eq_ignore_ascii_case("DELAY") {
                &mut n.delay
            } else {
                return None;
            };
            if *flag {
                return None;
            }
            *flag = true;
        }
        Some(n)
    }

    /// The parameter's value: `NEVER` or e.g. `SUCCESS,FAILURE`.
    pub fn as_string(self) -> String {
        let words: Vec<&str> = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| *w)
        .collect();
        if words.is_empty() {
            "NEVER".into()
        } else {
            words.join(",")
        }
    }
}

/// What the sender asked about the whole message (MAIL's `RET=` and `ENVID=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageDsn {
    pub ret: Option<Ret>,
    /// `ENVID=` as sent: xtext.
    pub envid: Option<String>,
}

/// What the sender asked about one recipient (RCPT's `NOTIFY=` and `ORCPT=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientDsn {
    /// `None`: not given, which means failures and delays are reported (RFC 3461 §4.1 lets the
    /// MTA choose; this is what jes always did).
    pub notify: Option<Notify>,
    /// `ORCPT=` as sent: `addr-type;xtext`.
    pub orcpt: Option<String>,
}

impl RecipientDsn {
    /// Whether a failure report is wanted.
    pub fn wants_failure(&self) -> bool {
        self.notify.is_none_or(|n| n.failure)
    }

    /// Whether a delay notice is wanted.
    pub fn wants_delay(&self) -> bool {
        self.notify.is_none_or(|n| n.delay)
    }

    /// Whether a success report (`delivered`, `relayed`) is wanted.
    pub fn wants_success(&self) -> bool {
        self.notify.is_some_and(|n| n.success)
    }

    /// The `ORCPT` a copy made for `original` (a forward target) carries: its own, or else the
    /// address it was sent to, so a report still names what the sender wrote (RFC 3461 §5.2.7).
    pub fn forwarded_from(&self, original: &str) -> RecipientDsn {
        RecipientDsn {
            notify: self.notify,
            orcpt: self.orcpt.clone().or_else(|| {
                original
                    .is_ascii()
                    .then(|| format!("rfc822;{}", encode(original)))
            }),
        }
    }
}

/// The DSN parameters of one SMTP transaction, as the session hands them over with the message:
/// the message's, and each recipient's by address (recipients without any are not listed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    pub message: MessageDsn,
    pub recipients: Vec<(String, RecipientDsn)>,
}

impl Dsn {
    /// The parameters of `address` (exactly as it was given at RCPT); none when it had none.
    pub fn recipient(&self, address: &str) -> RecipientDsn {
        self.recipients
            .iter()
            .find(|(a, _)| a == address)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    }
}

/// Whether `value` is xtext (RFC 3461 §4): printable ASCII except `+` and `=`, and `+XX` with two
/// hex digits (upper case in the RFC; lower case is taken too, as Postfix does). Empty is not.
pub fn is_xtext(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex = |c: u8| c.is_ascii_hexdigit();
                if !(i + 2 < b.len() && hex(b[i + 1]) && hex(b[i + 2])) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            _ => return false,
        }
    }
    !b.is_empty()
}

/// The text xtext stands for; a malformed escape stays as it is, and bytes that are not UTF-8 are
/// replaced (reports show the result).
pub fn decode(xtext: &str) -> String {
    let b = xtext.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            if let Some(byte) = xtext
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` as xtext: `+`, `=`, and everything outside printable ASCII as `+XX`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Longest `ENVID` value accepted (RFC 3461 §4.4: 100 characters).
pub const MAX_ENVID: usize = 100;

/// Whether `value` is an `ENVID=` value: xtext of at most `MAX_ENVID` characters whose text is
/// printable ASCII (RFC 3461 §4.4).
pub fn valid_envid(value: &str) -> bool {
    value.len() <= MAX_ENVID
        && is_xtext(value)
        && decode(value).bytes().all(|b| (32..=126).contains(&b))
}

/// Whether `value` is an `ORCPT=` value: `addr-type;xtext`, the type an atom, the whole at most
/// 500 characters (RFC 3461 §4.2) and the address printable once decoded.
pub fn valid_orcpt(value: &str) -> bool {
    let Some((kind, addr)) = value.split_once(';') else {
        return false;
    };
    value.len() <= 500
        && !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        && is_xtext(addr)
        && decode(addr)
            .bytes()
            .all(|b| (32..=126).contains(&b) || b >= 0x80)
}

/// An `ORCPT` for a report's `Original-Recipient:` field: `rfc822;address`, decoded.
pub fn orcpt_for_report(orcpt: &str) -> String {
    match orcpt.split_once(';') {
        Some((kind, addr)) => format!("{kind};{}", decode(addr)),
        None => decode(orcpt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_values() {
        assert_eq!(Notify::parse("never"), Some(Notify::NEVER));
        let n = Notify::parse("SUCCESS,failure").unwrap();
        assert!(n.success && n.failure && !n.delay);
        assert_eq!(n.as_string(), "SUCCESS,FAILURE");
        assert_eq!(Notify::NEVER.as_string(), "NEVER");
        for bad in [
            "",
            "NEVER,SUCCESS",
            "SUCCESS,SUCCESS",
            "SOMETIMES",
            "SUCCESS,",
            ",DELAY",
        ] {
            assert_eq!(Notify::parse(bad), None, "{bad:?}");
        }
        let d = RecipientDsn::default();
        assert!(d.wants_failure() && d.wants_delay() && !d.wants_success());
        let only_success = RecipientDsn {
            notify: Notify::parse("SUCCESS"),
            orcpt: None,
        };
        assert!(!only_success.wants_failure() && !only_success.wants_delay());
        assert!(only_success.wants_success());
    }

    #[test]
    fn xtext() {
        assert!(is_xtext("abc+2Bdef") && is_xtext("QQ314159"));
        for bad in ["", "a b", "a=b", "+2", "+ZZ", "a+", "\u{44f}"] {
            assert!(!is_xtext(bad), "{bad:?}");
        }
        assert_eq!(decode("joe+2Bx+3Dy+20z"), "joe+x=y z");
        assert_eq!(encode("joe+x=y z"), "joe+2Bx+3Dy+20z");
        assert_eq!(decode(&encode("a b+c\u{44f}")), "a b+c\u{44f}");
        assert!(valid_envid("QQ314159") && !valid_envid(&"x".repeat(101)));
        assert!(!valid_envid("a+0Ab"), "a control character once decoded");
        assert!(valid_orcpt("rfc822;joe+2Bx@example.com"));
        for bad in [
            "joe@example.com",
            ";joe@x",
            "rfc822;",
            "rfc 822;x@y",
            "rfc822;a=b",
        ] {
            assert!(!valid_orcpt(bad), "{bad:?}");
        }
        assert_eq!(
            orcpt_for_report("rfc822;joe+2Bx@example.com"),
            "rfc822;joe+x@example.com"
        );
    }

    #[test]
    fn forwarded_copies_name_the_original_recipient() {
        let d = RecipientDsn {
            notify: Notify::parse("SUCCESS"),
            orcpt: None,
        };
        let f = d.forwarded_from("fwd+1@local.test");
        assert_eq!(f.notify, d.notify);
        assert_eq!(f.orcpt.as_deref(), Some("rfc822;fwd+2B1@local.test"));
        let given = RecipientDsn {
            notify: None,
            orcpt: Some("rfc822;first@x.test".into()),
        };
        assert_eq!(given.forwarded_from("fwd@local.test"), given);
    }
}
