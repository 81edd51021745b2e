//! Message content after `354`: finding the end and deciding what to do with what came.
//!
//! The end of data is `CRLF . CRLF` and nothing else (RFC 5321 §4.1.1.4). A small byte-level state
//! machine carries its state across calls, so a terminator split over any number of reads is found
//! exactly as in one piece, and every byte can be consumed at once: the driver never holds data.
//!
//! A bare LF or CR never helps to end the message, so `LF . CRLF`, `CRLF . LF` or `CR . CR` cannot
//! end it early ("SMTP smuggling"). What happens to a bare LF depends on `smtp.barelf`: refused
//! after the message's real end (`reject`), or, as Postfix 3.9 does by default, taken as the end of
//! a line and stored as CRLF (`normalize`), for old scripts that end lines with LF. A bare CR is
//! refused either way: no client means it as a line end. The content is kept in wire form
//! (dot-stuffed, CRLF), which is what JES stored and what RETR and relaying send as is; so a lone
//! `.` line that follows a bare LF, or ends with one, is stored stuffed as `..`: stored as a bare
//! `.` it would end the message early at the POP3 client or the smart host. Past the size limit,
//! or past the header limit while still in the header section (up to and including the first empty
//! line), the bytes are still scanned for the terminator but no longer kept.
//!
//! BDAT (`bdat`) reuses this receiver: it dot-stuffs the chunks' raw bytes into the same wire form
//! and feeds them here, so limits, bare line ends and the stored bytes are decided by one piece of
//! code for both commands. Only `BODY=BINARYMIME` content, which only BDAT can carry, is `binary`:
//! a bare CR or LF is content there, kept as it is, and an LF (bare or not) ends a line as far as
//! dot-stuffing goes, so a line after a bare LF that starts with a dot is stored stuffed too.

/// Where the scanner stands, relative to line ends and a possible terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// Right after a line end, or at the very start of the data.
    LineStart,
    /// Inside a line.
    Mid,
    /// After a CR inside a line; an LF must follow or the CR is bare.
    Cr,
    /// After a `.` at a line start: maybe the terminator.
    Dot,
    /// After `.` CR at a line start: an LF ends the message (unless the line began after a bare LF).
    DotCr,
}

/// How a message ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum DataOutcome {
    /// More octets than `max_message_size`: `552 5.3.4`.
    TooBig,
    /// A header section longer than `max_header_size`: `552 5.3.4`.
    HeaderTooBig,
    /// A bare CR somewhere, or a bare LF when they are not normalised: `550 5.6.11`.
    BareLineEnd,
    /// The content in wire form, without the final `.CRLF`.
    Message(Vec<u8>),
}

#[derive(Debug)]
pub(super) struct DataReceiver {
    scan: Scan,
    data: Vec<u8>,
    /// Octets of content kept or counted so far (a normalised LF counts as CRLF).
    size: u64,
    /// 0 means unlimited.
    max: u64,
    too_big: bool,
    bare: bool,
    /// A bare LF ends a line (stored as CRLF) instead of refusing the message.
    normalize_lf: bool,
    /// The current line began after a bare LF: its `.` CRLF is content, not the terminator.
    after_bare_lf: bool,
    /// Octets of the header section so far; `None` once its empty line has passed.
    header: Option<u64>,
    /// 0 means unlimited.
    max_header: u64,
    header_too_big: bool,
    /// The CR being scanned began its line: with its LF, the line is empty.
    empty_line: bool,
    /// BINARYMIME content: bare CR and LF are kept as they are and never refused.
    binary: bool,
}

impl DataReceiver {
    pub(super) fn new(max: u64, max_header: u64, normalize_lf: bool) -> Self {
        DataReceiver {
            scan: Scan::LineStart,
            data: Vec::new(),
            size: 0,
            max,
            too_big: false,
            bare: false,
            normalize_lf,
            after_bare_lf: false,
            header: Some(0),
            max_header,
            header_too_big: false,
            empty_line: false,
            binary: false,
        }
    }

    /// A receiver for BINARYMIME content (see the module comment).
    pub(super) fn binary(max: u64, max_header: u64) -> Self {
        DataReceiver {
            binary: true,
            ..DataReceiver::new(max, max_header, false)
        }
    }

    /// The content is already refused for its size (or its header's): nothing more is kept, and
    /// BDAT can say so at the chunk that went over instead of at the last one.
    pub(super) fn over_limit(&self) -> bool {
        self.too_big || self.header_too_big
    }

    /// Consumes `input` up to and including the terminator. Returns the octets consumed and
    /// whether the terminator was found (then `finish` gives the outcome).
    pub(super) fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.scan == Scan::Mid {
                // Fast path: copy everything up to the next CR or LF in one go.
                let rest = &input[i..];
                match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
                    None => {
                        self.emit(rest);
                        return (input.len(), false);
                    }
                    Some(p) => {
                        self.emit(&rest[..p]);
                        i += p;
                    }
                }
            }
            let b = input[i];
            i += 1;
            match self.scan {
                Scan::LineStart if b == b'.' => {
                    self.empty_line = false;
                    self.scan = Scan::Dot;
                }
                Scan::LineStart => {
                    self.empty_line =
                        b == b'\r' || (b == b'\n' && (self.normalize_lf || self.binary));
                    self.in_line(b);
                }
                Scan::Mid => self.in_line(b),
                Scan::Cr if b == b'\n' => {
                    self.emit(b"\n");
                    self.line_ended(false);
                }
                Scan::Cr => {
                    self.empty_line = false;
                    self.bare |= !self.binary;
                    self.in_line(b);
                }
                Scan::Dot if b == b'\r' => self.scan = Scan::DotCr,
                Scan::Dot if b == b'\n' && self.normalize_lf => self.lone_dot_line(true),
                Scan::Dot => {
                    self.emit(b".");
                    self.in_line(b);
                }
                Scan::DotCr if b == b'\n' && self.after_bare_lf => self.lone_dot_line(false),
                Scan::DotCr if b == b'\n' => return (i, true),
                Scan::DotCr => {
                    // `.` CR then something else: the CR was bare.
                    self.emit(b".\r");
                    self.bare |= !self.binary;
                    self.in_line(b);
                }
            }
        }
        (i, false)
    }

    /// One octet inside a line (or at a line start when it is not a dot).
    fn in_line(&mut self, b: u8) {
        match b {
            b'\r' => {
                self.emit(b"\r");
                self.scan = Scan::Cr;
            }
            b'\n' if self.binary => {
                self.emit(b"\n");
                self.line_ended(false);
            }
            b'\n' if self.normalize_lf => {
                self.emit(b"\r\n");
                self.line_ended(true);
            }
            b'\n' => {
                self.emit(b"\n");
                self.bare = true;
                self.scan = Scan::Mid;
            }
            _ => {
                self.emit(&[b]);
                self.scan = Scan::Mid;
            }
        }
    }

    /// A line has ended (its CRLF is emitted); `bare_lf`: it ended with a normalised bare LF.
    fn line_ended(&mut self, bare_lf: bool) {
        self.scan = Scan::LineStart;
        self.after_bare_lf = bare_lf;
        if self.empty_line {
            self.header = None; // the header section ends with its empty line
        }
    }

    /// A line that is a lone `.` but not the terminator, because a bare LF began or ended it. It
    /// is content (a dot), stored stuffed, so that nothing downstream takes it for the end.
    fn lone_dot_line(&mut self, ends_with_bare_lf: bool) {
        self.emit(b"..\r\n");
        self.empty_line = false;
        self.line_ended(ends_with_bare_lf);
    }

    fn emit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.size = self.size.saturating_add(bytes.len() as u64);
        if let Some(header) = &mut self.header {
            *header = header.saturating_add(bytes.len() as u64);
            if self.max_header > 0 && *header > self.max_header && !self.header_too_big {
                self.header_too_big = true;
                self.data = Vec::new();
            }
        }
        if self.max > 0 && self.size > self.max && !self.too_big {
            self.too_big = true;
            self.data = Vec::new();
        }
        if self.too_big || self.header_too_big {
            return;
        }
        self.data.extend_from_slice(bytes);
    }

    /// The outcome once `feed` has found the terminator.
    pub(super) fn finish(self) -> DataOutcome {
        if self.header_too_big {
            DataOutcome::HeaderTooBig
        } else if self.too_big {
            DataOutcome::TooBig
        } else if self.bare {
            DataOutcome::BareLineEnd
        } else {
            DataOutcome::Message(self.data)
        }
    }
}
