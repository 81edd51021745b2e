//! The SMTP client's protocol text, without I/O: reply parsing, EHLO keywords, command lines.
//!
//! Everything here is a pure function of bytes, so the rules that protect us from a hostile or
//! broken server (bounded replies, consistent codes, no control characters leaking into the
//! queue files and bounces we write) are tested without sockets. The transport only moves bytes
//! and asks this module what they mean.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::Reply;

/// Longest reply line we accept, CRLF included (RFC 5321 §4.5.3.1.5).
pub const MAX_LINE: usize = 512;
/// Most lines in one reply; a server sending more is broken or hostile.
pub const MAX_LINES: usize = 100;

/// A reply with its lines kept apart (EHLO needs them; [`Reply`] joins them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    /// The text of each line after the code and separator, control characters replaced.
    pub lines: Vec<String>,
}

impl Response {
    pub fn reply(&self) -> Reply {
        let text: Vec<&str> = self
            .lines
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        Reply {
            code: self.code,
            text: text.join(" "),
        }
    }

    pub fn class(&self) -> u16 {
        self.code / 100
    }
}

/// Why bytes from the server are not an SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply too long")]
    TooLong,
    #[error("reply has too many lines")]
    TooManyLines,
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// Takes one complete reply off the front of `buf`: `Ok(Some((reply, bytes used)))`, or
/// `Ok(None)` when more bytes are needed. Lines may end in CRLF or a bare LF.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Response, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() >= MAX_LINE {
                Err(ReplyError::TooLong)
            } else {
                Ok(None)
            };
        };
        if nl + 1 > MAX_LINE {
            return Err(ReplyError::TooLong);
        }
        let mut line = &rest[..nl];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        pos += nl + 1;
        let (this_code, last, text) = parse_line(line)?;
        match code {
            None => code = Some(this_code),
            Some(c) if c != this_code => {
                return Err(ReplyError::Malformed(format!(
                    "code {this_code} inside a {c} reply"
                )))
            }
            Some(_) => {}
        }
        if lines.len() == MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
        lines.push(text);
        if last {
            return Ok(Some((
                Response {
                    code: this_code,
                    lines,
                },
                pos,
            )));
        }
    }
}

/// One reply line: code, whether it is the last line, text.
fn parse_line(line: &[u8]) -> Result<(u16, bool, String), ReplyError> {
    let bad = || ReplyError::Malformed(clean(&line[..line.len().min(40)]));
    if line.len() < 3 || !line[..3].iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    // Reply codes are 2yz..5yz with y in 0..=5 (RFC 5321 §4.2.1); 1yz is never used in SMTP.
    if !(b'2'..=b'5').contains(&line[0]) || line[1] > b'5' {
        return Err(bad());
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None => Ok((code, true, String::new())),
        Some(b' ') => Ok((code, true, clean(&line[4..]))),
        Some(b'-') => Ok((code, false, clean(&line[4..]))),
        Some(_) => Err(bad()),
    }
}

/// Server text as we may store it: lossy UTF-8, control characters (CR, LF, tabs…) as spaces,
/// so a reply can never break a line of a queue file or a bounce.
pub fn clean(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

pub use crate::event::enhanced_code;

/// What the server said it can do in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// The server answered EHLO (false after a HELO fallback: no extensions at all).
    pub esmtp: bool,
    pub pipelining: bool,
    /// `SIZE`, with its limit (0: no fixed limit).
    pub size: Option<u64>,
    pub eight_bit_mime: bool,
    pub starttls: bool,
    /// SASL mechanisms, upper case.
    pub auth: Vec<String>,
    pub enhanced_status_codes: bool,
    /// `CHUNKING` (RFC 3030): BDAT.
    pub chunking: bool,
    /// `BINARYMIME` (RFC 3030): binary content, over BDAT only.
    pub binary_mime: bool,
    /// `SMTPUTF8` (RFC 6531): UTF-8 addresses and headers.
    pub smtputf8: bool,
    /// `DSN` (RFC 3461): `RET`, `ENVID`, `NOTIFY`, `ORCPT`.
    pub dsn: bool,
}

impl Extensions {
    /// Reads the keyword lines of an EHLO reply (the first line is the server's greeting).
    pub fn parse(lines: &[String]) -> Extensions {
        let mut ext = Extensions {
            esmtp: true,
            ..Extensions::default()
        };
        for line in lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            let keyword = keyword.to_ascii_uppercase();
            // `AUTH=LOGIN PLAIN` is the pre-RFC 4954 spelling some servers still send.
            let (keyword, first_param) = match keyword.split_once('=') {
                Some((k, p)) => (k.to_string(), Some(p.to_string())),
                None => (keyword, None),
            };
            let params: Vec<String> = first_param
                .into_iter()
                .chain(words.map(str::to_string))
                .filter(|p| !p.is_empty())
                .collect();
            match keyword.as_str() {
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => {
                    let limit = params.first().and_then(|p| p.parse().ok()).unwrap_or(0);
                    ext.size = Some(limit);
                }
                "8BITMIME" => ext.eight_bit_mime = true,
                "STARTTLS" => ext.starttls = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                "CHUNKING" => ext.chunking = true,
                "BINARYMIME" => ext.binary_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "DSN" => ext.dsn = true,
                "AUTH" => {
                    for p in params {
                        let p = p.to_ascii_uppercase();
                        if !ext.auth.contains(&p) {
                            ext.auth.push(p);
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }

    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m == mechanism)
    }
}

/// The first word of a greeting or EHLO reply: the name the server gives itself.
pub fn server_name(lines: &[String]) -> Option<&str> {
    lines.first()?.split_ascii_whitespace().next()
}

/// An address may go between `<` and `>` only without control characters or angle brackets:
/// whatever a queue file holds, it must not smuggle a second command onto the line.
pub fn valid_path(address: &str) -> bool {
    address.len() <= 1000
        && !address
            .chars()
            .any(|c| c.is_control() || c == '<' || c == '>')
}

pub fn ehlo(name: &str) -> String {
    format!("EHLO {name}\r\n")
}

pub fn helo(name: &str) -> String {
    format!("HELO {name}\r\n")
}

/// The `BODY=` a message is sent with (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// No `BODY=` parameter: 7-bit content, or a server that did not say 8BITMIME.
    Unsaid,
    EightBitMime,
    BinaryMime,
}

/// `MAIL FROM:<sender>` with `SIZE=`, `BODY=` and `SMTPUTF8` when they apply.
pub fn mail_from(sender: &str, size: Option<usize>, body: Body, smtputf8: bool) -> String {
    let mut line = format!("MAIL FROM:<{sender}>");
    if let Some(size) = size {
        line.push_str(&format!(" SIZE={size}"));
    }
    match body {
        Body::Unsaid => {}
        Body::EightBitMime => line.push_str(" BODY=8BITMIME"),
        Body::BinaryMime => line.push_str(" BODY=BINARYMIME"),
    }
    if smtputf8 {
        line.push_str(" SMTPUTF8");
    }
    line.push_str("\r\n");
    line
}

pub fn rcpt_to(recipient: &str) -> String {
    format!("RCPT TO:<{recipient}>\r\n")
}

/// ` RET=... ENVID=...` for MAIL, from what the sender gave (already xtext).
pub fn mail_dsn(dsn: &crate::dsn::MessageDsn) -> String {
    let mut params = String::new();
    if let Some(ret) = dsn.ret {
        params.push_str(&format!(" RET={}", ret.as_str()));
    }
    if let Some(envid) = &dsn.envid {
        params.push_str(&format!(" ENVID={envid}"));
    }
    params
}

/// `RCPT TO:<recipient>` with ` NOTIFY=... ORCPT=...` from what the sender gave.
pub fn rcpt_to_dsn(recipient: &str, dsn: &crate::dsn::RecipientDsn) -> String {
    let mut line = format!("RCPT TO:<{recipient}>");
    if let Some(n) = dsn.notify {
        line.push_str(&format!(" NOTIFY={}", n.as_string()));
    }
    if let Some(orcpt) = &dsn.orcpt {
        line.push_str(&format!(" ORCPT={orcpt}"));
    }
    line.push_str("\r\n");
    line
}

/// `AUTH PLAIN` with its initial response (RFC 4616: empty authzid, NUL, user, NUL, password).
pub fn auth_plain(user: &str, password: &str) -> String {
    let token = B64.encode(format!("\0{user}\0{password}"));
    format!("AUTH PLAIN {token}\r\n")
}

/// One answer line of `AUTH LOGIN` (user name, then password), base64.
pub fn auth_login_line(value: &str) -> String {
    format!("{}\r\n", B64.encode(value))
}

/// Whether the header section (up to the first empty line) holds 8-bit octets: raw UTF-8 in a
/// header, which a message that asked for SMTPUTF8 may only carry to a server that offers it.
pub fn header_has_8bit(message: &[u8]) -> bool {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    message[..end].iter().any(|&b| b >= 0x80)
}

/// Whether a message needs `BODY=8BITMIME`.
pub fn has_8bit(message: &[u8]) -> bool {
    message.iter().any(|&b| b >= 0x80)
}

/// Whether a stored message is binary content: a bare CR or LF, which only a BINARYMIME message
/// received over BDAT can hold (DATA turns bare LFs into CRLF or refuses them, and refuses bare
/// CRs). Such a message cannot go through DATA without being changed.
pub fn needs_binary(message: &[u8]) -> bool {
    let mut prev = 0u8;
    for (i, &b) in message.iter().enumerate() {
        let bare_cr = prev == b'\r' && b != b'\n';
        let bare_lf = b == b'\n' && prev != b'\r';
        if bare_cr || bare_lf {
            return true;
        }
        prev = b;
        if i + 1 == message.len() && b == b'\r' {
            return true;
        }
    }
    false
}

/// The content of a stored message (wire form) as BDAT sends it: every line that starts with a
/// dot loses that dot (RFC 5321 §4.5.2), with lines ending at each LF, as the store stuffs them.
pub fn unstuff(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut line_start = true;
    for &b in message {
        if !(line_start && b == b'.') {
            out.push(b);
        }
        line_start = b == b'\n';
    }
    out
}

/// `BDAT size [LAST]` (RFC 3030).
pub fn bdat(size: usize, last: bool) -> String {
    if last {
        format!("BDAT {size} LAST\r\n")
    } else {
        format!("BDAT {size}\r\n")
    }
}

/// A reply we make up ourselves (the server said nothing that fits), in the server's form.
pub fn synthetic(code: u16, text: &str) -> Reply {
    Reply {
        code,
        text: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<(Response, usize)>, ReplyError> {
        parse_reply(s.as_bytes())
    }

    #[test]
    fn single_and_multi_line_replies() {
        let (r, n) = parse("250 2.1.0 Ok\r\nrest").unwrap().unwrap();
        assert_eq!((r.code, n), (250, 14));
        assert_eq!(r.reply().text, "2.1.0 Ok");
        assert_eq!(r.reply().enhanced_code(), Some("2.1.0"));

        let text = "250-mx.example.org hello\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
        let (r, n) = parse(text).unwrap().unwrap();
        assert_eq!(n, text.len());
        assert_eq!(r.lines, ["mx.example.org hello", "PIPELINING", "SIZE 1000"]);
        assert_eq!(
            r.reply().to_string(),
            "250 mx.example.org hello PIPELINING SIZE 1000"
        );

        // A bare code, bare LF line ends.
        let (r, _) = parse("354\n").unwrap().unwrap();
        assert_eq!((r.code, r.reply().text.as_str()), (354, ""));
    }

    #[test]
    fn incomplete_replies_need_more() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("250"), Ok(None));
        assert_eq!(parse("250-first\r\n250-second\r\n"), Ok(None));
        assert_eq!(parse("250-first\r\n25"), Ok(None));
    }

    #[test]
    fn bad_codes_are_malformed() {
        for bad in [
            "hello\r\n",
            "25 x\r\n",
            "2500 x\r\n",
            "25x x\r\n",
            "150 x\r\n",
            "650 x\r\n",
            "260 x\r\n",
            "250_x\r\n",
            "\r\n",
            "250-a\r\n251 b\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ReplyError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn replies_are_bounded() {
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE));
        assert_eq!(parse(&long), Err(ReplyError::TooLong));
        // Without a line end: refused as soon as it cannot fit any more.
        assert_eq!(parse(&"x".repeat(MAX_LINE)), Err(ReplyError::TooLong));
        let fits = format!("250 {}\r\n", "x".repeat(MAX_LINE - 6));
        assert!(parse(&fits).unwrap().is_some());

        let many = "250-x\r\n".repeat(MAX_LINES) + "250 end\r\n";
        assert_eq!(parse(&many), Err(ReplyError::TooManyLines));
        let enough = "250-x\r\n".repeat(MAX_LINES - 1) + "250 end\r\n";
        assert!(parse(&enough).unwrap().is_some());
    }

    #[test]
    fn control_characters_never_reach_the_text() {
        let (r, _) = parse_reply(b"550 bad\x00user\tname\x1b[0m \xff\r\n")
            .unwrap()
            .unwrap();
        let text = r.reply().text;
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.starts_with("bad user name"));
    }

    #[test]
    fn enhanced_codes() {
        assert_eq!(enhanced_code("5.1.1 no such user"), Some("5.1.1"));
        assert_eq!(enhanced_code("4.7.0"), Some("4.7.0"));
        assert_eq!(enhanced_code("2.0.0 Ok: queued"), Some("2.0.0"));
        for none in [
            "",
            "Ok",
            "3.1.1 x",
            "5.1 x",
            "5.1.1.1 x",
            "5.a.1 x",
            "5.1234.1",
        ] {
            assert_eq!(enhanced_code(none), None, "{none:?}");
        }
    }

    #[test]
    fn ehlo_keywords() {
        let lines: Vec<String> = [
            "mx.example.org at your service",
            "pipelining",
            "SIZE 10240000",
            "8BITMIME",
            "STARTTLS",
            "AUTH PLAIN login CRAM-MD5",
            "AUTH=LOGIN",
            "ENHANCEDSTATUSCODES",
            "X-UNKNOWN whatever",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let ext = Extensions::parse(&lines);
        assert!(ext.esmtp && ext.pipelining && ext.eight_bit_mime && ext.starttls);
        assert!(ext.enhanced_status_codes);
        assert_eq!(ext.size, Some(10_240_000));
        assert_eq!(ext.auth, ["PLAIN", "LOGIN", "CRAM-MD5"]);
        assert!(ext.offers_auth("PLAIN") && !ext.offers_auth("XOAUTH2"));
        assert_eq!(server_name(&lines), Some("mx.example.org"));

        // The greeting line is not a keyword; SIZE without a number has no fixed limit.
        let lines = vec!["STARTTLS".to_string(), "SIZE".to_string()];
        let ext = Extensions::parse(&lines);
        assert!(!ext.starttls);
        assert_eq!(ext.size, Some(0));
    }

    #[test]
    fn commands() {
        assert_eq!(ehlo("jes.example.com"), "EHLO jes.example.com\r\n");
        assert_eq!(helo("jes.example.com"), "HELO jes.example.com\r\n");
        assert_eq!(mail_from("", None, Body::Unsaid, false), "MAIL FROM:<>\r\n");
        assert_eq!(
            mail_from("a@b.c", Some(1234), Body::EightBitMime, false),
            "MAIL FROM:<a@b.c> SIZE=1234 BODY=8BITMIME\r\n"
        );
        assert_eq!(
            mail_from("и@b.c", None, Body::BinaryMime, true),
            "MAIL FROM:<и@b.c> BODY=BINARYMIME SMTPUTF8\r\n"
        );
        assert!(header_has_8bit("Subject: \u{44f}\r\n\r\nx".as_bytes()));
        assert!(!header_has_8bit("Subject: x\r\n\r\n\u{44f}".as_bytes()));
        assert_eq!(bdat(0, true), "BDAT 0 LAST\r\n");
        assert_eq!(bdat(12, false), "BDAT 12\r\n");
        assert_eq!(rcpt_to("x@y.z"), "RCPT TO:<x@y.z>\r\n");
        assert!(valid_path("\"odd user\"@example.com") && valid_path(""));
        for bad in ["a@b\r\nRCPT TO:<c@d>", "a\n", "a>b", "<a", "a\0b"] {
            assert!(!valid_path(bad), "{bad:?}");
        }
        assert!(has_8bit("café".as_bytes()) && !has_8bit(b"plain\r\n"));
    }

    #[test]
    fn dsn_parameters_go_on_as_given() {
        let ext = Extensions::parse(&["mx.test".to_string(), "DSN".to_string()]);
        assert!(ext.dsn);
        assert!(!Extensions::parse(&["mx.test".to_string()]).dsn);
        let message = crate::dsn::MessageDsn {
            ret: Some(crate::dsn::Ret::Hdrs),
            envid: Some("QQ+2B1".into()),
        };
        assert_eq!(mail_dsn(&message), " RET=HDRS ENVID=QQ+2B1");
        assert_eq!(mail_dsn(&Default::default()), "");
        let rcpt = crate::dsn::RecipientDsn {
            notify: crate::dsn::Notify::parse("SUCCESS,DELAY"),
            orcpt: Some("rfc822;a+2Bb@c.test".into()),
        };
        assert_eq!(
            rcpt_to_dsn("x@y.z", &rcpt),
            "RCPT TO:<x@y.z> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a+2Bb@c.test\r\n"
        );
        assert_eq!(rcpt_to_dsn("x@y.z", &Default::default()), rcpt_to("x@y.z"));
    }

    #[test]
    fn auth_encodings() {
        // RFC 4616's example: authzid empty, "tim" / "tanstaaftanstaaf".
        assert_eq!(
            auth_plain("tim", "tanstaaftanstaaf"),
            "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n"
        );
        assert_eq!(
            auth_login_line("user@example.com"),
            "dXNlckBleGFtcGxlLmNvbQ==\r\n"
        );
        assert_eq!(auth_login_line("p\u{e4}ss"), "cMOkc3M=\r\n");
    }

    #[test]
    fn binary_content_and_unstuffing() {
        assert!(!needs_binary(b"a\r\nb\r\n") && !needs_binary(b"") && !needs_binary(b"a"));
        for binary in [&b"a\nb"[..], b"a\rb", b"a\r", b"\n", b"a\r\r\n"] {
            assert!(needs_binary(binary), "{binary:?}");
        }
        assert_eq!(
            unstuff(b"..a\r\n.\r\nb..\r\n..\r\n"),
            b".a\r\n\r\nb..\r\n.\r\n"
        );
        // Binary content: a dot after a bare LF was stuffed by the store too.
        assert_eq!(unstuff(b"x\n..y\r.z"), b"x\n.y\r.z");
    }
}
