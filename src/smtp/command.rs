//! Parsing of command lines and their arguments (RFC 5321 §4.1.2), apart from the state machine so
//! that it can be tested on its own. The grammar is applied strictly where it protects us (only
//! printable ASCII reaches an address, since addresses end up in headers, logs and file names) and
//! leniently where real clients differ from the RFC (a space after `FROM:`, a path without `<>`).
//! Addresses may hold UTF-8 (RFC 6531: local parts, and domains with a valid IDNA form); whether the
//! transaction allows it (`SMTPUTF8`) is the session's decision. Invisible, direction-changing and
//! control characters are never part of an address (`address::unsafe_in_name`). The DSN
//! parameters (RFC 3461: `RET`, `ENVID` on MAIL, `NOTIFY`, `ORCPT` on RCPT) are checked here too.

use super::Body;
use crate::address::{closing_bracket, unsafe_in_name};
use crate::dsn::{MessageDsn, Notify, RecipientDsn, Ret};

/// Splits a command line into its verb and the rest, both trimmed.
pub(super) fn split_verb(line: &str) -> (&str, &str) {
    let line = line.trim_matches(|c| c == ' ' || c == '\t');
    match line.find([' ', '\t']) {
        Some(i) => (
            &line[..i],
            line[i..].trim_matches(|c| c == ' ' || c == '\t'),
        ),
        None => (line, ""),
    }
}

/// Why the argument of MAIL or RCPT could not be parsed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ArgError {
    /// Not `FROM:` / `TO:` followed by a path: `501 5.5.4`.
    Syntax,
    /// The path itself is malformed: `501 5.1.7` (sender) or `501 5.1.3` (recipient).
    Path,
    /// Parameters are malformed: `501 5.5.4`.
    Params,
}

/// A parsed `FROM:<path> params` or `TO:<path> params`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PathArg<'a> {
    pub mailbox: Mailbox,
    pub params: Vec<Param<'a>>,
}

/// One ESMTP parameter, `KEYWORD[=value]`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Param<'a> {
    pub keyword: &'a str,
    pub value: Option<&'a str>,
}

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Mailbox {
    /// `<>`.
    Null,
    /// `local@domain`, as written (a source route dropped).
    Address(String),
    /// A local part without a domain, such as `postmaster`.
    LocalOnly(String),
}

/// Longest path we accept, angle brackets included (RFC 5321 §4.5.3.1.3).
const MAX_PATH: usize = 256;

/// Parses the argument of MAIL (`prefix` = `FROM:`) or RCPT (`prefix` = `TO:`).
pub(super) fn parse_path_arg<'a>(args: &'a str, prefix: &str) -> Result<PathArg<'a>, ArgError> {
    let args = args.trim_start_matches([' ', '\t']);
    let head = args.get(..prefix.len()).ok_or(ArgError::Syntax)?;
    if !head.eq_ignore_ascii_case(prefix) {
        return Err(ArgError::Syntax);
    }
    let rest = args[prefix.len()..].trim_start_matches([' ', '\t']);
    let (path, after) = if let Some(inner) = rest.strip_prefix('<') {
        let end = closing_bracket(inner).ok_or(ArgError::Path)?;
        let after = &inner[end + 1..];
        if !(after.is_empty() || after.starts_with([' ', '\t'])) {
            return Err(ArgError::Syntax);
        }
        (&inner[..end], after)
    } else {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        if end == 0 {
            return Err(ArgError::Syntax);
        }
        (&rest[..end], &rest[end..])
    };
    if path.len() + 2 > MAX_PATH {
        return Err(ArgError::Path);
    }
    let mailbox = parse_mailbox(path).ok_or(ArgError::Path)?;
    let params = parse_params(after).ok_or(ArgError::Params)?;
    Ok(PathArg { mailbox, params })
}

/// Parses the inside of `<...>`: empty, `local@domain`, `@route,@route:local@domain`, or a bare
/// local part. `None` when it is malformed.
fn parse_mailbox(path: &str) -> Option<Mailbox> {
    if path.is_empty() {
        return Some(Mailbox::Null);
    }
    let mailbox = if path.starts_with('@') {
        let colon = path.find(':')?;
        let route = &path[..colon];
        if !route
            .split(',')
            .all(|hop| hop.strip_prefix('@').is_some_and(is_domain))
        {
            return None;
        }
        &path[colon + 1..]
    } else {
        path
    };
    let local_end = local_part_len(mailbox)?;
    let (local, rest) = mailbox.split_at(local_end);
    if local.is_empty() {
        return None;
    }
    if rest.is_empty() {
        return Some(Mailbox::LocalOnly(local.to_string()));
    }
    let domain = rest.strip_prefix('@')?;
    if !(is_domain(domain) || is_address_literal(domain)) {
        return None;
    }
    Some(Mailbox::Address(mailbox.to_string()))
}

/// Length of the local part at the start of `s` (a dot-string or a quoted string), or `None` if it
/// contains a character the grammar does not allow.
fn local_part_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    if bytes.first() == Some(&b'"') {
        let mut i = 1;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => return Some(i + 1),
                b'\\' => {
                    let next = *bytes.get(i + 1)?;
                    if !(32..=126).contains(&next) {
                        return None;
                    }
                    i += 2;
                }
                32..=126 => i += 1,
                0x80.. => {
                    let c = s[i..].chars().next()?;
                    if unsafe_in_name(c) {
                        return None;
                    }
                    i += c.len_utf8();
                }
                _ => return None,
            }
        }
        None
    } else {
        let end = s.find('@').unwrap_or(s.len());
        s[..end]
            .chars()
            .all(|c| {
                if c.is_ascii() {
                    is_atext_or_dot(c as u8)
                } else {
                    !unsafe_in_name(c)
                }
            })
            .then_some(end)
    }
}

fn is_atext_or_dot(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

/// A domain name: letters, digits, `-` and `_` in dot-separated non-empty labels (a trailing dot
/// allowed, as some clients send one); or a Unicode domain whose IDNA A-label form is one.
fn is_domain(d: &str) -> bool {
    if !d.is_ascii() {
        return !d.chars().any(unsafe_in_name)
            && idna::domain_to_ascii(d).is_ok_and(|a| a.is_ascii() && is_domain(&a));
    }
    let d = d.strip_suffix('.').unwrap_or(d);
    !d.is_empty()
        && d.len() <= 255
        && d.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `[127.0.0.1]`, `[IPv6:::1]` and the like: printable ASCII inside brackets.
fn is_address_literal(d: &str) -> bool {
    d.strip_prefix('[')
        .and_then(|d| d.strip_suffix(']'))
        .is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| (33..=126).contains(&b) && !matches!(b, b'[' | b']' | b'\\'))
        })
}

/// Parses ` KEY=value KEY2 ...` (RFC 5321 §4.1.2 esmtp-param).
fn parse_params(s: &str) -> Option<Vec<Param<'_>>> {
    s.split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(|token| {
            let (keyword, value) = match token.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (token, None),
            };
            let keyword_ok = keyword
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
                && keyword
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let value_ok = value.is_none_or(|v| {
                !v.is_empty() && v.bytes().all(|b| (33..=126).contains(&b) && b != b'=')
            });
            (keyword_ok && value_ok).then_some(Param { keyword, value })
        })
        .collect()
}

/// A HELO/EHLO argument fit to appear in a `Received:` line: its first word, printable ASCII.
pub(super) fn helo_name(args: &str) -> Option<&str> {
    let name = args.split([' ', '\t']).find(|w| !w.is_empty())?;
    (name.len() <= 255 && name.bytes().all(|b| b.is_ascii_graphic())).then_some(name)
}

/// A refused parameter: the reply's code, enhanced status code and text.
pub(super) type ParamError = (u16, &'static str, String);

fn bad_value(keyword: &str) -> ParamError {
    (
        501,
        "5.5.4",
        format!("Syntax error in {} parameter", keyword.to_ascii_uppercase()),
    )
}

fn duplicate(keyword: &str) -> ParamError {
    (
        501,
        "5.5.4",
        format!("Duplicate {} parameter", keyword.to_ascii_uppercase()),
    )
}

/// The parameters of MAIL.
pub(super) struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    /// `AUTH=`: accepted, kept, not used yet.
    pub auth: Option<String>,
    pub smtputf8: bool,
    /// `RET=` and `ENVID=` (RFC 3461).
    pub dsn: MessageDsn,
}

/// Reads MAIL's parameters: `SIZE`, `BODY`, `SMTPUTF8`, `AUTH`, `RET`, `ENVID`; a malformed value
/// is `501`, anything else `555`.
pub(super) fn mail_params(params: &[Param<'_>]) -> Result<MailParams, ParamError> {
    let mut m = MailParams {
        size: None,
        body: None,
        auth: None,
        smtputf8: false,
        dsn: MessageDsn::default(),
    };
    let syntax = |text: &str| Err((501, "5.5.4", text.to_string()));
    for p in params {
        let value = p.value.unwrap_or("");
        if mail_dsn_param(p, &mut m.dsn)? {
            continue;
        }
        if p.keyword.eq_ignore_ascii_case("SIZE") {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return syntax("Syntax error in SIZE parameter");
            }
            m.size = Some(value.parse::<u64>().unwrap_or(u64::MAX));
        } else if p.keyword.eq_ignore_ascii_case("BODY") {
            m.body = Some(if value.eq_ignore_ascii_case("7BIT") {
                Body::SevenBit
            } else if value.eq_ignore_ascii_case("8BITMIME") {
                Body::EightBitMime
            } else if value.eq_ignore_ascii_case("BINARYMIME") {
                Body::BinaryMime
            } else {
                return syntax("Unsupported BODY type");
            });
        } else if p.keyword.eq_ignore_ascii_case("SMTPUTF8") && p.value.is_none() {
            m.smtputf8 = true;
        } else if p.keyword.eq_ignore_ascii_case("AUTH") {
            if p.value.is_none() {
                return syntax("Syntax error in AUTH parameter");
            }
            m.auth = Some(value.to_string());
        } else {
            let text = format!("Unsupported parameter {}", p.keyword);
            return Err((555, "5.5.4", text));
        }
    }
    Ok(m)
}

/// Takes MAIL's `RET=` or `ENVID=` (RFC 3461 §4.3, §4.4) into `dsn`. `Ok(false)`: `p` is
/// neither; a malformed or repeated value is `501`.
fn mail_dsn_param(p: &Param<'_>, dsn: &mut MessageDsn) -> Result<bool, ParamError> {
    let value = p.value.unwrap_or("");
    if p.keyword.eq_ignore_ascii_case("RET") {
        if dsn.ret.is_some() {
            return Err(duplicate(p.keyword));
        }
        dsn.ret = Some(Ret::parse(value).ok_or_else(|| bad_value(p.keyword))?);
        Ok(true)
    } else if p.keyword.eq_ignore_ascii_case("ENVID") {
        if dsn.envid.is_some() {
            return Err(duplicate(p.keyword));
        }
        if !crate::dsn::valid_envid(value) {
            return Err(bad_value(p.keyword));
        }
        dsn.envid = Some(value.to_string());
        Ok(true)
    } else {
        Ok(false)
    }
}

/// RCPT's parameters: `NOTIFY=` and `ORCPT=` (RFC 3461 §4.1, §4.2); anything else is `555`, a
/// malformed or repeated value `501`.
pub(super) fn rcpt_params(params: &[Param<'_>]) -> Result<RecipientDsn, ParamError> {
    let mut dsn = RecipientDsn::default();
    for p in params {
        let value = p.value.unwrap_or("");
        if p.keyword.eq_ignore_ascii_case("NOTIFY") {
            if dsn.notify.is_some() {
                return Err(duplicate(p.keyword));
            }
            dsn.notify = Some(Notify::parse(value).ok_or_else(|| bad_value(p.keyword))?);
        } else if p.keyword.eq_ignore_ascii_case("ORCPT") {
            if dsn.orcpt.is_some() {
                return Err(duplicate(p.keyword));
            }
            if !crate::dsn::valid_orcpt(value) {
                return Err(bad_value(p.keyword));
            }
            dsn.orcpt = Some(value.to_string());
        } else {
            return Err((555, "5.5.4", format!("Unsupported parameter {}", p.keyword)));
        }
    }
    Ok(dsn)
}
