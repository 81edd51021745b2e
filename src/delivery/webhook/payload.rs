//! The JSON a webhook call carries (schema: docs/webhook.md, docs/webhook.schema.json).
//!
//! Built from the mailbox copy as a POP3 client would receive it (unstuffed, `X-DeliveredTo:` and
//! `Return-Path:` first), parsed by mail-parser, which is lenient: a malformed message still gives
//! its envelope, whatever headers it has, and `raw` when asked. The envelope is what the server
//! knows (sender from `Return-Path:`, the mailbox as recipient); everything else is what the
//! message says. The shape follows Standard Webhooks' recommendation `{type, timestamp, data}`.

use base64::Engine;
use mail_parser::{Address, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

/// The event type of every call.
pub const EVENT_TYPE: &str = "message.received";

#[derive(Debug, Serialize)]
pub struct Payload {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the payload was built (RFC 3339, UTC).
    pub timestamp: String,
    pub data: Data,
}

#[derive(Debug, Serialize)]
pub struct Data {
    /// The message's one id (jes's log lines, `jes trace`).
    pub id: String,
    /// Its UIDL in the mailbox (the POP3 UIDL, and the `webhook-id` header).
    pub uidl: String,
    pub envelope: Envelope,
    /// Octets as POP3 serves it.
    pub size: u64,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub date: Option<String>,
    pub from: Vec<Mailbox>,
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub reply_to: Vec<Mailbox>,
    /// Every header line in order, unfolded, values as written (encoded words left as they are).
    pub headers: Vec<Header>,
    /// The first text/plain body part, decoded.
    pub text: Option<String>,
    /// The first text/html body part, decoded, as sent (never made from the text).
    pub html: Option<String>,
    pub attachments: Vec<Attachment>,
    /// The whole message base64-encoded, only with `userprop.ADDRESS.webhook.raw=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Envelope {
    /// `MAIL FROM`; empty for `<>`.
    pub sender: String,
    /// The mailbox it was delivered to.
    pub recipient: String,
    pub id: String,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Mailbox {
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
    /// Decoded octets.
    pub size: u64,
    pub content_id: Option<String>,
    /// `attachment` or `inline` (from Content-Disposition; `attachment` when absent).
    pub disposition: String,
}

/// What the payload is built from besides the message.
pub struct Facts<'a> {
    pub id: &'a str,
    pub uid: &'a str,
    pub mailbox: &'a str,
    pub raw: bool,
    pub now_ms: u64,
}

/// The payload of the message whose mailbox copy, as POP3 serves it, is `unstuffed`.
pub fn build(facts: &Facts, unstuffed: &[u8]) -> Payload {
    let parsed = MessageParser::new().parse(unstuffed);
    let raw = facts
        .raw
        .then(|| base64::engine::general_purpose::STANDARD.encode(unstuffed));
    let mut data = Data {
        id: facts.id.to_string(),
        uidl: facts.uid.to_string(),
        envelope: Envelope {
            sender: String::new(),
            recipient: facts.mailbox.to_string(),
            id: facts.id.to_string(),
        },
        size: unstuffed.len() as u64,
        message_id: None,
        subject: None,
        date: None,
        from: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        reply_to: Vec::new(),
        headers: Vec::new(),
        text: None,
        html: None,
        attachments: Vec::new(),
        raw,
    };
    if let Some(m) = parsed {
        data.envelope.sender = m.return_address().map(str::to_string).unwrap_or_default();
        data.message_id = m.message_id().map(|id| format!("<{id}>"));
        data.subject = m.subject().map(str::to_string);
        data.date = m.date().map(|d| d.to_rfc3339());
        data.from = mailboxes(m.from());
        data.to = mailboxes(m.to());
        data.cc = mailboxes(m.cc());
        data.reply_to = mailboxes(m.reply_to());
        data.headers = m
            .headers_raw()
            .map(|(name, value)| Header {
                name: name.to_string(),
                value: unfold(value),
            })
            .collect();
        data.text = m.text_bodies().find_map(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            _ => None,
        });
        data.html = m.html_bodies().find_map(|p| match &p.body {
            PartType::Html(h) => Some(h.to_string()),
            _ => None,
        });
        data.attachments = m
            .attachments()
            .map(|p| Attachment {
                name: p.attachment_name().map(str::to_string),
                content_type: content_type(p),
                size: p.contents().len() as u64,
                content_id: p.content_id().map(str::to_string),
                disposition: match p.content_disposition() {
                    Some(d) if d.ctype().eq_ignore_ascii_case("inline") => "inline".into(),
                    _ => "attachment".into(),
                },
            })
            .collect();
    }
    Payload {
        kind: EVENT_TYPE,
        timestamp: rfc3339(facts.now_ms),
        data,
    }
}

fn rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn mailboxes(a: Option<&Address>) -> Vec<Mailbox> {
    let Some(a) = a else {
        return Vec::new();
    };
    a.iter()
        .map(|addr| Mailbox {
            name: addr.name.as_deref().map(str::to_string),
            address: addr.address.as_deref().map(str::to_string),
        })
        .collect()
}

/// Folded header lines joined into one.
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIME: &str = "X-DeliveredTo: bob@local.test\r\nReturn-Path: <app@x.test>\r\n\
From: App <app@x.test>\r\nTo: bob@local.test, \"Ann\" <ann@local.test>\r\n\
Subject: =?UTF-8?B?0J/RgNC40LLQtdGC?=\r\nMessage-ID: <m1@x.test>\r\n\
Date: Mon, 30 Nov 2026 14:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: multipart/alternative; boundary=\"b2\"\r\n\r\n\
--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello text\r\n\
--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>hello html</p>\r\n--b2--\r\n\
--b1\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n";

    fn facts(raw: bool) -> Facts<'static> {
        Facts {
            id: "17",
            uid: "17,S=9",
            mailbox: "bob@local.test",
            raw,
            now_ms: 1_795_605_697_556,
        }
    }

    #[test]
    fn parts_headers_and_attachments() {
        let p = build(&facts(false), MIME.as_bytes());
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["type"], "message.received");
        assert_eq!(json["timestamp"], "2026-11-25T11:21:37.556Z");
        let d = &p.data;
        assert_eq!(d.envelope.sender, "app@x.test");
        assert_eq!(d.envelope.recipient, "bob@local.test");
        assert_eq!(d.subject.as_deref(), Some("Привет"));
        assert_eq!(d.message_id.as_deref(), Some("<m1@x.test>"));
        assert_eq!(d.to.len(), 2);
        assert_eq!(d.to[1].name.as_deref(), Some("Ann"));
        assert_eq!(d.text.as_deref().map(str::trim), Some("hello text"));
        assert_eq!(d.html.as_deref().map(str::trim), Some("<p>hello html</p>"));
        assert_eq!(d.attachments.len(), 1);
        let a = &d.attachments[0];
        assert_eq!(
            (a.name.as_deref(), a.content_type.as_str(), a.size),
            (Some("r.pdf"), "application/pdf", 9)
        );
        assert_eq!(d.headers[0].name, "X-DeliveredTo");
        assert!(json["data"].get("raw").is_none(), "raw only when asked");
    }

    #[test]
    fn raw_is_the_message_as_served_and_no_html_is_invented() {
        let msg = b"Return-Path: <>\r\nSubject: t\r\n\r\nonly text\r\n";
        let p = build(&facts(true), msg);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(p.data.raw.as_deref().unwrap())
            .unwrap();
        assert_eq!(raw, msg);
        assert_eq!(p.data.html, None);
        assert_eq!(p.data.envelope.sender, "");
        // Not a message at all: still a payload with the envelope.
        let p = build(&facts(false), b"");
        assert_eq!(p.data.envelope.recipient, "bob@local.test");
    }
}
