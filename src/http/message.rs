//! Reading a stored message for the console: undoing the wire form, then MIME with mail-parser.
//!
//! Stored files are in wire form (CRLF, dot-stuffed: see ARCHITECTURE.md), so a leading dot is
//! removed from each line first, exactly what a POP3 client does after RETR. Everything here works
//! on bytes a stranger wrote: nothing panics on malformed input (mail-parser is lenient and we
//! only take what it found), and nothing is interpreted as HTML except by the sandboxed endpoint.

use mail_parser::{Address, Message, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

/// The message as a POP3 client receives it after RETR (the rule lives with POP3's encoder).
pub use crate::stored_form::unstuff;

/// `Name <addr>, addr2` for display.
fn addresses(a: Option<&Address>) -> Option<String> {
    let a = a?;
    let list: Vec<String> = a
        .iter()
        .map(|addr| {
            let email = addr.address.as_deref().unwrap_or("");
            match addr.name.as_deref() {
                Some(name) if !name.is_empty() && !email.is_empty() => format!("{name} <{email}>"),
                Some(name) if !name.is_empty() => name.to_string(),
                _ => email.to_string(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

/// The fields a message list shows.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    /// The `Date:` header in RFC 3339, if it parses.
    pub date: Option<String>,
}

fn summary_of(m: &Message) -> Summary {
    Summary {
        from: addresses(m.from()),
        to: addresses(m.to()),
        subject: m.subject().map(str::to_string),
        date: m.date().map(|d| d.to_rfc3339()),
    }
}

/// The summary from the start of a message (its header section is enough).
pub fn summarize(unstuffed: &[u8]) -> Summary {
    MessageParser::new()
        .parse_headers(unstuffed)
        .map(|m| summary_of(&m))
        .unwrap_or_default()
}

#[derive(Debug, Serialize)]
pub struct HeaderJson {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct AttachmentJson {
    pub index: usize,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: usize,
}

/// Everything `GET .../messages/{id}` returns but the id and size.
#[derive(Debug, Serialize)]
pub struct Detail {
    pub headers: Vec<HeaderJson>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub cc: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub text: Option<String>,
    pub has_html: bool,
    pub attachments: Vec<AttachmentJson>,
}

fn parse(unstuffed: &[u8]) -> Option<Message<'_>> {
    MessageParser::new().parse(unstuffed)
}

/// Folded header lines joined into one, as a reader wants them.
fn unfold(raw: &str) -> String {
    raw.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn content_type(part: &mail_parser::MessagePart) -> String {
    match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "application/octet-stream".to_string(),
    }
}

/// The first text/plain body part.
fn text_body(m: &Message) -> Option<String> {
    m.text_bodies().find_map(|p| match &p.body {
        PartType::Text(t) => Some(t.to_string()),
        _ => None,
    })
}

/// The first text/html body part, as sent (not converted from text).
pub fn html_body(unstuffed: &[u8]) -> Option<String> {
    let m = parse(unstuffed)?;
    let html = m.html_bodies().find_map(|p| match &p.body {
        PartType::Html(h) => Some(h.to_string()),
        _ => None,
    });
    html
}

pub fn detail(unstuffed: &[u8]) -> Detail {
    let Some(m) = parse(unstuffed) else {
        return Detail {
            headers: Vec::new(),
            from: None,
            to: None,
            cc: None,
            subject: None,
            date: None,
            text: None,
            has_html: false,
            attachments: Vec::new(),
        };
    };
    let s = summary_of(&m);
    let has_html = m.html_bodies().any(|p| matches!(p.body, PartType::Html(_)));
    Detail {
        headers: m
            .headers_raw()
            .map(|(name, value)| HeaderJson {
                name: name.to_string(),
                value: unfold(value),
            })
            .collect(),
        from: s.from,
        to: s.to,
        cc: addresses(m.cc()),
        subject: s.subject,
        date: s.date,
        text: text_body(&m),
        has_html,
        attachments: m
            .attachments()
            .enumerate()
            .map(|(index, p)| AttachmentJson {
                index,
                filename: p.attachment_name().map(str::to_string),
                content_type: content_type(p),
                size: p.contents().len(),
            })
            .collect(),
    }
}

/// Attachment `index`: its file name (if any) and decoded bytes.
pub fn attachment(unstuffed: &[u8], index: usize) -> Option<(Option<String>, Vec<u8>)> {
    let m = parse(unstuffed)?;
    let p = m.attachments().nth(index)?;
    Some((
        p.attachment_name().map(str::to_string),
        p.contents().to_vec(),
    ))
}

/// A file name safe inside `Content-Disposition: attachment; filename="..."`: printable ASCII
/// without quotes, backslashes or path separators; anything else becomes `_`.
pub fn safe_filename(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .take(100)
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '/' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    if trimmed.is_empty() {
        "attachment".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIME: &str = "From: Ann <ann@x.test>\r\nTo: bob@y.test\r\nCc: c@y.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n\
Content-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\n\
..dot line\r\nplain\r\n--b2\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n--b2--\r\n--b1\r\n\
Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r\\\"e/p.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n";

    #[test]
    fn parses_a_multipart_message() {
        let m = unstuff(MIME.as_bytes());
        let d = detail(&m);
        assert_eq!(d.from.as_deref(), Some("Ann <ann@x.test>"));
        assert_eq!(d.cc.as_deref(), Some("c@y.test"));
        assert_eq!(d.subject.as_deref(), Some("Grüße"));
        assert_eq!(d.date.as_deref(), Some("2026-11-23T10:00:00Z"));
        assert!(d
            .text
            .as_deref()
            .is_some_and(|t| t.starts_with(".dot line")));
        assert!(d.has_html);
        assert_eq!(html_body(&m).as_deref(), Some("<p>hi</p>"));
        assert_eq!(d.attachments.len(), 1);
        assert_eq!(d.attachments[0].content_type, "application/pdf");
        let (name, bytes) = attachment(&m, 0).unwrap();
        assert_eq!(bytes, b"%PDF-");
        assert!(!safe_filename(&name.unwrap()).contains(['"', '/']));
        assert!(attachment(&m, 1).is_none());
        assert_eq!(summarize(&m).to.as_deref(), Some("bob@y.test"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for input in [
            &b""[..],
            b"\r\n",
            b"\xff\xfe",
            b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
        ] {
            let _ = detail(input);
            let _ = summarize(input);
            let _ = html_body(input);
            let _ = attachment(input, 0);
        }
    }
}
