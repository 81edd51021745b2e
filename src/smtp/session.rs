//! The command loop: how input is cut into commands, and what each command does to the session.
//!
//! Input is consumed line by line, and every complete command is answered in order, which is all
//! PIPELINING (RFC 2920) needs from a server. A command line is only taken once its LF is here or
//! once 512 octets without one have come; an over-long line is then swallowed on the fly (so the
//! driver never holds more than a line's worth) and answered when it finally ends. These decisions
//! depend only on the bytes, never on how they were split into reads, so replies are the same
//! however the client's writes arrive. After QUIT, a Store or `421`, nothing more is consumed.

use super::command::{self, ArgError, Mailbox};
use super::data::{DataOutcome, DataReceiver};
use super::headers::{self, Trace};
use super::reply::{self, reply};
use super::{
    Body, Env, Envelope, Helo, Output, Session, State, Transaction, MAX_COMMAND_LINE,
    MAX_RECEIVED_HEADERS,
};

impl Session {
    /// The body of `receive`.
    pub(super) fn run(&mut self, input: &[u8], env: &dyn Env, out: &mut Vec<Output>) -> usize {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match &mut self.state {
                State::Closed | State::StorePending => return pos,
                State::Data(rx) => {
                    let (n, done) = rx.feed(rest);
                    pos += n;
                    if !done {
                        return pos;
                    }
                    self.end_of_data(env, out);
                }
                State::Command if rest.is_empty() => return pos,
                State::Command if self.discarding_long_line => {
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => {
                            pos += p + 1;
                            self.discarding_long_line = false;
                            self.bad(out, 500, "5.5.2", "Line too long");
                        }
                        None => return input.len(),
                    }
                }
                State::Command => {
                    let window = &rest[..rest.len().min(MAX_COMMAND_LINE)];
                    match window.iter().position(|&b| b == b'\n') {
                        Some(p) => {
                            pos += p + 1;
                            let line = &rest[..p];
                            let line = line.strip_suffix(b"\r").unwrap_or(line);
                            self.command(line, env, out);
                        }
                        None if rest.len() >= MAX_COMMAND_LINE => {
                            pos += MAX_COMMAND_LINE;
                            self.discarding_long_line = true;
                        }
                        None => return pos,
                    }
                }
            }
        }
    }

    fn say(&self, out: &mut Vec<Output>, code: u16, enhanced: &str, text: &str) {
        out.push(Output::Reply(reply(code, enhanced, text)));
    }

    /// Answers a bad command and counts it; too many end the session.
    fn bad(&mut self, out: &mut Vec<Output>, code: u16, enhanced: &str, text: &str) {
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
            "RSET" if args.is_empty() => {
                self.transaction = None;
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
                "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP",
            ),
            "TURN" | "ETRN" | "ATRN" | "BDAT" | "STARTTLS" | "AUTH" | "SEND" | "SOML" | "SAML" => {
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
        let host = &self.params.hostname;
        // RFC 2034: no enhanced status codes in the replies to HELO and EHLO.
        if !esmtp {
            out.push(Output::Reply(reply::plain(250, host)));
            return;
        }
        let size = match self.params.max_message_size {
            0 => "SIZE".to_string(),
            n => format!("SIZE {n}"),
        };
        let lines = [
            host.clone(),
            "PIPELINING".to_string(),
            size,
            "8BITMIME".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
        ];
        out.push(Output::Reply(reply::multiline(250, &lines)));
    }

    fn mail(&mut self, args: &str, env: &dyn Env, out: &mut Vec<Output>) {
        if self.helo.is_none() {
            return self.bad(out, 503, "5.5.1", "Error: send HELO/EHLO first");
        }
        if self.transaction.is_some() {
            return self.bad(out, 503, "5.5.1", "Error: nested MAIL command");
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
        let (mut size, mut body, mut auth) = (None, None, None);
        for p in &arg.params {
            let value = p.value.unwrap_or("");
            if p.keyword.eq_ignore_ascii_case("SIZE") {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return self.bad(out, 501, "5.5.4", "Syntax error in SIZE parameter");
                }
                size = Some(value.parse::<u64>().unwrap_or(u64::MAX));
            } else if p.keyword.eq_ignore_ascii_case("BODY") {
                body = Some(if value.eq_ignore_ascii_case("7BIT") {
                    Body::SevenBit
                } else if value.eq_ignore_ascii_case("8BITMIME") {
                    Body::EightBitMime
                } else {
                    return self.bad(out, 501, "5.5.4", "Unsupported BODY type");
                });
            } else if p.keyword.eq_ignore_ascii_case("AUTH") {
                if p.value.is_none() {
                    return self.bad(out, 501, "5.5.4", "Syntax error in AUTH parameter");
                }
                auth = Some(value.to_string());
            } else {
                let text = format!("Unsupported parameter {}", p.keyword);
                return self.bad(out, 555, "5.5.4", &text);
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
        });
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
        if let Some(p) = arg.params.first() {
            let text = format!("Unsupported parameter {}", p.keyword);
            return self.bad(out, 555, "5.5.4", &text);
        }
        if tx.recipients.iter().any(|r| r.eq_ignore_ascii_case(&rcpt)) {
            return self.say(out, 250, "2.1.5", "OK");
        }
        if tx.recipients.len() >= self.max_recipients {
            return self.say(out, 452, "4.5.3", "Too many recipients");
        }
        match env.check_recipient(&tx.sender, &rcpt) {
            super::RcptDecision::Accept => {
                if let Some(tx) = &mut self.transaction {
                    tx.recipients.push(rcpt);
                }
                self.say(out, 250, "2.1.5", "OK")
            }
            super::RcptDecision::UnknownUser => {
                self.say(out, 550, "5.1.1", &format!("<{rcpt}>: no such user here"))
            }
            super::RcptDecision::RelayDenied => {
                self.say(out, 550, "5.7.1", &format!("<{rcpt}>: relaying denied"))
            }
            super::RcptDecision::BadAddress(text) => {
                self.say(out, 553, "5.1.3", &reply::clean(&text))
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
        if tx.recipients.is_empty() {
            return self.say(out, 554, "5.5.1", "Error: no valid recipients");
        }
        // An intermediate reply: RFC 3463 codes exist only for 2xx, 4xx and 5xx.
        let text = "End data with <CR><LF>.<CR><LF>";
        out.push(Output::Reply(reply::plain(354, text)));
        self.state = State::Data(DataReceiver::new(self.params.max_message_size));
    }

    /// The terminator has been seen: refuse the message, or hand it to the driver to store.
    fn end_of_data(&mut self, env: &dyn Env, out: &mut Vec<Output>) {
        let state = std::mem::replace(&mut self.state, State::Command);
        let State::Data(rx) = state else {
            self.state = state;
            return;
        };
        let data = match rx.finish() {
            DataOutcome::TooBig => {
                self.transaction = None;
                return self.say(out, 552, "5.3.4", "Message size exceeds fixed limit");
            }
            DataOutcome::BareLineEnd => {
                self.transaction = None;
                let text = "Message contains bare LF or CR; lines must end with CRLF";
                return self.say(out, 550, "5.6.11", text);
            }
            DataOutcome::Message(data) => data,
        };
        let facts = headers::scan(&data);
        if facts.received >= MAX_RECEIVED_HEADERS {
            self.transaction = None;
            return self.say(out, 554, "5.4.6", "Too many Received headers: mail loop");
        }
        let (Some(tx), Some(helo)) = (&self.transaction, &self.helo) else {
            return; // unreachable: DATA needs both
        };
        self.messages += 1;
        let now = env.now_rfc5322();
        let id = format!("{}-{}", self.params.session_id, self.messages);
        let single = match tx.recipients.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let mut prefix = headers::received(&Trace {
            helo: &helo.name,
            esmtp: helo.esmtp,
            client_ip: self.params.client_ip,
            hostname: &self.params.hostname,
            id: &id,
            single_recipient: single,
            now: &now,
        });
        if self.params.trusted && !facts.has_date {
            prefix.push_str(&format!("Date: {now}\r\n"));
        }
        if self.params.trusted && !facts.has_message_id {
            prefix.push_str(&format!("Message-ID: {}\r\n", env.new_message_id()));
        }
        out.push(Output::Store(Envelope {
            sender: tx.sender.clone(),
            recipients: tx.recipients.clone(),
            header_prefix: prefix.into_bytes(),
            data,
        }));
        self.state = State::StorePending;
    }
}
