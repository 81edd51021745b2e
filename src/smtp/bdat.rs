//! BDAT (CHUNKING, RFC 3030): message content in chunks of a stated length, the last one marked
//! `LAST`, with no terminator and so no dot-stuffing on the wire.
//!
//! A chunk's octets are taken as they are, whatever they hold (a line that reads `QUIT` inside a
//! chunk is content): the session counts them down in `State::Chunk`, and the driver just feeds
//! bytes, as for DATA. Every chunk is read to its end even when the BDAT is refused (no MAIL, no
//! recipient, a transaction that already failed), because the client sends it anyway; only a
//! BDAT whose length cannot be read ends the session, since then nothing tells its octets from the
//! next command.
//!
//! The stored bytes must be the same as DATA would have stored for the same message: the chunks
//! are dot-stuffed on the fly (a dot that starts a line gets a second one) and fed to the very
//! `DataReceiver` DATA uses, which never sees a terminator in stuffed input. So the size and
//! header limits, `smtp.barelf` and a bare CR are decided by the same code, and the size counted
//! is the same wire-form size. A size or header limit that is crossed is answered at that chunk
//! (`552 5.3.4`), and the BDATs a pipelining client already sent behind it get `503 5.5.1`. With
//! `BODY=BINARYMIME` the receiver is `binary`: bare CR and LF are content.

use super::data::DataReceiver;
use super::{Body, Env, Output, Session, State};

/// The BDAT chunk being read.
#[derive(Debug)]
pub(super) struct Chunk {
    /// Its stated length.
    size: u64,
    /// Octets of it still to come.
    remaining: u64,
    last: bool,
    /// Read but thrown away, then answered with this.
    refusal: Option<Refusal>,
}

/// Why a BDAT's chunk is read and thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// No transaction: `503`, a bad command.
    NoMail,
    /// The transaction's earlier chunk was refused: `503`, not counted again.
    Failed,
    /// No recipient was accepted: `554`, as for DATA.
    NoRecipients,
}

/// The content of a transaction's chunks so far, in wire form.
#[derive(Debug)]
pub(super) struct Chunks {
    rx: DataReceiver,
    /// The next octet starts a line (the start of the content, or after an LF).
    line_start: bool,
}

impl Chunks {
    fn new(rx: DataReceiver) -> Self {
        Chunks {
            rx,
            line_start: true,
        }
    }

    /// Takes raw content octets: dot-stuffed into wire form and fed to the receiver.
    fn take(&mut self, mut bytes: &[u8]) {
        while let Some(&first) = bytes.first() {
            if self.line_start && first == b'.' {
                self.feed(b".");
            }
            match bytes.iter().position(|&b| b == b'\n') {
                Some(p) => {
                    self.feed(&bytes[..=p]);
                    bytes = &bytes[p + 1..];
                    self.line_start = true;
                }
                None => {
                    self.feed(bytes);
                    self.line_start = false;
                    bytes = &[];
                }
            }
        }
    }

    fn feed(&mut self, stuffed: &[u8]) {
        // Stuffed input never holds `CRLF . CRLF`, so the receiver takes all of it.
        let (taken, end) = self.rx.feed(stuffed);
        debug_assert!(taken == stuffed.len() && !end);
    }
}

/// `size [LAST]`: the chunk's length and whether it is the last one.
fn parse_args(args: &str) -> Option<(u64, bool)> {
    let mut words = args.split([' ', '\t']).filter(|w| !w.is_empty());
    let size = words.next()?;
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size = size.parse().ok()?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return None,
    };
    words.next().is_none().then_some((size, last))
}

impl Session {
    /// `BDAT size [LAST]`: decides what becomes of the chunk, then reads it (`State::Chunk`).
    pub(super) fn bdat(&mut self, args: &str, env: &dyn Env, out: &mut Vec<Output>) {
        let Some((size, last)) = parse_args(args) else {
            self.say(out, 501, "5.5.4", "Syntax: BDAT size [LAST]");
            self.say(out, 421, "4.5.0", "Chunk length unknown, closing");
            out.push(Output::Close);
            self.state = State::Closed;
            return;
        };
        let refusal = match &mut self.transaction {
            None if self.chunks_failed => Some(Refusal::Failed),
            None => Some(Refusal::NoMail),
            Some(tx) if tx.recipients.is_empty() => Some(Refusal::NoRecipients),
            Some(tx) => {
                if tx.chunks.is_none() {
                    let (max, max_header) =
                        (self.params.max_message_size, self.params.max_header_size);
                    let rx = if tx.body == Some(Body::BinaryMime) {
                        DataReceiver::binary(max, max_header)
                    } else {
                        DataReceiver::new(max, max_header, self.params.normalize_bare_lf)
                    };
                    tx.chunks = Some(Box::new(Chunks::new(rx)));
                }
                None
            }
        };
        let chunk = Chunk {
            size,
            remaining: size,
            last,
            refusal,
        };
        if size == 0 {
            self.end_of_chunk(chunk, env, out);
        } else {
            self.state = State::Chunk(chunk);
        }
    }

    /// Takes what `rest` holds of the current chunk; returns the octets consumed.
    pub(super) fn chunk_input(
        &mut self,
        rest: &[u8],
        env: &dyn Env,
        out: &mut Vec<Output>,
    ) -> usize {
        let State::Chunk(chunk) = &mut self.state else {
            return 0;
        };
        let n = usize::try_from(chunk.remaining).map_or(rest.len(), |r| r.min(rest.len()));
        chunk.remaining -= n as u64;
        if chunk.refusal.is_none() {
            if let Some(chunks) = self.transaction.as_mut().and_then(|t| t.chunks.as_mut()) {
                chunks.take(&rest[..n]);
            }
        }
        if chunk.remaining == 0 {
            if let State::Chunk(chunk) = std::mem::replace(&mut self.state, State::Command) {
                self.end_of_chunk(chunk, env, out);
            }
        }
        n
    }

    /// A chunk has been read: answer it, and after the last one (or one over a limit) end the
    /// message as DATA's final dot does.
    fn end_of_chunk(&mut self, chunk: Chunk, env: &dyn Env, out: &mut Vec<Output>) {
        match chunk.refusal {
            Some(Refusal::NoMail) => {
                return self.bad(out, 503, "5.5.1", "Error: need MAIL command")
            }
            Some(Refusal::Failed) => {
                self.chunks_failed = !chunk.last;
                let text = "Error: transaction already failed, send RSET";
                return self.say(out, 503, "5.5.1", text);
            }
            Some(Refusal::NoRecipients) => {
                return self.say(out, 554, "5.5.1", "Error: no valid recipients")
            }
            None => {}
        }
        let Some(tx) = &mut self.transaction else {
            return; // unreachable: no refusal means a transaction
        };
        let over = tx.chunks.as_ref().is_some_and(|c| c.rx.over_limit());
        if !(chunk.last || over) {
            let text = format!("{} octets received", chunk.size);
            return self.say(out, 250, "2.0.0", &text);
        }
        let Some(chunks) = tx.chunks.take() else {
            return; // unreachable: the first BDAT made them
        };
        self.chunks_failed = over && !chunk.last;
        self.finish_message(chunks.rx, env, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bdat_arguments() {
        assert_eq!(parse_args("0 LAST"), Some((0, true)));
        assert_eq!(parse_args("123"), Some((123, false)));
        assert_eq!(parse_args(" 7\tlast "), Some((7, true)));
        for bad in [
            "",
            "LAST",
            "-1",
            "1x",
            "1 FIRST",
            "1 LAST x",
            "99999999999999999999999",
        ] {
            assert_eq!(parse_args(bad), None, "{bad:?}");
        }
    }
}
