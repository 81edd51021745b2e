//! One mail transaction over an open connection: MAIL, RCPT…, DATA or BDAT, and RSET / QUIT.
//!
//! When the server offers CHUNKING (RFC 3030) the content goes in BDAT chunks, unstuffed (BDAT
//! has no terminator, so no dot-stuffing): no line of it can ever be taken for the end. Binary
//! content (a BINARYMIME message, with bare CR or LF) can only go that way and only to a server
//! that also says BINARYMIME; to any other it cannot be sent unchanged, and jes does not convert
//! MIME, so its recipients fail with `554 5.6.3` (RFC 3030 §3) and bounce.
//!
//! SMTPUTF8 (RFC 6531) is asked for when the message asked for it (our `Received:` line says
//! `UTF8SMTP...`) or an address needs it, and the server offers it. A server that does not offer
//! it gets addresses in ASCII (IDN domains as A-labels); what has no ASCII form (a UTF-8 local
//! part), and a message that asked for SMTPUTF8 and has UTF-8 in its header, fails with
//! `553 5.6.7` (RFC 6531 §3.2) and bounces. An ASCII message goes as it always did.
//!
//! DSN (RFC 3461): to a server that offers it, `RET=`/`ENVID=` and each recipient's
//! `NOTIFY=`/`ORCPT=` go on as the sender gave them, so that server reports from then on; to one
//! that does not, nothing is sent and the attempt reports `relayed` where `NOTIFY=SUCCESS` asked.
//!
//! The outcome of each recipient is decided only by what the server said about it; anything
//! that breaks the dialogue (an I/O error, a timeout, a reply we cannot parse) is a
//! [`AttemptError::Network`] and the caller defers every recipient not yet decided. After the
//! final dot that includes a connection that breaks before the reply: the message may or may
//! not have been taken, and deferring (a possible duplicate) is the only choice that never
//! loses mail. That is also why the wait after the dot is the full 10 minutes of RFC 5321
//! §4.5.3.2.6: giving up sooner is what makes duplicates likely.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::timeout;

use super::conn::{refused, temporary, Connection};
use super::protocol::{self, Response};
use super::{AttemptError, Outgoing, RecipientOutcome};

/// Bytes written per `data_block` timeout while sending the message.
const DATA_CHUNK: usize = 64 * 1024;

/// Content per BDAT chunk: big enough that the round trip after each does not matter, small
/// enough that a refusal (say, over the server's size limit) stops us early.
const BDAT_CHUNK: usize = 1024 * 1024;

/// How long QUIT waits for its reply and for the close.
const QUIT_WAIT: Duration = Duration::from_secs(10);

/// What the envelope of one transaction says: MAIL FROM, the RCPT lines of the recipients that
/// go out (with their places in the message's list), and the outcomes already known for the
/// others (`None` for those that go out).
struct Envelope {
    mail: String,
    rcpts: Vec<(usize, String)>,
    outcomes: Vec<Option<RecipientOutcome>>,
}

/// Where a transaction stands once its envelope is sent.
enum Next {
    /// Decided without content (no recipient accepted): the outcomes are final.
    Done,
    /// Recipients accepted; the content goes in BDAT chunks.
    Chunks,
    /// The reply to DATA: `354`, or a refusal that decides the accepted recipients.
    Data(Response),
}

impl Connection {
    /// One transaction: MAIL, every RCPT (pipelined when offered), DATA. Outcomes in recipient order.
    pub async fn send(
        &mut self,
        message: Outgoing<'_>,
    ) -> Result<Vec<RecipientOutcome>, AttemptError> {
        if message.recipients.is_empty() {
            return Ok(Vec::new());
        }
        if !protocol::valid_path(message.sender) {
            let reply = protocol::synthetic(501, "5.1.7 bad sender address syntax");
            return Err(refused("MAIL FROM", reply));
        }
        let Envelope {
            mail,
            rcpts,
            mut outcomes,
        } = match self.envelope(&message) {
            Ok(envelope) => envelope,
            // Nothing can go to this server: every recipient gets the same outcome.
            Err(failed) => return Ok(vec![failed; message.recipients.len()]),
        };
        if rcpts.is_empty() {
            return Ok(finish(outcomes));
        }
        let next = if self.ext.pipelining {
            self.envelope_pipelined(mail, &rcpts, &mut outcomes).await?
        } else {
            self.envelope_in_turn(&mail, &rcpts, &mut outcomes).await?
        };
        match next {
            Next::Done => Ok(finish(outcomes)),
            Next::Chunks => self.send_chunks(message.message, outcomes).await,
            Next::Data(reply) => self.send_data(message.message, reply, outcomes).await,
        }
    }

    /// The body type MAIL FROM declares, or the failure of every recipient when this server
    /// cannot take the content unchanged (binary content without CHUNKING and BINARYMIME).
    fn body_type(&self, message: &[u8]) -> Result<protocol::Body, RecipientOutcome> {
        if protocol::needs_binary(message) {
            if !(self.ext.chunking && self.ext.binary_mime) {
                let text = format!(
                    "5.6.3 binary content (BODY=BINARYMIME), which {} does not accept \
                     (no CHUNKING and BINARYMIME)",
                    self.host
                );
                return Err(RecipientOutcome::Failed(protocol::synthetic(554, &text)));
            }
            Ok(protocol::Body::BinaryMime)
        } else if self.ext.eight_bit_mime && protocol::has_8bit(message) {
            Ok(protocol::Body::EightBitMime)
        } else {
            Ok(protocol::Body::Unsaid)
        }
    }

    /// MAIL FROM and the RCPT lines, with SMTPUTF8 and DSN as this server offers them (see the
    /// module comment); `Err` with every recipient's outcome when the content or the sender
    /// cannot go to this server as they are.
    fn envelope(&self, message: &Outgoing<'_>) -> Result<Envelope, RecipientOutcome> {
        let body = self.body_type(message.message)?;
        let size = self.ext.size.map(|_| message.message.len());
        let needs_utf8 = || {
            let text = format!(
                "5.6.7 {} does not offer SMTPUTF8, which this message needs",
                self.host
            );
            RecipientOutcome::Failed(protocol::synthetic(553, &text))
        };
        let asked = crate::smtp::received_with_smtputf8(message.message);
        let utf8_envelope =
            !message.sender.is_ascii() || message.recipients.iter().any(|r| !r.is_ascii());
        let smtputf8 = self.ext.smtputf8 && (asked || utf8_envelope);
        let ascii = |a: &str| {
            if smtputf8 {
                Some(a.to_string())
            } else {
                crate::address::ascii_form(a)
            }
        };
        let sender = match ascii(message.sender) {
            Some(s) if smtputf8 || !(asked && protocol::header_has_8bit(message.message)) => s,
            _ => return Err(needs_utf8()),
        };
        let mut mail = protocol::mail_from(&sender, size, body, smtputf8);
        let dsn = self.ext.dsn;
        if dsn {
            // RFC 3461 §5.2: to a server that offers DSN, the parameters go on as given.
            mail.insert_str(mail.len() - 2, &protocol::mail_dsn(&message.dsn.message));
        }

        // Recipients we will not even send: their outcome is known now.
        let mut rcpts = Vec::new();
        let mut outcomes = Vec::with_capacity(message.recipients.len());
        for (i, r) in message.recipients.iter().enumerate() {
            if !protocol::valid_path(r) {
                let reply = protocol::synthetic(501, "5.1.3 bad recipient address syntax");
                outcomes.push(Some(RecipientOutcome::Failed(reply)));
                continue;
            }
            let Some(to) = ascii(r) else {
                outcomes.push(Some(needs_utf8()));
                continue;
            };
            let line = if dsn {
                protocol::rcpt_to_dsn(&to, &message.dsn.recipient(r))
            } else {
                protocol::rcpt_to(&to)
            };
            rcpts.push((i, line));
            outcomes.push(None);
        }
        Ok(Envelope {
            mail,
            rcpts,
            outcomes,
        })
    }

    /// RFC 2920: MAIL, the RCPTs and DATA in one write, then the replies in order. BDAT waits
    /// for the replies: a chunk sent to a transaction without recipients is wasted.
    async fn envelope_pipelined(
        &mut self,
        mail: String,
        rcpts: &[(usize, String)],
        outcomes: &mut [Option<RecipientOutcome>],
    ) -> Result<Next, AttemptError> {
        let t = self.timeouts;
        let chunking = self.ext.chunking;
        let mut batch = mail;
        for (_, line) in rcpts {
            batch.push_str(line);
        }
        if !chunking {
            batch.push_str("DATA\r\n");
        }
        self.write(batch.as_bytes(), t.command, "MAIL FROM").await?;
        let mail_reply = self.read_reply(t.mail, "MAIL FROM").await?;
        for &(i, _) in rcpts {
            let reply = self.read_reply(t.rcpt, "RCPT TO").await?;
            outcomes[i] = Some(rcpt_outcome(&reply));
        }
        if chunking {
            if mail_reply.class() != 2 {
                self.rset_quietly().await?;
                return Err(mail_error(&mail_reply));
            }
            if !any_accepted(outcomes) {
                self.rset_quietly().await?;
                return Ok(Next::Done);
            }
            return Ok(Next::Chunks);
        }
        let data = self.read_reply(t.data_init, "DATA").await?;
        if mail_reply.class() != 2 {
            self.abandon(&data).await?;
            return Err(mail_error(&mail_reply));
        }
        if !any_accepted(outcomes) {
            self.abandon(&data).await?;
            return Ok(Next::Done);
        }
        Ok(Next::Data(data))
    }

    /// MAIL, each RCPT and DATA one after another, each waiting for its reply.
    async fn envelope_in_turn(
        &mut self,
        mail: &str,
        rcpts: &[(usize, String)],
        outcomes: &mut [Option<RecipientOutcome>],
    ) -> Result<Next, AttemptError> {
        let t = self.timeouts;
        let mail_reply = self.command(mail, t.mail, "MAIL FROM").await?;
        if mail_reply.class() != 2 {
            return Err(mail_error(&mail_reply));
        }
        for (i, line) in rcpts {
            let reply = self.command(line, t.rcpt, "RCPT TO").await?;
            outcomes[*i] = Some(rcpt_outcome(&reply));
        }
        if !any_accepted(outcomes) {
            self.rset_quietly().await?;
            return Ok(Next::Done);
        }
        if self.ext.chunking {
            return Ok(Next::Chunks);
        }
        let data = self.command("DATA\r\n", t.data_init, "DATA").await?;
        Ok(Next::Data(data))
    }

    /// After DATA's reply: the message and the final dot when it was `354`; any other reply
    /// decides the accepted recipients, and nothing is sent.
    async fn send_data(
        &mut self,
        wire: &[u8],
        data_reply: Response,
        mut outcomes: Vec<Option<RecipientOutcome>>,
    ) -> Result<Vec<RecipientOutcome>, AttemptError> {
        let t = self.timeouts;
        if data_reply.code != 354 {
            // Not "go ahead": nothing was sent, so even a 2xx here delivers nothing.
            let reply = data_reply.reply();
            let outcome = match data_reply.class() {
                5 => RecipientOutcome::Failed(reply),
                _ => RecipientOutcome::Deferred(reply),
            };
            for o in outcomes.iter_mut() {
                if let Some(RecipientOutcome::Delivered(_)) = o {
                    *o = Some(outcome.clone());
                }
            }
            self.rset_quietly().await?;
            return Ok(finish(outcomes));
        }

        // The message is already in wire form (CRLF, dot-stuffed): it goes out as it is.
        for chunk in wire.chunks(DATA_CHUNK) {
            self.write(chunk, t.data_block, "message data").await?;
        }
        let end: &[u8] = if wire.is_empty() || wire.ends_with(b"\r\n") {
            b".\r\n"
        } else {
            b"\r\n.\r\n"
        };
        self.write(end, t.data_block, "end of data").await?;
        let final_reply = self.read_reply(t.data_end, "end of data").await?;
        settle_accepted(&mut outcomes, &final_reply);
        Ok(finish(outcomes))
    }

    /// The content in BDAT chunks, unstuffed, the last one `LAST` (`BDAT 0 LAST` for an empty
    /// message). A refused chunk decides every accepted recipient, as the reply to DATA's dot does.
    async fn send_chunks(
        &mut self,
        wire: &[u8],
        mut outcomes: Vec<Option<RecipientOutcome>>,
    ) -> Result<Vec<RecipientOutcome>, AttemptError> {
        let t = self.timeouts;
        let content = protocol::unstuff(wire);
        let mut sent = 0;
        loop {
            let n = (content.len() - sent).min(BDAT_CHUNK);
            let last = sent + n == content.len();
            // The command and its chunk in one buffer: one write where they fit.
            let mut chunk = protocol::bdat(n, last).into_bytes();
            chunk.extend_from_slice(&content[sent..sent + n]);
            for piece in chunk.chunks(DATA_CHUNK) {
                self.write(piece, t.data_block, "BDAT").await?;
            }
            sent += n;
            let wait = if last { t.data_end } else { t.data_block };
            let reply = self.read_reply(wait, "BDAT").await?;
            if last || reply.class() != 2 {
                settle_accepted(&mut outcomes, &reply);
                if !last {
                    self.rset_quietly().await?;
                }
                return Ok(finish(outcomes));
            }
        }
    }

    /// RSET, to reuse the connection for another message; false means the connection is unusable.
    pub async fn reset(&mut self) -> bool {
        match self
            .command("RSET\r\n", self.timeouts.command, "RSET")
            .await
        {
            Ok(reply) if reply.code == 250 => true,
            Ok(reply) => {
                tracing::debug!("{}: RSET answered {}", self.host, reply.reply());
                false
            }
            Err(e) => {
                tracing::debug!("{e}");
                false
            }
        }
    }

    /// QUIT and close.
    pub async fn quit(mut self) {
        if !self.broken {
            let limit = QUIT_WAIT.min(self.timeouts.command);
            if self.write(b"QUIT\r\n", limit, "QUIT").await.is_ok() {
                let _ = self.read_reply(limit, "QUIT").await;
            }
        }
        if let Some(stream) = self.stream.as_mut() {
            let _ = timeout(QUIT_WAIT, stream.shutdown()).await;
        }
    }

    /// A pipelined transaction that will not go on: if the server took DATA anyway, end the
    /// (empty) data at once so the dialogue stays in step, then clear the transaction.
    async fn abandon(&mut self, data_reply: &Response) -> Result<(), AttemptError> {
        if data_reply.code == 354 {
            self.write(b".\r\n", self.timeouts.data_block, "end of data")
                .await?;
            let reply = self
                .read_reply(self.timeouts.data_end, "end of data")
                .await?;
            tracing::warn!(
                "{}: DATA accepted without recipients; sent an empty message, answered {}",
                self.host,
                reply.reply()
            );
        }
        self.rset_quietly().await
    }

    /// RSET whose reply does not matter (only a broken connection does).
    async fn rset_quietly(&mut self) -> Result<(), AttemptError> {
        let reply = self
            .command("RSET\r\n", self.timeouts.command, "RSET")
            .await?;
        if reply.code != 250 {
            tracing::debug!("{}: RSET answered {}", self.host, reply.reply());
        }
        Ok(())
    }
}

fn rcpt_outcome(reply: &Response) -> RecipientOutcome {
    match reply.class() {
        2 => RecipientOutcome::Delivered(reply.reply()),
        5 => RecipientOutcome::Failed(reply.reply()),
        _ => RecipientOutcome::Deferred(reply.reply()),
    }
}

fn any_accepted(outcomes: &[Option<RecipientOutcome>]) -> bool {
    outcomes
        .iter()
        .any(|o| matches!(o, Some(RecipientOutcome::Delivered(_))))
}

/// The reply to the final dot decides every recipient RCPT accepted.
fn settle_accepted(outcomes: &mut [Option<RecipientOutcome>], reply: &Response) {
    for outcome in outcomes.iter_mut() {
        if let Some(RecipientOutcome::Delivered(_)) = outcome {
            *outcome = Some(rcpt_outcome(reply));
        }
    }
}

fn mail_error(reply: &Response) -> AttemptError {
    match reply.class() {
        5 => refused("MAIL FROM", reply.reply()),
        _ => temporary("MAIL FROM", reply.reply()),
    }
}

fn finish(outcomes: Vec<Option<RecipientOutcome>>) -> Vec<RecipientOutcome> {
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                RecipientOutcome::Deferred(protocol::synthetic(451, "4.4.0 not attempted"))
            })
        })
        .collect()
}
