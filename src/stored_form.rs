//! The stored form of a message, and the one rule that reads it.
//!
//! JES stored every message exactly as it came over SMTP: CRLF line ends and still dot-stuffed,
//! and jes stores the same wire form, so RETR can send a file as it is. But a mailbox file can also
//! be hand-made (bare LF ends, no final line end, a lone `.` line), so nothing trusts the bytes: a
//! stored message is read line by line by one rule, and everything derived from it follows that
//! rule: what POP3 sends (`pop3::wire::encode`), the size LIST and STAT announce (`pop3_size`,
//! `SizeCounter` while a message is written or first listed), and the message a client ends up
//! holding, which the console shows (`unstuff`). So the size can never disagree with RETR.
//!
//! The rule, per stored line (a line ends at LF; one CR right before that LF belongs to the line
//! end; a last piece without LF is a line too):
//! - the line is sent followed by CRLF;
//! - a line that is exactly `.` is sent as `..` (it cannot be wire form, where it would have ended
//!   the message, so it is taken as unstuffed content and stuffed once);
//! - any other line is sent unchanged; if it starts with `.` it is taken as already stuffed, and the
//!   client removes that dot.

/// The lines of stored bytes, each without its line end (LF, or CR LF). A last piece without LF is a
/// line too; nothing after a final LF is.
pub fn lines(stored: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = stored;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                Some(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None => {
                let line = rest;
                rest = &[];
                Some(line)
            }
        }
    })
}

/// The octets one stored line (without its line end) counts for in the POP3 size: the line, CRLF,
/// minus the stuffing dot a client removes.
fn line_size(len: u64, starts_with_dot: bool) -> u64 {
    if starts_with_dot && len != 1 {
        len + 1
    } else {
        len + 2
    }
}

/// The octets a client holds after RETR of `stored`, byte-stuffing removed (RFC 1939's message
/// size for LIST and STAT), CRLF line ends counted.
///
/// For a well-formed wire-form file (CRLF ends) this is the file length, minus one for every line
/// starting with `.`, plus 2 if the final CRLF is missing. Odd files are counted as they are sent:
/// a bare LF becomes CRLF (+1), and a lone `.` line is stuffed (so its dot is not removed).
pub fn pop3_size(stored: &[u8]) -> u64 {
    let mut c = SizeCounter::new();
    c.feed(stored);
    c.size()
}

/// `pop3_size` fed in arbitrary chunks, so the store counts a message while writing it (and a
/// JES-written file while reading it once) without holding it whole.
#[derive(Debug, Clone, Default)]
pub struct SizeCounter {
    total: u64,
    /// Bytes of the current line so far (a trailing CR included until we know whether LF follows).
    line: u64,
    first_dot: bool,
    last_cr: bool,
}

impl SizeCounter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if b == b'\n' {
                let len = self.line - u64::from(self.last_cr);
                self.total += line_size(len, self.first_dot);
                self.line = 0;
                self.first_dot = false;
                self.last_cr = false;
            } else {
                if self.line == 0 {
                    self.first_dot = b == b'.';
                }
                self.line += 1;
                self.last_cr = b == b'\r';
            }
        }
    }

    /// The size of everything fed so far. An empty message is 0.
    pub fn size(&self) -> u64 {
        if self.line == 0 {
            self.total
        } else {
            self.total + line_size(self.line, self.first_dot)
        }
    }
}

/// The message a client holds after RETR of `stored`, byte-stuffing removed: what the web console
/// shows and offers as `.eml`. Its length is always `pop3_size(stored)`.
pub fn unstuff(stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stored.len());
    for line in lines(stored) {
        let content = match line.strip_prefix(b".") {
            Some(rest) if line != b"." => rest,
            _ => line,
        };
        out.extend_from_slice(content);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_form_files_count_the_stuffing_dot_once() {
        assert_eq!(pop3_size(b"a\r\n..b\r\n"), 7);
        assert_eq!(pop3_size(b"..\r\n"), 3);
        assert_eq!(pop3_size(b"x.y\r\n"), 5);
        assert_eq!(pop3_size(b"x\r\n..y\r\n"), 3 + 4);
    }

    #[test]
    fn a_missing_final_line_end_adds_crlf() {
        assert_eq!(pop3_size(b"abc"), 5);
        assert_eq!(pop3_size(b"abc\r"), 6);
        assert_eq!(pop3_size(b""), 0);
    }

    #[test]
    fn odd_files_count_as_they_are_sent() {
        // The two cases where the store and RETR used to disagree (issue 11): a lone dot line is
        // stuffed when sent, so its dot stays; a bare LF is sent as CRLF.
        assert_eq!(pop3_size(b"x\r\n.\r\n"), 6);
        assert_eq!(pop3_size(b"a\nb"), 6);
        assert_eq!(pop3_size(b".\n."), 6);
        assert_eq!(unstuff(b"x\r\n.\r\n"), b"x\r\n.\r\n");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        #[test]
        fn the_counter_is_the_rule_in_any_chunks(
            stored in prop::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..64),
            split in 0usize..64,
        ) {
            let by_lines: u64 = lines(&stored)
                .map(|l| line_size(l.len() as u64, l.first() == Some(&b'.')))
                .sum();
            prop_assert_eq!(pop3_size(&stored), by_lines);
            prop_assert_eq!(unstuff(&stored).len() as u64, by_lines);
            let split = split.min(stored.len());
            let mut c = SizeCounter::new();
            c.feed(&stored[..split]);
            c.feed(&stored[split..]);
            prop_assert_eq!(c.size(), by_lines);
        }
    }
}
