//! The command loop: how input is cut into commands, and what each command does to the session.
//!
//! Input is consumed line by line, and every complete command is answered in order, which is all
//! PIPELINING (RFC 2920) needs from a server. A command line is only taken once its LF is here or
//! once 512 octets without one have come; an over-long line is then swallowed on the fly (so the
//! driver never holds more than a line's worth) and answered when it finally ends. These decisions
//! depend only on the bytes, never on how they were split into reads, so replies are the same
//! however the client's writes arrive (an AUTH command or exchange line may be 12,288 octets long,
//! RFC 4954, which is decided on the line's first octets, so this holds for it too). After QUIT, a
//! Store, a login check or `421`, nothing more is consumed until the driver answers; after
//! STARTTLS nothing at all until `tls_started`, and the session then starts over without its EHLO,
//! transaction or login, so that commands injected before the handshake are never run (RFC 3207
//! §4.2). AUTH is offered only on an encrypted connection or where the driver allows clear text; a
//! failed login counts as a bad command. Submission requires a login before MAIL, and a logged-in
//! client may be held to its own address as sender.

use super::command::{self, ArgError, Mailbox};
use super::data::{DataOutcome, DataReceiver};
use super::headers::{self, Trace};
use super::reply::{self, reply};
use super::{
    Body, Env, Envelope, Helo, Output, Session, State, Transaction, MAX_AUTH_LINE,
    MAX_COMMAND_LINE, MAX_RECEIVED_HEADERS,
};
use crate::address::canonical;

/// RFC 6531 §3.5: a UTF-8 address in a transaction that did not say SMTPUTF8.
const NEEDS_SMTPUTF8: &str = "Non-ASCII address requires SMTPUTF8 in MAIL FROM";

/// What the next line of input is, as far as the bytes at hand tell.
enum Line<'a> {
    /// A complete line (LF and a CR before it stripped) and the octets it takes.
    Complete(&'a [u8], usize),
    /// No LF within `limit` octets: the line is too long; `limit` octets may be thrown away.
    TooLong,
    /// No LF yet, fewer than `limit` octets: wait for more.
    Partial,
}

fn next_line(rest: &[u8], limit: usize) -> Line<'_> {
    let window = &rest[..rest.len().min(limit)];
    match window.iter().position(|&b| b == b'\n') {
        Some(p) => {
            let line = &rest[..p];
            Line::Complete(line.strip_suffix(b"\r").unwrap_or(line), p + 1)
        }
        None if rest.len() >= limit => Line::TooLong,
        None => Line::Partial,
    }
}

/// The longest line allowed where `rest` starts: an AUTH command may carry an initial response
/// and so be as long as an AUTH exchange line (RFC 4954 §4). Decided on the first five octets,
/// which are always at hand before a line can be too long, so the split of reads cannot matter.
fn command_limit(rest: &[u8]) -> usize {
    match rest.get(..5) {
        Some([a, u, t, h, sp])
            if [*a, *u, *t, *h].eq_ignore_ascii_case(b"AUTH") && matches!(sp, b' ' | b'\t') =>
        {
            MAX_AUTH_LINE
        }
        _ => MAX_COMMAND_LINE,
    }
}

impl Session {
    /// The body of `receive`.
    pub(super) fn run(&mut self, input: &[u8], env: &dyn Env, out: &mut Vec<Output>) -> usize {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match &mut self.state {
                State::Closed | State::StorePending | State::AuthPending(_) | State::TlsPending => {
                    return pos
                }
                State::Closing => {
                    out.push(Output::Close);
                    self.state = State::Closed;
                    return pos;
                }
                State::Data(rx) => {
                    let (n, done) = rx.feed(rest);
                    pos += n;
                    if !done {
                        return pos;
                    }
                    self.end_of_data(env, out);
                }
                State::Chunk(_) if rest.is_empty() => return pos,
                State::Chunk(_) => pos += self.chunk_input(rest, env, out),
                _ if rest.is_empty() => return pos,
                _ if self.discarding_long_line => match rest.iter().position(|&b| b == b'\n') {
                    Some(p) => {
                        pos += p + 1;
                        self.discarding_long_line = false;
                        self.line_too_long(out);
                    }
                    None => return input.len(),
                },
                State::Auth(_) => match next_line(rest, MAX_AUTH_LINE) {
                    Line::Complete(line, n) => {
                        pos += n;
                        self.auth_line(line, out);
                    }
                    Line::TooLong => {
                        pos += MAX_AUTH_LINE;
                        self.discarding_long_line = true;
                    }
                    Line::Partial => return pos,
                },
                State::Command => {
                    let limit = command_limit(rest);
                    match next_line(rest, limit) {
                        Line::Complete(line, n) => {
                            pos += n;
                            self.command(line, env, out);
                        }
                        Line::TooLong => {
                            pos += limit;
                            self.discarding_long_line = true;
                        }
                        Line::Partial => return pos,
                    }
                }
            }
        }
    }

    /// An over-long line has ended: in an AUTH exchange it ends the exchange (RFC 4954 §4).
    fn line_too_long(&mut self, out: &mut Vec<Output>) {
        if matches!(self.state, State::Auth(_)) {
            self.state = State::Command;
            self.bad(
                out,
                500,
                "5.5.6",
                "Authentication exchange line is too long",
            );
        } else {
            self.bad(out, 500, "5.5.2", "Line too long");
        }
    }

    pub(super) fn say(&self, out: &mut Vec<Output>, code: u16, enhanced: &str, text: &str) {
        out.push(Output::Reply(reply(code, enhanced, text)));
    }

    /// Refuses `recipients` with this reply and reports it (`Output::Refused`).
    pub(super) fn refuse(
        &self,
        out: &mut Vec<Output>,
        recipients: Vec<String>,
        (code, enhanced, text): (u16, &str, &str),
    ) {
        let bytes = reply(code, enhanced, text);
        let sender = self
            .transaction
            .as_ref()
            .map(|tx| tx.sender.clone())
            .unwrap_or_default();
        out.push(Output::Refused {
            sender,
            recipients,
            reply: String::from_utf8_lossy(&bytes).trim_end().to_string(),
        });
        out.push(Output::Reply(bytes));
    }

    /// Answers a bad command and counts it; too many end the session.
    pub(super) fn bad(&mut self, out: &mut Vec<Output>, code: u16, enhanced: &str, text: &str) {
        self.say(out, code, enhanced, text);
        self.errors += 1;
        if self.errors >= self.max_errors {
            self.say(out, 421, "4.7.0", "Too many errors");
            out.push(Output::Close);
            self.state = State::Closed;
        }
    }

    fn command(&mut self, line: &[u8], env: &dyn Env, out: &mut Vec<Output>) {
        let Ok(line) = std::str::from_utf8(line) else {
            return self.bad(out, 500, "5.5.2", "Invalid characters in command");
        };
        let (verb, args) = command::split_verb(line);
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.helo(args, true, out),
            "HELO" => self.helo(args, false, out),
            "MAIL" => self.mail(args, env, out),
            "RCPT" => self.rcpt(args, env, out),
            "DATA" => self.data(args, out),
            "BDAT" => self.bdat(args, env, out),
            "RSET" if args.is_empty() => {
                self.transaction = None;
                self.chunks_failed = false;
                self.say(out, 250, "2.0.0", "OK");
            }
            "RSET" => self.bad(out, 501, "5.5.4", "Syntax: RSET"),
            "NOOP" => self.say(out, 250, "2.0.0", "OK"),
            "QUIT" => {
                self.say(out, 221, "2.0.0", "Bye");
                out.push(Output::Close);
                self.state = State::Closed;
            }
            "VRFY" if args.is_empty() => self.bad(out, 501, "5.5.4", "Syntax: VRFY address"),
            "VRFY" => self.say(
                out,
                252,
                "2.5.0",
                "Cannot VRFY user, but will accept message and attempt delivery",
            ),
            "EXPN" => self.say(out, 502, "5.5.1", "EXPN not supported"),
            "HELP" => self.say(
                out,
                214,
                "2.0.0",
                "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP",
            ),
            "STARTTLS" => self.starttls(args, out),
            "AUTH" => self.auth(args, out),
            "TURN" | "ETRN" | "ATRN" | "SEND" | "SOML" | "SAML" => {
                self.say(out, 502, "5.5.1", "Command not implemented")
            }
            "" => self.bad(out, 500, "5.5.2", "Syntax error: empty command"),
            _ => self.bad(out, 500, "5.5.1", "Command unrecognized"),
        }
    }

    fn helo(&mut self, args: &str, esmtp: bool, out: &mut Vec<Output>) {
        let Some(name) = command::helo_name(args) else {
            let text = if esmtp {
                "Syntax: EHLO hostname"
            } else {
                "Syntax: HELO hostname"
            };
            return self.bad(out, 501, "5.5.4", text);
        };
        self.helo = Some(Helo {
            name: name.to_string(),
            esmtp,
        });
        self.transaction = None;
        self.chunks_failed = false;
        let host = &self.params.conn.hostname;
        // RFC 2034: no enhanced status codes in the replies to HELO and EHLO.
        if !esmtp {
            out.push(Output::Reply(reply::plain(250, host)));
            return;
        }
        let size = match self.params.max_message_size {
            0 => "SIZE".to_string(),
            n => format!("SIZE {n}"),
        };
        let mut lines = vec![host.clone(), "PIPELINING".to_string(), size];
        lines.push("8BITMIME".to_string());
        lines.push("BINARYMIME".to_string());
        lines.push("CHUNKING".to_string());
        if self.params.conn.tls_available && !self.encrypted {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_allowed() {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.push("ENHANCEDSTATUSCODES".to_string());
        lines.push("SMTPUTF8".to_string());
        lines.push("DSN".to_string());
        out.push(Output::Reply(reply::multiline(250, &lines)));
    }

    fn mail(&mut self, args: &str, env: &dyn Env, out: &mut Vec<Output>) {
        if self.helo.is_none() {
            return self.bad(out, 503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.transaction.is_some() {
            return self.bad(out, 503, "5.5.1", "Error: nested MAIL command");
        }
        if self.params.submission && self.auth_user.is_none() {
            return self.say(out, 530, "5.7.0", "Authentication required");
        }
        let arg = match command::parse_path_arg(args, "FROM:") {
            Ok(arg) => arg,
            Err(ArgError::Syntax) => {
                return self.bad(out, 501, "5.5.4", "Syntax: MAIL FROM:<address>")
            }
            Err(ArgError::Path) => return self.bad(out, 501, "5.1.7", "Bad sender address syntax"),
            Err(ArgError::Params) => {
                return self.bad(out, 501, "5.5.4", "Syntax error in parameters")
            }
        };
        let sender = match arg.mailbox {
            Mailbox::Null => String::new(),
            Mailbox::Address(a) => a,
            Mailbox::LocalOnly(_) => {
                return self.bad(
                    out,
                    501,
                    "5.1.7",
                    "Bad sender address syntax: domain missing",
                )
            }
        };
        let command::MailParams {
            size,
            body,
            auth,
            smtputf8,
            dsn,
        } = match command::mail_params(&arg.params) {
            Ok(p) => p,
            Err((code, enhanced, text)) => return self.bad(out, code, enhanced, &text),
        };
        if !(smtputf8 || sender.is_ascii()) {
            return self.say(out, 553, "5.6.7", NEEDS_SMTPUTF8);
        }
        if let Some(user) = &self.auth_user {
            if self.params.require_sender_match && canonical(&sender) != canonical(user) {
                let text = format!("Sender address <{sender}> not owned by {user}");
                return self.say(out, 553, "5.7.1", &text);
            }
        }
        let max = self.params.max_message_size;
        if max > 0 && size.is_some_and(|n| n > max) {
            return self.say(
                out,
                552,
                "5.3.4",
                "Message size exceeds fixed maximum message size",
            );
        }
        if !env.storage_available() {
            return self.say(out, 452, "4.3.1", "Insufficient system storage");
        }
        self.transaction = Some(Transaction {
            sender,
            recipients: Vec::new(),
            body,
            auth,
            chunks: None,
            smtputf8,
            dsn: crate::dsn::Dsn {
                message: dsn,
                recipients: Vec::new(),
            },
        });
        self.chunks_failed = false;
        self.say(out, 250, "2.1.0", "OK");
    }

    fn rcpt(&mut self, args: &str, env: &dyn Env, out: &mut Vec<Output>) {
        let Some(tx) = &self.transaction else {
            return self.bad(out, 503, "5.5.1", "Error: need MAIL command");
        };
        let arg = match command::parse_path_arg(args, "TO:") {
            Ok(arg) => arg,
            Err(ArgError::Syntax) => {
                return self.bad(out, 501, "5.5.4", "Syntax: RCPT TO:<address>")
            }
            Err(ArgError::Path) => {
                return self.bad(out, 501, "5.1.3", "Bad recipient address syntax")
            }
            Err(ArgError::Params) => {
                return self.bad(out, 501, "5.5.4", "Syntax error in parameters")
            }
        };
        let rcpt = match arg.mailbox {
            Mailbox::Address(a) => a,
            Mailbox::LocalOnly(l) if l.eq_ignore_ascii_case("postmaster") => "postmaster".into(),
            Mailbox::LocalOnly(_) | Mailbox::Null => {
                return self.bad(out, 501, "5.1.3", "Bad recipient address syntax")
            }
        };
        let rcpt_dsn = match command::rcpt_params(&arg.params) {
            Ok(d) => d,
            Err((code, enhanced, text)) => return self.bad(out, code, enhanced, &text),
        };
        if !(tx.smtputf8 || rcpt.is_ascii()) {
            return self.say(out, 553, "5.6.7", NEEDS_SMTPUTF8);
        }
        let key = canonical(&rcpt);
        if tx.recipients.iter().any(|r| canonical(r) == key) {
            return self.say(out, 250, "2.1.5", "OK");
        }
        if tx.recipients.len() >= self.max_recipients {
            return self.refuse(out, vec![rcpt], (452, "4.5.3", "Too many recipients"));
        }
        match env.check_recipient(&tx.sender, &rcpt) {
            super::RcptDecision::Accept => {
                if let Some(tx) = &mut self.transaction {
                    if rcpt_dsn != crate::dsn::RecipientDsn::default() {
                        tx.dsn.recipients.push((rcpt.clone(), rcpt_dsn));
                    }
                    tx.recipients.push(rcpt);
                }
                self.say(out, 250, "2.1.5", "OK")
            }
            super::RcptDecision::UnknownUser => {
                let text = format!("<{rcpt}>: no such user here");
                self.refuse(out, vec![rcpt], (550, "5.1.1", &text))
            }
            super::RcptDecision::RelayDenied => {
                let text = format!("<{rcpt}>: relaying denied");
                self.refuse(out, vec![rcpt], (550, "5.7.1", &text))
            }
            super::RcptDecision::BadAddress(text) => {
                self.refuse(out, vec![rcpt], (553, "5.1.3", &reply::clean(&text)))
            }
            super::RcptDecision::TryLater => {
                let text = format!("<{rcpt}>: accounts unavailable, try again later");
                self.refuse(out, vec![rcpt], (451, "4.3.0", &text))
            }
        }
    }

    fn data(&mut self, args: &str, out: &mut Vec<Output>) {
        if !args.is_empty() {
            return self.bad(out, 501, "5.5.4", "Syntax: DATA");
        }
        let Some(tx) = &self.transaction else {
            return self.bad(out, 503, "5.5.1", "Error: need MAIL command");
        };
        // RFC 3030 §3: binary content cannot go through DATA, and one message is sent one way.
        if tx.body == Some(Body::BinaryMime) {
            return self.bad(out, 503, "5.5.1", "Error: BODY=BINARYMIME needs BDAT");
        }
        if tx.chunks.is_some() {
            return self.bad(out, 503, "5.5.1", "Error: DATA after BDAT");
        }
        if tx.recipients.is_empty() {
            return self.say(out, 554, "5.5.1", "Error: no valid recipients");
        }
        // An intermediate reply: RFC 3463 codes exist only for 2xx, 4xx and 5xx.
        let text = "End data with <CR><LF>.<CR><LF>";
        out.push(Output::Reply(reply::plain(354, text)));
        self.state = State::Data(DataReceiver::new(
            self.params.max_message_size,
            self.params.max_header_size,
            self.params.normalize_bare_lf,
        ));
    }

    /// The terminator has been seen: the message ends.
    fn end_of_data(&mut self, env: &dyn Env, out: &mut Vec<Output>) {
        let state = std::mem::replace(&mut self.state, State::Command);
        let State::Data(rx) = state else {
            self.state = state;
            return;
        };
        self.finish_message(rx, env, out);
    }

    /// The message's content is all here (DATA's final dot, BDAT's last chunk, or a chunk over a
    /// limit): refuse the message, or hand it to the driver to store.
    pub(super) fn finish_message(
        &mut self,
        rx: DataReceiver,
        env: &dyn Env,
        out: &mut Vec<Output>,
    ) {
        let refusal = match rx.finish() {
            DataOutcome::TooBig => Err((552, "5.3.4", "Message size exceeds fixed limit")),
            DataOutcome::HeaderTooBig => Err((552, "5.3.4", "Message header exceeds fixed limit")),
            DataOutcome::BareLineEnd => Err((
                550,
                "5.6.11",
                if self.params.normalize_bare_lf {
                    "Message contains bare CR; lines must end with CRLF"
                } else {
                    "Message contains bare LF or CR; lines must end with CRLF"
                },
            )),
            DataOutcome::Message(data) => {
                let facts = headers::scan(&data);
                if facts.received >= MAX_RECEIVED_HEADERS {
                    Err((554, "5.4.6", "Too many Received headers: mail loop"))
                } else {
                    Ok((data, facts))
                }
            }
        };
        let (data, facts) = match refusal {
            Ok(accepted) => accepted,
            Err(why) => {
                let recipients = self
                    .transaction
                    .as_ref()
                    .map(|tx| tx.recipients.clone())
                    .unwrap_or_default();
                self.refuse(out, recipients, why);
                self.transaction = None;
                return;
            }
        };
        let (Some(tx), Some(helo)) = (&self.transaction, &self.helo) else {
            return; // unreachable: DATA and BDAT need both
        };
        self.messages += 1;
        let now = env.now_rfc5322();
        let id = format!("{}-{}", self.params.conn.session_id, self.messages);
        let single = match tx.recipients.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let mut prefix = headers::received(&Trace {
            helo: &helo.name,
            protocol: headers::protocol(
                helo.esmtp,
                self.encrypted,
                self.auth_user.is_some(),
                tx.smtputf8,
            ),
            client_ip: self.params.conn.client_ip,
            hostname: &self.params.conn.hostname,
            id: &id,
            single_recipient: single,
            now: &now,
        });
        let trusted = self.params.trusted || self.auth_user.is_some();
        if trusted && !facts.has_date {
            prefix.push_str(&format!("Date: {now}\r\n"));
        }
        if trusted && !facts.has_message_id {
            prefix.push_str(&format!("Message-ID: {}\r\n", env.new_message_id()));
        }
        out.push(Output::Store(Envelope {
            sender: tx.sender.clone(),
            recipients: tx.recipients.clone(),
            header_prefix: prefix.into_bytes(),
            data,
            dsn: tx.dsn.clone(),
        }));
        self.state = State::StorePending;
    }
}
